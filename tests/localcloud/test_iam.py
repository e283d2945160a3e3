"""Tests for iam.py and its hooks in cloud.py: the local cloud refuses a function's call that its
template role would not allow, as AWS does.

The first tests drive the evaluator alone (operators, wildcards, deny, multivalued keys, the
request context of each EC2 call the functions make, evaluated against the shipped template's
own policies); the rest drive a real local cloud (moto's server and the real function binaries,
which must be built: `make functions`; they are looked for in $CARGO_TARGET_DIR/debug) through
boto3: the seed converges with the shipped template and nothing is refused, and the same seed
with one needed statement removed from a copy of the template fails with the refused call in
/_local/calls.

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_iam.py` (`make test` runs them all).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import time
from pathlib import Path

import botocore.exceptions

from localcloud import cloud as lc
from localcloud import iam
from localcloud import template as tpl
from localcloud.testing import ACCOUNT, OSAKA, OTHER, SEOUL, TEMPLATE, TESTER, client, ec2, local

PARAMS = {"Regions": f"{SEOUL},{OSAKA}", "LogLevel": "info"}


def ctx(**values) -> iam.Context:
    """A context from keyword arguments: aws_TagKeys -> aws:TagKeys."""
    return iam.Context({k.replace("_", ":", 1): v for k, v in values.items()})


def holds(condition: dict, context: iam.Context) -> bool:
    return iam.condition_holds(condition, context, "test")


def policy(*statements: dict) -> list[iam.Statement]:
    return iam.statements([("test", {"Version": "2012-10-17", "Statement": list(statements)})])


# ------------------------------------------------------------ matching and conditions

def test_wildcards_in_actions_are_case_insensitive_and_in_arns_per_part():
    assert iam.action_matches("ec2:*VpcPeeringConnection", "ec2:AcceptVpcPeeringConnection")
    assert iam.action_matches("EC2:createroute", "ec2:CreateRoute"), "action names ignore case"
    assert iam.action_matches("ec2:Describe*", "ec2:DescribeVpcs")
    assert iam.action_matches("ec2:Create?oute", "ec2:CreateRoute")
    assert not iam.action_matches("ec2:CreateRoute", "ec2:CreateRouteTable"), "the whole name"
    assert iam.arn_matches("arn:aws:ec2:*:123456789012:vpc/*", "arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-1")
    assert not iam.arn_matches("arn:aws:ec2:*:123456789012:vpc/*",
                               "arn:aws:ec2:ap-northeast-2:222222222222:vpc/vpc-1"), "another account"
    assert not iam.arn_matches("arn:aws:ec2:*:123456789012:vpc/*",
                               "arn:aws:ec2:ap-northeast-2:123456789012:route-table/rtb-1")
    assert not iam.arn_matches("arn:aws:ec2:*:*:VPC/*", "arn:aws:ec2:r:1:vpc/vpc-1"), "ARNs are case-sensitive"
    # A wildcard stays within its part: a region wildcard does not swallow the account.
    assert not iam.arn_matches("arn:aws:ec2:*:vpc/*", "arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-1")
    assert iam.arn_matches("*", "anything")
    # The new resource of a create call is TYPE/*, which the policy's TYPE/* matches.
    assert iam.arn_matches("arn:aws:ec2:*:123456789012:vpc-peering-connection/*",
                           "arn:aws:ec2:ap-northeast-2:123456789012:vpc-peering-connection/*")


def test_string_operators_and_absent_keys():
    c = ctx(aws_RequestedRegion="ap-northeast-2")
    assert holds({"StringEquals": {"aws:RequestedRegion": ["us-east-1", "ap-northeast-2"]}}, c), "values OR"
    assert not holds({"StringEquals": {"aws:RequestedRegion": "AP-NORTHEAST-2"}}, c), "case-sensitive"
    assert holds({"StringEqualsIgnoreCase": {"aws:RequestedRegion": "AP-NORTHEAST-2"}}, c)
    assert holds({"StringLike": {"aws:RequestedRegion": "ap-*-?"}}, c)
    assert not holds({"StringNotEquals": {"aws:RequestedRegion": ["ap-northeast-2"]}}, c)
    assert holds({"StringNotLike": {"aws:RequestedRegion": "us-*"}}, c)
    assert holds({"stringequals": {"AWS:REQUESTEDREGION": "ap-northeast-2"}}, c), "key names ignore case"
    # A key the request does not have: false, except for the negated operators and IfExists.
    assert not holds({"StringEquals": {"aws:RequestTag/x": "y"}}, c)
    assert not holds({"StringLike": {"aws:RequestTag/x": "*"}}, c)
    assert holds({"StringNotEquals": {"aws:RequestTag/x": "y"}}, c)
    assert holds({"StringNotLike": {"aws:RequestTag/x": "y"}}, c)
    assert holds({"ArnNotLike": {"ec2:AccepterVpc": "arn:*"}}, c)
    assert holds({"StringEqualsIfExists": {"aws:RequestTag/x": "y"}}, c)
    assert not holds({"StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"}}, c), "IfExists checks a present key"


def test_every_operator_and_every_key_must_hold():
    c = ctx(aws_RequestedRegion="ap-northeast-2", ec2_Region="ap-northeast-2")
    assert holds({"StringEquals": {"aws:RequestedRegion": "ap-northeast-2", "ec2:Region": "ap-northeast-2"}}, c)
    assert not holds({"StringEquals": {"aws:RequestedRegion": "ap-northeast-2", "ec2:Region": "us-east-1"}}, c)
    assert not holds({"StringEquals": {"aws:RequestedRegion": "ap-northeast-2"},
                      "StringLike": {"ec2:Region": "us-*"}}, c)


def test_null_bool_numeric_and_arn_operators():
    c = ctx(aws_TagKeys=["a"], aws_SecureTransport="true", ec2_Count="3",
            ec2_AccepterVpc="arn:aws:ec2:ap-northeast-3:222222222222:vpc/vpc-9")
    assert holds({"Null": {"aws:TagKeys": "false"}}, c)
    assert holds({"Null": {"aws:RequestTag/x": "true"}}, c)
    assert not holds({"Null": {"aws:RequestTag/x": "false"}}, c)
    assert holds({"Null": {"aws:RequestTag/x": True}}, c), "YAML's true is the string true"
    assert holds({"Null": {"aws:TagKeys": "true"}}, ctx(aws_TagKeys=[])), "an empty set is absent"
    assert holds({"Bool": {"aws:SecureTransport": "true"}}, c)
    assert holds({"NumericLessThan": {"ec2:Count": "5"}}, c)
    assert not holds({"NumericGreaterThan": {"ec2:Count": "5"}}, c)
    assert holds({"ArnLike": {"ec2:AccepterVpc": "arn:aws:ec2:*:222222222222:vpc/*"}}, c)
    assert holds({"ArnEquals": {"ec2:AccepterVpc": "arn:aws:ec2:*:222222222222:vpc/*"}}, c)
    assert not holds({"ArnNotEquals": {"ec2:AccepterVpc": "arn:aws:ec2:*:222222222222:vpc/*"}}, c)


def test_multivalued_keys_and_the_set_operators():
    only_status = {"ForAllValues:StringEquals": {"aws:TagKeys": ["tagpeer-status"]}}
    assert holds(only_status, ctx(aws_TagKeys=["tagpeer-status"]))
    assert not holds(only_status, ctx(aws_TagKeys=["tagpeer-status", "tagpeer:peers"]))
    # ForAllValues is true on an absent key and on an empty set; ForAnyValue false on both.
    assert holds(only_status, ctx())
    assert holds(only_status, ctx(aws_TagKeys=[]))
    any_status = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["tagpeer-status"]}}
    assert holds(any_status, ctx(aws_TagKeys=["x", "tagpeer-status"]))
    assert not holds(any_status, ctx(aws_TagKeys=["x"]))
    assert not holds(any_status, ctx())
    assert not holds(any_status, ctx(aws_TagKeys=[]))
    assert holds({"ForAllValues:StringLike": {"aws:TagKeys": "tagpeer-*"}}, ctx(aws_TagKeys=["tagpeer-a", "tagpeer-b"]))
    # Negated, per value: ForAllValues:StringNotEquals - no value is one of the policy's.
    assert holds({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}, ctx(aws_TagKeys=["c", "d"]))
    assert not holds({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}, ctx(aws_TagKeys=["c", "a"]))
    assert holds({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}, ctx(aws_TagKeys=["a", "c"]))
    assert not holds({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}, ctx(aws_TagKeys=["a"]))
    # The template's status-tag statement: ForAllValues with a Null check against the empty set.
    status_only = {"ForAllValues:StringEquals": {"aws:TagKeys": ["tagpeer-status"]}, "Null": {"aws:TagKeys": "false"}}
    assert holds(status_only, ctx(aws_TagKeys=["tagpeer-status"]))
    assert not holds(status_only, ctx(aws_TagKeys=[])), "DeleteTags without keys deletes every tag"


def test_an_unknown_operator_never_matches_and_is_said():
    notes: list[str] = []
    assert not iam.condition_holds({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, ctx(), "t", notes)
    assert notes and "DateLessThan" in notes[0], notes
    assert not iam.condition_holds({"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}}, ctx(aws_TagKeys=["a"]), "t")
    # In a Deny it does not apply, so it does not deny.
    stmts = policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
                   {"Effect": "Deny", "Action": "ec2:*", "Resource": "*",
                    "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    assert iam.evaluate(stmts, "ec2:DescribeVpcs", "*", ctx()).allowed


def test_explicit_deny_wins_then_allow_else_implicit_deny():
    stmts = policy(
        {"Sid": "All", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Sid": "NoRoutes", "Effect": "Deny", "Action": ["ec2:CreateRoute"], "Resource": "*"},
    )
    d = iam.evaluate(stmts, "ec2:CreateRoute", "arn:aws:ec2:r:1:route-table/rtb-1", ctx())
    assert (d.allowed, d.explicit_deny, d.statement) == (False, True, "test:NoRoutes"), d
    d = iam.evaluate(stmts, "ec2:DeleteRoute", "arn:aws:ec2:r:1:route-table/rtb-1", ctx())
    assert (d.allowed, d.statement) == (True, "test:All"), d
    d = iam.evaluate(stmts, "sts:AssumeRole", "arn:aws:iam::1:role/x", ctx())
    assert (d.allowed, d.explicit_deny) == (False, False), "nothing allows it: implicit deny"
    # NotAction / NotResource.
    stmts = policy({"Effect": "Allow", "NotAction": "ec2:Delete*", "NotResource": "arn:aws:ec2:*:*:vpc/*"})
    assert iam.evaluate(stmts, "ec2:CreateRoute", "arn:aws:ec2:r:1:route-table/rtb-1", ctx()).allowed
    assert not iam.evaluate(stmts, "ec2:DeleteRoute", "arn:aws:ec2:r:1:route-table/rtb-1", ctx()).allowed
    assert not iam.evaluate(stmts, "ec2:CreateTags", "arn:aws:ec2:r:1:vpc/vpc-1", ctx()).allowed


def test_resource_tags_are_looked_up_only_when_a_condition_asks():
    asked = []

    def tags():
        asked.append(1)
        return {"tagpeer-managed": "true"}

    c = iam.Context({"aws:RequestedRegion": "r"}, resource_tags=tags)
    assert not holds({"StringEquals": {"aws:RequestedRegion": "x"}}, c) and asked == []
    assert holds({"StringEquals": {"aws:ResourceTag/tagpeer-managed": "true"}}, c)
    assert holds({"StringEquals": {"ec2:ResourceTag/Tagpeer-Managed": "true"}}, c)
    assert asked == [1], "looked up once"


# ---------------------------------------------- the shipped template's own policies

class FakeLookup(iam.Lookup):
    def __init__(self, tags=None, peerings=None):
        self._tags = tags or {}
        self._peerings = peerings or {}

    def tags(self, resource_id, region, account):
        return dict(self._tags.get((resource_id, region, account), {}))

    def peering(self, pcx_id, region, account):
        return self._peerings.get(pcx_id)


def shipped(lookup: iam.Lookup | None = None, template_path: Path = TEMPLATE, params=None) -> iam.Iam:
    return iam.Iam(tpl.load(str(template_path)), params or PARAMS, [SEOUL, OSAKA], lookup or FakeLookup())


def key(binary: str, region: str = SEOUL) -> str:
    return f"{ACCOUNT}-{binary}-{region}"


def functions(cloud_iam: iam.Iam) -> None:
    for region in (SEOUL, OSAKA):
        for logical, binary in (("RequesterFunction", "tagpeer-requester"), ("AccepterFunction", "tagpeer-accepter"),
                                ("RouterFunction", "tagpeer-router"), ("ProvisionerFunction", "tagpeer-provisioner")):
            cloud_iam.add_function(key(binary, region), ACCOUNT, region, logical, f"tagpeer-{logical}")


def ec2_call(cloud_iam: iam.Iam, binary: str, action: str, region: str = SEOUL, **params) -> iam.Refusal | None:
    """A call by `binary` of the stack in `region` (of Seoul's stack for a region outside the deployment)."""
    params = {"Action": action, "Version": "2016-11-15", **params}
    stack = region if region in (SEOUL, OSAKA) else SEOUL
    return cloud_iam.check("ec2", action, region, key(binary, stack), params, b"")


def request_peering(link_tags: dict[str, str]) -> dict[str, str]:
    params = {"VpcId": "vpc-seoul", "PeerVpcId": "vpc-osaka", "PeerRegion": OSAKA, "PeerOwnerId": ACCOUNT,
              "TagSpecification.1.ResourceType": "vpc-peering-connection"}
    for n, (k, v) in enumerate(link_tags.items(), 1):
        params[f"TagSpecification.1.Tag.{n}.Key"] = k
        params[f"TagSpecification.1.Tag.{n}.Value"] = v
    return params


MANAGED_TAGS = {"tagpeer-managed": "true", "tagpeer-link": "l", "tagpeer-attempt": "1",
                "tagpeer-requested-at": "1", "Name": "tagpeer a b"}


def test_the_shipped_template_allows_what_each_function_does():
    lookup = FakeLookup(
        tags={("pcx-1", SEOUL, ACCOUNT): {"tagpeer-managed": "true"},
              ("vpc-built", SEOUL, ACCOUNT): {"tagpeer-network": "n"}},
        peerings={"pcx-1": {"requester": (ACCOUNT, SEOUL, "vpc-seoul"), "accepter": (ACCOUNT, OSAKA, "vpc-osaka")}},
    )
    c = shipped(lookup)
    functions(c)
    for binary in ("tagpeer-requester", "tagpeer-accepter", "tagpeer-router", "tagpeer-provisioner"):
        for action in ("DescribeVpcs", "DescribeRouteTables", "DescribeVpcPeeringConnections"):
            assert ec2_call(c, binary, action) is None, (binary, action)
        assert ec2_call(c, binary, "CreateTags", **{"ResourceId.1": "vpc-seoul", "Tag.1.Key": "tagpeer-status",
                                                    "Tag.1.Value": "ready"}) is None, binary
        assert ec2_call(c, binary, "DeleteTags", **{"ResourceId.1": "vpc-seoul", "Tag.1.Key": "tagpeer-status"}) is None
        assert c.check("events", "PutEvents", SEOUL, key(binary), {}, json.dumps(
            {"Entries": [{"Source": "tagpeer", "DetailType": "Link Ready", "Detail": "{}",
                          "EventBusName": "default"}]}).encode(), "AWSEvents.PutEvents") is None
        assert c.check("sts", "GetCallerIdentity", SEOUL, key(binary), {}, b"") is None
        assert c.check("sts", "AssumeRole", SEOUL, key(binary), {
            "RoleArn": f"arn:aws:iam::{OTHER}:role/tagpeer-reader-{OSAKA}", "RoleSessionName": "tagpeer"}, b"") is None
    # The requester.
    assert ec2_call(c, "tagpeer-requester", "CreateVpcPeeringConnection", **request_peering(MANAGED_TAGS)) is None
    assert ec2_call(c, "tagpeer-requester", "DeleteVpcPeeringConnection", VpcPeeringConnectionId="pcx-1") is None
    assert ec2_call(c, "tagpeer-requester", "DeleteRoute", RouteTableId="rtb-1",
                    DestinationCidrBlock="172.31.0.0/16") is None
    # The accepter, in the accepter's region.
    assert ec2_call(c, "tagpeer-accepter", "AcceptVpcPeeringConnection", OSAKA, VpcPeeringConnectionId="pcx-1") is None
    # The router.
    for action in ("CreateRoute", "ReplaceRoute", "DeleteRoute"):
        assert ec2_call(c, "tagpeer-router", action, RouteTableId="rtb-1", DestinationCidrBlock="10.0.0.0/16",
                        VpcPeeringConnectionId="pcx-1") is None, action
    assert ec2_call(c, "tagpeer-router", "ModifyVpcPeeringConnectionOptions", VpcPeeringConnectionId="pcx-1",
                    **{"RequesterPeeringConnectionOptions.AllowDnsResolutionFromRemoteVpc": "true"}) is None
    # The provisioner.
    labels = {"TagSpecification.1.Tag.1.Key": "tagpeer-network", "TagSpecification.1.Tag.1.Value": "n",
              "TagSpecification.1.Tag.2.Key": "Name", "TagSpecification.1.Tag.2.Value": "n"}
    for action, kind, extra in (("CreateVpc", "vpc", {"CidrBlock": "10.1.0.0/16"}),
                                ("CreateSubnet", "subnet", {"VpcId": "vpc-built", "CidrBlock": "10.1.0.0/24"}),
                                ("CreateInternetGateway", "internet-gateway", {}),
                                ("CreateRouteTable", "route-table", {"VpcId": "vpc-built"})):
        assert ec2_call(c, "tagpeer-provisioner", action, **{"TagSpecification.1.ResourceType": kind},
                        **labels, **extra) is None, action
    for action, extra in (("AttachInternetGateway", {"InternetGatewayId": "igw-1", "VpcId": "vpc-built"}),
                          ("AssociateRouteTable", {"RouteTableId": "rtb-2", "SubnetId": "subnet-1"}),
                          ("CreateRoute", {"RouteTableId": "rtb-2", "DestinationCidrBlock": "0.0.0.0/0",
                                           "GatewayId": "igw-1"}),
                          ("DescribeSubnets", {}), ("DescribeInternetGateways", {}),
                          ("DescribeAvailabilityZones", {})):
        assert ec2_call(c, "tagpeer-provisioner", action, **extra) is None, action
    assert ec2_call(c, "tagpeer-provisioner", "CreateTags", **{
        "ResourceId.1": "vpc-built", "Tag.1.Key": "tagpeer:peers", "Tag.1.Value": f"{OSAKA}/vpc-osaka"}) is None


QUEUES = {"tagpeer-requester": "RequesterQueue", "tagpeer-accepter": "AccepterQueue", "tagpeer-router": "RouterQueue",
          "tagpeer-provisioner": None}


def test_each_function_role_reads_its_own_queue_alone():
    # Lambda's poller reads a queue with the function's role: receive, delete and read its
    # attributes, on the function's own queue only; the provisioner has none.
    c = shipped()
    functions(c)
    arn = lambda region, account, q: f"arn:aws:sqs:{region}:{account}:tagpeer-{q}"  # noqa: E731
    everyone = ("RequesterQueue", "AccepterQueue", "RouterQueue", "FailedEvents")
    for region in (SEOUL, OSAKA):
        for binary, own in QUEUES.items():
            stmts = c.principal(key(binary, region)).stmts
            for queue in everyone:
                for where, account in ((region, ACCOUNT), (region, OTHER), (OSAKA if region == SEOUL else SEOUL,
                                                                            ACCOUNT)):
                    for action in (*iam.SQS_POLLER_ACTIONS, "sqs:SendMessage", "sqs:PurgeQueue",
                                   "sqs:ChangeMessageVisibility"):
                        allowed = iam.evaluate(stmts, action, arn(where, account, queue),
                                               ctx(aws_RequestedRegion=where)).allowed
                        mine = queue == own and (where, account) == (region, ACCOUNT)
                        assert allowed == (mine and action in iam.SQS_POLLER_ACTIONS), \
                            (binary, region, queue, where, account, action)
        for function, queue in (("RequesterFunction", "RequesterQueue"), ("AccepterFunction", "AccepterQueue"),
                                ("RouterFunction", "RouterQueue")):
            assert c.poller_refusal(ACCOUNT, region, function, arn(region, ACCOUNT, queue)) is None
            refusal = c.poller_refusal(ACCOUNT, region, function, arn(region, ACCOUNT, "FailedEvents"))
            assert refusal is not None and "sqs:ReceiveMessage" in refusal, refusal


def test_a_template_whose_role_cannot_read_its_queue_does_not_deploy():
    # Lambda checks the execution role when it creates the event source mapping: the stack fails,
    # and so does the local cloud's start, before anything runs.
    with tempfile.TemporaryDirectory() as d:
        path = without_statement(Path(d), "ReadAccepterQueue")
        c = shipped(template_path=path)
        refusal = c.poller_refusal(ACCOUNT, SEOUL, "AccepterFunction",
                                   f"arn:aws:sqs:{SEOUL}:{ACCOUNT}:tagpeer-AccepterQueue")
        assert refusal is not None and "AccepterRole" in refusal and "sqs:ReceiveMessage" in refusal, refusal
        assert c.poller_refusal(ACCOUNT, SEOUL, "RouterFunction",
                                f"arn:aws:sqs:{SEOUL}:{ACCOUNT}:tagpeer-RouterQueue") is None
        cloud = lc.LocalCloud(0, path, Path(d), [SEOUL, OSAKA])
        try:
            cloud.start()
        except RuntimeError as e:
            assert "AccepterQueueMapping" in str(e) and "sqs:ReceiveMessage" in str(e), e
        else:
            cloud.stop()
            raise AssertionError("the cloud started")
        assert cloud.moto is None and cloud.server is None, "nothing ran"


def refused(r: iam.Refusal | None, action: str, statement: str | None = None, explicit: bool = False) -> dict:
    assert r is not None, f"{action} was allowed"
    assert (r.status, r.code) == (403, "UnauthorizedOperation"), (r.status, r.code)
    assert r.record["action"] == f"ec2:{action}", r.record
    assert r.record["explicit_deny"] is explicit, r.record
    if statement:
        assert r.record["statement"] == statement, r.record
    return r.record


def test_the_shipped_template_refuses_what_it_does_not_grant():
    lookup = FakeLookup(tags={("pcx-hand", SEOUL, ACCOUNT): {"Name": "by hand"},
                              ("vpc-hand", SEOUL, ACCOUNT): {"Name": "not built"}})
    c = shipped(lookup)
    functions(c)
    # Tags other than the status tag, on VPCs; and a DeleteTags without keys (every tag).
    refused(ec2_call(c, "tagpeer-router", "CreateTags", **{"ResourceId.1": "vpc-seoul", "Tag.1.Key": "tagpeer:peers",
                                                           "Tag.1.Value": "x"}), "CreateTags")
    refused(ec2_call(c, "tagpeer-router", "CreateTags", **{
        "ResourceId.1": "vpc-seoul", "Tag.1.Key": "tagpeer-status", "Tag.1.Value": "x",
        "Tag.2.Key": "Name", "Tag.2.Value": "y"}), "CreateTags")
    refused(ec2_call(c, "tagpeer-requester", "DeleteTags", **{"ResourceId.1": "vpc-seoul"}), "DeleteTags")
    # The status tag on a connection or a route table: only VPCs.
    refused(ec2_call(c, "tagpeer-router", "CreateTags", **{"ResourceId.1": "pcx-1", "Tag.1.Key": "tagpeer-status",
                                                           "Tag.1.Value": "x"}), "CreateTags")
    # A request born without tagpeer-managed=true, or with a tag key beyond the five.
    unmanaged = dict(MANAGED_TAGS, **{"tagpeer-managed": "false"})
    refused(ec2_call(c, "tagpeer-requester", "CreateVpcPeeringConnection", **request_peering(unmanaged)),
            "CreateVpcPeeringConnection")
    r = ec2_call(c, "tagpeer-requester", "CreateVpcPeeringConnection",
                 **request_peering(dict(MANAGED_TAGS, owner="me")))
    assert r is not None and r.record["action"] == "ec2:CreateTags", "tags on create are CreateTags"
    assert r.record["resource"] == f"arn:aws:ec2:{SEOUL}:{ACCOUNT}:vpc-peering-connection/*", r.record
    assert r.record["context"]["ec2:CreateAction"] == "CreateVpcPeeringConnection", r.record
    # Deleting a connection tagpeer did not make (no tagpeer-managed tag in this region).
    refused(ec2_call(c, "tagpeer-requester", "DeleteVpcPeeringConnection", VpcPeeringConnectionId="pcx-hand"),
            "DeleteVpcPeeringConnection")
    # Each role only what it needs: the router requests nothing, the accepter routes nothing.
    refused(ec2_call(c, "tagpeer-router", "CreateVpcPeeringConnection", **request_peering(MANAGED_TAGS)),
            "CreateVpcPeeringConnection")
    refused(ec2_call(c, "tagpeer-accepter", "CreateRoute", RouteTableId="rtb-1"), "CreateRoute")
    refused(ec2_call(c, "tagpeer-requester", "CreateRoute", RouteTableId="rtb-1"), "CreateRoute")
    refused(ec2_call(c, "tagpeer-router", "AcceptVpcPeeringConnection", VpcPeeringConnectionId="pcx-1"),
            "AcceptVpcPeeringConnection")
    refused(ec2_call(c, "tagpeer-requester", "RejectVpcPeeringConnection", VpcPeeringConnectionId="pcx-1"),
            "RejectVpcPeeringConnection")
    # Routes in another account's route table (the ARN names the caller's account; another
    # account's table would be refused by EC2 itself) and anything outside the deployment's
    # regions: CommonPolicy's explicit Deny.
    refused(ec2_call(c, "tagpeer-router", "CreateRoute", "us-east-1", RouteTableId="rtb-1"), "CreateRoute",
            "CommonPolicy:OnlyDeploymentRegions", explicit=True)
    refused(ec2_call(c, "tagpeer-router", "DescribeVpcs", "eu-west-1"), "DescribeVpcs",
            "CommonPolicy:OnlyDeploymentRegions", explicit=True)
    # The provisioner tags intent only on VPCs it built (tagpeer-network), and only tagpeer:peers.
    refused(ec2_call(c, "tagpeer-provisioner", "CreateTags", **{
        "ResourceId.1": "vpc-hand", "Tag.1.Key": "tagpeer:peers", "Tag.1.Value": "x"}), "CreateTags")
    refused(ec2_call(c, "tagpeer-provisioner", "CreateTags", **{
        "ResourceId.1": "vpc-built", "Tag.1.Key": "tagpeer:mesh", "Tag.1.Value": "x"}), "CreateTags")
    # ModifyVpcAttribute (DNS hostnames): refused until the template grants it to the provisioner.
    granted = any("ec2:ModifyVpcAttribute" in st.actions
                  for st in c.principal(key("tagpeer-provisioner")).stmts if st.effect == "Allow")
    r = ec2_call(c, "tagpeer-provisioner", "ModifyVpcAttribute", VpcId="vpc-built",
                 **{"EnableDnsHostnames.Value": "true"})
    assert (r is None) == granted, (granted, r and r.record)
    # Events on the default bus of the deployment's regions alone (a function puts each event on
    # the bus of every region that acts on it, through a client of that region); STS only the
    # reader roles.
    def put(region: str, bus: str):
        return c.check("events", "PutEvents", region, key("tagpeer-router"), {}, json.dumps(
            {"Entries": [{"Source": "tagpeer", "DetailType": "x", "Detail": "{}", "EventBusName": bus}]}).encode(),
            "AWSEvents.PutEvents")

    assert put(OSAKA, "default") is None, "another deployment region's default bus"
    r = put(SEOUL, "tagpeer-other")
    assert r is not None and (r.status, r.code) == (400, "AccessDeniedException"), r
    body = json.loads(r.body)
    assert body["__type"] == "AccessDeniedException"
    assert body["message"] == (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/tagpeer-RouterRole/tagpeer-RouterFunction "
                               f"is not authorized to perform: events:PutEvents on resource: arn:aws:events:{SEOUL}:"
                               f"{ACCOUNT}:event-bus/tagpeer-other because no identity-based policy allows the "
                               "events:PutEvents action"), body
    r = put("eu-west-1", "default")
    assert r is not None and (r.status, r.code) == (400, "AccessDeniedException"), r
    assert "with an explicit deny in an identity-based policy" in json.loads(r.body)["message"], r.body
    r = c.check("sts", "AssumeRole", SEOUL, key("tagpeer-router"), {
        "RoleArn": f"arn:aws:iam::{OTHER}:role/admin", "RoleSessionName": "x"}, b"")
    assert r is not None and (r.status, r.code) == (403, "AccessDenied"), r
    assert b"<Code>AccessDenied</Code>" in r.body, r.body
    assert b"sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin" in r.body, r.body
    # Not a function: an administrator, never checked.
    assert c.check("ec2", "CreateRoute", "us-east-1", TESTER, {"RouteTableId": "rtb-1"}, b"") is None


def test_the_refusal_is_ec2s_message_with_the_decision_encoded():
    c = shipped()
    functions(c)
    r = ec2_call(c, "tagpeer-router", "CreateVpcPeeringConnection", **request_peering(MANAGED_TAGS))
    xml = r.body.decode()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                          "<Code>UnauthorizedOperation</Code><Message>"), xml
    message = re.search(r"<Message>(.*)</Message>", xml).group(1)
    user = f"arn:aws:sts::{ACCOUNT}:assumed-role/tagpeer-RouterRole/tagpeer-RouterFunction"
    assert message.startswith(
        f"You are not authorized to perform this operation. User: {user} is not authorized to perform: "
        f"ec2:CreateVpcPeeringConnection on resource: arn:aws:ec2:{SEOUL}:{ACCOUNT}:vpc/vpc-seoul because no "
        "identity-based policy allows the ec2:CreateVpcPeeringConnection action. "
        "Encoded authorization failure message: "), message
    blob = message.rsplit(" ", 1)[1]
    decoded = json.loads(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    assert decoded["action"] == "ec2:CreateVpcPeeringConnection" and decoded["role"] == "RouterRole", decoded
    assert re.search(r"<RequestID>[0-9a-f-]{36}</RequestID></Response>$", xml), xml
    # An explicit deny says so.
    r = ec2_call(c, "tagpeer-router", "CreateRoute", "us-east-1", RouteTableId="rtb-1")
    assert b"with an explicit deny in an identity-based policy" in r.body, r.body


def test_the_reader_roles_temporary_keys_act_as_the_reader_role():
    c = shipped(params=dict(PARAMS, AllowedAccounts=OTHER))
    functions(c)
    response = (b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
                b"<Credentials><AccessKeyId>ASIATEMPORARY1</AccessKeyId></Credentials></AssumeRoleResult>"
                b"</AssumeRoleResponse>")
    c.observe("sts", "AssumeRole", key("tagpeer-requester"),
              {"RoleArn": f"arn:aws:iam::{OTHER}:role/tagpeer-reader-{OSAKA}", "RoleSessionName": "tagpeer"}, 200,
              response)
    reader = c.principal("ASIATEMPORARY1")
    assert reader is not None and reader.arn == f"arn:aws:sts::{OTHER}:assumed-role/tagpeer-reader-{OSAKA}/tagpeer"
    # Read only, its own region only.
    assert c.check("ec2", "DescribeVpcs", OSAKA, "ASIATEMPORARY1", {}, b"") is None
    r = c.check("ec2", "DescribeVpcs", SEOUL, "ASIATEMPORARY1", {}, b"")
    assert r is not None and r.record["resource"] == "*", r
    r = c.check("ec2", "CreateTags", OSAKA, "ASIATEMPORARY1", {"ResourceId.1": "vpc-1", "Tag.1.Key": "tagpeer-status",
                                                               "Tag.1.Value": "x"}, b"")
    assert r is not None and f"arn:aws:ec2:{OSAKA}:{OTHER}:vpc/vpc-1" == r.record["resource"], r.record
    # Keys someone else got are not a function's: unchecked.
    c.observe("sts", "AssumeRole", TESTER, {"RoleArn": f"arn:aws:iam::{OTHER}:role/tagpeer-reader-{OSAKA}"}, 200,
              response.replace(b"ASIATEMPORARY1", b"ASIATEMPORARY2"))
    assert c.principal("ASIATEMPORARY2") is None
    c.forget_sessions()
    assert c.principal("ASIATEMPORARY1") is None and c.principal(key("tagpeer-router")) is not None


def test_a_template_without_a_statement_refuses_its_call():
    with tempfile.TemporaryDirectory() as d:
        path = without_statement(Path(d), "ManageRoutes")
        c = shipped(template_path=path)
        functions(c)
        r = ec2_call(c, "tagpeer-router", "CreateRoute", RouteTableId="rtb-1", DestinationCidrBlock="10.0.0.0/16",
                     VpcPeeringConnectionId="pcx-1")
        refused(r, "CreateRoute")
        assert ec2_call(c, "tagpeer-router", "ModifyVpcPeeringConnectionOptions", VpcPeeringConnectionId="pcx-1") \
            is None, "the rest of the router's policy stands"


# ------------------------------------------------------------ a template without a statement

def without_statement(directory: Path, sid: str) -> Path:
    """A copy of the shipped template with the statement `Sid: sid` cut out (its lines, up to the
    next item at its indentation or less)."""
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- Sid: {sid}")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.lstrip()
        here = len(line) - len(stripped)
        ends = here < indent or (here == indent and stripped.startswith("-"))
        if stripped and not stripped.startswith("#") and ends:
            break
        end += 1
    out = directory / "template.yaml"
    out.write_text("".join(lines[:start] + lines[end:]), encoding="utf-8")
    loaded = tpl.load(str(out))
    sids = [st.get("Sid") for r in (loaded["Resources"] or {}).values() if isinstance(r, dict)  # not a Fn::ForEach
            for p in ((r.get("Properties") or {}).get("Policies") or [])
            for st in p["PolicyDocument"]["Statement"]]
    assert sid not in sids and len(sids) > 3, sids
    return out


# ------------------------------------------------------------ a real local cloud

def fast_lifecycle(c: lc.LocalCloud) -> None:
    """AWS's intermediate states, shortened, where the local cloud models them."""
    status, _ = local("/_local/lifecycle", {"initiating_s": 0.2, "visibility_s": 0.2, "provisioning_s": 0.2}, cloud=c)
    assert status in (200, 404), status


def seed(c: lc.LocalCloud) -> tuple[str, str]:
    """Seoul 10.0.0.0/16 with a subnet, a gateway and a route table, and Osaka's default VPC
    (172.31.0.0/16); then the tag that asks for the link. Returns (Seoul VPC, Osaka VPC)."""
    seoul = ec2(SEOUL, cloud=c)
    vpc = seoul.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = seoul.create_subnet(VpcId=vpc, CidrBlock="10.0.6.0/24", AvailabilityZone=f"{SEOUL}a")["Subnet"]["SubnetId"]
    igw = seoul.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    seoul.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rtb = seoul.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    seoul.associate_route_table(RouteTableId=rtb, SubnetId=subnet)
    seoul.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    osaka_vpc = next(v["VpcId"] for v in ec2(OSAKA, cloud=c).describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    seoul.create_tags(Resources=[vpc], Tags=[{"Key": "tagpeer:peers", "Value": f"{OSAKA}/{osaka_vpc}"}])
    return vpc, osaka_vpc


def routed(c: lc.LocalCloud, region: str, vpc: str, peer_range: str) -> bool:
    """Every route table of the VPC routes the peer's range through a peering connection."""
    found = ec2(region, cloud=c).describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    tables = [t for t in found if t.get("VpcId") == vpc]  # moto may ignore filters
    return bool(tables) and all(
        any(r.get("DestinationCidrBlock") == peer_range and r.get("VpcPeeringConnectionId", "").startswith("pcx-")
            for r in t["Routes"]) for t in tables)


def status_of(c: lc.LocalCloud, region: str, vpc: str) -> str:
    tags = ec2(region, cloud=c).describe_vpcs(VpcIds=[vpc])["Vpcs"][0].get("Tags", [])
    return next((t["Value"] for t in tags if t["Key"] == "tagpeer-status"), "")


def converge(c: lc.LocalCloud, vpc: str, osaka_vpc: str, rounds: int = 10) -> bool:
    """Settle, then fire the schedule until both sides are routed (bounded)."""
    local("/_local/settle", {}, cloud=c)
    for _ in range(rounds):
        if routed(c, SEOUL, vpc, "172.31.0.0/16") and routed(c, OSAKA, osaka_vpc, "10.0.0.0/16") \
                and status_of(c, SEOUL, vpc).startswith("ready") and status_of(c, OSAKA, osaka_vpc).startswith("ready"):
            return True
        time.sleep(0.3)
        local("/_local/schedule", {}, cloud=c)
    return routed(c, SEOUL, vpc, "172.31.0.0/16") and routed(c, OSAKA, osaka_vpc, "10.0.0.0/16")


def refusals(c: lc.LocalCloud) -> list[dict]:
    _, calls = local("/_local/calls", cloud=c)
    return [x for x in calls if x.get("denied") or x.get("error") in ("UnauthorizedOperation", "AccessDenied",
                                                                       "AccessDeniedException")]


def test_the_seed_converges_with_the_shipped_template_and_nothing_is_refused(cloud):
    c = cloud()
    fast_lifecycle(c)
    vpc, osaka_vpc = seed(c)
    assert converge(c, vpc, osaka_vpc), (status_of(c, SEOUL, vpc), status_of(c, OSAKA, osaka_vpc))
    assert refusals(c) == [], refusals(c)
    _, calls = local("/_local/calls", cloud=c)
    by_functions = {x["action"] for x in calls if x["caller"] in c.function_callers}
    # The functions really acted through their roles: requests, accepts, routes, status tags, events.
    for action in ("CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "CreateRoute", "CreateTags",
                   "PutEvents"):
        assert action in by_functions, (action, sorted(by_functions))


def test_a_provisioned_network_with_dns_and_its_teardown_need_nothing_the_template_does_not_grant(cloud):
    c = cloud()
    fast_lifecycle(c)
    osaka_vpc = next(v["VpcId"] for v in ec2(OSAKA, cloud=c).describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    ec2(OSAKA, cloud=c).create_tags(Resources=[osaka_vpc], Tags=[{"Key": "tagpeer:dns", "Value": "on"}])
    events = client("events", SEOUL, retries=True, cloud=c)
    events.put_events(Entries=[{"Source": "tagpeer", "DetailType": "Network Requested", "Detail": json.dumps(
        {"region": SEOUL, "name": "seoul", "subnets": 2, "peers": [f"{OSAKA}/{osaka_vpc}"]})}])
    local("/_local/settle", {}, cloud=c)
    vpc = next(v["VpcId"] for v in ec2(SEOUL, cloud=c).describe_vpcs()["Vpcs"] if not v.get("IsDefault"))
    # DNS across a peering needs DNS hostnames and resolution on in both VPCs (a person's doing
    # here, whichever provisioner is built; the provisioner's own ModifyVpcAttribute is allowed).
    for region, v in ((SEOUL, vpc), (OSAKA, osaka_vpc)):
        ec2(region, cloud=c).modify_vpc_attribute(VpcId=v, EnableDnsSupport={"Value": True})
        ec2(region, cloud=c).modify_vpc_attribute(VpcId=v, EnableDnsHostnames={"Value": True})
    ec2(SEOUL, cloud=c).create_tags(Resources=[vpc], Tags=[{"Key": "tagpeer:dns", "Value": "on"}])
    assert converge(c, vpc, osaka_vpc), (status_of(c, SEOUL, vpc), status_of(c, OSAKA, osaka_vpc))
    ec2(SEOUL, cloud=c).delete_tags(Resources=[vpc], Tags=[{"Key": "tagpeer:peers"}])
    local("/_local/settle", {}, cloud=c)
    for _ in range(10):
        if not routed(c, SEOUL, vpc, "172.31.0.0/16") and all(
                p["Status"]["Code"] in ("deleting", "deleted")
                for p in ec2(SEOUL, cloud=c).describe_vpc_peering_connections()["VpcPeeringConnections"]):
            break
        time.sleep(0.3)
        local("/_local/schedule", {}, cloud=c)
    assert not routed(c, SEOUL, vpc, "172.31.0.0/16")
    assert refusals(c) == [], refusals(c)
    _, calls = local("/_local/calls", cloud=c)
    by_functions = {x["action"] for x in calls if x["caller"] in c.function_callers and not x["error"]}
    for action in ("CreateVpc", "CreateSubnet", "CreateInternetGateway", "AttachInternetGateway", "CreateRouteTable",
                   "AssociateRouteTable", "ModifyVpcPeeringConnectionOptions", "DeleteRoute",
                   "DeleteVpcPeeringConnection"):
        assert action in by_functions, (action, sorted(by_functions))


def test_the_seed_fails_when_the_template_drops_the_routers_manage_routes(cloud, clouds):
    with tempfile.TemporaryDirectory() as d:
        c = cloud(without_statement(Path(d), "ManageRoutes"))
        fast_lifecycle(c)
        vpc, osaka_vpc = seed(c)
        assert not converge(c, vpc, osaka_vpc, rounds=2), "no routes without ManageRoutes"
        denied = refusals(c)
        assert denied, "the router's CreateRoute is refused"
        routes = [x for x in denied if x["action"] == "CreateRoute"]
        assert routes and all(x["error"] == "UnauthorizedOperation" and x["status"] == 403 for x in routes), denied
        assert all(re.match(rf"^{ACCOUNT}-tagpeer-router-", x["caller"]) for x in routes), routes
        assert {x["denied"]["role"] for x in routes} == {"RouterRole"}, routes
        assert routes[0]["denied"]["resource"].startswith(f"arn:aws:ec2:"), routes[0]
        assert not status_of(c, SEOUL, vpc).startswith("ready"), status_of(c, SEOUL, vpc)
        assert not status_of(c, OSAKA, osaka_vpc).startswith("ready"), status_of(c, OSAKA, osaka_vpc)
        # The connection itself was made and accepted: only the routes are missing.
        pcx = ec2(SEOUL, cloud=c).describe_vpc_peering_connections()["VpcPeeringConnections"]
        assert any(p["Status"]["Code"] in ("active", "provisioning") for p in pcx), pcx
        clouds.stop(c)


def test_the_seed_fails_when_the_template_drops_the_requesters_managed_connections(cloud, clouds):
    with tempfile.TemporaryDirectory() as d:
        c = cloud(without_statement(Path(d), "CreateManagedConnections"))
        fast_lifecycle(c)
        vpc, osaka_vpc = seed(c)
        assert not converge(c, vpc, osaka_vpc, rounds=1)
        denied = [x for x in refusals(c) if x["action"] == "CreateVpcPeeringConnection"]
        assert denied and denied[0]["error"] == "UnauthorizedOperation", refusals(c)
        assert denied[0]["denied"]["resource"] == f"arn:aws:ec2:{SEOUL}:{ACCOUNT}:vpc-peering-connection/*", denied[0]
        assert ec2(SEOUL, cloud=c).describe_vpc_peering_connections()["VpcPeeringConnections"] == [] or all(
            p["Status"]["Code"] in ("deleted", "rejected", "failed")
            for p in ec2(SEOUL, cloud=c).describe_vpc_peering_connections()["VpcPeeringConnections"])
        clouds.stop(c)


def test_people_are_administrators_and_are_never_refused(cloud):
    c = cloud()
    # A person creates a route table route and tags a VPC in a region outside the deployment:
    # what no function may do.
    other = ec2("us-east-1", cloud=c)
    vpc = other.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    other.create_tags(Resources=[vpc], Tags=[{"Key": "owner", "Value": "me"}])
    assert refusals(c) == []
    # A function's key, used for the same call, is refused as the function would be.
    router = ec2("us-east-1", f"{ACCOUNT}-tagpeer-router-{SEOUL}", cloud=c)
    try:
        router.create_tags(Resources=[vpc], Tags=[{"Key": "owner", "Value": "them"}])
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "UnauthorizedOperation", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "with an explicit deny in an identity-based policy" in e.response["Error"]["Message"]
    else:
        raise AssertionError("the router's CreateTags outside the deployment's regions was allowed")
    assert [x["action"] for x in refusals(c)] == ["CreateTags"]
    tags = other.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]
    assert {"Key": "owner", "Value": "me"} in tags, "the refused call never reached moto"
