"""Tests for patterns.py (EventBridge event-pattern matching).

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_patterns.py` (`make test` runs them all).
"""

from __future__ import annotations

import copy

from localcloud.patterns import PatternError, matches, validate


def raises_pattern_error(pattern) -> bool:
    try:
        validate(pattern)
    except PatternError:
        pass
    else:
        return False
    try:
        matches(pattern, {"a": 1})
    except PatternError:
        return True
    return False


# ------------------------------------------------------------ real events

TAG_CHANGE = {
    "version": "0",
    "id": "bddcf1d6-0251-35a1-aab0-adc1fb47c11c",
    "detail-type": "Tag Change on Resource",
    "source": "aws.tag",
    "account": "123456789012",
    "time": "2026-11-27T07:00:00Z",
    "region": "ap-northeast-2",
    "resources": ["arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0a1b2c3d4e5f60718"],
    "detail": {
        "changed-tag-keys": ["Name", "tagpeer:peers"],
        "service": "ec2",
        "resource-type": "vpc",
        "version": 2,
        "tags": {"Name": "seoul", "tagpeer:peers": "ap-northeast-3/vpc-0f1e2d3c4b5a69788"},
    },
}

PEERING_REQUESTED = {
    "version": "0",
    "id": "3e5c1c8f-2f0a-4a57-9a0e-6f7b2c1d9e10",
    "detail-type": "Peering Requested",
    "source": "tagpeer",
    "account": "123456789012",
    "time": "2026-11-27T07:00:02Z",
    "region": "ap-northeast-2",
    "resources": [
        "arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0a1b2c3d4e5f60718",
        "arn:aws:ec2:ap-northeast-3:123456789012:vpc/vpc-0f1e2d3c4b5a69788",
    ],
    "detail": {
        "peering-connection-id": "pcx-0123456789abcdef0",
        "requester": {"account": "123456789012", "region": "ap-northeast-2", "vpc-id": "vpc-0a1b2c3d4e5f60718"},
        "accepter": {"account": "123456789012", "region": "ap-northeast-3", "vpc-id": "vpc-0f1e2d3c4b5a69788"},
    },
}

CLOUDTRAIL_ACCEPT = {
    "version": "0",
    "id": "6f8e1c2a-1111-2222-3333-444455556666",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2026-11-27T07:00:05Z",
    "region": "ap-northeast-3",
    "resources": [],
    "detail": {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "accountId": "123456789012"},
        "eventTime": "2026-11-27T07:00:05Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "AcceptVpcPeeringConnection",
        "awsRegion": "ap-northeast-3",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-sdk-rust",
        "requestParameters": {"vpcPeeringConnectionId": "pcx-0123456789abcdef0"},
        "responseElements": None,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "readOnly": False,
    },
}


def with_detail(event: dict, **changes) -> dict:
    e = copy.deepcopy(event)
    e["detail"].update({k.replace("_", "-"): v for k, v in changes.items()})
    return e


# ------------------------------------------------------------ project patterns

TAG_RULE = {
    "source": ["aws.tag"],
    "detail-type": ["Tag Change on Resource"],
    "detail": {"service": ["ec2"], "resource-type": ["vpc"], "changed-tag-keys": [{"prefix": "tagpeer:"}]},
}


def test_project_tag_change_rule():
    assert matches(TAG_RULE, TAG_CHANGE)
    assert not matches(TAG_RULE, with_detail(TAG_CHANGE, changed_tag_keys=["tagpeer-status"]))
    assert not matches(TAG_RULE, with_detail(TAG_CHANGE, changed_tag_keys=["Name"]))
    assert not matches(TAG_RULE, with_detail(TAG_CHANGE, changed_tag_keys=[]))
    assert not matches(TAG_RULE, with_detail(TAG_CHANGE, resource_type="instance"))
    assert not matches(TAG_RULE, {**TAG_CHANGE, "source": "tagpeer"})


def test_project_peering_requested_rule():
    rule = {"source": ["tagpeer"], "detail-type": ["Peering Requested"], "detail": {"accepter": {"region": ["ap-northeast-3"]}}}
    assert matches(rule, PEERING_REQUESTED)
    other = copy.deepcopy(PEERING_REQUESTED)
    other["detail"]["accepter"]["region"] = "ap-northeast-2"
    assert not matches(rule, other)
    assert not matches(rule, {**PEERING_REQUESTED, "detail-type": "Peering Accepted"})
    no_accepter = copy.deepcopy(PEERING_REQUESTED)
    del no_accepter["detail"]["accepter"]
    assert not matches(rule, no_accepter)


def test_project_cloudtrail_rule():
    rule = {
        "source": ["aws.ec2"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": ["AcceptVpcPeeringConnection", "DeleteVpcPeeringConnection"]},
    }
    assert matches(rule, CLOUDTRAIL_ACCEPT)
    assert matches(rule, with_detail(CLOUDTRAIL_ACCEPT, eventName="DeleteVpcPeeringConnection"))
    assert not matches(rule, with_detail(CLOUDTRAIL_ACCEPT, eventName="CreateVpcPeeringConnection"))
    assert not matches(rule, with_detail(CLOUDTRAIL_ACCEPT, eventSource="s3.amazonaws.com"))


def test_project_forward_rule_anything_but_region():
    rule = {"source": ["tagpeer"], "region": [{"anything-but": "ap-northeast-3"}]}
    assert matches(rule, PEERING_REQUESTED)  # region ap-northeast-2
    assert not matches(rule, {**PEERING_REQUESTED, "region": "ap-northeast-3"})
    missing = dict(PEERING_REQUESTED)
    del missing["region"]
    assert not matches(rule, missing)  # anything-but needs the field


def test_project_or_rule_from_template():
    rule = {
        "source": ["tagpeer"],
        "region": ["ap-northeast-2"],
        "$or": [
            {"detail": {"requester": {"region": ["ap-northeast-3"]}}},
            {"detail": {"accepter": {"region": ["ap-northeast-3"]}}},
        ],
    }
    assert matches(rule, PEERING_REQUESTED)  # accepter is ap-northeast-3
    e = copy.deepcopy(PEERING_REQUESTED)
    e["detail"]["accepter"]["region"] = "ap-northeast-1"
    assert not matches(rule, e)
    e["detail"]["requester"]["region"] = "ap-northeast-3"
    assert matches(rule, e)


# ------------------------------------------------------------ structure

def test_and_of_keys():
    p = {"source": ["a"], "detail-type": ["b"]}
    assert matches(p, {"source": "a", "detail-type": "b", "other": 1})
    assert not matches(p, {"source": "a", "detail-type": "c"})


def test_or_within_list():
    assert matches({"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.fargate"})
    assert not matches({"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.s3"})


def test_nesting():
    p = {"detail": {"trigger": {"risk": [8]}}}
    assert matches(p, {"detail": {"trigger": {"risk": 8}}})
    assert not matches(p, {"detail": {"trigger": {"risk": 9}}})
    assert not matches(p, {"detail": {"trigger": 8}})  # not an object
    assert not matches(p, {"detail": "x"})


def test_missing_field():
    assert not matches({"source": ["a"]}, {})
    assert not matches({"detail": {"state": ["on"]}}, {"detail": {}})
    assert not matches({"detail": {"state": ["on"]}}, {})
    assert not matches({"a": [{"prefix": ""}]}, {})
    assert not matches({"a": [{"numeric": [">", 0]}]}, {})


def test_leaf_pattern_does_not_match_object_value():
    assert not matches({"detail": ["x"]}, {"detail": {"a": "x"}})


def test_event_array_intersection():
    p = {"resources": ["arn:1", "arn:9"]}
    assert matches(p, {"resources": ["arn:0", "arn:1"]})
    assert not matches(p, {"resources": ["arn:0", "arn:2"]})
    assert not matches(p, {"resources": []})
    assert matches({"a": [3]}, {"a": [[1, 2], [3]]})  # nested arrays are flattened


def test_array_of_objects():
    e = {"employees": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}, {"first": "Peter", "last": "Jones"}]}
    assert matches({"employees": {"first": ["Anna"]}}, e)
    assert matches({"employees": {"first": ["Anna"], "last": ["Smith"]}}, e)
    # fields from different array elements never combine
    assert not matches({"employees": {"first": ["Anna"], "last": ["Jones"]}}, e)


def test_or_top_level_and_nested():
    p = {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}
    assert matches(p, {"source": "aws.cloudwatch", "namespace": "AWS/EC2"})
    assert matches(p, {"source": "aws.cloudwatch", "metricName": "CPUUtilization"})
    assert not matches(p, {"source": "aws.cloudwatch", "namespace": "AWS/S3"})
    assert not matches(p, {"source": "aws.s3", "namespace": "AWS/EC2"})
    nested = {"detail": {"$or": [{"c": [{"numeric": [">", 5]}]}, {"d": ["x"]}], "e": ["y"]}}
    assert matches(nested, {"detail": {"c": 6, "e": "y"}})
    assert matches(nested, {"detail": {"d": "x", "e": "y"}})
    assert not matches(nested, {"detail": {"c": 5, "d": "z", "e": "y"}})
    assert not matches(nested, {"detail": {"c": 6, "e": "n"}})


def test_top_level_or_whose_branches_are_nested_objects():
    # tagpeer's rules: each branch descends into `detail` on its own, with anything-but inside.
    p = {"source": ["tagpeer"], "$or": [
        {"detail": {"requester": {"account": ["1"], "region": ["r"]}, "side": {"region": [{"anything-but": "r"}]}}},
        {"detail": {"accepter": {"account": ["1"], "region": ["r"]}, "side": {"account": [{"anything-but": "1"}]}}},
    ]}
    side = {"account": "1", "region": "r"}
    assert matches(p, {"source": "tagpeer", "detail": {"requester": side, "side": {"account": "1", "region": "s"}}})
    assert matches(p, {"source": "tagpeer", "detail": {"accepter": side, "side": {"account": "2", "region": "r"}}})
    assert not matches(p, {"source": "tagpeer", "detail": {"requester": side, "side": side}})
    assert not matches(p, {"source": "tagpeer", "detail": {"accepter": side, "side": {"account": "1", "region": "s"}}})
    assert not matches(p, {"source": "tagpeer", "detail": {"requester": {"account": "2", "region": "r"},
                                                           "side": {"region": "s"}}})
    assert not matches(p, {"source": "tagpeer", "detail": {"requester": side}}), "anything-but needs the field"
    assert not matches(p, {"source": "other", "detail": {"requester": side, "side": {"region": "s"}}})


def test_or_with_and_and_nested_or():
    p = {"$or": [{"a": ["1"]}, {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}]}
    assert matches(p, {"a": "1"})
    assert matches(p, {"b": "2", "d": "4"})
    assert not matches(p, {"b": "2"})
    assert not matches(p, {"c": "3", "d": "4"})


# ------------------------------------------------------------ exact values

def test_exact_strings_are_case_sensitive():
    assert matches({"a": ["On"]}, {"a": "On"})
    assert not matches({"a": ["On"]}, {"a": "on"})
    assert not matches({"a": ["5"]}, {"a": 5})


def test_exact_numbers_compare_numerically():
    assert matches({"a": [5]}, {"a": 5.0})
    assert matches({"a": [300]}, {"a": 3.0e2})
    assert matches({"a": [0.5]}, {"a": 0.5})
    assert not matches({"a": [5]}, {"a": 6})
    assert not matches({"a": [5]}, {"a": "5"})
    assert not matches({"a": [1]}, {"a": True})


def test_booleans():
    assert matches({"a": [True]}, {"a": True})
    assert not matches({"a": [True]}, {"a": False})
    assert not matches({"a": [True]}, {"a": 1})
    assert not matches({"a": [False]}, {"a": 0})
    assert not matches({"a": [True]}, {"a": "true"})


def test_null_and_empty_string():
    event = {"detail": {"eventVersion": "", "responseElements": None}}
    assert matches({"detail": {"responseElements": [None]}}, event)
    assert matches({"detail": {"eventVersion": [""]}}, event)
    assert not matches({"detail": {"responseElements": [""]}}, event)
    assert not matches({"detail": {"eventVersion": [None]}}, event)
    assert not matches({"detail": {"missing": [None]}}, event)  # absent is not null
    assert matches({"detail": {"responseElements": [None]}}, CLOUDTRAIL_ACCEPT)


# ------------------------------------------------------------ prefix / suffix

def test_prefix():
    p = {"time": [{"prefix": "2017-10-02"}]}
    assert matches(p, {"time": "2017-10-02T18:43:48Z"})
    assert not matches(p, {"time": "2017-10-03T18:43:48Z"})
    assert not matches(p, {"time": "2017-10-0"})
    assert not matches({"a": [{"prefix": "1"}]}, {"a": 12})  # strings only
    assert not matches({"a": [{"prefix": "eventb"}]}, {"a": "EventBridge"})


def test_prefix_ignore_case():
    p = {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}
    for s in ("EventBridge", "EVENTBRIDGE", "eventb"):
        assert matches(p, {"detail": {"service": s}})
    assert not matches(p, {"detail": {"service": "Event"}})
    assert not matches(p, {"detail": {"service": 7}})


def test_suffix():
    p = {"FileName": [{"suffix": ".png"}]}
    assert matches(p, {"FileName": "image.png"})
    assert not matches(p, {"FileName": "image.PNG"})
    assert not matches(p, {"FileName": "image.png.txt"})
    assert not matches({"a": [{"suffix": "5"}]}, {"a": 5})


def test_suffix_ignore_case():
    p = {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}
    assert matches(p, {"FileName": "image.PNG"})
    assert matches(p, {"FileName": "image.png"})
    assert not matches(p, {"FileName": "image.jpg"})


# ------------------------------------------------------------ equals-ignore-case / wildcard

def test_equals_ignore_case():
    p = {"name": [{"equals-ignore-case": "alice"}]}
    assert matches(p, {"name": "Alice"})
    assert matches(p, {"name": "ALICE"})
    assert not matches(p, {"name": "Alicia"})
    assert not matches(p, {"name": None})


def test_wildcard():
    p = {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}
    assert matches(p, {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"})
    assert not matches(p, {"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/default"})
    assert matches({"a": [{"wildcard": "*"}]}, {"a": ""})
    assert matches({"a": [{"wildcard": "a*c"}]}, {"a": "ac"})
    assert matches({"a": [{"wildcard": "a*c"}]}, {"a": "a\nb\nc"})
    assert not matches({"a": [{"wildcard": "a*c"}]}, {"a": "acd"})
    assert not matches({"a": [{"wildcard": "a.c"}]}, {"a": "abc"})  # '.' is literal
    assert not matches({"a": [{"wildcard": "*"}]}, {"a": 1})  # strings only


def test_wildcard_escapes():
    star = {"a": [{"wildcard": "a\\*b"}]}  # the JSON text "a\\*b"
    assert matches(star, {"a": "a*b"})
    assert not matches(star, {"a": "axb"})
    backslash = {"a": [{"wildcard": "a\\\\*"}]}  # literal backslash, then any run
    assert matches(backslash, {"a": "a\\anything"})
    assert not matches(backslash, {"a": "a-anything"})


# ------------------------------------------------------------ anything-but

def test_anything_but_string_and_number():
    assert matches({"state": [{"anything-but": "initializing"}]}, {"state": "running"})
    assert not matches({"state": [{"anything-but": "initializing"}]}, {"state": "initializing"})
    assert matches({"x": [{"anything-but": 123}]}, {"x": 124})
    assert not matches({"x": [{"anything-but": 123}]}, {"x": 123.0})
    assert matches({"state": [{"anything-but": "x"}]}, {"state": None})  # null is not "x"


def test_anything_but_lists():
    p = {"state": [{"anything-but": ["stopped", "overloaded"]}]}
    assert matches(p, {"state": "running"})
    assert not matches(p, {"state": "stopped"})
    assert not matches(p, {"state": "overloaded"})
    n = {"x": [{"anything-but": [100, 200, 300]}]}
    assert matches(n, {"x": 150})
    assert not matches(n, {"x": 200})


def test_anything_but_needs_the_field():
    assert not matches({"state": [{"anything-but": "x"}]}, {})
    assert not matches({"detail": {"state": [{"anything-but": "x"}]}}, {"detail": {}})
    assert not matches({"state": [{"anything-but": "x"}]}, {"state": []})


def test_anything_but_on_arrays_matches_if_any_element_is_not_excluded():
    p = {"interests": [{"anything-but": ["rugby", "tennis"]}]}
    assert matches(p, {"interests": ["rugby", "baseball"]})
    assert not matches(p, {"interests": ["rugby", "tennis"]})
    assert not matches(p, {"interests": ["rugby"]})


def test_anything_but_prefix_and_suffix():
    p = {"source": [{"anything-but": {"prefix": "aws."}}]}
    assert matches(p, {"source": "tagpeer"})
    assert not matches(p, {"source": "aws.ec2"})
    s = {"FileName": [{"anything-but": {"suffix": ".png"}}]}
    assert matches(s, {"FileName": "a.jpg"})
    assert not matches(s, {"FileName": "a.png"})
    assert not matches({"r": [{"anything-but": {"prefix": ["us-", "eu-"]}}]}, {"r": "eu-west-1"})
    assert matches({"r": [{"anything-but": {"prefix": ["us-", "eu-"]}}]}, {"r": "ap-northeast-3"})


def test_anything_but_ignore_case_and_wildcard():
    p = {"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}
    assert not matches(p, {"state": "INITIALIZING"})
    assert matches(p, {"state": "running"})
    lst = {"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}
    assert not matches(lst, {"state": "Stopped"})
    w = {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}
    assert not matches(w, {"FilePath": "/usr/lib/tool"})
    assert matches(w, {"FilePath": "/usr/bin/tool"})
    wl = {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}
    assert not matches(wl, {"FilePath": "/usr/bin/tool"})
    assert matches(wl, {"FilePath": "/etc/tool"})


# ------------------------------------------------------------ numeric

def test_numeric_ranges():
    p = {"detail": {"c": [{"numeric": [">", 0, "<=", 5]}], "d": [{"numeric": ["<", 10]}], "x": [{"numeric": ["=", 3.018e2]}]}}
    assert matches(p, {"detail": {"c": 5, "d": 9.99, "x": 301.8}})
    assert not matches(p, {"detail": {"c": 0, "d": 9, "x": 301.8}})
    assert not matches(p, {"detail": {"c": 5.5, "d": 9, "x": 301.8}})
    assert not matches(p, {"detail": {"c": 1, "d": 10, "x": 301.8}})
    assert not matches(p, {"detail": {"c": 1, "d": 1, "x": 301}})
    assert matches({"a": [{"numeric": [">=", 1, "<", 2]}]}, {"a": 1})
    assert not matches({"a": [{"numeric": [">=", 1, "<", 2]}]}, {"a": 2})
    assert matches({"a": [{"numeric": ["=", 3]}]}, {"a": 3.0})


def test_numeric_matches_only_numbers():
    p = {"a": [{"numeric": [">", 0]}]}
    assert not matches(p, {"a": "5"})
    assert not matches(p, {"a": True})
    assert not matches(p, {"a": None})
    assert matches(p, {"a": [-1, 2]})  # any array element
    assert not matches(p, {"a": [-1, -2]})


# ------------------------------------------------------------ exists

def test_exists_true():
    p = {"detail": {"c": [{"exists": True}]}}
    assert matches(p, {"detail": {"c": 0}})
    assert matches(p, {"detail": {"c": None}})
    assert matches(p, {"detail": {"c": ["x"]}})
    assert not matches(p, {"detail": {}})
    assert not matches(p, {})
    assert not matches(p, {"detail": {"c": {"c1": 100}}})  # not a leaf
    assert not matches(p, {"detail": {"c": []}})


def test_exists_false():
    p = {"detail": {"c": [{"exists": False}]}}
    assert matches(p, {"detail": {"state": "running"}})
    assert matches(p, {"detail": {"c": {"c1": 100}}})  # AWS: "c-count is not a leaf node"
    assert matches(p, {})  # no detail at all: still absent
    assert not matches(p, {"detail": {"c": 5}})
    assert not matches(p, {"detail": {"c": None}})


def test_exists_alongside_other_alternatives():
    p = {"a": [{"exists": False}, "x"]}
    assert matches(p, {})
    assert matches(p, {"a": "x"})
    assert not matches(p, {"a": "y"})


# ------------------------------------------------------------ cidr

def test_cidr_ipv4():
    p = {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}
    assert matches(p, {"detail": {"sourceIPAddress": "10.0.0.255"}})
    assert not matches(p, {"detail": {"sourceIPAddress": "10.0.1.0"}})
    assert not matches(p, {"detail": {"sourceIPAddress": "not-an-ip"}})
    assert not matches(p, {"detail": {"sourceIPAddress": "2001:db8::1"}})
    assert matches({"detail": {"sourceIPAddress": [{"cidr": "203.0.113.0/24"}]}}, CLOUDTRAIL_ACCEPT)


def test_cidr_ipv6():
    p = {"ip": [{"cidr": "2001:db8::/32"}]}
    assert matches(p, {"ip": "2001:db8:1::5"})
    assert not matches(p, {"ip": "2001:db9::5"})
    assert not matches(p, {"ip": "10.0.0.1"})
    assert not matches(p, {"ip": 1})


# ------------------------------------------------------------ malformed patterns

def test_malformed_patterns_raise():
    bad = [
        [],
        "source",
        None,
        {},
        {"source": "aws.ec2"},
        {"source": 5},
        {"source": []},
        {"detail": {}},
        {"source": [["nested"]]},
        {"a": [{"regex": "x"}]},
        {"a": [{"prefix": "x", "suffix": "y"}]},
        {"a": [{}]},
        {"a": [{"prefix": 5}]},
        {"a": [{"prefix": {"ignore-case": "x"}}]},
        {"a": [{"suffix": None}]},
        {"a": [{"equals-ignore-case": 1}]},
        {"a": [{"wildcard": "a**b"}]},
        {"a": [{"wildcard": "a\\b"}]},
        {"a": [{"anything-but": []}]},
        {"a": [{"anything-but": ["x", 1]}]},
        {"a": [{"anything-but": True}]},
        {"a": [{"anything-but": None}]},
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        {"a": [{"anything-but": {"prefix": 1}}]},
        {"a": [{"numeric": [">", "5"]}]},
        {"a": [{"numeric": ["!=", 5]}]},
        {"a": [{"numeric": [">"]}]},
        {"a": [{"numeric": ["<", 10, ">", 0]}]},
        {"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]},
        {"a": [{"numeric": 5}]},
        {"a": [{"exists": "yes"}]},
        {"a": [{"cidr": "10.0.0.0/33"}]},
        {"a": [{"cidr": 10}]},
        {"$or": {"a": ["x"]}},
        {"$or": [{"a": ["x"]}]},
        {"$or": [{"a": ["x"]}, "b"]},
        {"$or": [{"a": ["x"]}, {}]},
        {"$or": [{"a": ["x"]}, {"prefix": ["y"]}]},
    ]
    for pattern in bad:
        assert raises_pattern_error(pattern), pattern


def test_error_messages_say_where():
    try:
        validate({"detail": {"state": [{"regex": "x"}]}})
    except PatternError as e:
        assert "detail.state[0]" in str(e) and "regex" in str(e), str(e)
    else:
        raise AssertionError("no PatternError")
    assert issubclass(PatternError, ValueError)


def test_valid_patterns_pass_validate():
    for pattern in (
        TAG_RULE,
        {"a": ["x", 1, 2.5, True, False, None, ""]},
        {"a": [{"anything-but": {"suffix": [".a", ".b"]}}]},
        {"a": [{"numeric": [">=", -1e9, "<=", 1e9]}]},
        {"a": [{"cidr": "10.0.0.1/24"}]},
        {"$or": [{"a": ["x"]}, {"b": {"c": [{"exists": True}]}}]},
    ):
        validate(pattern)
