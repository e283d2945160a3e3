"""Tests for faults.py and the fault hooks of cloud.py: injected EC2 errors, latency,
dropped connections, the throttle's token buckets, crash_after, and lost,
doubled and shuffled event deliveries.

The first tests drive the Faults class alone, with a clock of their own (no
timed assertions); the rest drive a real local cloud (moto's server, the real
function binaries, which must be built: `make functions`) through boto3.

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_faults.py` (`make test` runs them all).
"""

from __future__ import annotations

import json
import threading
import time

import botocore.exceptions

from localcloud import cloud as lc
from localcloud import faults as fl
from localcloud.testing import (OSAKA, REPO, SEOUL, TEMPLATE, TESTER, alive, client, dropped, ec2, error_of, local,
                                wait_until)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(action: str, region: str = SEOUL, function: bool = False, caller: str = TESTER, account="123456789012",
         params=None, service="ec2") -> fl.Call:
    return fl.Call(service, action, region, account, caller, function, params or {})


def raises_value_error(spec) -> bool:
    try:
        fl.Faults().set(spec)
    except ValueError:
        return True
    return False


# ------------------------------------------------------------ the Faults class alone

def test_no_faults_by_default():
    f = fl.Faults()
    for action in ("CreateRoute", "DescribeVpcs", "CreateVpcPeeringConnection"):
        d = f.before(call(action, function=True))
        assert not d.fails and d.latency_ms == 0 and d.record() == {}
        f.after(call(action, function=True), d, 200)
    state = f.state()
    assert state["faults"]["throttle"] is False and state["faults"]["crash_after"] is None
    assert state["counters"]["mutating_calls"] == 2, state


def test_bad_specs_are_refused_and_change_nothing():
    for spec in (
        [],
        {"nonsense": 1},
        {"drop": {}},
        {"errors": [{"action": "CreateRoute", "rate": 1.5}]},
        {"errors": [{"action": "CreateRoute", "rate": "often"}]},
        {"errors": [{"action": "CreateRoute", "rate": 0.1, "code": "Teapot"}]},  # unknown code, no status
        {"errors": [{"action": "", "rate": 0.1}]},
        {"errors": [{"action": "CreateRoute", "typo": 1}]},
        {"latency": [{"action": "CreateRoute", "ms": -1}]},
        {"seed": "seven"},
        {"throttle": "yes"},
        {"throttle": {"mutating": {"capacity": -1}}},
        {"crash_after": -1},
        {"events": {"duplicate": 2}},
        {"events": {"shuffle": "yes"}},
    ):
        assert raises_value_error(spec), spec
    f = fl.Faults()
    f.set({"crash_after": 1})
    try:
        f.set({"crash_after": 2, "errors": [{"rate": 7}]})
    except ValueError:
        pass
    assert f.state()["faults"]["crash_after"] == 1, "a bad spec leaves the faults as they were"


def test_errors_by_action_region_and_caller():
    f = fl.Faults()
    f.set({"errors": [{"action": "CreateRoute", "region": SEOUL, "caller": "functions", "rate": 1.0,
                       "code": "InternalError"}]})
    d = f.before(call("CreateRoute", function=True))
    assert (d.code, d.status) == ("InternalError", 500)
    assert d.record() == {"injected": "InternalError"}
    assert not f.before(call("CreateRoute", OSAKA, function=True)).fails, "another region"
    assert not f.before(call("DeleteRoute", function=True)).fails, "another action"
    assert not f.before(call("CreateRoute", function=False)).fails, "not a function"
    assert f.state()["counters"]["injected"] == {"InternalError": 1}


def test_error_codes_and_their_statuses():
    for code, status in (("RequestLimitExceeded", 503), ("InternalError", 500), ("ServiceUnavailable", 503),
                         ("Unavailable", 503), ("connection", 0)):
        f = fl.Faults()
        f.set({"errors": [{"action": "*", "rate": 1.0, "code": code}]})
        d = f.before(call("DescribeVpcs"))
        assert (d.code, d.status) == (code, status), (code, d.code, d.status)
    f = fl.Faults()
    f.set({"errors": [{"action": "*", "rate": 1.0, "code": "DryRunOperation", "status": 412}]})
    assert (f.before(call("CreateVpc")).code, f.before(call("CreateVpc")).status) == ("DryRunOperation", 412)
    body = fl.error_xml("RequestLimitExceeded").decode()
    assert body.count("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>") == 1
    assert "<RequestID>" in body


def test_mutating_and_prefix_patterns():
    f = fl.Faults()
    f.set({"errors": [{"action": "mutating", "rate": 1.0}]})
    assert f.before(call("CreateTags")).fails and f.before(call("AcceptVpcPeeringConnection")).fails
    assert not f.before(call("DescribeVpcs")).fails and not f.before(call("GetManagedPrefixListEntries")).fails
    f.set({"errors": [{"action": ["Delete*", "CreateRoute"], "rate": 1.0}]})
    assert f.before(call("DeleteRoute")).fails and f.before(call("CreateRoute")).fails
    assert not f.before(call("CreateTags")).fails


def test_a_seed_repeats_the_same_faults():
    def run(seed):
        f = fl.Faults()
        f.set({"seed": seed, "errors": [{"action": "*", "rate": 0.5,
                                         "code": ["RequestLimitExceeded", "InternalError", "connection"]}]})
        return [f.before(call("CreateRoute")).code for _ in range(40)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert None in first and len(set(first) - {None}) == 3, first


def test_latency_alone_and_with_errors():
    f = fl.Faults()
    f.set({"latency": [{"action": "Describe*", "region": OSAKA, "ms": 40}],
           "errors": [{"action": "*", "rate": 0, "latency_ms": 5}]})
    d = f.before(call("DescribeVpcs", OSAKA))
    assert d.latency_ms == 45 and not d.fails and d.record() == {"latency_ms": 45}
    assert f.before(call("DescribeVpcs", SEOUL)).latency_ms == 5
    assert f.state()["counters"]["latency_ms"] == 50


def test_throttle_buckets_are_aws_published_sizes():
    t = fl.Throttle(True)
    sizes = {
        "CreateVpcPeeringConnection": ("resource-intensive", 50, 5),
        "AcceptVpcPeeringConnection": ("resource-intensive", 50, 5),
        "DeleteVpcPeeringConnection": ("resource-intensive", 50, 5),
        "CreateRoute": ("mutating", 50, 5),
        "DeleteRoute": ("mutating", 50, 5),
        "ModifyVpcPeeringConnectionOptions": ("mutating", 50, 5),
        "CreateTags": ("CreateTags", 100, 10),
        "DeleteTags": ("DeleteTags", 100, 10),
        "DescribeVpcs": ("non-mutating", 100, 20),
        "DescribeRouteTables": ("non-mutating", 100, 20),
        "DescribeVpcPeeringConnections": ("non-mutating", 100, 20),
        "DescribeSecurityGroups": ("unfiltered", 50, 10),
    }
    for action, (bucket, capacity, refill) in sizes.items():
        name, size = t.bucket_of(call(action))
        assert (name, size["capacity"], size["refill"]) == (bucket, capacity, refill), (action, name, size)
    filtered = call("DescribeSecurityGroups", params={"Filter.1.Name": "vpc-id", "Filter.1.Value.1": "vpc-1"})
    assert t.bucket_of(filtered)[0] == "non-mutating"
    assert t.bucket_of(call("DescribeInstances", params={"MaxResults": "5"}))[0] == "non-mutating"


def test_throttle_empties_and_refills_a_bucket_per_account_region_and_action():
    clock = Clock()
    f = fl.Faults(clock=clock)
    f.set({"throttle": True})
    results = [f.before(call("CreateRoute")) for _ in range(51)]
    assert not any(d.fails for d in results[:50]), "a full bucket: 50 tokens"
    assert (results[50].code, results[50].status, results[50].throttled) == ("RequestLimitExceeded", 503, True)
    assert results[50].record() == {"injected": "RequestLimitExceeded", "throttled": True}
    # The other buckets are untouched.
    assert not f.before(call("DeleteRoute")).fails, "another action"
    assert not f.before(call("CreateRoute", OSAKA)).fails, "another region"
    assert not f.before(call("CreateRoute", account="222222222222")).fails, "another account"
    # Five tokens a second come back.
    clock.now += 1
    assert [f.before(call("CreateRoute")).fails for _ in range(6)] == [False] * 5 + [True]
    assert f.state()["counters"]["throttled"] == 2


def test_throttle_sizes_can_be_overridden():
    f = fl.Faults(clock=Clock())
    f.set({"throttle": {"mutating": {"capacity": 2, "refill": 0}, "actions": {"DescribeVpcs": {"capacity": 1}}}})
    assert [f.before(call("CreateRoute")).fails for _ in range(3)] == [False, False, True]
    assert [f.before(call("DescribeVpcs")).fails for _ in range(2)] == [False, True]
    f.set({})
    assert not any(f.before(call("CreateRoute")).fails for _ in range(100)), "off again"


def test_crash_after_counts_only_the_functions_successful_mutating_calls():
    f = fl.Faults()
    f.set({"crash_after": 2})

    def run(c, status=200):
        d = f.before(c)
        if not d.fails:
            f.after(c, d, status)
        return d

    assert not run(call("CreateTags")).fails, "the test's own call"
    assert not run(call("CreateRoute", function=True), status=400).fails, "a failed call does not count"
    assert not run(call("DescribeVpcs", function=True)).fails
    assert not run(call("CreateRoute", function=True)).fails
    assert f.state()["counters"]["mutating_calls"] == 1
    assert not f.down()
    assert not run(call("PutEvents", service="events", function=True)).fails
    d = run(call("CreateTags", function=True))
    assert (d.code, d.crashed) == ("connection", True) and d.record() == {"injected": "connection", "crashed": True}
    assert run(call("PutEvents", service="events", function=True)).crashed
    assert not run(call("DescribeVpcs", function=True)).fails, "reads still work"
    assert not run(call("CreateTags")).fails, "the test's own calls still work"
    assert f.down() and f.state()["counters"]["invocations_refused"] == 1, "the functions are down"
    counters = f.state()["counters"]
    assert (counters["mutating_calls"], counters["crashed"], counters["refused_after_crash"]) == (2, True, 2)
    f.set({})
    assert not run(call("CreateTags", function=True)).fails, "until the faults are set again"


def test_crash_after_lets_no_more_than_k_through_when_calls_overlap():
    f = fl.Faults()
    f.set({"crash_after": 1})
    first = f.before(call("CreateRoute", function=True))
    second = f.before(call("CreateRoute", function=True))  # while the first is still unanswered
    assert not first.fails and second.crashed
    f.after(call("CreateRoute", function=True), first, 500)  # the first one failed after all
    third = f.before(call("CreateRoute", function=True))
    assert not third.fails, "a failed call gives its place back"
    f.after(call("CreateRoute", function=True), third, 200)
    assert f.before(call("CreateRoute", function=True)).crashed
    assert f.state()["counters"]["mutating_calls"] == 1


def test_crash_after_zero_stops_the_first_call():
    f = fl.Faults()
    f.set({"crash_after": 0})
    d = f.before(call("CreateRoute", function=True))
    assert d.crashed and d.kill, "the crash is at once: the caller is killed"


def test_the_kth_answered_call_is_the_crash_point_and_kills():
    f = fl.Faults()
    f.set({"crash_after": 2})
    first = f.before(call("CreateRoute", function=True))
    f.after(call("CreateRoute", function=True), first, 200)
    assert not first.kill and not first.crash_point
    second = f.before(call("CreateTags", function=True))
    held = f.before(call("DeleteRoute", function=True))  # while the second is unanswered
    assert held.crashed and not held.kill, "refused, but the crash has not happened: nobody is killed"
    assert not f.down()
    f.after(call("CreateTags", function=True), second, 200)
    assert second.kill and second.crash_point and not second.fails, "answered, then the functions are killed"
    assert second.record() == {"crash_point": True}
    assert f.down()
    late = f.before(call("CreateRoute", function=True))  # sent before the kill landed
    assert late.crashed and late.kill and not late.crash_point
    f.note_killed(3)
    f.note_killed(0)
    counters = f.state()["counters"]
    assert (counters["killed"], counters["mutating_calls"], counters["refused_after_crash"]) == (3, 2, 2), counters
    f.set({"crash_after": 2})
    assert f.state()["counters"]["killed"] == 0, "reset with the faults"


def test_event_copies_dropped_and_doubled_with_a_seed():
    f = fl.Faults()
    f.set({"seed": 3, "events": {"duplicate": 1.0, "drop": 0.1}})
    copies = [f.copies() for _ in range(1000)]
    assert set(copies) == {0, 2}, "every delivery not dropped is doubled"
    dropped = copies.count(0)
    assert 50 < dropped < 150, dropped
    counters = f.state()["counters"]
    assert (counters["events_dropped"], counters["events_duplicated"]) == (dropped, 1000 - dropped)
    f.set({})
    assert {f.copies() for _ in range(100)} == {1}


def test_drop_rules_still_work():
    f = fl.Faults()
    f.set({"drop": [{"detail-type": "Peering Accepted", "region": SEOUL, "count": 1},
                    {"detail": {"eventName": "AcceptVpcPeeringConnection"}}]})
    accepted = {"detail-type": "Peering Accepted", "detail": {}}
    assert not f.should_drop(accepted, OSAKA)
    assert f.should_drop(accepted, SEOUL)
    assert not f.should_drop(accepted, SEOUL), "count 1"
    trail = {"detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "AcceptVpcPeeringConnection"}}
    assert f.should_drop(trail, SEOUL) and not f.should_drop(trail, SEOUL)


# ------------------------------------------------------------ shuffled deliveries, in the cloud's own code

def test_shuffle_hands_held_deliveries_out_one_at_a_time_in_seeded_random_order():
    def run(seed, shuffle=True):
        cloud = lc.LocalCloud(0, TEMPLATE, REPO, [SEOUL, OSAKA])
        delivered, overlapping, running = [], [], [0]
        lock = threading.Lock()

        def deliver(event, region, rule, target):
            with lock:
                running[0] += 1
                overlapping.append(running[0])
            delivered.append(event["n"])
            with lock:
                running[0] -= 1
            cloud._end()

        cloud._deliver = deliver
        threading.Thread(target=cloud._release_held, daemon=True).start()
        cloud.faults.set({"seed": seed, "events": {"shuffle": shuffle}})
        rule = next(r for r in cloud.stacks[SEOUL].rules if r.targets and r.targets[0].function)
        cloud._begin()  # something is running: nothing is handed out yet
        for n in range(10):
            cloud._dispatch({"n": n}, SEOUL, rule, rule.targets[0])
        cloud._end()
        assert cloud.settle(60)
        cloud.pool.shutdown()
        return delivered, max(overlapping, default=0), cloud.faults.state()["counters"]["events_reordered"]

    order, most_at_once, reordered = run(11)
    assert sorted(order) == list(range(10)), "each delivered once"
    assert order != list(range(10)) and reordered > 0, order
    assert most_at_once == 1, "one at a time"
    assert run(11)[0] == order, "the same seed, the same order"
    assert run(12)[0] != order


# ------------------------------------------------------------ a real local cloud

def vpc_count(region: str = SEOUL) -> int:
    return len(ec2(region).describe_vpcs()["Vpcs"])


def test_endpoint_answers_injected_errors_as_ec2_and_moto_never_sees_them(cloud):
    cloud()
    before = vpc_count()
    status, state = local("/_local/faults", {"errors": [
        {"action": "CreateVpc", "region": SEOUL, "rate": 1.0, "code": "RequestLimitExceeded"},
        {"action": "CreateSubnet", "rate": 1.0, "code": "InternalError"},
        {"action": "CreateInternetGateway", "rate": 1.0, "code": "ServiceUnavailable"},
    ]})
    assert status == 200 and state["faults"]["errors"][0]["action"] == "CreateVpc", state
    assert error_of(lambda: ec2().create_vpc(CidrBlock="10.9.0.0/16")) == ("RequestLimitExceeded", 503)
    assert error_of(lambda: ec2().create_subnet(VpcId="vpc-12345678", CidrBlock="10.9.0.0/24")) == \
        ("InternalError", 500)
    assert error_of(lambda: ec2().create_internet_gateway()) == ("ServiceUnavailable", 503)
    assert vpc_count() == before, "moto never saw the CreateVpc"
    ec2(OSAKA).create_vpc(CidrBlock="10.9.0.0/16")  # another region: untouched
    _, calls = local("/_local/calls")
    injected = [(c["action"], c["injected"], c["status"]) for c in calls if c.get("injected")]
    assert injected == [("CreateVpc", "RequestLimitExceeded", 503), ("CreateSubnet", "InternalError", 500),
                        ("CreateInternetGateway", "ServiceUnavailable", 503)], injected
    _, state = local("/_local/faults")
    assert state["counters"]["injected"] == {"RequestLimitExceeded": 1, "InternalError": 1, "ServiceUnavailable": 1}
    # No CloudTrail record for a call that failed.
    _, events = local("/_local/events")
    assert not any(e.get("detail_type") == "AWS API Call via CloudTrail" and e["event"]["region"] == SEOUL
                   for e in events), events


def test_endpoint_drops_the_connection(cloud):
    cloud()
    local("/_local/faults", {"errors": [{"action": "CreateVpc", "rate": 1.0, "code": "connection"}]})
    before = vpc_count()
    failure = dropped(lambda: ec2().create_vpc(CidrBlock="10.9.0.0/16"))
    assert isinstance(failure, type) and issubclass(failure, botocore.exceptions.ConnectionClosedError), failure
    assert vpc_count() == before
    _, calls = local("/_local/calls")
    assert [c for c in calls if c["action"] == "CreateVpc"][0]["injected"] == "connection"


def test_endpoint_records_added_latency(cloud):
    cloud()
    local("/_local/faults", {"latency": [{"action": "DescribeVpcs", "ms": 20}]})
    ec2().describe_vpcs()
    ec2().describe_subnets()
    _, calls = local("/_local/calls")
    assert [c.get("latency_ms") for c in calls] == [20, None], calls


def test_endpoint_throttles_per_action_and_not_by_default(cloud):
    cloud()
    for _ in range(5):
        ec2().create_vpc(CidrBlock="10.8.0.0/16")  # off by default
    local("/_local/faults", {"throttle": {"mutating": {"capacity": 1, "refill": 0}}})
    ec2().create_vpc(CidrBlock="10.9.0.0/16")
    before = vpc_count()
    assert error_of(lambda: ec2().create_vpc(CidrBlock="10.9.0.0/16")) == ("RequestLimitExceeded", 503)
    assert vpc_count() == before
    ec2(OSAKA).create_vpc(CidrBlock="10.9.0.0/16")  # Osaka's bucket is its own
    _, calls = local("/_local/calls")
    assert [c["action"] for c in calls if c.get("throttled")] == ["CreateVpc"]
    _, state = local("/_local/faults")
    assert state["counters"]["throttled"] == 1 and state["faults"]["throttle"]["mutating"]["capacity"] == 1


def key_of(c: lc.LocalCloud, region: str, logical_id: str) -> str:
    """The access key a function process calls the cloud with."""
    return c.functions[(region, logical_id)].env["AWS_ACCESS_KEY_ID"]


def test_crash_after_tells_the_functions_from_everyone_else(cloud):
    c = cloud()
    router = key_of(c, SEOUL, "RouterFunction")
    assert router in c.function_callers
    vpc = ec2().create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    local("/_local/faults", {"crash_after": 2})
    fn = ec2(key=router)
    # tagpeer-status: the one key the functions' role may write on a VPC.
    tag = lambda client, n: client.create_tags(Resources=[vpc], Tags=[{"Key": "tagpeer-status", "Value": str(n)}])  # noqa: E731,E501
    tag(ec2(), 0)  # the test's own: not counted
    tag(fn, 1)
    fn.describe_vpcs()  # a read: not counted
    tag(fn, 2)
    failure = dropped(lambda: tag(fn, 3))
    assert isinstance(failure, type) and issubclass(failure, botocore.exceptions.ConnectionClosedError), failure
    assert fn.describe_vpcs()["Vpcs"], "reads still work"
    tag(ec2(), 4)  # so do everyone else's writes
    tags = {t["Key"]: t["Value"] for t in ec2().describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert tags["tagpeer-status"] == "4"
    events = client("events", SEOUL, router)
    put = lambda: events.put_events(Entries=[{"Source": "tagpeer", "DetailType": "Nothing", "Detail": "{}"}])  # noqa
    failure = dropped(put)
    assert isinstance(failure, type) and issubclass(failure, botocore.exceptions.ConnectionClosedError), failure
    _, state = local("/_local/faults")
    counters = state["counters"]
    assert (counters["mutating_calls"], counters["crashed"], counters["refused_after_crash"]) == (2, True, 2)
    # The functions are down: an event for one fails at once, and so does each receive of its
    # message from the accepter's queue (attempt: ApproximateReceiveCount), until the dead-letter queue.
    detail = json.loads((REPO / "events" / "peering-requested.json").read_text())["detail"]
    client("events", OSAKA, retries=True).put_events(
        Entries=[{"Source": "tagpeer", "DetailType": "Peering Requested", "Detail": json.dumps(detail)}])
    local("/_local/settle", {})
    _, seen = local("/_local/events")
    down = [(e["attempt"], e["outcome"], e["error"]) for e in seen if e.get("function") == "AccepterFunction"]
    assert down == [(n, "error", "crashed (crash_after)") for n in (1, 2, 3)], down
    assert [(e["queue"], e["receive_count"]) for e in seen if e["outcome"] == "dead-lettered"] == \
        [("AccepterQueue", 3)], seen
    _, calls = local("/_local/calls")
    assert [(c["action"], c["caller"]) for c in calls if c.get("crashed")] == \
        [("CreateTags", router), ("PutEvents", router)]
    local("/_local/faults", {})
    tag(fn, 5)
    put()


def test_the_crash_kills_the_functions_in_flight_and_they_restart(cloud):
    c = cloud()
    provisioner, accepter = c.functions[(SEOUL, "ProvisionerFunction")], c.functions[(OSAKA, "AccepterFunction")]
    before = {"provisioner": set(provisioner.pids), "accepter": set(accepter.pids)}
    hold = 30_000  # the accepter's reads take 30 s: its invocation is in flight when the crash comes
    local("/_local/faults", {"crash_after": 1, "latency": [
        {"action": "Describe*", "caller": key_of(c, OSAKA, "AccepterFunction"), "ms": hold}]})
    detail = json.loads((REPO / "events" / "peering-requested.json").read_text())["detail"]
    tester = lambda region: client("events", region, retries=True)  # noqa: E731
    t0 = time.monotonic()
    tester(OSAKA).put_events(
        Entries=[{"Source": "tagpeer", "DetailType": "Peering Requested", "Detail": json.dumps(detail)}])
    in_flight = lambda fn: any(w.sandbox is not None and w.sandbox.current is not None  # noqa: E731
                               for w in fn._workers)
    assert wait_until(lambda: in_flight(accepter)), "the accepter never got its event"
    # The provisioner's first mutating call (CreateVpc) is the crash point: it is made, its
    # answer is sent, then every function process in flight is killed, the provisioner's and the
    # accepter's alike.
    network = {"region": SEOUL, "name": "crash-test", "cidr": "10.42.0.0/16", "subnets": 2}
    entry = {"Source": "tagpeer", "DetailType": "Network Requested", "Detail": json.dumps(network)}
    tester(SEOUL).put_events(Entries=[entry])
    local("/_local/settle", {})
    elapsed = time.monotonic() - t0
    assert elapsed < hold / 1000, f"settled after {elapsed:.1f} s: the accepter was not killed"
    _, state = local("/_local/faults")
    counters = state["counters"]
    assert counters["crashed"] and counters["mutating_calls"] == 1, counters
    assert counters["killed"] >= 2, counters
    _, seen = local("/_local/events")

    def attempts(logical_id):
        return [(e["attempt"], e["outcome"], e["error"]) for e in seen if e.get("function") == logical_id]

    # The provisioner's: Lambda's asynchronous retries; the accepter's: its message received again
    # from its queue (attempt: ApproximateReceiveCount).
    for logical_id in ("ProvisionerFunction", "AccepterFunction"):
        got = attempts(logical_id)
        assert len(got) == 3, (logical_id, got)
        (_, outcome, error), *retries = got
        assert outcome == "error" and error["errorType"] == "Runtime.ExitError", (logical_id, error)
        assert "signal: killed" in error["errorMessage"], error
        assert retries == [(n, "error", "crashed (crash_after)") for n in (2, 3)], (logical_id, retries)
    # The call was made in AWS and answered; the process died before its next step.
    _, calls = local("/_local/calls")
    provisioner_key = key_of(c, SEOUL, "ProvisionerFunction")
    mine = [x for x in calls if x["caller"] == provisioner_key]
    point = [x for x in mine if x.get("crash_point")]
    assert [(x["action"], x["status"]) for x in point] == [("CreateVpc", 200)], mine
    assert all(x.get("crashed") for x in mine if x["seq"] > point[0]["seq"] and not x["action"].startswith(
        fl.READ_ONLY_PREFIXES)), "a mutating call that raced the kill is refused"
    vpcs = ec2().describe_vpcs(Filters=[{"Name": "tag:tagpeer-network", "Values": ["crash-test"]}])["Vpcs"]
    vpcs = [v for v in vpcs if v["CidrBlock"] == "10.42.0.0/16"]  # (moto may ignore the filter)
    assert len(vpcs) == 1, vpcs
    subnets = ec2().describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    assert [s for s in subnets if s["VpcId"] == vpcs[0]["VpcId"]] == [], "no step after the crash point"
    # Each killed process was restarted before its invocation returned.
    for name, fn in (("provisioner", provisioner), ("accepter", accepter)):
        assert not any(alive(p) for p in before[name] - set(fn.pids)), name
        assert len(fn.pids) == fn.concurrency and set(fn.pids) != before[name], (name, before[name], fn.pids)
    # The faults cleared, the restarted provisioner resumes the network where the crash left it.
    local("/_local/faults", {})
    tester(SEOUL).put_events(Entries=[entry])
    local("/_local/settle", {})
    _, seen = local("/_local/events")
    last = [e for e in seen if e.get("function") == "ProvisionerFunction"][-1]
    assert (last["attempt"], last["outcome"]) == (1, "ok"), last
    subnets = ec2().describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    assert len([s for s in subnets if s["VpcId"] == vpcs[0]["VpcId"]]) == 2, subnets


def test_events_delivered_twice_or_dropped(cloud):
    c = cloud()
    events = client("events", OSAKA, retries=True)
    detail = json.loads((REPO / "events" / "peering-requested.json").read_text())["detail"]
    entry = {"Source": "tagpeer", "DetailType": "Peering Requested", "Detail": json.dumps(detail)}

    def first_attempts():
        """The events the accepter got at their first receive (its rule sends them to its queue,
        whose mapping hands them over in batches), and everything recorded."""
        local("/_local/settle", {})
        _, seen = local("/_local/events")
        return [x for e in seen if e.get("function") == "AccepterFunction" and e["attempt"] == 1
                for x in e["events"]], seen

    events.put_events(Entries=[entry])
    once, _ = first_attempts()
    assert len(once) == 1, "no faults: delivered once"
    local("/_local/reset", {})
    local("/_local/faults", {"events": {"duplicate": 1.0}})
    events.put_events(Entries=[entry])
    twice, seen = first_attempts()
    assert len(twice) == 2 and twice[0]["id"] == twice[1]["id"], "the same event twice"
    assert [e["outcome"] for e in seen if e["outcome"] == "duplicated"] == ["duplicated"]
    assert len([e for e in seen if e["outcome"] == "queued"]) == 2, "two messages"
    local("/_local/reset", {})
    local("/_local/faults", {"events": {"drop": 1.0}})
    events.put_events(Entries=[entry])
    never, seen = first_attempts()
    assert never == [] and any(e["outcome"] == "dropped" and e["rule"] for e in seen), seen
    _, state = local("/_local/faults")
    assert state["counters"]["events_dropped"] == 1


def test_reset_clears_the_faults(cloud):
    cloud()
    local("/_local/faults", {"crash_after": 1, "throttle": True, "events": {"drop": 1.0}})
    local("/_local/reset", {})
    _, state = local("/_local/faults")
    assert state["faults"]["crash_after"] is None and state["faults"]["throttle"] is False
    assert state["faults"]["events"] is None
    status, answer = local("/_local/faults", {"errors": [{"rate": 2}]})
    assert status == 400 and "rate" in answer["error"], answer
