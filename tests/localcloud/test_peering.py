"""Tests for peering.py and its hooks in cloud.py: peering connections as AWS runs them.

The cloud's clock and the Date header, the lifecycle's intermediate states (initiating-request,
invisibility in the accepter's region, provisioning, deleting), AWS's race errors and rules (the
pending-delete rule, InvalidStateTransition, the outstanding-requests quota), tags per account and
region, expiry after 7 days and the records AWS forgets after 2 hours or 2 days, and `instant`
(moto's behaviour). Every test would fail on moto's idealised peering connections.

The cloud runs in-process with no functions (moto's server and the endpoint only), so the tests
need no built binaries; most walk the lifecycle by moving the cloud's clock (no sleeps), one lets
real time do it with durations of a fraction of a second.

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_peering.py` (`make test` runs them all).
"""

from __future__ import annotations

import email.utils
import time

import boto3
import botocore.exceptions
import pytest

from localcloud import peering as pr
from localcloud.testing import ACCOUNT, OSAKA, OTHER, SEOUL, TESTER, client, ec2, error_of, local, request, vpc

A, B = ACCOUNT, OTHER
KEY_A, KEY_B = TESTER, f"{B}-tester"
HOUR, DAY = 3600, 86400
# Long durations, walked through by moving the cloud's clock: nothing depends on how fast the test runs.
SLOW = {"initiating_s": 30, "visibility_s": 60, "provisioning_s": 30, "deleting_s": 30}
NOW = {"initiating_s": 0, "visibility_s": 0, "provisioning_s": 0, "deleting_s": 0}

@pytest.fixture
def cloud(clouds):
    """`cloud(lifecycle=None)`: a local cloud without functions (and so without rules: events are recorded,
    delivered nowhere), reset, with the lifecycle given (AWS's defaults otherwise)."""
    def reset(lifecycle: dict | None = None):
        c = clouds.reset(functions=False)
        status, _ = local("/_local/lifecycle", dict(lifecycle or {}, aws=True))
        assert status == 200
        return c

    return reset


def advance(seconds: float) -> None:
    status, _ = local("/_local/clock", {"advance_s": seconds})
    assert status == 200


def request_peering(vpc_id: str, peer: str, region: str = SEOUL, key: str = KEY_A, peer_region: str | None = None,
                    peer_owner: str | None = None, tags: dict | None = None) -> dict:
    kwargs = {"VpcId": vpc_id, "PeerVpcId": peer}
    if peer_region:
        kwargs["PeerRegion"] = peer_region
    if peer_owner:
        kwargs["PeerOwnerId"] = peer_owner
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "vpc-peering-connection",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return ec2(region, key).create_vpc_peering_connection(**kwargs)["VpcPeeringConnection"]


def listed(pcx_id: str, region: str = SEOUL, key: str = KEY_A) -> dict | None:
    for p in ec2(region, key).describe_vpc_peering_connections()["VpcPeeringConnections"]:
        if p["VpcPeeringConnectionId"] == pcx_id:
            return p
    return None


def state(pcx_id: str, region: str = SEOUL, key: str = KEY_A) -> str | None:
    p = listed(pcx_id, region, key)
    return p["Status"]["Code"] if p else None


def tags_of(pcx_id: str, region: str = SEOUL, key: str = KEY_A) -> dict | None:
    p = listed(pcx_id, region, key)
    return None if p is None else {t["Key"]: t["Value"] for t in p.get("Tags", [])}


def described_tags(pcx_id: str, region: str = SEOUL, key: str = KEY_A) -> dict:
    out = ec2(region, key).describe_tags(Filters=[{"Name": "resource-id", "Values": [pcx_id]}])["Tags"]
    assert all(t["ResourceType"] == "vpc-peering-connection" for t in out), out
    return {t["Key"]: t["Value"] for t in out}


def date_of(headers: dict) -> float:
    value = {k.lower(): v for k, v in headers.items()}["date"]
    assert value.endswith(" GMT") and len(value) == 29, value  # IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    return email.utils.parsedate_to_datetime(value).timestamp()


def pair(cidr_a: str = "10.1.0.0/16", cidr_b: str = "10.2.0.0/16", region_b: str = OSAKA, key_b: str = KEY_A):
    return vpc(SEOUL, cidr_a), vpc(region_b, cidr_b, key_b)


# ------------------------------------------------------------------------------- the clock


def test_clock_moves_every_date_header_and_refuses_bad_bodies(cloud):
    cloud()
    status, st = local("/_local/clock")
    assert status == 200 and st["offset_s"] == 0 and abs(st["now"] - time.time()) < 5, st
    r = ec2().describe_vpcs()
    assert abs(date_of(r["ResponseMetadata"]["HTTPHeaders"]) - time.time()) < 5
    status, st = local("/_local/clock", {"advance_s": 3 * DAY})
    assert status == 200 and st["offset_s"] == 3 * DAY and abs(st["now"] - time.time() - 3 * DAY) < 5, st
    assert abs(date_of(request("GET", "/_local/clock")[1]) - time.time() - 3 * DAY) < 5, "/_local/ answers too"
    r = ec2().describe_vpcs()
    assert abs(date_of(r["ResponseMetadata"]["HTTPHeaders"]) - time.time() - 3 * DAY) < 5, "moto's Date is not used"
    try:  # an error answer carries it too
        ec2().delete_vpc(VpcId="vpc-0000000000000000a")
    except botocore.exceptions.ClientError as e:
        assert abs(date_of(e.response["ResponseMetadata"]["HTTPHeaders"]) - time.time() - 3 * DAY) < 5
    else:
        raise AssertionError("deleted a VPC that does not exist")
    for bad in (b'{"advance_s": -1}', b'{"advance_s": "60"}', b'{"advance_s": true}', b"{}", b"null", b"[60]",
                b'{"advance_s": 60, "then": 1}', b"not json"):
        status, _, answer = request("POST", "/_local/clock", bad)
        assert status == 400 and "error" in answer, (bad, status, answer)
    assert local("/_local/clock")[1]["offset_s"] == 3 * DAY, "a bad body changes nothing"
    local("/_local/reset", {})
    assert local("/_local/clock")[1]["offset_s"] == 0, "reset puts the clock back"


# --------------------------------------------------------------------------- the lifecycle


def test_states_and_invisibility_on_the_cloud_clock(cloud):
    cloud(SLOW)
    v1, v2 = pair()
    created = request_peering(v1, v2, peer_region=OSAKA)
    pcx = created["VpcPeeringConnectionId"]
    assert created["Status"] == {"Code": "initiating-request", "Message": f"Initiating Request to {A}"}, created
    assert abs(created["ExpirationTime"].timestamp() - time.time() - 7 * DAY) < 60, created
    assert state(pcx) == "initiating-request"
    # The accepter's region does not list it yet, and refuses what names it, with AWS's capitalisation.
    assert state(pcx, OSAKA) is None
    osaka = ec2(OSAKA)
    for call in (lambda: osaka.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx),
                 lambda: osaka.reject_vpc_peering_connection(VpcPeeringConnectionId=pcx),
                 lambda: osaka.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx),
                 lambda: osaka.create_tags(Resources=[pcx], Tags=[{"Key": "k", "Value": "v"}]),
                 lambda: osaka.modify_vpc_peering_connection_options(
                     VpcPeeringConnectionId=pcx, AccepterPeeringConnectionOptions={"AllowDnsResolutionFromRemoteVpc": True}),
                 lambda: osaka.describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])):
        assert error_of(call) == ("InvalidVpcPeeringConnectionID.NotFound", 400)
    advance(31)
    assert (state(pcx), state(pcx, OSAKA)) == ("pending-acceptance", None)
    assert listed(pcx)["Status"]["Message"] == f"Pending Acceptance by {A}"
    advance(30)
    assert (state(pcx), state(pcx, OSAKA)) == ("pending-acceptance", "pending-acceptance")
    accepted = osaka.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)["VpcPeeringConnection"]
    assert accepted["Status"] == {"Code": "provisioning", "Message": "Provisioning"}, accepted
    assert (state(pcx), state(pcx, OSAKA)) == ("provisioning", "provisioning")
    assert "ExpirationTime" not in listed(pcx)
    advance(31)
    assert (state(pcx), state(pcx, OSAKA)) == ("active", "active")
    osaka.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)  # either side may delete an active one
    assert (state(pcx), state(pcx, OSAKA)) == ("deleting", "deleting"), "inter-region: deleting first"
    advance(31)
    assert (state(pcx), state(pcx, OSAKA)) == ("deleted", "deleted")
    assert listed(pcx)["Status"]["Message"] == f"Deleted by {A}"


def test_intermediate_states_pass_in_real_time_with_short_durations(cloud):
    cloud({"initiating_s": 2.0, "visibility_s": 3.0, "provisioning_s": 2.0})
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    seen, seen_osaka = [state(pcx)], [state(pcx, OSAKA)]
    deadline = time.monotonic() + 20
    while state(pcx, OSAKA) != "pending-acceptance" and time.monotonic() < deadline:
        seen.append(state(pcx))
        seen_osaka.append(state(pcx, OSAKA))
        time.sleep(0.05)
    seen.append(state(pcx))
    assert seen[0] == "initiating-request" and seen[-1] == "pending-acceptance", seen
    assert seen_osaka[0] is None, seen_osaka
    assert ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)["VpcPeeringConnection"]["Status"][
        "Code"] == "provisioning"
    seen = [state(pcx, OSAKA)]
    while seen[-1] != "active" and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(state(pcx, OSAKA))
    assert seen[0] == "provisioning" and seen[-1] == "active", seen


def test_accept_reject_delete_and_options_in_the_wrong_state(cloud):
    cloud(SLOW)
    v1, v2 = vpc(SEOUL, "10.1.0.0/16"), vpc(SEOUL, "10.2.0.0/16")  # same account, same region
    client = ec2()
    for v in (v1, v2):  # DNS options need DNS hostnames on both sides (another of AWS's rules)
        client.modify_vpc_attribute(VpcId=v, EnableDnsHostnames={"Value": True})
    pcx = request_peering(v1, v2)["VpcPeeringConnectionId"]
    accept = lambda: client.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)  # noqa: E731
    reject = lambda: client.reject_vpc_peering_connection(VpcPeeringConnectionId=pcx)  # noqa: E731
    delete = lambda: client.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)  # noqa: E731
    options = lambda: client.modify_vpc_peering_connection_options(  # noqa: E731
        VpcPeeringConnectionId=pcx, RequesterPeeringConnectionOptions={"AllowDnsResolutionFromRemoteVpc": True})
    assert error_of(accept) == ("InvalidStateTransition", 400), "still initiating-request"
    assert error_of(reject) == ("InvalidStateTransition", 400)
    advance(31)
    assert error_of(options) == ("OperationNotPermitted", 400), "options only on an active connection"
    accept()
    assert error_of(accept) == ("InvalidStateTransition", 400), "accepted twice"
    assert error_of(reject) == ("InvalidStateTransition", 400), "provisioning cannot be rejected"
    assert error_of(options) == ("OperationNotPermitted", 400), "provisioning is not active"
    advance(31)
    assert error_of(accept) == ("InvalidStateTransition", 400), "active"
    options()
    delete()
    assert state(pcx) == "deleted", "same region: deleted at once"
    try:
        delete()
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidStateTransition"
        assert "from deleted to deleting" in e.response["Error"]["Message"], e.response
    else:
        raise AssertionError("deleted twice")
    assert error_of(accept) == ("InvalidStateTransition", 400)
    assert error_of(options) == ("OperationNotPermitted", 400)


def test_only_the_requesters_owner_deletes_a_pending_request(cloud):
    cloud(NOW)
    va, vb = vpc(SEOUL, "10.1.0.0/16"), vpc(SEOUL, "10.2.0.0/16", KEY_B)
    pcx = request_peering(va, vb, peer_owner=B)["VpcPeeringConnectionId"]
    theirs = ec2(SEOUL, KEY_B)
    assert state(pcx, SEOUL, KEY_B) == "pending-acceptance"
    assert error_of(lambda: theirs.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
        ("OperationNotPermitted", 400)
    assert (state(pcx), state(pcx, SEOUL, KEY_B)) == ("pending-acceptance", "pending-acceptance")
    theirs.reject_vpc_peering_connection(VpcPeeringConnectionId=pcx)  # what the accepter may do instead
    assert (state(pcx), state(pcx, SEOUL, KEY_B)) == ("rejected", "rejected")
    assert listed(pcx)["Status"]["Message"] == f"Rejected by {B}"
    assert error_of(lambda: ec2().delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
        ("InvalidStateTransition", 400), "a rejected connection cannot be deleted"
    again = request_peering(va, vb, peer_owner=B)["VpcPeeringConnectionId"]
    ec2().delete_vpc_peering_connection(VpcPeeringConnectionId=again)  # the requester's owner may
    assert (state(again), state(again, SEOUL, KEY_B)) == ("deleted", "deleted")


# ------------------------------------------------------------------------------------ tags


def test_tags_exist_only_in_the_account_and_region_that_wrote_them(cloud):
    c = cloud(NOW)
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA, tags={"side": "requester", "Name": "seoul"})[
        "VpcPeeringConnectionId"]
    assert tags_of(pcx) == {"side": "requester", "Name": "seoul"}
    assert tags_of(pcx, OSAKA) == {}, "the requester's tags are not copied to the accepter's region"
    ec2(OSAKA).create_tags(Resources=[pcx], Tags=[{"Key": "side", "Value": "accepter"}])
    assert tags_of(pcx, OSAKA) == {"side": "accepter"}
    assert tags_of(pcx) == {"side": "requester", "Name": "seoul"}
    assert described_tags(pcx, OSAKA) == {"side": "accepter"}
    assert described_tags(pcx) == {"side": "requester", "Name": "seoul"}
    ec2().delete_tags(Resources=[pcx], Tags=[{"Key": "Name", "Value": "not-this-value"}])
    assert tags_of(pcx) == {"side": "requester", "Name": "seoul"}, "a value given must match to delete"
    ec2().delete_tags(Resources=[pcx], Tags=[{"Key": "side"}])
    assert (tags_of(pcx), tags_of(pcx, OSAKA)) == ({"Name": "seoul"}, {"side": "accepter"})
    # The same across accounts, in one region.
    va, vb = vpc(SEOUL, "10.3.0.0/16"), vpc(SEOUL, "10.4.0.0/16", KEY_B)
    other = request_peering(va, vb, peer_owner=B, tags={"owner": A})["VpcPeeringConnectionId"]
    assert tags_of(other, SEOUL, KEY_B) == {} and described_tags(other, SEOUL, KEY_B) == {}
    ec2(SEOUL, KEY_B).create_tags(Resources=[other], Tags=[{"Key": "owner", "Value": B}])
    assert (tags_of(other), tags_of(other, SEOUL, KEY_B)) == ({"owner": A}, {"owner": B})
    # A role assumed in B (as the reader role is) sees B's view.
    creds = client("sts", SEOUL, KEY_A, retries=True).assume_role(
        RoleArn=f"arn:aws:iam::{B}:role/reader", RoleSessionName="test")["Credentials"]
    reader = boto3.client("ec2", region_name=SEOUL, endpoint_url=c.endpoint, aws_access_key_id=creds["AccessKeyId"],
                          aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    seen = [p for p in reader.describe_vpc_peering_connections()["VpcPeeringConnections"]
            if p["VpcPeeringConnectionId"] == other]
    assert [{t["Key"]: t["Value"] for t in p["Tags"]} for p in seen] == [{"owner": B}], seen
    # DescribeTags' other filters see the caller's tags only.
    found = ec2(SEOUL, KEY_B).describe_tags(Filters=[{"Name": "key", "Values": ["own*"]}])["Tags"]
    assert [(t["ResourceId"], t["Value"]) for t in found] == [(other, B)], found
    assert ec2().describe_tags(Filters=[{"Name": "resource-type", "Values": ["vpc"]}])["Tags"] == []
    # What the IAM evaluation reads (aws:ResourceTag).
    assert c.resource_tags(pcx, OSAKA, A) == {"side": "accepter"}
    assert c.resource_tags(pcx, SEOUL, A) == {"Name": "seoul"}
    assert c.resource_tags(other, SEOUL, B) == {"owner": B}
    assert c.resource_tags(pcx, SEOUL, B) == {}, "not B's connection"
    ec2().create_tags(Resources=[v1], Tags=[{"Key": "tagpeer:peers", "Value": f"{OSAKA}/{v2}"}])
    assert c.resource_tags(v1, SEOUL, A) == {"tagpeer:peers": f"{OSAKA}/{v2}"}, "anything else: moto's tags"


# ---------------------------------------------------------------- expiry and forgetting


def test_a_request_not_accepted_expires_after_7_days_and_is_forgotten_2_days_later(cloud):
    cloud(NOW)
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA, tags={"k": "v"})["VpcPeeringConnectionId"]
    advance(7 * DAY - 60)
    assert (state(pcx), state(pcx, OSAKA)) == ("pending-acceptance", "pending-acceptance")
    advance(120)
    assert (state(pcx), state(pcx, OSAKA)) == ("expired", "expired")
    osaka = ec2(OSAKA)
    assert error_of(lambda: osaka.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
        ("InvalidStateTransition", 400)
    assert error_of(lambda: osaka.reject_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
        ("InvalidStateTransition", 400)
    assert error_of(lambda: ec2().delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
        ("InvalidStateTransition", 400)
    advance(2 * DAY - 300)
    assert (state(pcx), state(pcx, OSAKA)) == ("expired", "expired"), "visible to both for 2 days"
    assert described_tags(pcx) == {"k": "v"}
    advance(600)
    assert (state(pcx), state(pcx, OSAKA)) == (None, None)
    assert described_tags(pcx) == {}, "its tags go with it"
    assert error_of(lambda: ec2().describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])) == \
        ("InvalidVpcPeeringConnectionID.NotFound", 400)


def test_same_account_rejected_and_deleted_records_vanish_after_2_hours(cloud):
    cloud(NOW)
    v1, v2 = pair()
    rejected = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    ec2(OSAKA).reject_vpc_peering_connection(VpcPeeringConnectionId=rejected)
    v3, v4 = pair("10.3.0.0/16", "10.4.0.0/16")
    deleted = request_peering(v3, v4, peer_region=OSAKA)["VpcPeeringConnectionId"]
    ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=deleted)
    ec2().delete_vpc_peering_connection(VpcPeeringConnectionId=deleted)
    advance(2 * HOUR - 60)
    for pcx, code in ((rejected, "rejected"), (deleted, "deleted")):
        assert (state(pcx), state(pcx, OSAKA)) == (code, code)
    advance(120)
    for pcx in (rejected, deleted):
        assert (state(pcx), state(pcx, OSAKA)) == (None, None)
        assert error_of(lambda: ec2(OSAKA).delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)) == \
            ("InvalidVpcPeeringConnectionID.NotFound", 400)


def test_across_accounts_the_other_party_keeps_the_record_2_days(cloud):
    cloud(NOW)
    va, vb = vpc(SEOUL, "10.1.0.0/16"), vpc(SEOUL, "10.2.0.0/16", KEY_B)
    deleted = request_peering(va, vb, peer_owner=B)["VpcPeeringConnectionId"]
    ec2(SEOUL, KEY_B).accept_vpc_peering_connection(VpcPeeringConnectionId=deleted)
    ec2(SEOUL, KEY_B).delete_vpc_peering_connection(VpcPeeringConnectionId=deleted)  # the accepter deletes it
    rejected = request_peering(va, vb, peer_owner=B)["VpcPeeringConnectionId"]
    ec2(SEOUL, KEY_B).reject_vpc_peering_connection(VpcPeeringConnectionId=rejected)
    advance(2 * HOUR + 60)
    # The deleter (B) and the rejecting accepter (B) forget after 2 hours; A keeps both for 2 days.
    assert (state(deleted, SEOUL, KEY_B), state(rejected, SEOUL, KEY_B)) == (None, None)
    assert (state(deleted), state(rejected)) == ("deleted", "rejected")
    advance(2 * DAY)
    assert (state(deleted), state(rejected)) == (None, None)


def test_overlapping_ranges_fail_and_only_the_requester_sees_it_for_2_hours(cloud):
    cloud(SLOW)
    v1 = vpc(SEOUL, "10.1.0.0/16")
    v2 = vpc(OSAKA, "10.1.128.0/17")
    pcx = request_peering(v1, v2, peer_region=OSAKA, tags={"k": "v"})
    assert pcx["Status"]["Code"] == "initiating-request"
    pcx = pcx["VpcPeeringConnectionId"]
    advance(31)
    assert listed(pcx)["Status"] == {"Code": "failed", "Message": pr.FAILED_MESSAGE}
    advance(60)
    assert state(pcx, OSAKA) is None, "never delivered to the accepter"
    for call in (lambda: ec2().delete_vpc_peering_connection(VpcPeeringConnectionId=pcx),
                 lambda: ec2().accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)):
        assert error_of(call) == ("InvalidStateTransition", 400)
    advance(2 * HOUR)
    assert state(pcx) is None and described_tags(pcx) == {}
    # A secondary range overlaps as well.
    v3, v4 = vpc(SEOUL, "10.5.0.0/16"), vpc(OSAKA, "10.6.0.0/16")
    ec2(OSAKA).associate_vpc_cidr_block(VpcId=v4, CidrBlock="10.5.64.0/18")
    other = request_peering(v3, v4, peer_region=OSAKA)["VpcPeeringConnectionId"]
    advance(31)
    assert state(other) == "failed"


# ----------------------------------------------------------------------------- the quota


def test_outstanding_requests_quota_per_account_and_region(cloud):
    c = cloud(dict(NOW, outstanding_requests=2))
    assert local("/_local/lifecycle")[1]["outstanding_requests"] == 2
    vpcs = [vpc(SEOUL, f"10.{i}.0.0/16") for i in range(1, 4)]
    peers = [vpc(OSAKA, f"10.{i}.0.0/16") for i in range(11, 14)]
    first = request_peering(vpcs[0], peers[0], peer_region=OSAKA)["VpcPeeringConnectionId"]
    request_peering(vpcs[1], peers[1], peer_region=OSAKA)
    assert error_of(lambda: request_peering(vpcs[2], peers[2], peer_region=OSAKA)) == \
        ("OutstandingVpcPeeringConnectionLimitExceeded", 400)
    assert len(ec2().describe_vpc_peering_connections()["VpcPeeringConnections"]) == 2, "nothing reached moto"
    # Per region and per account.
    request_peering(peers[2], vpcs[2], region=OSAKA, peer_region=SEOUL)
    vb = [vpc(SEOUL, "10.21.0.0/16", KEY_B), vpc(SEOUL, "10.22.0.0/16", KEY_B)]
    request_peering(vb[0], vb[1], key=KEY_B)
    # An accepted request is no longer outstanding.
    ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=first)
    third = request_peering(vpcs[2], peers[2], peer_region=OSAKA)["VpcPeeringConnectionId"]
    # The refusal is recorded as moto's errors are; its CloudTrail record, if any, is a failed call's.
    _, calls = local("/_local/calls")
    refused = [x for x in calls if x["error"] == "OutstandingVpcPeeringConnectionLimitExceeded"]
    assert len(refused) == 1 and refused[0]["status"] == 400 and refused[0]["action"] == "CreateVpcPeeringConnection"
    assert refused[0]["region"] == SEOUL and refused[0]["account"] == A, refused
    c.settle()
    _, events = local("/_local/events")
    records = [e["event"]["detail"] for e in events if e.get("detail_type") == "AWS API Call via CloudTrail"
               and e["event"]["detail"]["eventName"] == "CreateVpcPeeringConnection"]
    created = [r["responseElements"]["vpcPeeringConnection"]["vpcPeeringConnectionId"] for r in records
               if not r.get("errorCode")]
    assert first in created and third in created, created
    assert all(r["errorCode"].endswith("OutstandingVpcPeeringConnectionLimitExceeded") and not r["responseElements"]
               for r in records if r.get("errorCode")), records
    local("/_local/lifecycle", {"aws": True})
    assert local("/_local/lifecycle")[1]["outstanding_requests"] == 25, "AWS's default"


# ------------------------------------------------------------------- instant and the knobs


def test_instant_is_motos_behaviour(cloud):
    cloud()  # AWS's timing: an immediate accept in the accepter's region does not find the request
    v1, v2 = pair("10.7.0.0/16", "10.8.0.0/16")
    early = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    assert error_of(lambda: ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=early)) == \
        ("InvalidVpcPeeringConnectionID.NotFound", 400)
    local("/_local/lifecycle", {"instant": True})
    st = local("/_local/lifecycle")[1]
    assert st["instant"] is True and all(st[k] == 0 for k in pr.Lifecycle.DURATIONS), st
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    assert state(pcx, OSAKA) == "pending-acceptance", "listed at once"
    answer = ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)["VpcPeeringConnection"]
    assert answer["Status"]["Code"] == "active" and state(pcx) == "active"
    st = local("/_local/lifecycle", {"provisioning_s": 1})[1]
    assert st["instant"] is False and st["provisioning_s"] == 1 and st["initiating_s"] == pr.AWS_TIMING["initiating_s"]


def test_lifecycle_endpoint_defaults_validation_and_reset(cloud):
    c = cloud()
    st = local("/_local/lifecycle")[1]
    assert {k: st[k] for k in pr.AWS_TIMING} == pr.AWS_TIMING and st["instant"] is False, st
    assert all(1 <= v <= 10 for v in pr.AWS_TIMING.values()), "AWS's timing: a few seconds each"
    local("/_local/lifecycle", {"initiating_s": 30, "visibility_s": 45})
    for bad in (b'{"initiating_s": -1}', b'{"visibility_s": "5"}', b'{"provisioning_s": true}', b'{"instant": 1}',
                b'{"typo_s": 1}', b'{"outstanding_requests": 2.5}', b'{"outstanding_requests": -1}', b"[]",
                b'{"initiating_s": 1, "visibility_s": -1}'):
        status, _, answer = request("POST", "/_local/lifecycle", bad)
        assert status == 400 and "error" in answer, (bad, status, answer)
    st = local("/_local/lifecycle")[1]
    assert (st["initiating_s"], st["visibility_s"]) == (30, 45), "a bad body changes nothing"
    local("/_local/reset", {})
    st = local("/_local/lifecycle")[1]
    assert (st["initiating_s"], st["visibility_s"]) == (30, 45), "reset keeps the lifecycle"
    assert c.peering.lifecycle.duration("visibility_s") == 45
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    advance(31)
    assert (state(pcx), state(pcx, OSAKA)) == ("pending-acceptance", None), "the kept lifecycle is in force"
    advance(15)
    assert state(pcx, OSAKA) == "pending-acceptance"
    # --lifecycle JSON on `python -m localcloud`: the same object, checked before the cloud starts.
    assert pr.parse_lifecycle('{"instant": true}') == {"instant": True}
    for bad in ('{"instant": "yes"}', "{", '{"initiating_s": -2}'):
        try:
            pr.parse_lifecycle(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)


def test_cloudtrail_sees_the_answer_the_client_got(cloud):  # the record cloud.after_ec2 builds
    c = cloud(SLOW)
    v1, v2 = pair()
    pcx = request_peering(v1, v2, peer_region=OSAKA)["VpcPeeringConnectionId"]
    error_of(lambda: ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=pcx))  # not listed yet
    advance(61)
    ec2(OSAKA).accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
    c.settle()
    _, calls = local("/_local/calls")
    accepts = [(x["status"], x["error"]) for x in calls if x["action"] == "AcceptVpcPeeringConnection"]
    assert accepts == [(400, "InvalidVpcPeeringConnectionID.NotFound"), (200, None)], accepts
    _, events = local("/_local/events")
    trail = [e["event"]["detail"] for e in events if e.get("detail_type") == "AWS API Call via CloudTrail"
             and e["event"]["detail"]["eventName"] == "AcceptVpcPeeringConnection"]
    done = [r for r in trail if not r.get("errorCode")]
    assert len(done) == 1, trail
    assert done[0]["responseElements"]["vpcPeeringConnection"]["status"]["code"] == "provisioning", done
    assert done[0]["awsRegion"] == OSAKA
    # A refused call, if recorded, is recorded as the failure the client got.
    assert all(r["errorCode"].endswith("InvalidVpcPeeringConnectionID.NotFound") and not r["responseElements"]
               for r in trail if r.get("errorCode")), trail
