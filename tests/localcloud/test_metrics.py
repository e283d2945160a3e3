"""The metrics the functions publish: their CloudWatch embedded metric format (EMF) lines, read as
CloudWatch Logs reads them (runtime.py: emf_record, emf_datapoints, Metrics), collected from the
function processes' standard output with the invocation that wrote them, and served by the local
cloud at GET /_local/metrics; and the demo's table of them (tools/demo.py: metrics_table).

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_metrics.py`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile

import pytest

from localcloud import runtime as rt
from localcloud.testing import ACCOUNT, FAKE_FUNCTION, OSAKA, REPO, SEOUL, fake_bootstrap, local, metrics, one_fake_function

T0 = 1764620000000


def emf(metrics: dict[str, object], dimensions=(("Region",), ("Region", "Function")), units=None, **props) -> dict:
    """An EMF record of the contract's shape: `metrics` {name: value} in namespace tagpeer."""
    units = units or {}
    record = {
        "_aws": {"Timestamp": T0, "CloudWatchMetrics": [{
            "Namespace": "tagpeer",
            "Dimensions": [list(d) for d in dimensions],
            "Metrics": [{"Name": n, "Unit": units.get(n, "Count")} for n in metrics],
        }]},
        "Function": "router", "Region": SEOUL, "Account": ACCOUNT,
    }
    record.update(props)
    record.update(metrics)
    return record


def line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def observe(store: rt.Metrics, *records, invocation: str | None = "rid-1", function: str = "tagpeer-RouterFunction",
            region: str = SEOUL) -> list[bool]:
    return [store.observe(r if isinstance(r, str) else line(r), function=function, region=region, account=ACCOUNT,
                          invocation=invocation) for r in records]


# ------------------------------------------------------------------------------------ the parser

def test_a_record_with_one_dimension_set_gives_one_datapoint_per_metric():
    record = emf({"Ec2Calls": 12, "Errors": 0}, dimensions=[["Region"]], Link="seoul-osaka")
    points = rt.emf_datapoints(rt.emf_record(line(record)))
    assert points == [
        {"namespace": "tagpeer", "name": "Ec2Calls", "unit": "Count", "storage_resolution": 60, "value": 12,
         "dimensions": {"Region": SEOUL}, "timestamp": T0,
         "properties": {"Function": "router", "Region": SEOUL, "Account": ACCOUNT, "Link": "seoul-osaka"}},
        {"namespace": "tagpeer", "name": "Errors", "unit": "Count", "storage_resolution": 60, "value": 0,
         "dimensions": {"Region": SEOUL}, "timestamp": T0,
         "properties": {"Function": "router", "Region": SEOUL, "Account": ACCOUNT, "Link": "seoul-osaka"}},
    ]


def test_two_dimension_sets_give_two_datapoints_per_metric():
    points = rt.emf_datapoints(emf({"Ec2Calls": 3, "Changes": 1}))
    assert [(p["name"], p["value"], p["dimensions"]) for p in points] == [
        ("Ec2Calls", 3, {"Region": SEOUL}),
        ("Ec2Calls", 3, {"Region": SEOUL, "Function": "router"}),
        ("Changes", 1, {"Region": SEOUL}),
        ("Changes", 1, {"Region": SEOUL, "Function": "router"}),
    ]


def test_values_units_resolution_and_no_dimensions():
    record = emf({"LinkUpSeconds": [2.5, 4], "RouteQuotaUsePercent": 40.0}, dimensions=[[]],
                 units={"LinkUpSeconds": "Seconds", "RouteQuotaUsePercent": "Percent"})
    record["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = 1
    del record["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"]
    a, b = rt.emf_datapoints(record)
    assert (a["values"], a["unit"], a["storage_resolution"], a["dimensions"]) == ([2.5, 4], "Seconds", 1, {})
    assert "value" not in a
    assert (b["value"], b["unit"], b["storage_resolution"]) == (40.0, "None", 60)  # Unit absent: None
    # No dimension set at all: the metrics without dimensions too.
    record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = []
    assert [p["dimensions"] for p in rt.emf_datapoints(record)] == [{}, {}]


def test_several_directives():
    record = emf({"LinksReady": 1}, dimensions=[["Region"]])
    record["_aws"]["CloudWatchMetrics"].append(
        {"Namespace": "other", "Dimensions": [["Account"]], "Metrics": [{"Name": "Errors", "Unit": "Count"}]})
    record["Errors"] = 2
    points = rt.emf_datapoints(record)
    assert [(p["namespace"], p["name"], p["dimensions"]) for p in points] == [
        ("tagpeer", "LinksReady", {"Region": SEOUL}), ("other", "Errors", {"Account": ACCOUNT})]
    assert "Errors" not in points[0]["properties"] and "LinksReady" not in points[1]["properties"]


@pytest.mark.parametrize("change, reason", [
    (lambda r: r.pop("Function"), "dimension 'Function' has no value"),
    (lambda r: r.update(Function=7), "dimension 'Function' is not a string"),
    (lambda r: r.update(Function=""), "dimension 'Function'"),
    (lambda r: r.update(Ec2Calls="12"), "metric 'Ec2Calls' is not a number"),
    (lambda r: r.update(Ec2Calls=True), "metric 'Ec2Calls' is not a number"),
    (lambda r: r.update(Ec2Calls=None), "metric 'Ec2Calls' is not a number"),
    (lambda r: r.update(Ec2Calls=[1, "x"]), "metric 'Ec2Calls' is not a number or a non-empty array"),
    (lambda r: r.update(Ec2Calls=[]), "non-empty array"),
    (lambda r: r.update(Ec2Calls=list(range(101))), "has 101 values"),
    (lambda r: r.pop("Ec2Calls"), "metric 'Ec2Calls' has no value"),
    (lambda r: r["_aws"].pop("Timestamp"), "Timestamp is missing"),
    (lambda r: r["_aws"].update(Timestamp="now"), "Timestamp is not a number"),
    (lambda r: r["_aws"].update(CloudWatchMetrics={}), "CloudWatchMetrics is not an array"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0].pop("Namespace"), "Namespace is missing"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0].update(Namespace="AWS/Lambda"), "AWS/"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0].update(Dimensions=["Region"]), "Dimensions[0] is not an array"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0].pop("Metrics"), "Metrics is missing"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Links"), "Unit 'Links'"),
    (lambda r: r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(StorageResolution=5), "StorageResolution"),
])
def test_a_record_cloudwatch_would_reject(change, reason):
    record = emf({"Ec2Calls": 12, "Errors": 0})
    change(record)
    with pytest.raises(rt.EmfRejected) as e:
        rt.emf_datapoints(record)
    assert reason in str(e.value)


def test_the_limits_thirty_dimensions_and_a_hundred_metrics():
    keys = [f"D{i}" for i in range(31)]
    record = emf({"Ec2Calls": 1}, dimensions=[keys[:30]], **{k: "x" for k in keys})
    assert len(rt.emf_datapoints(record)[0]["dimensions"]) == 30
    record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = [keys]
    with pytest.raises(rt.EmfRejected, match="31 dimensions"):
        rt.emf_datapoints(record)
    many = {f"M{i}": i for i in range(101)}
    with pytest.raises(rt.EmfRejected, match="101 metrics"):
        rt.emf_datapoints(emf(many))
    many.pop("M100")
    assert len(rt.emf_datapoints(emf(many, dimensions=[["Region"]]))) == 100


def test_only_emf_records_count():
    for text in ["plain text", "", "{not json", '{"level":"INFO","message":"hello"}', '["_aws"]',
                 '{"_aws": {"Timestamp": 1}}', '{"_aws": "CloudWatchMetrics"}', '"{\\"_aws\\": 1}"']:
        assert rt.emf_record(text) is None, text
    assert rt.emf_record("  " + line(emf({"Errors": 0})) + "  ") is not None


# ------------------------------------------------------------------------------------ the store

def test_the_store_keeps_datapoints_with_who_wrote_them_and_the_rejected_lines_with_why():
    store = rt.Metrics()
    bad = emf({"Ec2Calls": "many"})
    assert observe(store, emf({"Ec2Calls": 2, "Errors": 0}), "plain text", '{"level":"INFO"}', bad,
                   emf({"LinksReady": 1}, dimensions=[["Region"]]), invocation="rid-1") == [True, False, False, True, True]
    answer = store.query()
    assert [(p["seq"], p["record"], p["name"], len(p["dimensions"])) for p in answer["metrics"]] == [
        (1, 1, "Ec2Calls", 1), (2, 1, "Ec2Calls", 2), (3, 1, "Errors", 1), (4, 1, "Errors", 2), (5, 2, "LinksReady", 1)]
    assert {(p["function"], p["region"], p["account"], p["invocation"]) for p in answer["metrics"]} == {
        ("tagpeer-RouterFunction", SEOUL, ACCOUNT, "rid-1")}
    assert answer["rejected"] == [{"seq": 1, "line": line(bad), "reason": "metric 'Ec2Calls' is not a number: 'many'",
                                   "function": "tagpeer-RouterFunction", "region": SEOUL, "account": ACCOUNT,
                                   "invocation": "rid-1"}]
    store.clear()
    assert store.query() == {"metrics": [], "rejected": []}


def test_the_store_filters():
    store = rt.Metrics()
    observe(store, emf({"Ec2Calls": 2}), invocation="a")
    observe(store, emf({"LinksReady": 1}, dimensions=[["Region"]], Region=OSAKA), region=OSAKA, invocation="b")
    observe(store, emf({"PeeringQuotaUsePercent": 4.0}, dimensions=[["Region", "VpcId"]], VpcId="vpc-1", Quota=50),
            invocation="b")
    observe(store, emf({"Ec2Calls": 1}, Function="requester"), function="tagpeer-RequesterFunction",
            invocation="c")
    observe(store, emf({"Ec2Calls": "x"}), invocation="c")

    def names(**filters):
        return [(p["name"], p["invocation"]) for p in store.query(filters)["metrics"]]

    assert names(name="LinksReady") == [("LinksReady", "b")]
    assert names(region=OSAKA) == [("LinksReady", "b")]
    assert names(name="Ec2Calls", function="router") == [("Ec2Calls", "a")] * 2  # the Function property
    assert names(name="Ec2Calls", function="tagpeer-RequesterFunction") == [("Ec2Calls", "c")] * 2
    assert names(VpcId="vpc-1") == [("PeeringQuotaUsePercent", "b")]  # a dimension
    assert names(Quota="50") == [("PeeringQuotaUsePercent", "b")]  # a property
    assert names(Function="requester", Region=SEOUL) == [("Ec2Calls", "c")] * 2
    assert names(name=["LinksReady", "PeeringQuotaUsePercent"]) == [("LinksReady", "b"),
                                                                    ("PeeringQuotaUsePercent", "b")]
    assert names(invocation="nobody") == []
    assert [r["invocation"] for r in store.query({"invocation": "c"})["rejected"]] == ["c"]
    assert store.query({"invocation": "a"})["rejected"] == []
    assert len(store.query({"name": "LinksReady"})["rejected"]) == 1  # a metric's filter says nothing of them


# ------------------------------------------------------------------------- through the runtime

def test_a_function_process_emf_line_is_its_invocations():
    root = tempfile.mkdtemp(prefix="lambda-fake-")
    try:
        fn = rt.Function("fake-fn", [fake_bootstrap(root)], {"AWS_REGION": OSAKA}, account="222222222222")
        with fn:
            good, bad = emf({"Ec2Calls": 4, "Changes": 1}, Region=OSAKA), emf({"Ec2Calls": 4}, Region=None)
            result = fn.invoke({"tag": "emf", "stdout": [line(good), "not a metric", '{"msg": "json"}', line(bad)]})
            assert result.ok, result.error
            assert line(good) in result.logs  # still a log line
            other = fn.invoke({"tag": "quiet"})
            assert other.ok, other.error
            answer = fn.metrics.query()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert [(p["name"], p["value"], p["dimensions"]) for p in answer["metrics"]] == [
        ("Ec2Calls", 4, {"Region": OSAKA}), ("Ec2Calls", 4, {"Region": OSAKA, "Function": "router"}),
        ("Changes", 1, {"Region": OSAKA}), ("Changes", 1, {"Region": OSAKA, "Function": "router"})]
    assert {(p["function"], p["region"], p["account"], p["invocation"]) for p in answer["metrics"]} == {
        ("fake-fn", OSAKA, "222222222222", result.request_id)}
    assert [(r["line"], r["invocation"]) for r in answer["rejected"]] == [(line(bad), result.request_id)]
    assert "dimension 'Region' is not a string" in answer["rejected"][0]["reason"]


# --------------------------------------------------------------------------- through the cloud

FUNCTION = FAKE_FUNCTION


@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory):
    """The cloud with one function, Seoul's requester, the fake one (testing.py's one_fake_function)."""
    c = one_fake_function(tmp_path_factory.mktemp("bin"))
    yield c
    c.stop()


@pytest.fixture
def cloud(fake_cloud):
    fake_cloud.reset()
    return fake_cloud


def test_get_metrics_serves_what_the_invocation_published(cloud):
    name = cloud.functions[(SEOUL, FUNCTION)].name
    good = emf({"Ec2Calls": 3, "Errors": 1}, Function="requester")
    region_line = emf({"LinksWanted": 1, "OldestPendingSeconds": 12.5}, dimensions=[["Region"]],
                      units={"OldestPendingSeconds": "Seconds"}, Function="requester")
    bad = emf({"Ec2Calls": 3}, Function="requester")
    del bad["Region"]
    cloud.invoke(SEOUL, FUNCTION, {"tag": "emf", "stdout": [line(good), "a log line", line(region_line), line(bad)]},
                 "test")
    _, deliveries = local("/_local/events", cloud=cloud)
    assert [e["outcome"] for e in deliveries] == ["ok"], deliveries
    invocation = deliveries[0]["invocation"]

    answer = metrics(cloud=cloud)
    assert [(p["name"], p["dimensions"]) for p in answer["metrics"]] == [
        ("Ec2Calls", {"Region": SEOUL}), ("Ec2Calls", {"Region": SEOUL, "Function": "requester"}),
        ("Errors", {"Region": SEOUL}), ("Errors", {"Region": SEOUL, "Function": "requester"}),
        ("LinksWanted", {"Region": SEOUL}), ("OldestPendingSeconds", {"Region": SEOUL})]
    assert {(p["function"], p["region"], p["account"], p["invocation"]) for p in answer["metrics"]} == {
        (name, SEOUL, ACCOUNT, invocation)}
    assert answer["metrics"][-1]["unit"] == "Seconds" and answer["metrics"][-1]["value"] == 12.5
    assert [(r["reason"], r["invocation"], r["function"]) for r in answer["rejected"]] == [
        ("dimension 'Region' has no value (no top-level member 'Region')", invocation, name)]

    # The query's filters.
    assert [p["value"] for p in metrics(cloud=cloud, name="Ec2Calls", function="requester", Function="requester")
            ["metrics"]] == [3, 3]
    assert [p["name"] for p in metrics(cloud=cloud, region=SEOUL, name=["LinksWanted", "Errors"])["metrics"]] == [
        "Errors", "Errors", "LinksWanted"]
    assert metrics(cloud=cloud, region=OSAKA) == {"metrics": [], "rejected": []}

    # POST /_local/reset forgets them.
    assert local("/_local/reset", {}, cloud=cloud)[0] == 200
    assert metrics(cloud=cloud) == {"metrics": [], "rejected": []}


# ------------------------------------------------------------------------------ the demo's table

def _demo():
    spec = importlib.util.spec_from_file_location("tagpeer_demo", REPO / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_table_of_no_metrics():
    demo = _demo()
    assert demo.metrics_table({"metrics": [], "rejected": []}) == ["(none: the functions printed no metric line)"]
    assert demo.metrics_table({}) == ["(none: the functions printed no metric line)"]


def test_the_demo_table_sums_counters_keeps_the_latest_gauge_and_averages_link_ups():
    demo = _demo()
    store = rt.Metrics()
    units = {"OldestPendingSeconds": "Seconds", "PeeringQuotaUsePercent": "Percent", "LinkUpSeconds": "Seconds"}
    observe(store, emf({"Ec2Calls": 5, "Changes": 2, "Errors": 0}), invocation="a")
    observe(store, emf({"LinksReady": 0, "LinksPending": 1, "OldestPendingSeconds": 3}, dimensions=[["Region"]],
                       units=units), invocation="a")
    observe(store, emf({"Ec2Calls": 7, "Changes": 1, "Errors": 1}), invocation="b")
    observe(store, emf({"LinksReady": 1, "LinksPending": 0, "OldestPendingSeconds": 0}, dimensions=[["Region"]],
                       units=units), invocation="b")
    observe(store, emf({"LinkUpSeconds": 4.5}, dimensions=[["Region"]], units=units), invocation="b")
    observe(store, emf({"PeeringQuotaUsePercent": 2.0}, dimensions=[["Region", "VpcId"]], units=units,
                       VpcId="vpc-1"), invocation="b")
    observe(store, emf({"Ec2Calls": 2, "Changes": 1, "Errors": 0}, Function="requester", Region=OSAKA), region=OSAKA,
            function="tagpeer-RequesterFunction", invocation="c")
    observe(store, emf({"LinkUpSeconds": [1, 2]}, dimensions=[["Region"]], units=units, Function="requester",
                       Region=OSAKA), region=OSAKA, function="tagpeer-RequesterFunction", invocation="c")
    observe(store, emf({"Ec2Calls": "x"}), invocation="d")
    assert demo.metrics_table(store.query()) == [
        f"{SEOUL} router:",
        "  Changes                                 3  sum of 2 invocations",
        "  Ec2Calls                               12  sum of 2 invocations",
        "  Errors                                  1  sum of 2 invocations",
        "  LinkUpSeconds                       4.5 s  average of 1 sample, maximum 4.5 s",
        "  LinksPending                            0  latest of 2",
        "  LinksReady                              1  latest of 2",
        "  OldestPendingSeconds                  0 s  latest of 2",
        "  PeeringQuotaUsePercent VpcId=vpc-1    2 %  latest of 1",
        f"{OSAKA} requester:",
        "  Changes            1  sum of 1 invocation",
        "  Ec2Calls           2  sum of 1 invocation",
        "  Errors             0  sum of 1 invocation",
        "  LinkUpSeconds  1.5 s  average of 2 samples, maximum 2 s",
        "1 metric line CloudWatch would reject:",
        f"  tagpeer-RouterFunction ({SEOUL}): metric 'Ec2Calls' is not a number: 'x'",
    ]
    # The demo shows what came after a mark.
    mark = store.query()
    observe(store, emf({"Ec2Calls": 1, "Changes": 0, "Errors": 0}), invocation="e")
    assert demo.metrics_table(demo.since(store.query(), mark)) == [
        f"{SEOUL} router:",
        "  Changes   0  sum of 1 invocation",
        "  Ec2Calls  1  sum of 1 invocation",
        "  Errors    0  sum of 1 invocation",
    ]


def test_a_line_that_names_its_request_id_is_that_invocations():
    # The reader may see a line only after the runtime has the invocation's answer (and the
    # process is serving the next): a line that carries its RequestId, as tagpeer's do, says whose it is.
    store = rt.Metrics()
    observe(store, emf({"Ec2Calls": 3}, RequestId="rid-own"), invocation="rid-next")
    observe(store, emf({"Ec2Calls": 1}), invocation="rid-next")
    got = [(p["invocation"], p["value"]) for p in store.query()["metrics"] if p["dimensions"] == {"Region": SEOUL}]
    assert got == [("rid-own", 3), ("rid-next", 1)]
