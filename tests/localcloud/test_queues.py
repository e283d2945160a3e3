"""Tests for the queues between the rules and the requester, accepter and router (the template's
"queues") and for queues.py, which runs them in the local cloud: EventBridge sends to a queue only
from the rules its policy names; Lambda's poller gathers a batch for the mapping's window (or until
its batch size), invokes the function once with Lambda's SQS event, at most MaximumConcurrency
batches at once; a failed batch comes back whole, each receive counted, and after maxReceiveCount
its messages go to the dead-letter queue; settle waits for it all; the event faults apply.

The first tests read the template alone; the rest run a cloud whose one function is Seoul's
requester, the fake one (testing.py's `one_fake_function` with `queue_rules`): Seoul's rules that
send to the requester's queue stay, and the tests put events on Seoul's bus that those rules take
("Link Wanted", "Sweep Requested"), their instructions to the fake function in `detail`.

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_queues.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from localcloud import cloud as lc
from localcloud import iam
from localcloud import queues as qs
from localcloud import template as tpl
from localcloud.testing import (ACCOUNT, FAKE_FUNCTION, FAKE_MAPPING, FAKE_QUEUE, OSAKA, OTHER, REPO, SEOUL,
                                TEMPLATE, client, local, one_fake_function)

PARAMS = {"Regions": f"{SEOUL},{OSAKA}"}
QUEUES = {"RequesterQueue": "RequesterFunction", "AccepterQueue": "AccepterFunction", "RouterQueue": "RouterFunction"}
DLQ = "FailedEvents"
WINDOW_S = 1.0  # the template's MaximumBatchingWindowInSeconds


def rule_arn(rule: tpl.Rule, region: str = SEOUL, account: str = ACCOUNT) -> str:
    return f"arn:aws:events:{region}:{account}:rule/{rule.name}"


# ------------------------------------------------------------------ the template alone

@pytest.fixture(scope="module")
def template():
    return tpl.load(str(TEMPLATE))


def test_the_requester_accepter_and_router_each_read_a_queue_in_batches(template):
    for region in (SEOUL, OSAKA):
        stack = tpl.stack(template, region, ACCOUNT, PARAMS)
        assert set(stack.queues) == {*QUEUES, DLQ}
        for logical_id, q in stack.queues.items():
            assert (q.name, q.arn) == (f"tagpeer-{logical_id}", f"arn:aws:sqs:{region}:{ACCOUNT}:tagpeer-{logical_id}")
            assert q.url == f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/tagpeer-{logical_id}"
        for logical_id in QUEUES:
            q = stack.queues[logical_id]
            # Six times the functions' 60 s; a first try and two retries, then the dead-letter queue.
            assert (q.visibility_timeout, q.dead_letter, q.max_receive_count) == (360, DLQ, 3), q
        dlq = stack.queues[DLQ]
        assert (dlq.dead_letter, dlq.retention) == (None, 1209600), dlq
        assert {m.queue: m.function for m in stack.mappings} == QUEUES
        for m in stack.mappings:
            assert (m.batch_size, m.window_s, m.max_concurrency, m.enabled) == (1000, 1.0, 2, True), m
            assert m.logical_id == f"{m.queue}Mapping"


def test_only_the_schedule_and_the_provisioner_invoke_their_functions_directly(template):
    for region, sweeps in ((SEOUL, True), (OSAKA, False)):
        stack = tpl.stack(template, region, ACCOUNT, dict(PARAMS, AllowedAccounts=OTHER))
        direct = sorted((r.logical_id, t.function) for r in stack.rules for t in r.targets if t.function)
        assert direct == [("NetworkRequestedRule", "ProvisionerFunction")] + \
            ([("SweepSchedule", "RouterFunction")] if sweeps else []), direct
        queued = {r.logical_id: t.queue for r in stack.rules for t in r.targets if t.queue}
        assert set(queued.values()) == set(QUEUES), queued
        assert all(len(r.targets) == 1 for r in stack.rules), "one target a rule"
        # The rules that forward to another account's bus are left as they were.
        assert [(r.logical_id, [t.bus_arn for t in r.targets]) for r in stack.rules if r.targets[0].bus_arn] == \
            [(f"ForwardTo{OTHER}", [f"arn:aws:events:{region}:{OTHER}:event-bus/default"])]
        # A queue target needs the queue's policy, not a Lambda permission.
        permissions = tpl.resources(template, region, ACCOUNT, PARAMS, "AWS::Lambda::Permission")
        assert {k: v["FunctionName"] for k, v in permissions.items()} == {
            "NetworkRequestedProvisionerPermission": "tagpeer-ProvisionerFunction",
            **({"SweepRouterPermission": "tagpeer-RouterFunction"} if sweeps else {})}, permissions


def test_each_queue_takes_messages_from_exactly_the_rules_that_target_it(template):
    cloud_iam = iam.Iam(template, PARAMS, [SEOUL, OSAKA], iam.Lookup())
    for region in (SEOUL, OSAKA):
        stack = tpl.stack(template, region, ACCOUNT, PARAMS)
        for logical_id in QUEUES:
            q = stack.queues[logical_id]
            targeting = {rule_arn(r, region) for r in stack.rules if any(t.queue == logical_id for t in r.targets)}
            assert targeting, logical_id
            (statement,) = stack.queue_statements(logical_id)
            assert (statement["Effect"], statement["Principal"], statement["Action"], statement["Resource"]) == \
                ("Allow", {"Service": "events.amazonaws.com"}, "sqs:SendMessage", q.arn)
            assert set(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == targeting
            for rule in stack.rules:
                arn = rule_arn(rule, region)
                refusal = cloud_iam.send_message_refusal(q.arn, [statement], arn, ACCOUNT)
                assert (refusal is None) == (arn in targeting), (logical_id, rule.logical_id, refusal)
            # The same rule's name in another account or region is another rule.
            some = sorted(targeting)[0]
            for other in (some.replace(ACCOUNT, OTHER), some.replace(region, OSAKA if region == SEOUL else SEOUL)):
                assert "lets EventBridge" in cloud_iam.send_message_refusal(q.arn, [statement], other, ACCOUNT)
        assert stack.queue_statements(DLQ) == [], "no one sends to the dead-letter queue but SQS"


def test_batching_window_shortens_every_mappings_window_and_lengthens_none():
    args = ["--port", "0", "--no-functions"]
    windows = lambda c: {m.window_s for stack in c.stacks.values() for m in stack.mappings}  # noqa: E731
    assert windows(lc.cloud_from_args(lc.parse_args(args))) == {WINDOW_S}, "the template's, by default"
    assert windows(lc.cloud_from_args(lc.parse_args(args + ["--batching-window", "0.25"]))) == {0.25}
    assert windows(lc.cloud_from_args(lc.parse_args(args + ["--batching-window", "5"]))) == {WINDOW_S}


def test_a_queue_is_read_as_cloudformation_makes_it():
    text = """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: fn}}
    Properties: {}
  Dead:
    Type: AWS::SQS::Queue
    Properties: {QueueName: my-dead}
  Q:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: '{"deadLetterTargetArn": "arn:aws:sqs:ap-northeast-2:123456789012:my-dead", "maxReceiveCount": 5}'
  QPolicy:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Queues: [!Ref Q]
      PolicyDocument: {Statement: {Effect: Allow, Principal: "*", Action: "sqs:*", Resource: !GetAtt Q.Arn}}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Q.Arn, FunctionName: !GetAtt Fn.Arn}
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [x]}
      Targets:
        - {Id: q, Arn: !GetAtt Q.Arn}
        - {Id: name, Arn: !Sub "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:${Dead.QueueName}"}
Outputs:
  Url: {Value: !GetAtt Q.QueueUrl}
  Name: {Value: !GetAtt Dead.QueueName}
"""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.yaml"
        path.write_text(text)
        t = tpl.load(str(path))
    stack = tpl.stack(t, SEOUL, ACCOUNT, {})
    q, dead = stack.queues["Q"], stack.queues["Dead"]
    # Defaults: SQS's visibility timeout and retention; Lambda's batch size, no window, no limit.
    assert (q.name, q.visibility_timeout, q.retention, q.dead_letter, q.max_receive_count) == \
        ("tagpeer-Q", 30, 345600, "Dead", 5)
    assert (dead.name, dead.arn) == ("my-dead", f"arn:aws:sqs:{SEOUL}:{ACCOUNT}:my-dead")
    assert [(p.queues, len(p.statements)) for p in stack.queue_policies] == [(["Q"], 1)]
    (m,) = stack.mappings
    assert (m.queue, m.function, m.batch_size, m.window_s, m.max_concurrency, m.enabled) == \
        ("Q", "Fn", 10, 0.0, None, True)
    assert [t.queue for t in stack.rules[0].targets] == ["Q", "Dead"]
    assert tpl.outputs(t, SEOUL, ACCOUNT, {}) == {"Url": q.url, "Name": "my-dead"}


# ------------------------------------------------------------------- the queues, running

@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory):
    c = one_fake_function(tmp_path_factory.mktemp("bin"), concurrency=3, queue_rules=True)
    yield c
    c.stop()


@pytest.fixture
def cloud(fake_cloud):
    fake_cloud.reset()
    return fake_cloud


def link_wanted(**instructions) -> dict:
    """A "Link Wanted" entry for Seoul's requester (LinkWantedRule), with instructions for the fake
    function in its detail (testing.py's BOOTSTRAP: tag, fail, fail_once, sleep, journal)."""
    detail = {"requester": {"account": ACCOUNT, "region": SEOUL}, **instructions}
    return {"Source": "tagpeer", "DetailType": "Link Wanted", "Detail": json.dumps(detail)}


def sweep_requested(**instructions) -> dict:
    """A "Sweep Requested" entry naming Seoul's requester (SweepRequestedRequesterRule)."""
    detail = {"region": SEOUL, "functions": ["requester"], **instructions}
    return {"Source": "tagpeer", "DetailType": "Sweep Requested", "Detail": json.dumps(detail)}


def put(c: lc.LocalCloud, *entries: dict) -> None:
    events = client("events", SEOUL, cloud=c)
    for i in range(0, len(entries), 10):  # PutEvents takes 10 entries at most
        answer = events.put_events(Entries=list(entries[i:i + 10]))
        assert answer["FailedEntryCount"] == 0, answer


def settled(c: lc.LocalCloud) -> list[dict]:
    """Everything recorded, once the cloud settled (within a minute: a batch that never leaves its
    queue fails the test, not five minutes later)."""
    assert c.settle(60), "not settled"
    _, recorded = local("/_local/events", cloud=c)
    return recorded


def invocations(recorded: list[dict]) -> list[dict]:
    return [e for e in recorded if e.get("function") == FAKE_FUNCTION]


def queue_state(c: lc.LocalCloud, logical_id: str, region: str = SEOUL, account: str = ACCOUNT) -> dict:
    status, answer = local("/_local/queues", cloud=c)
    assert status == 200, answer
    (found,) = [q for q in answer if (q["account"], q["region"], q["queue"]) == (account, region, logical_id)]
    return found


def test_a_burst_within_the_window_is_one_invocation_with_lambdas_sqs_event(cloud):
    entries = [link_wanted(tag=str(n)) for n in range(10)] + [sweep_requested(tag="10"), link_wanted(tag="11")]
    put(cloud, *entries)
    recorded = settled(cloud)
    queued = [e for e in recorded if e["outcome"] == "queued"]
    assert len(queued) == 12, recorded
    queue = cloud.stacks[SEOUL].queues[FAKE_QUEUE]
    for e in queued:
        assert (e["account"], e["region"], e["target"], e["queue"], e["source"]) == \
            (ACCOUNT, SEOUL, queue.name, FAKE_QUEUE, "tagpeer"), e
        assert e["rule"] in ("tagpeer-LinkWantedRule", "tagpeer-SweepRequestedRequesterRule"), e
    (batch,) = invocations(recorded)
    assert (batch["outcome"], batch["rule"], batch["source"], batch["attempt"], batch["messages"]) == \
        ("ok", FAKE_MAPPING, "aws:sqs", 1, 12), batch
    assert batch["detail_type"] == "Link Wanted + Sweep Requested"
    assert batch["queue"] == FAKE_QUEUE and batch["target"] == cloud.functions[(SEOUL, FAKE_FUNCTION)].name
    sent = {e["message"]: e["event"] for e in queued}
    records = batch["event"]["Records"]
    assert [r["messageId"] for r in records] == [e["message"] for e in queued], "in the order sent"
    assert batch["events"] == [sent[r["messageId"]] for r in records]
    assert sorted(e["detail"]["tag"] for e in batch["events"]) == sorted(str(n) for n in range(12))
    for r in records:
        assert set(r) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                          "eventSource", "eventSourceARN", "awsRegion"}, r
        assert json.loads(r["body"]) == sent[r["messageId"]], "the body is the EventBridge event, as JSON"
        assert r["md5OfBody"] == hashlib.md5(r["body"].encode()).hexdigest()
        assert (r["eventSource"], r["eventSourceARN"], r["awsRegion"], r["messageAttributes"]) == \
            ("aws:sqs", queue.arn, SEOUL, {})
        a = r["attributes"]
        assert set(a) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
        assert a["ApproximateReceiveCount"] == "1" and a["SenderId"] == qs.EVENTBRIDGE_SENDER
        assert int(a["SentTimestamp"]) <= int(a["ApproximateFirstReceiveTimestamp"]), a
        assert r["receiptHandle"]
    assert len({r["receiptHandle"] for r in records}) == 12
    assert batch["response"]["Records"] == records, "the function got the event as recorded"
    assert queue_state(cloud, FAKE_QUEUE)["visible"] == 0


def test_a_lone_event_waits_for_the_window(cloud):
    put(cloud, link_wanted(tag="alone"))
    recorded = settled(cloud)
    (queued,) = [e for e in recorded if e["outcome"] == "queued"]
    (batch,) = invocations(recorded)
    waited = batch["started"] - queued["time"]
    assert WINDOW_S - 0.05 <= waited < WINDOW_S + 1.5, waited
    # A batch of one reads as the delivery it was before the queue.
    assert (batch["detail_type"], batch["messages"], batch["events"]) == ("Link Wanted", 1, [queued["event"]])


def test_settle_waits_for_the_queued_messages(cloud):
    put(cloud, link_wanted(tag="late", sleep=0.5))
    t0 = time.monotonic()
    status, answer = local("/_local/settle", {}, cloud=cloud)
    took = time.monotonic() - t0
    assert status == 200 and answer == {"settled": True}
    assert took >= WINDOW_S - 0.05, f"settled after {took:.2f} s, before the window closed"
    _, recorded = local("/_local/events", cloud=cloud)
    assert [(e["outcome"], e["events"][0]["detail"]["tag"]) for e in invocations(recorded)] == [("ok", "late")]
    state = queue_state(cloud, FAKE_QUEUE)
    assert (state["visible"], state["in_flight"], state["waiting"], state["batches_in_flight"]) == (0, 0, 0, 0)


def test_a_failed_batch_comes_back_whole_then_goes_to_the_dead_letter_queue(cloud):
    put(cloud, link_wanted(tag="bad", fail=True), link_wanted(tag="good"))
    recorded = settled(cloud)
    tries = invocations(recorded)
    assert [(e["attempt"], e["outcome"], e["messages"]) for e in tries] == [(n, "error", 2) for n in (1, 2, 3)], tries
    assert all(e["error"]["errorType"] == "Boom" for e in tries)
    records = [e["event"]["Records"] for e in tries]
    # The same two messages each time, each receive counted, each with a new receipt handle.
    assert [[r["attributes"]["ApproximateReceiveCount"] for r in rs] for rs in records] == \
        [["1", "1"], ["2", "2"], ["3", "3"]]
    assert len({tuple(r["messageId"] for r in rs) for rs in records}) == 1
    assert len({r["receiptHandle"] for rs in records for r in rs}) == 6
    assert len({r["attributes"]["ApproximateFirstReceiveTimestamp"] for rs in records for r in rs[:1]}) == 1
    gaps = [b["started"] - a["started"] for a, b in zip(tries, tries[1:])]
    assert all(gap >= qs.REDELIVERY_S for gap in gaps), gaps
    dead = [e for e in recorded if e["outcome"] == "dead-lettered"]
    assert sorted(e["event"]["detail"]["tag"] for e in dead) == ["bad", "good"], recorded
    for e in dead:
        assert (e["queue"], e["dead_letter_queue"], e["target"], e["rule"], e["receive_count"]) == \
            (FAKE_QUEUE, DLQ, f"tagpeer-{DLQ}", FAKE_MAPPING, 3), e
        assert "function" not in e, "not an invocation"
    assert recorded.index(dead[0]) > recorded.index(tries[-1])
    source, failed = queue_state(cloud, FAKE_QUEUE), queue_state(cloud, DLQ)
    assert (source["visible"], source["in_flight"], source["waiting"], source["dead_lettered"]) == (0, 0, 0, 2)
    assert (failed["visible"], failed["mapping"], failed["dead_letter_queue"]) == (2, None, None), failed
    local("/_local/reset", {}, cloud=cloud)
    assert queue_state(cloud, DLQ)["visible"] == 0 and queue_state(cloud, FAKE_QUEUE)["dead_lettered"] == 0


def test_a_batch_that_fails_once_is_deleted_once_it_succeeds(cloud):
    with tempfile.TemporaryDirectory() as d:
        put(cloud, link_wanted(tag="flaky", fail_once=os.path.join(d, "failed")))
        recorded = settled(cloud)
    tries = invocations(recorded)
    assert [(e["attempt"], e["outcome"]) for e in tries] == [(1, "error"), (2, "ok")], tries
    assert tries[1]["event"]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert not [e for e in recorded if e["outcome"] == "dead-lettered"]
    assert queue_state(cloud, FAKE_QUEUE)["dead_lettered"] == 0 and queue_state(cloud, DLQ)["visible"] == 0


def test_a_rule_the_queue_policy_does_not_name_is_denied(cloud):
    stack = cloud.stacks[SEOUL]
    intruder = tpl.Rule("Intruder", "tagpeer-Intruder", {"detail-type": ["Intruder"]}, None,
                        [tpl.Target(id="requester", queue=FAKE_QUEUE)], account=ACCOUNT)
    stack.rules.append(intruder)
    try:
        put(cloud, {"Source": "tagpeer", "DetailType": "Intruder", "Detail": "{}"}, link_wanted(tag="welcome"))
        recorded = settled(cloud)
    finally:
        stack.rules.remove(intruder)
    (denied,) = [e for e in recorded if e["outcome"] == "denied"]
    assert (denied["rule"], denied["queue"], denied["target"], denied["detail_type"]) == \
        ("tagpeer-Intruder", FAKE_QUEUE, stack.queues[FAKE_QUEUE].name, "Intruder"), denied
    assert rule_arn(intruder) in denied["reason"] and "events.amazonaws.com" in denied["reason"], denied
    assert [e["rule"] for e in recorded if e["outcome"] == "queued"] == ["tagpeer-LinkWantedRule"]
    assert [e["detail_type"] for e in invocations(recorded)] == ["Link Wanted"]


def test_deliveries_to_a_queue_are_duplicated_or_dropped_as_the_faults_say(cloud):
    local("/_local/faults", {"events": {"duplicate": 1.0}}, cloud=cloud)
    put(cloud, link_wanted(tag="twice"))
    recorded = settled(cloud)
    (doubled,) = [e for e in recorded if e["outcome"] == "duplicated"]
    assert (doubled["rule"], doubled["queue"], doubled["target"]) == \
        ("tagpeer-LinkWantedRule", FAKE_QUEUE, cloud.stacks[SEOUL].queues[FAKE_QUEUE].name), doubled
    queued = [e for e in recorded if e["outcome"] == "queued"]
    assert len(queued) == 2 and queued[0]["message"] != queued[1]["message"]
    (batch,) = invocations(recorded)
    assert batch["messages"] == 2 and batch["events"][0]["id"] == batch["events"][1]["id"], "the same event twice"

    local("/_local/reset", {}, cloud=cloud)
    local("/_local/faults", {"events": {"drop": 1.0}}, cloud=cloud)
    put(cloud, link_wanted(tag="never"))
    recorded = settled(cloud)
    assert [(e["outcome"], e.get("queue")) for e in recorded] == [("dropped", FAKE_QUEUE)], recorded
    _, state = local("/_local/faults", cloud=cloud)
    assert state["counters"]["events_dropped"] == 1


def test_shuffled_deliveries_to_a_queue_are_held_then_batched_in_their_new_order(cloud):
    cloud.faults.set({"seed": 5, "events": {"shuffle": True}})
    rule = next(r for r in cloud.stacks[SEOUL].rules if r.logical_id == "LinkWantedRule")
    envelope = lc.awsevents.envelope
    cloud._begin()  # something is running: nothing is handed out yet
    for n in range(8):
        event = envelope("Link Wanted", "tagpeer", ACCOUNT, SEOUL, [], {"requester": {"region": SEOUL}, "n": n})
        cloud._dispatch(event, SEOUL, rule, rule.targets[0])
    cloud._end()
    recorded = settled(cloud)
    # Messages waiting in a queue are not running: the held deliveries all reach the queue within
    # its window, in their new order, and are one batch.
    (batch,) = invocations(recorded)
    order = [e["detail"]["n"] for e in batch["events"]]
    assert sorted(order) == list(range(8)) and order != list(range(8)), order
    assert cloud.faults.state()["counters"]["events_reordered"] > 0


def test_every_account_and_region_has_its_own_queues():
    c = lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA], accounts=[ACCOUNT, OTHER])  # not started: nothing reads
    state = c.queues.state()
    assert sorted((q["account"], q["region"], q["queue"]) for q in state) == \
        sorted((a, r, q) for a in (ACCOUNT, OTHER) for r in (SEOUL, OSAKA) for q in (*QUEUES, DLQ))
    assert {q["arn"] for q in state} == {f"arn:aws:sqs:{q['region']}:{q['account']}:tagpeer-{q['queue']}"
                                         for q in state}
    stack = c.stacks[(OTHER, OSAKA)]
    rule = next(r for r in stack.rules if r.logical_id == "PeeringRequestedRule")
    event = lc.awsevents.envelope("Peering Requested", "tagpeer", ACCOUNT, OSAKA, [], {})
    c.queues.send(event, OTHER, OSAKA, rule, rule.targets[0])
    (queued,) = list(c.record.events)
    assert (queued["account"], queued["region"], queued["outcome"], queued["queue"]) == \
        (OTHER, OSAKA, "queued", "AccepterQueue"), queued
    visible = {(q["account"], q["region"], q["queue"]): q["visible"] for q in c.queues.state() if q["visible"]}
    assert visible == {(OTHER, OSAKA, "AccepterQueue"): 1}
    assert c.settle(1), "no mapping reads it in a cloud not started: nothing to wait for"


@pytest.fixture(scope="module")
def narrow_cloud(tmp_path_factory):
    """Seoul's requester, fake, with four processes, behind its queue read a message a batch: the
    mapping's MaximumConcurrency (2), not the function's, bounds the batches in flight."""
    c = one_fake_function(tmp_path_factory.mktemp("bin"), concurrency=4, queue_rules=True,
                          mapping={"batch_size": 1})
    yield c
    c.stop()


def test_no_more_than_maximum_concurrency_batches_run_at_once(narrow_cloud):
    c = narrow_cloud
    c.reset()
    (mapping,) = [m for m in c.stacks[SEOUL].mappings if m.logical_id == FAKE_MAPPING]
    assert (mapping.max_concurrency, c.functions[(SEOUL, FAKE_FUNCTION)].concurrency) == (2, 4)
    with tempfile.TemporaryDirectory(prefix="lambda-journal-") as jdir:
        put(c, *[link_wanted(tag=str(n), journal=jdir, sleep=0.4) for n in range(6)])
        recorded = settled(c)
        running, most = 0, 0
        for name in sorted(n for n in os.listdir(jdir) if not n.startswith(".")):
            with open(os.path.join(jdir, name)) as f:
                running += 1 if f.read().startswith("start ") else -1
            most = max(most, running)
    batches = invocations(recorded)
    assert [(e["outcome"], e["messages"]) for e in batches] == [("ok", 1)] * 6, batches
    assert most == 2, f"{most} batches at once"
