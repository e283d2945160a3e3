"""Tests for CloudTrail as AWS delivers it (awsevents.py, template.trails, the trail of
infra-template/template.yaml) and for EC2's answers where moto forgives (ec2rules.py):
route races and the DNS prerequisite of a peering connection.

Each test states what AWS does where moto does otherwise; every one of them fails on
moto's idealised behaviour (moto has no trails, so no CloudTrail events at all; it
replaces an IPv6 route silently; it sets any peering option on any connection).

The first tests need no cloud; the rest drive a real local cloud (moto's server, the
real function binaries, which must be built: `make functions`) through boto3.

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_cloudtrail.py` (`make test` runs them all).
"""

from __future__ import annotations

import copy
import json
import threading
import time

import botocore.exceptions
import pytest

from localcloud import awsevents as ae
from localcloud import template as tpl
from localcloud.testing import (ACCOUNT, OSAKA, OTHER, REPO, SEOUL, TEMPLATE, TESTER, ec2, error_of, local, vpc,
                                wait_until)

API_CALL = "AWS API Call via CloudTrail"


def params(**extra) -> dict[str, str]:
    return {"Regions": f"{SEOUL},{OSAKA}", **extra}


# ------------------------------------------------------------ no cloud: the template's trail

def test_the_template_makes_one_multi_region_trail_in_the_first_regions_stack():
    t = tpl.load(str(TEMPLATE))
    seoul, osaka = (tpl.trails(t, r, ACCOUNT, params()) for r in (SEOUL, OSAKA))
    assert [(x.name, x.region, x.multi_region, x.logging, x.writes) for x in seoul] == \
        [("tagpeer", SEOUL, True, True, True)], seoul
    assert osaka == [], "every stack takes the same parameters: only the first region's owns the trail"
    # The first region of Regions owns it, whatever it is.
    assert [x.region for r in (SEOUL, OSAKA) for x in tpl.trails(t, r, ACCOUNT, {"Regions": f"{OSAKA},{SEOUL}"})] \
        == [OSAKA]
    # CreateTrail=false: no trail at all (the account's own trail is then a prerequisite).
    assert all(tpl.trails(t, r, ACCOUNT, params(CreateTrail="false")) == [] for r in (SEOUL, OSAKA))
    res = t["Resources"]
    assert {res[k]["Condition"] for k in ("Trail", "TrailBucket", "TrailBucketPolicy")} == {"OwnsTrail"}
    policy = json.dumps(res["TrailBucketPolicy"]["Properties"]["PolicyDocument"])
    assert "cloudtrail.amazonaws.com" in policy and "aws:SourceArn" in policy and "aws:SecureTransport" in policy


def test_what_a_trail_records_decides_the_coverage():
    t = tpl.load(str(TEMPLATE))
    trails = ae.Trails(t, [SEOUL, OSAKA], ACCOUNT, params())
    assert trails.covers(ACCOUNT, SEOUL) and trails.covers(ACCOUNT, OSAKA)
    assert trails.covers(ACCOUNT, "eu-west-1"), "a multi-region trail records every region of its account"
    assert not trails.covers(OTHER, SEOUL), "no stack of the deployment runs in the other account"
    state = trails.set({"CreateTrail": "false"})
    assert state["trails"] == [] and state["regions"] == [] and not trails.covers(ACCOUNT, SEOUL)
    trails.reset()
    assert trails.covers(ACCOUNT, OSAKA)
    for bad in ({"NoSuchParameter": "x"}, {"CreateTrail": "maybe"}, [], {"CreateTrail": None}):
        try:
            trails.set(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")
    assert trails.covers(ACCOUNT, OSAKA), "a refused setting changes nothing"

    def variant(**props) -> ae.Trails:
        v = copy.deepcopy(t)
        v["Resources"]["Trail"]["Properties"].update(props)
        return ae.Trails(v, [SEOUL, OSAKA], ACCOUNT, params())

    single = variant(IsMultiRegionTrail=False)
    assert single.covers(ACCOUNT, SEOUL) and not single.covers(ACCOUNT, OSAKA), "a trail records its own region"
    assert not variant(IsLogging=False).covers(ACCOUNT, SEOUL), "a trail that is not logging records nothing"
    read_only = variant(EventSelectors=[{"IncludeManagementEvents": True, "ReadWriteType": "ReadOnly"}])
    assert not read_only.covers(ACCOUNT, SEOUL), "only read events: no write call is recorded"
    data_only = variant(EventSelectors=[{"IncludeManagementEvents": False, "ReadWriteType": "All"}])
    assert not data_only.covers(ACCOUNT, SEOUL)


# ------------------------------------------------------------ no cloud: EC2's record shapes

def test_each_action_is_recorded_in_the_style_the_ec2_model_gives_it():
    legacy = ["CreateTags", "DeleteTags", "CreateRoute", "DeleteRoute", "ReplaceRoute", "CreateVpcPeeringConnection",
              "AcceptVpcPeeringConnection", "RejectVpcPeeringConnection", "DeleteVpcPeeringConnection",
              "AssociateVpcCidrBlock", "DisassociateVpcCidrBlock", "ModifyVpcAttribute", "CreateVpc", "RunInstances"]
    wrapped = ["ModifyVpcPeeringConnectionOptions", "CreateNatGateway", "DeleteFlowLogs", "CreateVpcEndpoint",
               "ModifyInstanceMetadataOptions"]
    assert {a: ae.record_style(a) for a in legacy} == {a: "legacy" for a in legacy}
    assert {a: ae.record_style(a) for a in wrapped} == {a: "wrapped" for a in wrapped}


def test_request_parameters_as_ec2_records_them():
    rp = ae.request_parameters
    # The real records the module docstring cites, shape for shape.
    sample = json.loads((REPO / "events" / "cloudtrail-create-tags.json").read_text())["detail"]["requestParameters"]
    assert rp("CreateTags", {"Action": "CreateTags", "Version": "2016-11-15",
                             "ResourceId.1": "vpc-0a1b2c3d4e5f60718", "Tag.1.Key": "tagpeer:peers",
                             "Tag.1.Value": "ap-northeast-3/vpc-0f1e2d3c4b5a69788"}) == sample
    assert rp("DeleteTags", {"ResourceId.1": "vpc-1", "Tag.1.Key": "tagpeer-status"}) == \
        {"resourcesSet": {"items": [{"resourceId": "vpc-1"}]}, "tagSet": {"items": [{"key": "tagpeer-status"}]}}
    assert rp("DeleteFlowLogs", {"FlowLogId.1": "fl-0e17aa62a21d4bbfe"}) == \
        {"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-0e17aa62a21d4bbfe", "tag": 1}}}
    assert rp("CreateRoute", {"RouteTableId": "rtb-1", "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}) == \
        {"routeTableId": "rtb-1", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}
    assert rp("CreateVpcPeeringConnection", {
        "VpcId": "vpc-1", "PeerVpcId": "vpc-2", "PeerOwnerId": ACCOUNT, "PeerRegion": OSAKA,
        "TagSpecification.1.ResourceType": "vpc-peering-connection",
        "TagSpecification.1.Tag.1.Key": "tagpeer-managed", "TagSpecification.1.Tag.1.Value": "true",
    }) == {"vpcId": "vpc-1", "peerVpcId": "vpc-2", "peerOwnerId": ACCOUNT, "peerRegion": OSAKA,
           "tagSpecificationSet": {"items": [{"resourceType": "vpc-peering-connection",
                                              "tags": [{"key": "tagpeer-managed", "value": "true"}]}]}}
    # A disassociation names the association alone: the VPC is not in the request.
    assert rp("DisassociateVpcCidrBlock", {"AssociationId": "vpc-cidr-assoc-1"}) == {"associationId": "vpc-cidr-assoc-1"}
    assert rp("AssociateVpcCidrBlock", {"VpcId": "vpc-1", "CidrBlock": "10.1.0.0/16"}) == \
        {"vpcId": "vpc-1", "cidrBlock": "10.1.0.0/16"}
    assert rp("AssociateVpcCidrBlock", {"VpcId": "vpc-1", "AmazonProvidedIpv6CidrBlock": "true"}) == \
        {"vpcId": "vpc-1", "amazonProvidedIpv6CidrBlock": True}, "typed, as EC2 records booleans"
    assert rp("ModifyVpcAttribute", {"VpcId": "vpc-1", "EnableDnsHostnames.Value": "true"}) == \
        {"vpcId": "vpc-1", "enableDnsHostnames": {"value": True}}
    assert rp("ModifyVpcPeeringConnectionOptions", {
        "VpcPeeringConnectionId": "pcx-1", "AccepterPeeringConnectionOptions.AllowDnsResolutionFromRemoteVpc": "true",
    }) == {"ModifyVpcPeeringConnectionOptionsRequest": {
        "VpcPeeringConnectionId": "pcx-1", "AccepterPeeringConnectionOptions": {"AllowDnsResolutionFromRemoteVpc": True}}}


def test_response_elements_as_ec2_records_them():
    ns = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
    gone = ae.record_response("DisassociateVpcCidrBlock", (
        f"<DisassociateVpcCidrBlockResponse {ns}><cidrBlockAssociation><associationId>vpc-cidr-assoc-1</associationId>"
        "<cidrBlock>10.5.0.0/16</cidrBlock><cidrBlockState><state>disassociating</state></cidrBlockState>"
        "</cidrBlockAssociation><vpcId>vpc-1</vpcId><requestId>x</requestId></DisassociateVpcCidrBlockResponse>"
    ).encode(), "r-1")
    assert gone == {"cidrBlockAssociation": {"associationId": "vpc-cidr-assoc-1", "cidrBlock": "10.5.0.0/16",
                                             "cidrBlockState": {"state": "disassociating"}},
                    "vpcId": "vpc-1", "requestId": "r-1"}, gone
    tags = ae.record_response("CreateTags", f"<CreateTagsResponse {ns}><requestId>x</requestId></CreateTagsResponse>"
                              .encode(), "r-2")
    assert tags == {"requestId": "r-2", "_return": True}, "EC2 answers <return>true</return> where moto does not"
    vpc = ae.record_response("CreateVpc", (
        f"<CreateVpcResponse {ns}><vpc><ipv6CidrBlockAssociationSet/><isDefault>false</isDefault><tagSet/>"
        "<vpcId>vpc-1</vpcId></vpc><requestId>x</requestId></CreateVpcResponse>").encode(), "r-3")
    assert vpc["vpc"] == {"ipv6CidrBlockAssociationSet": {}, "isDefault": False, "tagSet": {}, "vpcId": "vpc-1"}, vpc
    pcx = ae.record_response("CreateVpcPeeringConnection", (
        f"<CreateVpcPeeringConnectionResponse {ns}><vpcPeeringConnection><expirationTime>2026-12-08T15:15:18.000Z"
        "</expirationTime><tagSet><item><key>k</key><value>v</value></item></tagSet></vpcPeeringConnection>"
        "</CreateVpcPeeringConnectionResponse>").encode(), "r-4")["vpcPeeringConnection"]
    assert pcx == {"expirationTime": 1796742918000, "tagSet": {"items": [{"key": "k", "value": "v"}]}}, pcx
    options = ae.record_response("ModifyVpcPeeringConnectionOptions", (
        f"<ModifyVpcPeeringConnectionOptionsResponse {ns}><requesterPeeringConnectionOptions>"
        "<allowDnsResolutionFromRemoteVpc>true</allowDnsResolutionFromRemoteVpc></requesterPeeringConnectionOptions>"
        "<requestId>x</requestId></ModifyVpcPeeringConnectionOptionsResponse>").encode(), "r-5")
    assert options == {"ModifyVpcPeeringConnectionOptionsResponse": {
        "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
        "requesterPeeringConnectionOptions": {"allowDnsResolutionFromRemoteVpc": "true"}, "requestId": "r-5"}}


def test_a_failed_call_is_recorded_with_its_error_and_no_response():
    event = ae.cloudtrail("CreateRoute", ACCOUNT, SEOUL, TESTER, "ua", {"RouteTableId": "rtb-1"}, None,
                          error=("RouteAlreadyExists", "The route identified by 10.1.0.0/16 already exists.", 400),
                          at=1_800_000_000)
    d = event["detail"]
    assert (d["errorCode"], d["errorMessage"], d["responseElements"]) == \
        ("Client.RouteAlreadyExists", "The route identified by 10.1.0.0/16 already exists.", None)
    assert d["eventTime"] == event["time"] == "2027-01-15T08:00:00Z", "the cloud's clock"
    assert d["userIdentity"]["type"] == "IAMUser" and d["userIdentity"]["userName"] == "tester"
    assert (event["source"], event["detail-type"], event["region"], d["awsRegion"]) == \
        ("aws.ec2", API_CALL, SEOUL, SEOUL)
    server = ae.cloudtrail("CreateRoute", ACCOUNT, SEOUL, TESTER, "ua", {}, None, error=("InternalError", "x", 500))
    assert server["detail"]["errorCode"] == "Server.InternalError"


# ------------------------------------------------------------ the local cloud

@pytest.fixture
def cloud(cloud):
    """The module's cloud, reset, with short intermediate states (peering.py), every one still observable."""
    def short_states():
        c = cloud()
        local("/_local/lifecycle", {"initiating_s": 0.05, "visibility_s": 0.05, "provisioning_s": 0.05,
                                    "deleting_s": 0.05})
        return c

    return short_states


def trail_events(name: str | None = None) -> list[dict]:
    """The CloudTrail events that reached a bus (settled first), one per event (not per rule)."""
    local("/_local/settle", {})
    _, seen = local("/_local/events")
    out, ids = [], set()
    for e in seen:
        event = e.get("event") or {}
        if event.get("detail-type") != API_CALL or (e.get("target") or "").startswith("arn:") or event["id"] in ids:
            continue
        if name and event["detail"]["eventName"] != name:
            continue
        ids.add(event["id"])
        out.append({"bus": e["region"], **event})
    return out


def state(pcx: str, region: str = SEOUL, key: str = TESTER) -> str | None:
    found = ec2(region, key).describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])
    return found["VpcPeeringConnections"][0]["Status"]["Code"] if found["VpcPeeringConnections"] else None


def active_peering(requester: str, accepter: str, accepter_region: str = SEOUL, owner: str = ACCOUNT,
                   accepter_key: str = TESTER) -> str:
    pcx = ec2().create_vpc_peering_connection(VpcId=requester, PeerVpcId=accepter, PeerRegion=accepter_region,
                                              PeerOwnerId=owner)["VpcPeeringConnection"]["VpcPeeringConnectionId"]

    def accepted():
        try:
            ec2(accepter_region, accepter_key).accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
            return True
        except botocore.exceptions.ClientError:
            return False  # not listed there yet, or still initiating (peering.py)

    assert wait_until(accepted, interval=0.02), "never accepted"
    assert wait_until(lambda: state(pcx) == "active", interval=0.02), state(pcx)
    return pcx


def test_cloudtrail_events_only_while_the_template_has_a_trail(cloud):
    cloud()
    v = vpc()
    ec2().create_tags(Resources=[v], Tags=[{"Key": "team", "Value": "a"}])
    recorded = trail_events("CreateTags")
    assert len(recorded) == 1 and recorded[0]["detail"]["requestParameters"]["resourcesSet"]["items"] == \
        [{"resourceId": v}], recorded
    status, trail = local("/_local/trail")
    assert status == 200 and trail["regions"] == [SEOUL, OSAKA] and trail["trails"][0]["region"] == SEOUL, trail
    status, trail = local("/_local/trail", {"CreateTrail": "false"})
    assert status == 200 and trail["trails"] == [] and trail["params"] == {"CreateTrail": "false"}, trail
    ec2().create_tags(Resources=[v], Tags=[{"Key": "team", "Value": "b"}])
    ec2(OSAKA).create_vpc(CidrBlock="10.21.0.0/16")
    assert len(trail_events("CreateTags")) == 1 and trail_events("CreateVpc") != [], "no trail: no new record"
    assert len([e for e in trail_events("CreateVpc") if e["bus"] == OSAKA]) == 0
    _, seen = local("/_local/events")
    assert sum(1 for e in seen if e.get("detail_type") == "Tag Change on Resource") >= 2, \
        "tag events need no trail"
    assert local("/_local/trail", {"Nope": "1"})[0] == 400
    local("/_local/reset", {})
    assert local("/_local/trail")[1]["regions"] == [SEOUL, OSAKA], "a reset puts the deployed trail back"


def test_each_call_is_an_event_in_its_own_region_only(cloud):
    cloud()
    seoul, osaka = vpc(SEOUL, "10.30.0.0/16"), vpc(OSAKA, "10.31.0.0/16")
    pcx = active_peering(seoul, osaka, OSAKA)
    ec2(OSAKA).delete_vpc_peering_connection(VpcPeeringConnectionId=pcx)
    where = {}
    for e in trail_events():
        if e["detail"]["eventName"] in ("CreateVpcPeeringConnection", "AcceptVpcPeeringConnection",
                                        "DeleteVpcPeeringConnection") and "errorCode" not in e["detail"]:
            where.setdefault(e["detail"]["eventName"], set()).add((e["bus"], e["region"], e["detail"]["awsRegion"]))
    assert where == {"CreateVpcPeeringConnection": {(SEOUL, SEOUL, SEOUL)},
                     "AcceptVpcPeeringConnection": {(OSAKA, OSAKA, OSAKA)},
                     "DeleteVpcPeeringConnection": {(OSAKA, OSAKA, OSAKA)}}, where
    accept = trail_events("AcceptVpcPeeringConnection")
    ok = [e for e in accept if "errorCode" not in e["detail"]][0]["detail"]
    assert ok["requestParameters"] == {"vpcPeeringConnectionId": pcx}
    assert ok["responseElements"]["vpcPeeringConnection"]["vpcPeeringConnectionId"] == pcx
    assert ok["recipientAccountId"] == ACCOUNT and ok["readOnly"] is False and ok["eventCategory"] == "Management"


def test_the_other_account_has_no_trail_of_the_deployment(cloud):
    cloud()
    key = f"{OTHER}-someone"
    v = ec2(SEOUL, key).create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    ec2(SEOUL, key).create_tags(Resources=[v], Tags=[{"Key": "team", "Value": "x"}])
    assert [e for e in trail_events() if e["account"] == OTHER] == []


def test_disassociate_names_the_vpc_only_in_its_answer(cloud):
    cloud()
    v = vpc(SEOUL, "10.50.0.0/16")
    assoc = ec2().associate_vpc_cidr_block(VpcId=v, CidrBlock="10.51.0.0/16")["CidrBlockAssociation"]["AssociationId"]
    ec2().disassociate_vpc_cidr_block(AssociationId=assoc)
    (added,) = trail_events("AssociateVpcCidrBlock")
    assert added["detail"]["requestParameters"] == {"vpcId": v, "cidrBlock": "10.51.0.0/16"}
    assert added["detail"]["responseElements"]["vpcId"] == v
    (gone,) = trail_events("DisassociateVpcCidrBlock")
    d = gone["detail"]
    assert d["requestParameters"] == {"associationId": assoc}, "no VPC in the request"
    assert d["responseElements"]["vpcId"] == v and \
        d["responseElements"]["cidrBlockAssociation"]["associationId"] == assoc, d["responseElements"]
    _, seen = local("/_local/events")
    routed = {e["rule"] for e in seen if (e.get("event") or {}).get("id") == gone["id"]}
    assert any(r and "RouteCallRule" in r for r in routed), routed


def test_failed_calls_are_recorded_with_their_error(cloud):
    cloud()
    v = vpc(SEOUL, "10.60.0.0/16")
    table = ec2().create_route_table(VpcId=v)["RouteTable"]["RouteTableId"]
    igw = ec2().create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2().create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assert error_of(lambda: ec2().create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
                                               GatewayId=igw))[0] == "RouteAlreadyExists"
    records = trail_events("CreateRoute")
    assert [e["detail"].get("errorCode") for e in records] == [None, "Client.RouteAlreadyExists"], records
    failed = records[1]["detail"]
    assert failed["responseElements"] is None and "already exists" in failed["errorMessage"]
    assert records[0]["detail"]["responseElements"]["_return"] is True


def test_events_carry_the_clouds_clock_and_the_callers_role(cloud):
    c = cloud()
    local("/_local/clock", {"advance_s": 86400})
    v = vpc(SEOUL, "10.70.0.0/16")
    router = c.functions[(SEOUL, "RouterFunction")].env["AWS_ACCESS_KEY_ID"]
    ec2(SEOUL, router).create_tags(Resources=[v], Tags=[{"Key": "tagpeer-status", "Value": "x"}])
    (e,) = [x for x in trail_events("CreateTags") if x["detail"]["userIdentity"]["accessKeyId"] == router]
    t = time.mktime(time.strptime(e["detail"]["eventTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(t - (time.time() + 86400)) < 120, (e["detail"]["eventTime"], e["time"])
    who = e["detail"]["userIdentity"]
    principal = c.iam.principal(router)
    if principal is not None:  # iam.py: the function's template role
        assert who["type"] == "AssumedRole" and who["arn"] == principal.arn, who
        assert who["sessionContext"]["sessionIssuer"]["arn"] == principal.role.arn


# ------------------------------------------------------------ route races (ec2rules.py)

def route_table(cidr: str) -> tuple[str, str, str]:
    v = ec2().create_vpc(CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    table = ec2().create_route_table(VpcId=v)["RouteTable"]["RouteTableId"]
    igw = ec2().create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    return v, table, igw


def routes(table: str) -> list[dict]:
    return ec2().describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]


def test_create_route_for_a_destination_the_table_has_is_refused(cloud):
    cloud()
    v, table, igw = route_table("10.80.0.0/16")
    eigw = ec2().create_egress_only_internet_gateway(VpcId=v)["EgressOnlyInternetGateway"]["EgressOnlyInternetGatewayId"]
    ec2().create_route(RouteTableId=table, DestinationIpv6CidrBlock="::/0", GatewayId=igw)
    # moto replaces an IPv6 route silently; AWS refuses the second create.
    assert error_of(lambda: ec2().create_route(RouteTableId=table, DestinationIpv6CidrBlock="::/0",
                                               EgressOnlyInternetGatewayId=eigw), message=True) == \
        ("RouteAlreadyExists", 400, "The route identified by ::/0 already exists.")
    assert [r.get("GatewayId") for r in routes(table) if r.get("DestinationIpv6CidrBlock") == "::/0"] == [igw]
    # moto overwrites the local route with a create for the VPC's own range; AWS refuses it.
    assert error_of(lambda: ec2().create_route(RouteTableId=table, DestinationCidrBlock="10.80.0.0/16",
                                               GatewayId=igw)) == ("RouteAlreadyExists", 400)
    assert [r["GatewayId"] for r in routes(table) if r.get("DestinationCidrBlock") == "10.80.0.0/16"] == ["local"]
    # IPv4 (moto and AWS agree), in any spelling of the range.
    ec2().create_route(RouteTableId=table, DestinationCidrBlock="10.81.0.0/16", GatewayId=igw)
    assert error_of(lambda: ec2().create_route(RouteTableId=table, DestinationCidrBlock="10.81.0.0/16",
                                               GatewayId=igw)) == ("RouteAlreadyExists", 400)


def test_racing_creates_of_one_route_one_wins(cloud):
    cloud()
    _, table, igw = route_table("10.82.0.0/16")
    outcomes, barrier = [], threading.Barrier(6)

    def create():
        barrier.wait()
        try:
            ec2().create_route(RouteTableId=table, DestinationIpv6CidrBlock="2600:1f00::/40", GatewayId=igw)
            outcomes.append("ok")
        except botocore.exceptions.ClientError as e:
            outcomes.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["RouteAlreadyExists"] * 5 + ["ok"], outcomes


def test_deleting_or_replacing_a_route_that_is_gone(cloud):
    cloud()
    _, table, igw = route_table("10.83.0.0/16")
    assert error_of(lambda: ec2().delete_route(RouteTableId=table, DestinationCidrBlock="10.99.0.0/16")) == \
        ("InvalidRoute.NotFound", 400)
    assert error_of(lambda: ec2().delete_route(RouteTableId=table, DestinationIpv6CidrBlock="2600:1f00::/40")) == \
        ("InvalidRoute.NotFound", 400)
    # ReplaceRoute: AWS answers InvalidParameterValue (moto agrees; see ec2rules.py).
    code, status, message = error_of(lambda: ec2().replace_route(RouteTableId=table, DestinationCidrBlock="10.99.0.0/16",
                                                                 GatewayId=igw), message=True)
    assert (code, status) == ("InvalidParameterValue", 400) and "Use CreateRoute instead" in message, message


# ------------------------------------------------------------ the DNS prerequisite (ec2rules.py)

def dns(vpc_id: str, hostnames: bool | None = None, support: bool | None = None, region: str = SEOUL,
        key: str = TESTER) -> None:
    if support is not None:
        ec2(region, key).modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": support})
    if hostnames is not None:
        ec2(region, key).modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": hostnames})


def set_dns(pcx: str, side: str, on: bool = True, region: str = SEOUL, key: str = TESTER, **more):
    options = {"AllowDnsResolutionFromRemoteVpc": on, **more}
    return ec2(region, key).modify_vpc_peering_connection_options(
        VpcPeeringConnectionId=pcx, **{f"{side}PeeringConnectionOptions": options})


def test_dns_resolution_needs_dns_hostnames_and_resolution_in_both_vpcs(cloud):
    cloud()
    a, b = vpc(SEOUL, "10.90.0.0/16"), vpc(SEOUL, "10.91.0.0/16")
    pcx = active_peering(a, b)
    # A new VPC resolves DNS but has no DNS hostnames (moto's default, as AWS's for a non-default VPC).
    code, status, message = error_of(lambda: set_dns(pcx, "Requester"), message=True)
    assert (code, status) == ("OperationNotPermitted", 400) and a in message and "DNS hostnames" in message, message
    dns(a, hostnames=True)
    code, _, message = error_of(lambda: set_dns(pcx, "Accepter"), message=True)
    assert code == "OperationNotPermitted" and b in message, "the peer VPC counts too"
    dns(b, hostnames=True)
    set_dns(pcx, "Requester")
    set_dns(pcx, "Accepter")
    dns(b, support=False)
    code, _, message = error_of(lambda: set_dns(pcx, "Requester"), message=True)
    assert code == "OperationNotPermitted" and "DNS resolution" in message, message
    set_dns(pcx, "Requester", on=False)  # turning it off needs nothing
    assert [e["detail"]["errorCode"] for e in trail_events("ModifyVpcPeeringConnectionOptions")
            if "errorCode" in e["detail"]] == ["Client.OperationNotPermitted"] * 3


def test_across_regions_each_side_sets_its_own_option_from_its_own_region(cloud):
    cloud()
    seoul, osaka = vpc(SEOUL, "10.92.0.0/16"), vpc(OSAKA, "10.93.0.0/16")
    dns(seoul, hostnames=True)
    dns(osaka, hostnames=True, region=OSAKA)
    pcx = active_peering(seoul, osaka, OSAKA)
    code, _, message = error_of(lambda: set_dns(pcx, "Requester", region=OSAKA), message=True)
    assert code == "OperationNotPermitted" and "different region" in message, message
    code, _, message = error_of(lambda: set_dns(pcx, "Accepter", region=SEOUL), message=True)
    assert code == "OperationNotPermitted" and "different region" in message, message
    code, _, message = error_of(lambda: set_dns(pcx, "Requester", AllowEgressFromLocalVpcToRemoteClassicLink=False),
                                message=True)
    assert code == "OperationNotPermitted" and "cross-region" in message, "only the DNS option exists across regions"
    set_dns(pcx, "Requester", region=SEOUL)
    set_dns(pcx, "Accepter", region=OSAKA)
    found = ec2(OSAKA).describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])["VpcPeeringConnections"][0]
    assert found["AccepterVpcInfo"]["PeeringOptions"]["AllowDnsResolutionFromRemoteVpc"] is True


def test_across_accounts_each_owner_sets_its_own_side(cloud):
    cloud()
    theirs = f"{OTHER}-them"
    ours_vpc = vpc(SEOUL, "10.94.0.0/16")
    their_vpc = vpc(SEOUL, "10.95.0.0/16", key=theirs)
    dns(ours_vpc, hostnames=True)
    dns(their_vpc, hostnames=True, key=theirs)
    pcx = active_peering(ours_vpc, their_vpc, SEOUL, owner=OTHER, accepter_key=theirs)
    code, _, message = error_of(lambda: set_dns(pcx, "Accepter"), message=True)
    assert code == "OperationNotPermitted" and "accepter side" in message, message
    set_dns(pcx, "Requester")
    set_dns(pcx, "Accepter", key=theirs)
