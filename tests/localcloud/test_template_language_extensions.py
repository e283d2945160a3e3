"""Tests for template.py's reading of AWS::LanguageExtensions: `Transform` as a list, Fn::ForEach
(Resources, their properties, Conditions, Outputs, nested), CommaDelimitedList parameters,
Fn::GetAtt of an intrinsic; and the shipped template's per-account resources made by its
Fn::ForEach::EventsToAccounts (CloudFormation Template Reference, "Fn::ForEach").
"""

from __future__ import annotations

import pytest

from localcloud import patterns
from localcloud import template as tpl
from localcloud.testing import ACCOUNT, OSAKA, OTHER, SEOUL, TEMPLATE

THIRD = "333333333333"
PEER_BUS = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${Peer}:event-bus/default"}

# A small template of its own: every form the reader must expand.
SMALL = {
    "Transform": ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"],
    "Parameters": {
        "Peers": {"Type": "CommaDelimitedList", "Default": ""},
        "Stage": {"Type": "String", "Default": "prod"},
    },
    "Conditions": {
        "HasPeers": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Peers"}]}, ""]}]},
        "Fn::ForEach::Stages": ["S", ["dev", "prod"], {
            "Is${S}": {"Fn::Equals": [{"Ref": "Stage"}, "${S}"]},
        }],
    },
    "Resources": {
        "Fn::ForEach::PerPeer": ["Peer", {"Ref": "Peers"}, {
            "Role${Peer}": {
                "Type": "AWS::IAM::Role",
                "Condition": "HasPeers",
                "Properties": {
                    "Description": "for ${Peer}",
                    "AssumeRolePolicyDocument": {"Statement": [{
                        "Effect": "Allow", "Principal": {"AWS": {"Ref": "Peer"}}, "Action": "sts:AssumeRole"}]},
                    "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [{
                        "Effect": "Allow", "Action": "events:PutEvents",
                        "Resource": PEER_BUS,
                    }]}}],
                },
            },
            "Rule${Peer}": {
                "Type": "AWS::Events::Rule",
                "Condition": "HasPeers",
                "Properties": {
                    "EventPattern": {"source": ["tagpeer"], "detail": {"account": ["${Peer}"]}},
                    "Targets": [{"Id": {"Fn::Sub": "to-${Peer}"},
                                 "Arn": PEER_BUS,
                                 "RoleArn": {"Fn::GetAtt": [{"Fn::Sub": "Role${Peer}"}, "Arn"]}}],
                },
            },
        }],
        # Nested loops, the outer identifier in the inner collection, &{} in keys.
        "Fn::ForEach::Outer": ["Env", ["a-1", "b-2"], {
            "Fn::ForEach::Inner": ["Kind", [{"Fn::Sub": "${Env}.x"}, "y"], {
                "Log&{Env}&{Kind}": {"Type": "AWS::Logs::LogGroup",
                                     "Properties": {"LogGroupName": "/${Env}/${Kind}",
                                                    # Fn::ForEach in a resource's properties.
                                                    "Fn::ForEach::Props": ["P", ["One", "Two"], {
                                                        "Tag${P}": "${Env}-${P}"}]}},
            }],
        }],
    },
    "Outputs": {
        "Fn::ForEach::Out": ["Peer", {"Ref": "Peers"}, {
            "Out${Peer}": {"Condition": "HasPeers", "Value": {"Fn::GetAtt": [{"Fn::Sub": "Role${Peer}"}, "Arn"]}},
        }],
        "Length": {"Value": {"Fn::Length": {"Ref": "Peers"}}},
        "Json": {"Value": {"Fn::ToJsonString": {"peers": {"Ref": "Peers"}}}},
    },
}


def params(**kw) -> dict[str, str]:
    return {"Regions": f"{SEOUL},{OSAKA}", **kw}


def test_comma_delimited_lists_are_lists_and_the_empty_string_is_one_empty_member():
    ev = tpl._Evaluator(SMALL, SEOUL, ACCOUNT, {}, "s")
    assert ev.params["Peers"] == [""], "CloudFormation: \"\" is [\"\"]"
    assert not ev.condition("HasPeers")
    ev = tpl._Evaluator(SMALL, SEOUL, ACCOUNT, {"Peers": f"{OTHER}, {THIRD}"}, "s")
    assert ev.params["Peers"] == [OTHER, THIRD], "each member space-trimmed"
    assert ev.condition("HasPeers")
    assert tpl._Evaluator(SMALL, SEOUL, ACCOUNT, {"Peers": [OTHER]}, "s").params["Peers"] == [OTHER]


def test_for_each_expands_resources_properties_conditions_and_outputs():
    roles = tpl.resources(SMALL, SEOUL, ACCOUNT, {"Peers": f"{OTHER},{THIRD}"}, "AWS::IAM::Role", "s")
    assert sorted(roles) == [f"Role{OTHER}", f"Role{THIRD}"]
    assert roles[f"Role{OTHER}"]["Description"] == f"for {OTHER}"
    assert roles[f"Role{OTHER}"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": OTHER}, \
        "Ref: Identifier is the value"
    assert roles[f"Role{THIRD}"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"] == \
        f"arn:aws:events:{SEOUL}:{THIRD}:event-bus/default"
    logs = tpl.resources(SMALL, SEOUL, ACCOUNT, {}, "AWS::Logs::LogGroup", "s")
    # &{} strips what is not alphanumeric; the inner collection used the outer identifier.
    assert sorted(logs) == ["Loga1a1x", "Loga1y", "Logb2b2x", "Logb2y"], sorted(logs)
    assert logs["Loga1a1x"] == {"LogGroupName": "/a-1/a-1.x", "TagOne": "a-1-One", "TagTwo": "a-1-Two"}
    # Conditions made by a loop.
    ev = tpl._Evaluator(SMALL, SEOUL, ACCOUNT, {"Stage": "dev"}, "s")
    assert ev.condition("Isdev") and not ev.condition("Isprod")
    # Outputs, with Fn::GetAtt of a Fn::Sub, Fn::Length and Fn::ToJsonString.
    out = tpl.outputs(SMALL, SEOUL, ACCOUNT, {"Peers": OTHER}, "s")
    assert out == {f"Out{OTHER}": f"arn:aws:iam::{ACCOUNT}:role/s-Role{OTHER}", "Length": 1,
                   "Json": '{"peers":["222222222222"]}'}, out
    assert tpl.outputs(SMALL, SEOUL, ACCOUNT, {}, "s") == {"Length": 1, "Json": '{"peers":[""]}'}, \
        "the empty member's output has its Condition false"


def test_a_rule_made_by_a_loop_targets_a_bus_with_the_role_of_its_getatt():
    s = tpl.stack(SMALL, SEOUL, ACCOUNT, {"Peers": OTHER}, "s")
    (rule,) = s.rules
    assert rule.logical_id == f"Rule{OTHER}" and rule.account == ACCOUNT
    assert rule.pattern == {"source": ["tagpeer"], "detail": {"account": [OTHER]}}
    (target,) = rule.targets
    assert target.id == f"to-{OTHER}" and target.bus_arn == f"arn:aws:events:{SEOUL}:{OTHER}:event-bus/default"
    assert target.role_arn == f"arn:aws:iam::{ACCOUNT}:role/s-Role{OTHER}"
    assert tpl.stack(SMALL, SEOUL, ACCOUNT, {}, "s").rules == [], "\"\": one loop turn, its Condition false"


def test_what_the_language_extensions_do_not_allow():
    def fails(template: dict, match: str) -> None:
        with pytest.raises(tpl.TemplateError, match=match):
            tpl.stack(template, SEOUL, ACCOUNT, {}, "s")

    fails(dict(SMALL, Transform="AWS::Serverless-2016-10-31"), "needs the AWS::LanguageExtensions")
    fails(dict(SMALL, Transform=["AWS::Serverless-2016-10-31", "AWS::LanguageExtensions"]), "must come before")
    twice = {"Transform": "AWS::LanguageExtensions", "Resources": {
        "Fn::ForEach::X": ["N", ["a", "a"], {"Log${N}": {"Type": "AWS::Logs::LogGroup"}}]}}
    fails(twice, "makes Loga twice")
    clash = {"Transform": "AWS::LanguageExtensions", "Resources": {
        "Loga": {"Type": "AWS::Logs::LogGroup"},
        "Fn::ForEach::X": ["N", ["a"], {"Log${N}": {"Type": "AWS::Logs::LogGroup"}}]}}
    fails(clash, "makes Loga twice")
    fails({"Transform": "AWS::LanguageExtensions", "Resources": {"Fn::ForEach::X": ["N", "a", {}]}},
          "not a list")
    fails({"Transform": "AWS::LanguageExtensions", "Resources": {"Fn::ForEach::bad-name": ["N", ["a"], {}]}},
          "alphanumeric")
    getatt = {"Resources": {"R": {"Type": "AWS::IAM::Role"}, "Q": {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": {"Fn::GetAtt": [{"Fn::Sub": "R"}, "Arn"]}}}}}
    with pytest.raises(tpl.TemplateError, match="needs the AWS::LanguageExtensions"):
        tpl.resources(getatt, SEOUL, ACCOUNT, {}, "AWS::Logs::LogGroup")
    getatt["Transform"] = "AWS::LanguageExtensions"  # one transform, not a list
    assert tpl.resources(getatt, SEOUL, ACCOUNT, {}, "AWS::Logs::LogGroup") == \
        {"Q": {"LogGroupName": f"arn:aws:iam::{ACCOUNT}:role/tagpeer-R"}}


# ------------------------------------------------------------ the shipped template


@pytest.fixture(scope="module")
def shipped():
    return tpl.load(str(TEMPLATE))


def forwarding(stack: tpl.Stack) -> list[tpl.Rule]:
    return [r for r in stack.rules if any(t.bus_arn for t in r.targets)]


def test_the_shipped_template_lists_its_transforms_language_extensions_first(shipped):
    assert tpl.transforms(shipped) == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    assert shipped["Parameters"]["AllowedAccounts"]["Type"] == "CommaDelimitedList"


def test_no_allowed_account_no_forwarding_rule_role_or_bus_policy(shipped):
    for region in (SEOUL, OSAKA):
        s = tpl.stack(shipped, region, ACCOUNT, params())
        assert forwarding(s) == [] and s.bus_policies == []
        assert not [r for r in s.rules if r.logical_id.startswith("ForwardTo")]
        assert s.functions["RequesterFunction"].environment["TAGPEER_ALLOWED_ACCOUNTS"] == ""
        roles = tpl.iam(shipped, region, ACCOUNT, params())
        assert not [r for r in roles.roles.values() if r.present and r.logical_id.startswith("ForwardRole")]
        assert not roles.roles["ReaderRole"].present
        assert tpl.resources(shipped, region, ACCOUNT, params(), "AWS::Events::EventBusPolicy") == {}


def test_one_allowed_account_one_forwarding_rule_role_and_bus_policy(shipped):
    for region in (SEOUL, OSAKA):
        s = tpl.stack(shipped, region, ACCOUNT, params(AllowedAccounts=OTHER))
        (rule,) = forwarding(s)
        assert rule.logical_id == f"ForwardTo{OTHER}" and rule.account == ACCOUNT
        (target,) = rule.targets
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/tagpeer-ForwardRole{OTHER}"
        assert (target.id, target.bus_arn, target.role_arn) == (
            f"account-{OTHER}", f"arn:aws:events:{region}:{OTHER}:event-bus/default", role_arn)
        link_events = ["Peering Requested", "Peering Accepted", "Link Removed", "Routes Removed"]
        assert rule.pattern == {
            "source": ["tagpeer"], "account": [ACCOUNT],
            "$or": [{"detail-type": link_events, "detail": {"requester": {"account": [OTHER], "region": [region]}}},
                    {"detail-type": link_events, "detail": {"accepter": {"account": [OTHER], "region": [region]}}},
                    {"detail-type": ["Consent Changed"], "detail": {"accounts": [OTHER]}}]}
        patterns.validate(rule.pattern)
        # The role it sends with: trusted by EventBridge for this account, PutEvents on that bus alone.
        roles = tpl.iam(shipped, region, ACCOUNT, params(AllowedAccounts=OTHER))
        (role,) = [r for r in roles.roles.values() if r.present and r.logical_id.startswith("ForwardRole")]
        assert (role.logical_id, role.arn) == (f"ForwardRole{OTHER}", role_arn)
        assert role.trust["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
        assert role.trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        (doc,) = [d for _, d in role.policies]
        assert doc["Statement"] == [{"Effect": "Allow", "Action": "events:PutEvents",
                                     "Resource": f"arn:aws:events:{region}:{OTHER}:event-bus/default"}]
        # This region's bus takes tagpeer's events from that account.
        (policy,) = s.bus_policies
        assert policy.logical_id == f"EventsFrom{OTHER}" and policy.statement_id == f"tagpeer-from-{OTHER}"
        assert policy.statement == {
            "Sid": f"tagpeer-from-{OTHER}", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
            "Action": "events:PutEvents", "Resource": f"arn:aws:events:{region}:{ACCOUNT}:event-bus/default",
            "Condition": {"StringEquals": {"events:source": "tagpeer"}}}
        assert list(tpl.resources(shipped, region, ACCOUNT, params(AllowedAccounts=OTHER),
                                  "AWS::Events::EventBusPolicy")) == [f"EventsFrom{OTHER}"]
        # The list parameter everywhere else: the functions' variable, the reader role's principals.
        assert s.functions["RouterFunction"].environment["TAGPEER_ALLOWED_ACCOUNTS"] == OTHER
        reader = roles.roles["ReaderRole"]
        assert reader.present and reader.trust["Statement"][0]["Principal"] == {"AWS": [OTHER]}


def test_two_allowed_accounts_one_of_each_per_account(shipped):
    s = tpl.stack(shipped, SEOUL, ACCOUNT, params(AllowedAccounts=f"{OTHER},{THIRD}"))
    assert sorted(r.logical_id for r in forwarding(s)) == [f"ForwardTo{OTHER}", f"ForwardTo{THIRD}"]
    assert sorted(p.logical_id for p in s.bus_policies) == [f"EventsFrom{OTHER}", f"EventsFrom{THIRD}"]
    assert s.functions["AccepterFunction"].environment["TAGPEER_ALLOWED_ACCOUNTS"] == f"{OTHER},{THIRD}"
