"""Tests for the template's dashboard and alarms (infra-template/template.yaml, "dashboard and
alarms"): the alarms and the "Link Failed" rule notify AlarmTopicArn exactly when it is set, the
thresholds are the parameters, the dashboard's metrics use the dimension sets the functions
publish (the metrics contract of issue 14), and the local cloud, which runs no CloudWatch and no
SNS, records a "Link Failed" event delivered to the topic instead of failing on it.
"""

from __future__ import annotations

import json
import re

import pytest

from localcloud import awsevents as ae
from localcloud import cloud as lc
from localcloud import patterns
from localcloud import template as tpl
from localcloud.testing import ACCOUNT, OSAKA, SEOUL, TEMPLATE, TESTER, bin_dir, client, local

ALARMS = ("LinkFailingAlarm", "LinkStuckAlarm", "PeeringQuotaAlarm", "RouteQuotaAlarm", "Ec2ThrottledAlarm",
          "FailedEventsAlarm")
# The alarms whose return to OK is news too.
OK_TOO = ("LinkFailingAlarm", "LinkStuckAlarm")
TOPIC = "tagpeer-alarms"

# The metrics contract: each metric's dimension sets.
INVOCATION = {("Region",), ("Region", "Function")}
DIMENSIONS = {
    **{m: INVOCATION for m in ("Ec2Calls", "Ec2Throttled", "Errors", "Changes")},
    **{m: {("Region",)} for m in ("LinksWanted", "LinksReady", "LinksPending", "LinksFailing", "ConsentRefusals",
                                  "RouteConflicts", "OldestPendingSeconds", "LinkUpSeconds")},
    "PeeringQuotaUsePercent": {("Region",), ("Region", "VpcId")},
    "RouteQuotaUsePercent": {("Region",), ("Region", "RouteTableId")},
}
FUNCTIONS = {"requester", "accepter", "router", "provisioner"}


def params(**extra) -> dict[str, str]:
    return {"Regions": f"{SEOUL},{OSAKA}", **extra}


def link_failed(region: str) -> dict:
    """A "Link Failed" event emitted in `region`, of a Seoul-Osaka link."""
    side = {"account": ACCOUNT, "region": SEOUL, "vpc-id": "vpc-0a1b2c3d4e5f60718"}
    other = {"account": ACCOUNT, "region": OSAKA, "vpc-id": "vpc-0f1e2d3c4b5a69788"}
    return ae.envelope("Link Failed", "tagpeer", ACCOUNT, region, [], {
        "link": f"{ACCOUNT}/{SEOUL}/{side['vpc-id']}+{ACCOUNT}/{OSAKA}/{other['vpc-id']}",
        "requester": side, "accepter": other, "side": side if region == SEOUL else other,
        "step": "CreateRoute", "error-code": "RouteLimitExceeded", "message": "too many routes"})


def alarms(t: dict, region: str, p: dict) -> dict[str, dict]:
    return tpl.resources(t, region, ACCOUNT, p, "AWS::CloudWatch::Alarm")


def topic_rules(stack: tpl.Stack) -> list[tpl.Rule]:
    return [r for r in stack.rules if any(x.topic_arn for x in r.targets)]


# ------------------------------------------------------------ no cloud: the template alone

@pytest.mark.parametrize("value, arn", [
    (TOPIC, "arn:aws:sns:{region}:123456789012:tagpeer-alarms"),  # a name: the stack's region's topic
    ("arn:aws:sns:{region}:222222222222:ops", "arn:aws:sns:{region}:222222222222:ops"),  # an ARN, as it is
])
def test_with_an_alarm_topic_the_link_failed_rule_and_every_alarm_notify_it(value, arn):
    t = tpl.load(str(TEMPLATE))
    for region in (SEOUL, OSAKA):
        p = params(AlarmTopicArn=value.format(region=region))
        topic = arn.format(region=region)
        rules = topic_rules(tpl.stack(t, region, ACCOUNT, p))
        assert [(r.logical_id, [x.topic_arn for x in r.targets]) for r in rules] == \
            [("LinkFailedTopicRule", [topic])], rules
        rule = rules[0]
        assert rule.enabled and rule.schedule is None
        # Every "Link Failed" event of this region, and only those: a forwarded copy of another
        # region's event was notified there.
        assert patterns.matches(rule.pattern, link_failed(region))
        assert not patterns.matches(rule.pattern, link_failed(OSAKA if region == SEOUL else SEOUL))
        assert not patterns.matches(rule.pattern, {**link_failed(region), "detail-type": "Link Ready"})
        assert not patterns.matches(rule.pattern, {**link_failed(region), "source": "aws.ec2"})

        found = alarms(t, region, p)
        assert set(found) == set(ALARMS)
        for logical_id, props in found.items():
            assert props["AlarmActions"] == [topic], logical_id
            assert props.get("OKActions") == ([topic] if logical_id in OK_TOO else None), logical_id
            assert props.get("ActionsEnabled", True) is True


def test_without_an_alarm_topic_there_is_no_rule_and_no_alarm_action():
    t = tpl.load(str(TEMPLATE))
    for region in (SEOUL, OSAKA):
        for p in (params(), params(AlarmTopicArn="")):
            stack = tpl.stack(t, region, ACCOUNT, p)
            assert topic_rules(stack) == []
            assert "LinkFailedTopicRule" not in {r.logical_id for r in stack.rules}
            found = alarms(t, region, p)
            assert set(found) == set(ALARMS), "the alarms exist all the same, for the dashboard"
            for logical_id, props in found.items():
                for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                    assert key not in props, (logical_id, key)


def test_a_topic_of_another_region_is_refused_as_a_rule_target():
    t = tpl.load(str(TEMPLATE))
    with pytest.raises(tpl.TemplateError, match="not in the rule's region"):
        tpl.stack(t, OSAKA, ACCOUNT, params(AlarmTopicArn=f"arn:aws:sns:{SEOUL}:{ACCOUNT}:{TOPIC}"))


def test_the_alarms_thresholds_are_the_parameters():
    t = tpl.load(str(TEMPLATE))
    declared = t["Parameters"]
    assert {k: declared[k]["Default"] for k in ("StuckAfterMinutes", "QuotaAlarmPercent",
                                                "ThrottledCallsPerFiveMinutes", "AlarmTopicArn")} == \
        {"StuckAfterMinutes": 30, "QuotaAlarmPercent": 80, "ThrottledCallsPerFiveMinutes": 10, "AlarmTopicArn": ""}
    for p, stuck, quota, throttled in ((params(), 30, 80, 10),
                                       (params(StuckAfterMinutes=45, QuotaAlarmPercent=90,
                                               ThrottledCallsPerFiveMinutes=3), 45, 90, 3)):
        a = alarms(t, SEOUL, p)
        region = [{"Name": "Region", "Value": SEOUL}]

        failing = a["LinkFailingAlarm"]
        assert (failing["Namespace"], failing["MetricName"], failing["Dimensions"], failing["Statistic"]) == \
            ("tagpeer", "LinksFailing", region, "Maximum")
        assert (failing["ComparisonOperator"], failing["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)

        # Stuck: the seconds gauge, in minutes by metric math, against the parameter in minutes.
        stuck_alarm = a["LinkStuckAlarm"]
        assert "MetricName" not in stuck_alarm
        metrics = {m["Id"]: m for m in stuck_alarm["Metrics"]}
        returned = [m for m in metrics.values() if m.get("ReturnData", True)]
        assert len(returned) == 1 and re.fullmatch(r"(\w+) / 60", returned[0]["Expression"])
        source = metrics[re.fullmatch(r"(\w+) / 60", returned[0]["Expression"]).group(1)]["MetricStat"]
        assert (source["Metric"]["Namespace"], source["Metric"]["MetricName"], source["Metric"]["Dimensions"],
                source["Stat"]) == ("tagpeer", "OldestPendingSeconds", region, "Maximum")
        assert (stuck_alarm["ComparisonOperator"], int(stuck_alarm["Threshold"])) == ("GreaterThanThreshold", stuck)

        for logical_id, metric in (("PeeringQuotaAlarm", "PeeringQuotaUsePercent"),
                                   ("RouteQuotaAlarm", "RouteQuotaUsePercent")):
            q = a[logical_id]
            assert (q["Namespace"], q["MetricName"], q["Dimensions"], q["Statistic"]) == \
                ("tagpeer", metric, region, "Maximum")
            assert (q["ComparisonOperator"], int(q["Threshold"])) == ("GreaterThanThreshold", quota)

        # Sustained throttling: all functions (Region only), three 5-minute periods in a row.
        th = a["Ec2ThrottledAlarm"]
        assert (th["Namespace"], th["MetricName"], th["Dimensions"], th["Statistic"]) == \
            ("tagpeer", "Ec2Throttled", region, "Sum")
        assert (th["Period"], th["EvaluationPeriods"], th["DatapointsToAlarm"]) == (300, 3, 3)
        assert (th["ComparisonOperator"], int(th["Threshold"])) == ("GreaterThanThreshold", throttled)
        assert th["TreatMissingData"] == "notBreaching", "no invocation, no throttled call"
        for logical_id in ("LinkFailingAlarm", "LinkStuckAlarm", "PeeringQuotaAlarm", "RouteQuotaAlarm"):
            assert a[logical_id]["TreatMissingData"] == "ignore", "a gauge holds until the router's next value"
        # Any event in the dead-letter queue: SQS's own gauge of it, which SQS sends only while the
        # queue counts as active.
        failed = a["FailedEventsAlarm"]
        (dlq,) = [q for q in tpl.stack(t, SEOUL, ACCOUNT, p).queues.values() if q.logical_id == "FailedEvents"]
        assert (failed["Namespace"], failed["MetricName"], failed["Dimensions"], failed["Statistic"]) == \
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", [{"Name": "QueueName", "Value": dlq.name}], "Maximum")
        assert (failed["ComparisonOperator"], failed["Threshold"], failed["TreatMissingData"]) == \
            ("GreaterThanThreshold", 0, "ignore")
        assert (failed["Period"], failed["EvaluationPeriods"], failed["DatapointsToAlarm"]) == (300, 1, 1)
        # Alarm names are the account's in a region: one stack's alarms apart from another's.
        assert {x["AlarmName"] for x in a.values()} == {
            "tagpeer-link-failing", "tagpeer-link-stuck", "tagpeer-peering-quota", "tagpeer-route-quota",
            "tagpeer-ec2-throttled", "tagpeer-failed-events"}


def _dashboard_metrics(body: dict) -> list[tuple[str, tuple[str, ...], dict]]:
    """Every metric a dashboard's widgets graph: (name, its dimension names, its dimension values),
    rows of the `[namespace, name, dim, value, ..., {options}]` form and SEARCH schemas."""
    found = []
    for widget in body["widgets"]:
        for row in (widget.get("properties") or {}).get("metrics") or []:
            items = [x for x in row if not isinstance(x, dict)]
            if items:
                namespace, name, *dims = items
                assert namespace == "tagpeer", row
                pairs = dict(zip(dims[::2], dims[1::2]))
                found.append((name, tuple(dims[::2]), pairs))
                continue
            expression = row[0].get("expression", "")
            for schema, name, rest in re.findall(r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"([^']*)'", expression):
                namespace, *dims = schema.split(",")
                assert namespace == "tagpeer", expression
                found.append((name, tuple(dims), dict(re.findall(r'(\w+)="([^"]*)"', rest))))
    return found


def test_the_dashboard_graphs_the_contracts_metrics_with_its_dimension_sets():
    t = tpl.load(str(TEMPLATE))
    for region in (SEOUL, OSAKA):
        p = params(QuotaAlarmPercent=75, StuckAfterMinutes=20, ThrottledCallsPerFiveMinutes=5)
        (dashboard,) = tpl.resources(t, region, ACCOUNT, p, "AWS::CloudWatch::Dashboard").values()
        assert dashboard["DashboardName"] == f"tagpeer-{region}", "names are the account's: one per region"
        body = json.loads(dashboard["DashboardBody"])
        graphed = _dashboard_metrics(body)
        for name, dims, values in graphed:
            assert name in DIMENSIONS, name
            assert dims in DIMENSIONS[name], (name, dims)
            assert values.get("Region") == region, (name, values)
            assert values.get("Function", "requester") in FUNCTIONS, values
        names = {name for name, _, _ in graphed}
        assert names >= set(DIMENSIONS) - {"Changes"}, set(DIMENSIONS) - names
        per_function = {(n, v["Function"]) for n, d, v in graphed if d == ("Region", "Function")}
        assert per_function == {(n, f) for n in ("Ec2Calls", "Ec2Throttled", "Errors") for f in FUNCTIONS}
        for widget in body["widgets"]:
            if widget["type"] == "metric":
                assert widget["properties"]["region"] == region

        # The alarm status widget lists every alarm; the quota graphs mark the alarm's threshold.
        arns = {f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{a['AlarmName']}" for a in alarms(t, region, p).values()}
        (status,) = [w for w in body["widgets"] if w["type"] == "alarm"]
        assert set(status["properties"]["alarms"]) == arns and len(arns) == len(ALARMS)
        marks = {}
        for w in body["widgets"]:
            names_here = {n for n, _, _ in _dashboard_metrics({"widgets": [w]})}
            for line in (w.get("properties") or {}).get("annotations", {}).get("horizontal", []):
                for n in names_here:
                    marks.setdefault(n, set()).add(line["value"])
        assert marks["PeeringQuotaUsePercent"] == {75} and marks["RouteQuotaUsePercent"] == {75}
        assert marks["OldestPendingSeconds"] == {20}, "in minutes, as the alarm compares"
        assert marks["Ec2Throttled"] == {5}


# --------------------------------------------------------------- a cloud: the delivery recorded

@pytest.fixture(scope="module")
def topic_cloud():
    """A local cloud of the template with AlarmTopicArn set (a topic name: each region's own), without
    functions: only the rules whose targets are neither functions nor their queues (the topic, the
    other region's bus)."""
    c = lc.LocalCloud(0, TEMPLATE, bin_dir(), [SEOUL, OSAKA], template_params={"AlarmTopicArn": TOPIC})
    for stack in c.stacks.values():
        stack.functions.clear()
        stack.rules[:] = [r for r in stack.rules
                          if r.targets and all(x.function is None and x.queue is None for x in r.targets)]
    assert all(topic_rules(s) for s in c.stacks.values())
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_a_link_failed_event_is_recorded_as_published_to_the_topic_once(topic_cloud):
    c = topic_cloud
    c.reset()
    events = client("events", SEOUL, TESTER, cloud=c)
    for detail_type in ("Link Failed", "Link Ready"):
        detail = link_failed(SEOUL)["detail"]
        answer = events.put_events(Entries=[{"Source": "tagpeer", "DetailType": detail_type,
                                             "Detail": json.dumps(detail)}])
        assert answer["FailedEntryCount"] == 0, answer
    assert c.settle(30)
    status, recorded = local("/_local/events", cloud=c)
    assert status == 200
    published = [e for e in recorded if e["outcome"] == "published"]
    topic = f"arn:aws:sns:{SEOUL}:{ACCOUNT}:{TOPIC}"
    assert [(e["region"], e["rule"], e["target"], e["function"], e["detail_type"]) for e in published] == \
        [(SEOUL, "tagpeer-LinkFailedTopicRule", topic, None, "Link Failed")], recorded
    assert published[0]["event"]["detail"]["error-code"] == "RouteLimitExceeded"
    # Nothing forwards them between regions: the functions put "Link Failed" and "Link Ready" on
    # their own region's bus alone, so Osaka's topic rule never sees Seoul's.
    assert [e for e in recorded if e["outcome"] == "forwarded" or e["region"] == OSAKA] == [], recorded
