"""Tests for the template's triggers (infra-template/template.yaml, "triggers"): one change is one
invocation of each function that acts on it, and tagpeer's events need no forwarding rule, so a
deployment may have any number of regions.

Each test evaluates the template's rules as the local cloud deploys them (template.py) against
events in AWS's shapes (awsevents.py) and asks which functions they invoke (directly, or through
the queue a rule sends to and the event source mapping that reads it).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from localcloud import awsevents as ae
from localcloud import patterns
from localcloud import template as tpl
from localcloud.testing import ACCOUNT, OSAKA, OTHER, SEOUL, TEMPLATE

VPC = "vpc-0123456789abcdef0"
PCX = "pcx-0123456789abcdef0"
TEN = ["ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2",
       "eu-west-1", "eu-central-1", "us-east-1", "us-east-2", "us-west-2"]


@pytest.fixture(scope="module")
def template():
    return tpl.load(str(TEMPLATE))


def stack(template, region=SEOUL, regions=(SEOUL, OSAKA)):
    return tpl.stack(template, region, ACCOUNT, {"Regions": ",".join(regions)})


def invoked(stack, event) -> list[str]:
    """The functions the event invokes, once for each rule that matches it: the rule's target, or the
    function of the mapping that reads the queue the rule sends to."""
    reader = {m.queue: m.function for m in stack.mappings}
    return sorted(t.function or reader[t.queue] for r in stack.rules
                  if r.pattern and patterns.matches(r.pattern, event) for t in r.targets if t.function or t.queue)


def tag_change(*keys: str) -> dict:
    return ae.tag_change(ACCOUNT, SEOUL, VPC, list(keys), {k: "x" for k in keys}, 1)


def session_of(role: str) -> SimpleNamespace:
    """A function's credentials: a session of the role the template gives it (iam.py's Principal)."""
    name = f"tagpeer-{role}"
    arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    return SimpleNamespace(role=SimpleNamespace(name=name, arn=arn), session="fn", account=ACCOUNT,
                           arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/fn")


def api_call(action: str, params: dict, by=None) -> dict:
    """The CloudTrail record of a call that succeeded, by `by` (a session_of), else a person (an IAM user)."""
    detail = {"eventVersion": ae.EVENT_VERSION, "eventSource": "ec2.amazonaws.com", "eventName": action,
              "awsRegion": SEOUL, "userIdentity": ae.user_identity(ACCOUNT, f"{ACCOUNT}-alice", by),
              "requestParameters": params, "responseElements": {"return": True}}
    return ae.envelope("AWS API Call via CloudTrail", "aws.ec2", ACCOUNT, SEOUL, [], detail)


def test_an_intent_tag_change_is_one_invocation_of_the_requester(template):
    s = stack(template)
    for key in ("tagpeer:peers", "tagpeer:mesh", "tagpeer:accept"):
        assert invoked(s, tag_change(key)) == ["RequesterFunction"], key
    # CloudTrail's record of the same change brings nobody: the tag change already did.
    tags = {"resourcesSet": {"items": [{"resourceId": VPC}]},
            "tagSet": {"items": [{"key": "tagpeer:peers", "value": f"{OSAKA}/{VPC}"}]}}
    for action in ("CreateTags", "DeleteTags"):
        assert invoked(s, api_call(action, tags)) == [], action


def test_a_routing_tag_change_brings_the_router_too_once(template):
    s = stack(template)
    for key in ("tagpeer:route-tables", "tagpeer:ipv6", "tagpeer:dns"):
        assert invoked(s, tag_change(key)) == ["RequesterFunction", "RouterFunction"], key
    assert invoked(s, tag_change("tagpeer:dns", "tagpeer:ipv6")) == ["RequesterFunction", "RouterFunction"]
    assert invoked(s, tag_change("team")) == []


def test_tagpeers_own_acceptance_reaches_the_router_by_its_event_alone(template):
    s = stack(template)
    accept = {"vpcPeeringConnectionId": PCX}
    assert invoked(s, api_call("AcceptVpcPeeringConnection", accept, by=session_of("AccepterRole"))) == []
    # A person's acceptance (of a request tagpeer made) has no tagpeer event: its record is the trigger.
    assert invoked(s, api_call("AcceptVpcPeeringConnection", accept)) == ["RouterFunction"]
    assert invoked(s, api_call("AcceptVpcPeeringConnection", accept, by=session_of("RouterRole"))) == \
        ["RouterFunction"]


def test_the_requester_hears_only_of_connections_ended_by_others(template):
    s = stack(template)
    delete = {"vpcPeeringConnectionId": PCX}
    # Its own delete (a teardown, a duplicate) still brings the router: routes may need the survivor.
    assert invoked(s, api_call("DeleteVpcPeeringConnection", delete, by=session_of("RequesterRole"))) == \
        ["RouterFunction"]
    assert invoked(s, api_call("DeleteVpcPeeringConnection", delete)) == ["RequesterFunction", "RouterFunction"]
    assert invoked(s, api_call("RejectVpcPeeringConnection", delete)) == ["RequesterFunction"]
    assert invoked(s, api_call("RejectVpcPeeringConnection", delete, by=session_of("RequesterRole"))) == []


def test_ten_regions_deploy_with_no_forwarding_rule(template):
    for region in (TEN[0], TEN[-1]):
        s = stack(template, region, TEN)
        assert not [t for r in s.rules for t in r.targets if t.bus_arn], "no rule forwards to another bus"
    spec = template["Parameters"]["Regions"]
    assert re.fullmatch(spec["AllowedPattern"], ",".join(TEN)), "the parameter takes ten regions"
    assert not re.fullmatch(spec["AllowedPattern"], ",".join(TEN) + ","), "but no empty one"
    assert "PeerRegions" not in template["Parameters"]


# ------------------------------------------------------------ tagpeer's events, per account and region

def tagpeer_event(detail_type: str, requester: tuple[str, str], accepter: tuple[str, str],
                  side: tuple[str, str] | None = None, account: str = ACCOUNT, region: str = SEOUL) -> dict:
    """A tagpeer event, put by `account` in `region`, about the link between two (account, region) sides."""
    detail = {"link": "l", "peering-connection-id": PCX,
              "requester": {"account": requester[0], "region": requester[1], "vpc": VPC},
              "accepter": {"account": accepter[0], "region": accepter[1], "vpc": VPC}}
    if side:
        detail["side"] = {"account": side[0], "region": side[1], "vpc": VPC}
    return ae.envelope(detail_type, "tagpeer", account, region, [], detail)


def test_tagpeers_events_bring_only_the_functions_of_their_sides_account_and_region(template):
    s = stack(template)  # Seoul, in ACCOUNT
    here, osaka, there = (ACCOUNT, SEOUL), (ACCOUNT, OSAKA), (OTHER, SEOUL)
    assert invoked(s, tagpeer_event("Peering Requested", osaka, here)) == ["AccepterFunction"]
    assert invoked(s, tagpeer_event("Peering Requested", here, there)) == [], "another account's accepter"
    assert invoked(s, tagpeer_event("Peering Accepted", here, osaka)) == ["RequesterFunction", "RouterFunction"]
    assert invoked(s, tagpeer_event("Peering Accepted", osaka, here)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Peering Accepted", there, here)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Peering Accepted", there, osaka)) == []
    assert invoked(s, tagpeer_event("Link Wanted", here, there)) == ["RequesterFunction"]
    assert invoked(s, tagpeer_event("Link Wanted", there, here)) == []
    # A link across accounts is unrouted a side at a time: the other account's "Routes Removed".
    assert invoked(s, tagpeer_event("Routes Removed", here, there, side=there)) == ["RequesterFunction"]
    assert invoked(s, tagpeer_event("Routes Removed", there, here, side=there)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Routes Removed", here, there, side=here)) == [], "its own: itself"
    assert invoked(s, tagpeer_event("Routes Removed", there, (OTHER, OSAKA), side=there)) == []


def test_link_removed_brings_the_router_only_when_put_from_another_region_or_account(template):
    s = stack(template)
    here, osaka, there = (ACCOUNT, SEOUL), (ACCOUNT, OSAKA), (OTHER, SEOUL)
    assert invoked(s, tagpeer_event("Link Removed", here, osaka, side=here)) == [], "its own region's: itself"
    assert invoked(s, tagpeer_event("Link Removed", here, osaka, side=osaka)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Link Removed", osaka, here, side=osaka)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Link Removed", here, there, side=there)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Link Removed", there, here, side=there)) == ["RouterFunction"]
    assert invoked(s, tagpeer_event("Link Removed", there, (OTHER, OSAKA), side=there)) == [], "no side here"
    assert invoked(s, tagpeer_event("Link Removed", here, osaka)) == [], "no side: anything-but needs one"
