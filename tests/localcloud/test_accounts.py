"""Tests for a local cloud of several accounts (cloud.py's `accounts`, `--accounts`): a deployment
per account, each account's stacks, functions, IAM, trails and buses its own, and EventBridge's
delivery between accounts as AWS does it: a rule of one account sends to another account's bus of
the same region, with its role, only into a bus whose policy (AWS::Events::EventBusPolicy) lets
that account in; the event keeps the account it was put in.

Most tests need no process at all: a cloud that is not started still routes what is put on its
buses (`LocalCloud.put`), and a rule whose target is a function is left out. The tests of the
endpoint run one two-account cloud of fake functions (testing.py's `fake_bootstrap`).
"""

from __future__ import annotations

import json

import pytest

from localcloud import cloud as lc
from localcloud import template as tpl
from localcloud.testing import (ACCOUNT, OSAKA, OTHER, REPO, SEOUL, TEMPLATE, client, ec2, error_of,
                                fake_bootstrap, local)

A, B = ACCOUNT, OTHER
THIRD = "333333333333"
PCX = "pcx-0123456789abcdef0"


def side(account: str, region: str = SEOUL, vpc: str = "vpc-0123456789abcdef0") -> dict:
    return {"account": account, "region": region, "vpc": vpc}


def peering_requested(requester: dict, accepter: dict) -> dict:
    return {"link": "l", "peering-connection-id": PCX, "requester": requester, "accepter": accepter}


def buses_only(c: lc.LocalCloud) -> lc.LocalCloud:
    """`c` with no function and only the rules that send to buses: what is put on a bus is routed,
    recorded, and forwarded, and invokes nothing."""
    for stack in c.stacks.values():
        stack.functions.clear()
        stack.rules[:] = [r for r in stack.rules if r.targets and all(t.bus_arn for t in r.targets)]
    return c


def settled_events(c: lc.LocalCloud) -> list[dict]:
    assert c.settle(30)
    with c.record.lock:
        return list(c.record.events)


def put_tagpeer(c: lc.LocalCloud, detail_type: str, detail: dict, account: str = A, region: str = SEOUL) -> dict:
    """A tagpeer event put by `account` on its bus in `region` (as PutEvents makes it)."""
    event = lc.awsevents.envelope(detail_type, "tagpeer", account, region, [], detail)
    c.put(event, region, account)
    return event


# ------------------------------------------------------------ the deployments


def test_one_account_is_todays_cloud():
    c = lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA])
    assert c.accounts == [A] and c.account == A
    assert sorted(c.stacks) == [(A, SEOUL), (A, OSAKA)]
    assert c.stacks[SEOUL] is c.stacks[(A, SEOUL)], "a region alone is the first account's"
    assert SEOUL in c.stacks and (A, SEOUL) in c.stacks and (B, SEOUL) not in c.stacks
    assert "AllowedAccounts" not in c.params[A], "the template's default: no other account"
    assert not [r for s in c.stacks.values() for r in s.rules if any(t.bus_arn for t in r.targets)]
    assert c.trails.state()["account"] == A and list(c.trails.state()["accounts"]) == [A]


def test_each_account_has_its_stacks_allowing_the_others():
    c = lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B, THIRD])
    assert sorted(c.stacks) == sorted((x, r) for x in (A, B, THIRD) for r in (SEOUL, OSAKA))
    for account in (A, B, THIRD):
        others = [x for x in (A, B, THIRD) if x != account]
        assert c.params[account]["AllowedAccounts"] == ",".join(others)
        for region in (SEOUL, OSAKA):
            s = c.stacks[(account, region)]
            assert s.account == account and s.region == region
            env = s.functions["RequesterFunction"].environment
            assert (env["TAGPEER_ACCOUNT"], env["TAGPEER_ALLOWED_ACCOUNTS"]) == (account, ",".join(others))
            assert sorted(r.logical_id for r in s.rules if r.logical_id.startswith("ForwardTo")) == \
                [f"ForwardTo{x}" for x in others]
            assert all(r.account == account for r in s.rules)
            assert sorted(p.logical_id for p in s.bus_policies) == [f"EventsFrom{x}" for x in others]
    # Each account's own trail (the first region's stack owns a multi-region one).
    assert all(c.trails.covers(x, OSAKA) for x in (A, B, THIRD)) and not c.trails.covers("444444444444", SEOUL)
    # Given AllowedAccounts: every account takes it; an account's own parameters win.
    c = lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], template_params={"AllowedAccounts": B}, accounts=[A, B],
                      account_params={B: {"AllowedAccounts": THIRD}})
    assert (c.params[A]["AllowedAccounts"], c.params[B]["AllowedAccounts"]) == (B, THIRD)
    with pytest.raises(ValueError):
        lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL], accounts=[A, "12345"])
    with pytest.raises(ValueError):
        lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL], accounts=[A], account_params={B: {}})


def test_the_command_line_takes_accounts_and_one_accounts_parameters():
    args = lc.parse_args(["--port", "0", "--no-functions", "--accounts", f"{A},{B}", "--param", "CreateTrail=false",
                          "--param", f"{B}:AllowedAccounts=", "--param", "AlarmTopicArn=alarms"])
    c = lc.cloud_from_args(args)
    assert c.accounts == [A, B]
    assert c.params[A]["AllowedAccounts"] == B and c.params[B]["AllowedAccounts"] == ""
    assert c.params[A]["CreateTrail"] == c.params[B]["CreateTrail"] == "false"
    assert c.params[B]["AlarmTopicArn"] == "alarms"
    assert all(not s.functions and not s.rules for s in c.stacks.values()), "--no-functions: every account's"
    assert lc.cloud_from_args(lc.parse_args(["--port", "0"])).accounts == [A], "the default: one account"
    for bad in (["--accounts", "12"], ["--param", f"{THIRD}:AllowedAccounts="], ["--param", "x"]):
        with pytest.raises(SystemExit):
            lc.parse_args(bad)


# ------------------------------------------------------------ between accounts, on the buses


def test_an_event_about_another_accounts_side_is_forwarded_to_its_bus_keeping_its_account():
    c = buses_only(lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B]))
    try:
        event = put_tagpeer(c, "Peering Requested", peering_requested(side(A, OSAKA), side(B, SEOUL)))
        events = settled_events(c)
    finally:
        c.pool.shutdown()
    sent = [e for e in events if e["outcome"] == "forwarded"]
    assert [(e["account"], e["region"], e["rule"], e["target"], e["to_account"], e["to_region"]) for e in sent] == \
        [(A, SEOUL, f"tagpeer-ForwardTo{B}", f"arn:aws:events:{SEOUL}:{B}:event-bus/default", B, SEOUL)], events
    # On B's bus: the same event, its account still A, so B's own forwarding rules (events made in B
    # only) never send it back.
    (there,) = [e for e in events if e["account"] == B]
    assert there["outcome"] == "no rule" and there["region"] == SEOUL, there
    assert there["event"] == event and there["event"]["account"] == A
    assert len(events) == 2, events


def test_an_event_about_no_other_account_stays_on_its_bus():
    c = buses_only(lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B]))
    try:
        put_tagpeer(c, "Peering Requested", peering_requested(side(A, OSAKA), side(A, SEOUL)))
        # B's side, but in Osaka: forwarded only by Osaka's rule, to B's Osaka bus.
        put_tagpeer(c, "Peering Accepted", peering_requested(side(A, SEOUL), side(B, OSAKA)))
        put_tagpeer(c, "Peering Accepted", peering_requested(side(A, SEOUL), side(B, OSAKA)), region=OSAKA)
        events = settled_events(c)
    finally:
        c.pool.shutdown()
    assert sorted((e["account"], e["region"], e["outcome"]) for e in events) == [
        (A, SEOUL, "no rule"), (A, SEOUL, "no rule"), (A, OSAKA, "forwarded"), (B, OSAKA, "no rule")], events


def test_a_bus_whose_policy_does_not_let_the_sender_in_refuses_the_event():
    # B allows only THIRD: its bus has no statement for A (and no rule sends to A).
    c = buses_only(lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B],
                                 account_params={B: {"AllowedAccounts": THIRD}}))
    try:
        put_tagpeer(c, "Peering Requested", peering_requested(side(A, OSAKA), side(B, SEOUL)))
        events = settled_events(c)
    finally:
        c.pool.shutdown()
    (denied,) = events
    assert (denied["account"], denied["region"], denied["rule"], denied["outcome"], denied["to_account"]) == \
        (A, SEOUL, f"tagpeer-ForwardTo{B}", "denied", B), denied
    assert f"arn:aws:events:{SEOUL}:{B}:event-bus/default" in denied["reason"] and A in denied["reason"], denied
    assert not [e for e in events if e["account"] == B], "nothing reached B's bus"


def test_a_bus_policy_takes_only_tagpeers_events_and_an_account_with_no_deployment_none():
    c = buses_only(lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B]))
    rule = next(r for r in c.stacks[(A, SEOUL)].rules if r.logical_id == f"ForwardTo{B}")
    (target,) = rule.targets
    event = lc.awsevents.envelope("Peering Requested", "someone-else", A, SEOUL, [],
                                  peering_requested(side(A, OSAKA), side(B, SEOUL)))
    try:
        c._begin()
        c._deliver(event, SEOUL, rule, target)  # events:source is not tagpeer: the policy's condition fails
        # Another region's bus of another account: not a target EventBridge sends to.
        c._begin()
        c._deliver(event, SEOUL, rule, tpl.Target("x", bus_arn=f"arn:aws:events:{OSAKA}:{B}:event-bus/default",
                                                  role_arn=target.role_arn))
        # A role the stack does not make; an account where no deployment runs (its bus: no policy).
        c._begin()
        c._deliver(event, SEOUL, rule, tpl.Target("y", bus_arn=target.bus_arn,
                                                  role_arn=f"arn:aws:iam::{A}:role/nobody"))
        c._begin()
        c._deliver(event, SEOUL, rule, tpl.Target("z", bus_arn=f"arn:aws:events:{SEOUL}:{THIRD}:event-bus/default"))
        events = settled_events(c)
    finally:
        c.pool.shutdown()
    assert [e["outcome"] for e in events] == ["denied"] * 4, events
    reasons = [e["reason"] for e in events]
    assert "source 'someone-else'" in reasons[0], reasons
    assert "only in the rule's own region" in reasons[1], reasons
    assert "role/nobody is not a role" in reasons[2], reasons
    assert f"account {THIRD} runs no deployment here" in reasons[3], reasons


def test_the_same_accounts_buses_in_other_regions_are_reached_as_before():
    c = buses_only(lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[A, B]))
    rule = tpl.Rule("R", "tagpeer-R", {"source": ["x"]}, None,
                    [tpl.Target("o", bus_arn=f"arn:aws:events:{OSAKA}:{B}:event-bus/default")], account=B)
    c.stacks[(B, SEOUL)].rules.append(rule)
    try:
        c.put(lc.awsevents.envelope("D", "x", B, SEOUL, [], {}), SEOUL, B)
        events = settled_events(c)
    finally:
        c.pool.shutdown()
    assert [(e["account"], e["region"], e["outcome"]) for e in events] == \
        [(B, SEOUL, "forwarded"), (B, OSAKA, "no rule")], events


# ------------------------------------------------------------ two accounts behind the endpoint


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two accounts (A, B) in Seoul and Osaka, every function a fake one (testing.py)."""
    bins = tmp_path_factory.mktemp("bin")
    c = lc.LocalCloud(0, TEMPLATE, bins, [SEOUL, OSAKA], accounts=[A, B])
    for binary in {fn.binary for s in c.stacks.values() for fn in s.functions.values()}:
        fake_bootstrap(str(bins), binary)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def cloud(two):
    two.reset()
    return two


def deliveries(c: lc.LocalCloud) -> list[dict]:
    assert local("/_local/settle", {}, cloud=c)[0] == 200
    status, events = local("/_local/events", cloud=c)
    assert status == 200
    return events


def test_each_account_runs_its_own_function_processes(cloud):
    stacks = {(a, r): s for (a, r), s in cloud.stacks.items()}
    assert sorted(cloud.functions) == sorted((a, r, f) for (a, r), s in stacks.items() for f in s.functions)
    assert cloud.functions[(SEOUL, "RouterFunction")] is cloud.functions[(A, SEOUL, "RouterFunction")]
    for account in (A, B):
        cloud.invoke(OSAKA, "AccepterFunction", {"context": True}, "test", account)
    got = {e["account"]: e for e in deliveries(cloud)}
    for account, other in ((A, B), (B, A)):
        e = got[account]
        env = e["response"]["env"]
        assert e["outcome"] == "ok" and e["caller"] == f"{account}-tagpeer-accepter-{OSAKA}", e
        assert env["AWS_ACCESS_KEY_ID"] == f"{account}-tagpeer-accepter-{OSAKA}.0"
        assert (env["TAGPEER_ACCOUNT"], env["TAGPEER_ALLOWED_ACCOUNTS"], env["AWS_REGION"]) == (account, other, OSAKA)


def test_a_forwarded_event_reaches_the_other_accounts_accepter(cloud):
    events = client("events", SEOUL, f"{A}-tester", cloud=cloud)
    detail = peering_requested(side(A, OSAKA), side(B, SEOUL))
    out = events.put_events(Entries=[{"Source": "tagpeer", "DetailType": "Peering Requested",
                                      "Detail": json.dumps(detail)}])
    assert out["FailedEntryCount"] == 0, out
    got = deliveries(cloud)
    (sent,) = [e for e in got if e["outcome"] == "forwarded"]
    assert (sent["account"], sent["rule"], sent["to_account"]) == (A, f"tagpeer-ForwardTo{B}", B), got
    # B's rule sends it to B's accepter's queue, whose mapping invokes B's accepter.
    (queued,) = [e for e in got if e["outcome"] == "queued"]
    assert (queued["account"], queued["region"], queued["rule"], queued["queue"]) == \
        (B, SEOUL, "tagpeer-PeeringRequestedRule", "AccepterQueue"), queued
    (accepted,) = [e for e in got if e.get("function") == "AccepterFunction"]
    assert (accepted["account"], accepted["region"], accepted["outcome"]) == (B, SEOUL, "ok"), accepted
    assert accepted["caller"] == f"{B}-tagpeer-accepter-{SEOUL}"
    assert accepted["event"]["Records"][0]["eventSourceARN"] == f"arn:aws:sqs:{SEOUL}:{B}:tagpeer-AccepterQueue"
    (event,) = accepted["events"]
    assert event["account"] == A and event["detail"] == detail
    assert not [e for e in got if e["account"] == B and e["outcome"] == "forwarded"], "not sent back"
    assert len(got) == 3, got


def test_put_events_lands_on_the_callers_own_accounts_bus(cloud):
    events = client("events", OSAKA, f"{B}-tester", cloud=cloud)
    out = events.put_events(Entries=[
        {"Source": "tagpeer", "DetailType": "Link Ready", "Detail": "{}"},
        {"Source": "tagpeer", "DetailType": "Link Ready", "Detail": "{}",
         "EventBusName": f"arn:aws:events:{OSAKA}:{A}:event-bus/default"},
        {"Source": "tagpeer", "DetailType": "Link Ready", "Detail": "{}",
         "EventBusName": f"arn:aws:events:{SEOUL}:{B}:event-bus/default"},
    ])
    assert out["FailedEntryCount"] == 1 and out["Entries"][1]["ErrorCode"] == "AccessDeniedException", out
    got = deliveries(cloud)
    assert sorted((e["account"], e["region"], e["event"]["account"], e["outcome"]) for e in got) == \
        [(B, SEOUL, B, "no rule"), (B, OSAKA, B, "no rule")], got
    _, calls = local("/_local/calls", cloud=cloud)
    assert [(x["action"], x["account"]) for x in calls] == [("PutEvents", B)], calls


def test_tag_changes_and_cloudtrail_go_to_the_callers_accounts_bus(cloud):
    vpc = ec2(SEOUL, f"{B}-tester", cloud=cloud).create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2(SEOUL, f"{B}-tester", cloud=cloud).create_tags(Resources=[vpc], Tags=[{"Key": "tagpeer:peers",
                                                                               "Value": f"{OSAKA}/vpc-1"}])
    got = deliveries(cloud)
    # Each delivery's EventBridge events: its own, or the batch's of a queue's invocation.
    events = [x for e in got for x in e.get("events") or [e["event"]]]
    assert {x["source"] for x in events} == {"aws.ec2", "aws.tag"}, got
    assert all(e["account"] == B and e["region"] == SEOUL for e in got), got
    assert all(x["account"] == B for x in events), events
    (requester,) = [e for e in got if e.get("function") == "RequesterFunction"]
    assert requester["caller"] == f"{B}-tagpeer-requester-{SEOUL}" and requester["outcome"] == "ok", requester


def test_the_schedule_fires_every_accounts_stacks(cloud):
    assert local("/_local/schedule", {}, cloud=cloud)[0] == 200
    scheduled = [e for e in deliveries(cloud) if e["detail_type"] == "Scheduled Event"]
    assert {e["account"] for e in scheduled} == {A, B}, scheduled
    for e in scheduled:
        assert e["outcome"] == "ok" and e["event"]["account"] == e["account"], e
        assert e["caller"] == f"{e['account']}-tagpeer-{e['function'][:-len('Function')].lower()}-{e['region']}", e


def new_calls(c: lc.LocalCloud, after: int) -> list[dict]:
    _, calls = local("/_local/calls", cloud=c)
    return [x for x in calls if x["seq"] > after]


def test_another_accounts_reader_role_is_assumed_as_its_trust_policy_allows(cloud):
    reader = f"arn:aws:iam::{A}:role/tagpeer-reader-{SEOUL}"
    nowhere = f"arn:aws:iam::{A}:role/tagpeer-reader-eu-west-1"  # no stack of A makes it
    cloud.invoke(SEOUL, "RequesterFunction", {"calls": [[SEOUL, "DescribeVpcs", reader],
                                                        [OSAKA, "DescribeVpcs", reader.replace(SEOUL, OSAKA)]]},
                 "test", B)
    key = f"{B}-tagpeer-requester-{SEOUL}"
    calls = new_calls(cloud, 0)
    # B's key assumes A's role; the role's temporary keys act in A.
    assert [(x["action"], x["region"], x["account"], x["status"]) for x in calls] == [
        ("AssumeRole", SEOUL, B, 200), ("DescribeVpcs", SEOUL, A, 200),
        ("AssumeRole", OSAKA, B, 200), ("DescribeVpcs", OSAKA, A, 200)], calls
    assert [x["caller"] == key for x in calls] == [True, False, True, False], "the reader's calls: its keys"
    # Judged by the reader role's policy: its own region only.
    seen = calls[-1]["seq"]
    cloud.invoke(SEOUL, "RequesterFunction", {"calls": [[OSAKA, "DescribeVpcs", reader]]}, "test", B)
    calls = new_calls(cloud, seen)
    assert [(x["action"], x["account"], x["error"]) for x in calls] == [
        ("AssumeRole", B, None), ("DescribeVpcs", A, "UnauthorizedOperation")], calls
    assert calls[1]["denied"]["role"] == "ReaderRole", calls[1]
    # A role the other account does not make, or whose trust policy does not name B: refused (asked
    # with the function's own key, as its process would).
    seen = calls[-1]["seq"]
    sts = client("sts", SEOUL, key, cloud=cloud)
    cloud.iam._account_params[A] = dict(cloud.params[A], AllowedAccounts=THIRD)
    cloud.iam._stacks.clear()
    try:
        for role in (nowhere, reader):
            code, status, message = error_of(lambda: sts.assume_role(RoleArn=role, RoleSessionName="tt"), True)
            assert (code, status) == ("AccessDenied", 403) and "no resource-based policy allows" in message, message
    finally:
        cloud.iam._account_params[A] = cloud.params[A]
        cloud.iam._stacks.clear()
    calls = new_calls(cloud, seen)
    assert [(x["account"], x["status"], x["denied"]["policy"]) for x in calls] == [(B, 403, "trust")] * 2, calls
    # A person's keys are not checked (an administrator).
    assert client("sts", SEOUL, f"{B}-tester", cloud=cloud).assume_role(RoleArn=nowhere, RoleSessionName="tt")
