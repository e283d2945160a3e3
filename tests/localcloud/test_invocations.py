"""Whose call is whose: the invocation `GET /_local/calls` records on each call, and the calls each
delivery in `GET /_local/events` lists, when invocations of one function overlap.

Seoul's requester is the fake function here (testing.py's fake_bootstrap), with two processes
(ReservedConcurrentExecutions 2), and the only function; the tests invoke it as EventBridge does
(cloud.invoke).
"""

from __future__ import annotations

import tempfile
import threading

import pytest

from localcloud.testing import ACCOUNT, FAKE_FUNCTION, OSAKA, SEOUL, TESTER, ec2, local, one_fake_function

FUNCTION = FAKE_FUNCTION


@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory):
    c = one_fake_function(tmp_path_factory.mktemp("bin"), concurrency=2)
    yield c
    c.stop()


@pytest.fixture
def cloud(fake_cloud):
    fake_cloud.reset()
    return fake_cloud


def test_overlapping_invocations_of_a_function_each_get_their_own_calls(cloud):
    key = cloud.functions[(SEOUL, FUNCTION)].env["AWS_ACCESS_KEY_ID"]
    reader = f"arn:aws:iam::{ACCOUNT}:role/tagpeer-reader-{OSAKA}"
    # The calls each invocation makes: b's second through the reader role (sts:AssumeRole first).
    plan = {"a": [[SEOUL, "DescribeVpcs"], [SEOUL, "DescribeRouteTables"]],
            "b": [[OSAKA, "DescribeVpcPeeringConnections"], [OSAKA, "DescribeRouteTables", reader]]}
    with tempfile.TemporaryDirectory(prefix="lambda-journal-") as jdir:
        # Each makes its calls, then waits for the other to have made its own (two starts): each is in
        # flight while the other calls, on a process of its own.
        threads = [threading.Thread(target=cloud.invoke, daemon=True,
                                    args=(SEOUL, FUNCTION, {"tag": tag, "calls": calls, "journal": jdir,
                                                            "waits": [[2, 10]]}, "test"))
                   for tag, calls in plan.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "an invocation never returned"
    _, deliveries = local("/_local/events", cloud=cloud)
    _, calls = local("/_local/calls", cloud=cloud)
    by_tag = {e["event"]["tag"]: e for e in deliveries}
    assert sorted(by_tag) == ["a", "b"] and all(e["outcome"] == "ok" for e in deliveries), deliveries
    assert [e["response"]["seen"] for e in by_tag.values()] == [[2], [2]], "they ran at once"
    assert by_tag["a"]["response"]["pid"] != by_tag["b"]["response"]["pid"]
    assert by_tag["a"]["invocation"] != by_tag["b"]["invocation"]
    assert all(x["status"] == 200 for x in calls), calls
    # Recorded under the function's key, as before; the reader role's call under its temporary key.
    expected = {"a": [("DescribeVpcs", SEOUL, key), ("DescribeRouteTables", SEOUL, key)],
                "b": [("DescribeVpcPeeringConnections", OSAKA, key), ("AssumeRole", OSAKA, key),
                      ("DescribeRouteTables", OSAKA, "the reader's")]}
    for tag, e in by_tag.items():
        mine = [x for x in calls if x["invocation"] == e["invocation"]]
        assert [(x["action"], x["region"], key if x["caller"] == key else "the reader's") for x in mine] == \
            expected[tag], (tag, calls)
        assert e["calls"] == [x["seq"] for x in mine], (tag, e["calls"], calls)
    assert len(calls) == 5, "and no other call"


def test_a_call_no_function_invocation_made_has_none(cloud):
    key = cloud.functions[(SEOUL, FUNCTION)].env["AWS_ACCESS_KEY_ID"]
    ec2(SEOUL, cloud=cloud).describe_vpcs()  # a person's key
    ec2(SEOUL, key, cloud=cloud).describe_vpcs()  # the function's own key, but no process of it
    _, calls = local("/_local/calls", cloud=cloud)
    assert [(x["caller"], x["invocation"]) for x in calls] == [(TESTER, None), (key, None)], calls
