"""`make demo`: the seed scenario, told as a story on the local cloud.

    PYTHONPATH=tests .venv/bin/python tools/demo.py

A person builds Seoul's network and starts a server in Seoul and in Osaka with
the AWS CLI, pointed at the local cloud through AWS_ENDPOINT_URL; then tags the
Seoul VPC, and does nothing else. The demo shows what followed: each event, the
rule and function that took it, the API calls the function made, in order, the
final routes on both sides, and the metrics the functions published (their CloudWatch
embedded metric format lines, as the local cloud's GET /_local/metrics has them).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

from localcloud import cloud as localcloud

SEOUL, OSAKA = "ap-northeast-2", "ap-northeast-3"
REPO = Path(__file__).resolve().parents[1]
AWS = REPO / ".venv" / "bin" / "aws"
BIN_DIR = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"
# The counters of the functions' invocation line (the metrics contract, issue 14): summed over the
# run. LinkUpSeconds is a sample per link side; every other metric is a gauge (its latest value).
COUNTERS = ("Ec2Calls", "Ec2Throttled", "Errors", "Changes")
SAMPLES = ("LinkUpSeconds",)
UNITS = {"Seconds": " s", "Milliseconds": " ms", "Percent": " %"}


class Person:
    """Runs the AWS CLI as a person would, pointed at the local cloud."""

    def __init__(self, endpoint: str):
        self.env = dict(os.environ)
        self.env.update({
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "123456789012-operator",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_PAGER": "",
            "AWS_REGION": SEOUL,
            "TAGPEER_REGIONS": f"{SEOUL},{OSAKA}",
        })
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            self.env.pop(var, None)

    def tagpeer(self, *args: str) -> str:
        """The tagpeer command, as a person runs it."""
        print("   $ tagpeer " + " ".join(shlex.quote(a) for a in args))
        out = subprocess.run([str(BIN_DIR / "tagpeer"), *args], env=self.env, capture_output=True, text=True)
        text = (out.stdout + out.stderr).rstrip()
        print("\n".join("     " + line for line in text.splitlines()))
        return text

    def aws(self, region: str, *args: str, show: bool = True, query: str | None = None):
        cmd = [str(AWS), "ec2", *args, "--region", region, "--output", "json"]
        if query:
            cmd += ["--query", query]
        if show:
            print("   $ aws ec2 " + " ".join(shlex.quote(a) for a in args) + f" --region {region}")
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"aws failed: {out.stderr.strip()}")
        return json.loads(out.stdout) if out.stdout.strip() else None


def print_routes(person: Person, region: str, vpc: str, name: str) -> None:
    tables = person.aws(region, "describe-route-tables", "--filters", f"Name=vpc-id,Values={vpc}", show=False)
    print(f"   {name} ({region}, {vpc}):")
    for t in tables["RouteTables"]:
        if t.get("VpcId") != vpc:  # moto may ignore filters
            continue
        main = any(a.get("Main") for a in t.get("Associations", []))
        print(f"     {t['RouteTableId']}{' (main)' if main else ''}")
        for r in t["Routes"]:
            dest = r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock")
            via = r.get("VpcPeeringConnectionId") or r.get("GatewayId") or r.get("NatGatewayId") or "?"
            print(f"       {dest:<18} -> {via}")


def read_metrics(endpoint: str) -> dict:
    """GET /_local/metrics: {"metrics": [datapoint, ...], "rejected": [...]}."""
    with urllib.request.urlopen(endpoint + "/_local/metrics", timeout=60) as r:
        return json.loads(r.read())


def since(answer: dict, mark: dict) -> dict:
    """The part of GET /_local/metrics' `answer` that came after the answer `mark` (by `seq`)."""
    out = {}
    for key in ("metrics", "rejected"):
        last = max((x.get("seq", 0) for x in mark.get(key) or []), default=0)
        out[key] = [x for x in answer.get(key) or [] if x.get("seq", 0) > last]
    return out


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def metrics_table(answer: dict) -> list[str]:
    """The lines that show the metrics of GET /_local/metrics' `answer`, per region and function:
    each EMF line's metrics once (a line publishes a metric once per dimension set: the most specific
    set is the one shown, and its dimensions other than Region and Function name the row), COUNTERS
    summed, SAMPLES' average and maximum, any other metric (a gauge) its latest value. The rejected
    lines follow, with their reasons."""
    chosen: dict[tuple, dict] = {}  # (line, metric) -> its datapoint with the most dimensions
    for p in answer.get("metrics") or []:
        key = (p.get("record"), p.get("namespace"), p["name"])
        if key not in chosen or len(p.get("dimensions") or {}) > len(chosen[key].get("dimensions") or {}):
            chosen[key] = p
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for p in sorted(chosen.values(), key=lambda p: (p.get("timestamp") or 0, p.get("seq", 0))):
        props = p.get("properties") or {}
        region = str(props.get("Region") or p.get("region") or "?")
        function = str(props.get("Function") or p.get("function") or "?")
        extra = {k: v for k, v in (p.get("dimensions") or {}).items() if k not in ("Region", "Function")}
        label = p["name"] + "".join(f" {k}={v}" for k, v in sorted(extra.items()))
        row = groups.setdefault((region, function), {}).setdefault(
            label, {"name": p["name"], "unit": p.get("unit"), "values": [], "lines": 0})
        row["values"].extend(p["values"] if "values" in p else [p["value"]])
        row["lines"] += 1
    lines = []
    for (region, function), rows in sorted(groups.items()):
        shown = []
        for label, row in sorted(rows.items()):
            unit, values, n = UNITS.get(row["unit"], ""), row["values"], row["lines"]
            if row["name"] in COUNTERS:
                shown.append((label, f"{_number(sum(values))}{unit}", f"sum of {n} invocation{'s' * (n != 1)}"))
            elif row["name"] in SAMPLES:
                shown.append((label, f"{_number(sum(values) / len(values))}{unit}",
                              f"average of {len(values)} sample{'s' * (len(values) != 1)}, "
                              f"maximum {_number(max(values))}{unit}"))
            else:
                shown.append((label, f"{_number(values[-1])}{unit}", f"latest of {n}"))
        lines.append(f"{region} {function}:")
        width, value_width = max(len(r[0]) for r in shown), max(len(r[1]) for r in shown)
        lines += [f"  {label:<{width}}  {value:>{value_width}}  {note}" for label, value, note in shown]
    if not lines:
        lines.append("(none: the functions printed no metric line)")
    rejected = answer.get("rejected") or []
    if rejected:
        lines.append(f"{len(rejected)} metric line{'s' * (len(rejected) != 1)} CloudWatch would reject:")
        lines += [f"  {r.get('function')} ({r.get('region')}): {r.get('reason')}" for r in rejected[:5]]
        if len(rejected) > 5:
            lines.append(f"  ... and {len(rejected) - 5} more")
    return lines


def story(cloud: localcloud.LocalCloud) -> int:
    person = Person(cloud.endpoint)
    print(f"1. The local cloud is up at {cloud.endpoint}: moto, the template's rules in {SEOUL} and {OSAKA},")
    print(f"   and {len(cloud.functions)} function processes (requester, accepter, router in each region).\n")

    print("2. Seoul's network, built by hand as the seed does:")
    vpc = person.aws(SEOUL, "create-vpc", "--cidr-block", "10.0.0.0/16",
                     "--tag-specifications", "ResourceType=vpc,Tags=[{Key=Name,Value=seoul}]")["Vpc"]["VpcId"]
    subnet = person.aws(SEOUL, "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.0.6.0/24",
                        "--availability-zone", f"{SEOUL}a")["Subnet"]["SubnetId"]
    igw = person.aws(SEOUL, "create-internet-gateway")["InternetGateway"]["InternetGatewayId"]
    person.aws(SEOUL, "attach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vpc)
    rtb = person.aws(SEOUL, "create-route-table", "--vpc-id", vpc)["RouteTable"]["RouteTableId"]
    person.aws(SEOUL, "associate-route-table", "--route-table-id", rtb, "--subnet-id", subnet)
    person.aws(SEOUL, "create-route", "--route-table-id", rtb, "--destination-cidr-block", "0.0.0.0/0",
               "--gateway-id", igw)

    print("\n   A server in each region:")
    seoul_ami = person.aws(SEOUL, "describe-images", "--owners", "amazon", show=False, query="Images[0].ImageId")
    seoul_server = person.aws(SEOUL, "run-instances", "--image-id", seoul_ami, "--instance-type", "t3.micro",
                              "--subnet-id", subnet, "--private-ip-address", "10.0.6.38")["Instances"][0]
    osaka_vpcs = person.aws(OSAKA, "describe-vpcs", "--filters", "Name=is-default,Values=true", show=False)["Vpcs"]
    osaka_vpc = next(v for v in osaka_vpcs if v.get("IsDefault"))["VpcId"]
    osaka_subnets = person.aws(OSAKA, "describe-subnets", "--filters", f"Name=vpc-id,Values={osaka_vpc}",
                               show=False)["Subnets"]
    osaka_subnet = next(s["SubnetId"] for s in osaka_subnets if s["CidrBlock"] == "172.31.32.0/20")
    osaka_ami = person.aws(OSAKA, "describe-images", "--owners", "amazon", show=False, query="Images[0].ImageId")
    osaka_server = person.aws(OSAKA, "run-instances", "--image-id", osaka_ami, "--instance-type", "t3.micro",
                              "--subnet-id", osaka_subnet, "--private-ip-address", "172.31.39.92")["Instances"][0]
    print(f"\n   Seoul server {seoul_server['InstanceId']}: private IPv4 {seoul_server['PrivateIpAddress']}")
    print(f"   Osaka server {osaka_server['InstanceId']}: private IPv4 {osaka_server['PrivateIpAddress']}"
          f" (in the default VPC {osaka_vpc}, 172.31.0.0/16)")

    print("\n   Each server's security group lets pings in from the other side's range:")
    for region, v, peer_range in ((SEOUL, vpc, "172.31.0.0/16"), (OSAKA, osaka_vpc, "10.0.0.0/16")):
        groups = person.aws(region, "describe-security-groups", "--filters", f"Name=vpc-id,Values={v}",
                            "Name=group-name,Values=default", show=False)["SecurityGroups"]
        group = next(g["GroupId"] for g in groups if g.get("VpcId") == v and g.get("GroupName") == "default")
        person.aws(region, "authorize-security-group-ingress", "--group-id", group, "--protocol", "icmp",
                   "--port", "-1", "--cidr", peer_range)

    print("\n3. Before: neither side knows the other's range, and tagpeer check says why.")
    print_routes(person, SEOUL, vpc, "Seoul")
    print_routes(person, OSAKA, osaka_vpc, "Osaka")
    seoul_id, osaka_id = seoul_server["InstanceId"], osaka_server["InstanceId"]
    before = person.tagpeer("check", seoul_id, osaka_id)
    cloud.settle()
    mark_events, mark_calls = len(cloud.record.events), len(cloud.record.calls)
    mark_metrics = read_metrics(cloud.endpoint)

    print("\n4. A person tags the Seoul VPC, and does nothing else:")
    person.aws(SEOUL, "create-tags", "--resources", vpc, "--tags", f"Key=tagpeer:peers,Value={OSAKA}/{osaka_vpc}")
    cloud.settle()

    print("\n5. What followed, event by event (the local cloud's /_local/events and /_local/calls):")
    with cloud.record.lock:
        events = cloud.record.events[mark_events:]
        calls = {c["seq"]: c for c in cloud.record.calls[mark_calls:]}
    quiet = 0
    failed = False
    for e in sorted(events, key=lambda e: (e.get("time", 0), e["seq"])):
        what = f"\"{e['detail_type']}\" ({e['source']}) in {e['region']}"
        if e["outcome"] == "no rule":
            quiet += 1
            continue
        if e["outcome"] == "forwarded":
            print(f"   {what}: rule {e['rule']} forwards it to {e['target'].split(':')[3]}")
            continue
        if e["outcome"] == "queued":
            print(f"   {what}: rule {e['rule']} -> queue {e['queue']}")
            continue
        failed |= e["outcome"] != "ok"
        if e.get("messages") is not None:  # a batch Lambda read from the function's queue
            batch = f"a batch of {e['messages']} from {e['queue']}: \"{e['detail_type']}\""
            print(f"   {e['function']} in {e['region']}, {batch}: {e['outcome']}")
        else:
            print(f"   {what}: rule {e['rule']} -> {e['target']}: {e['outcome']}")
        for c in (calls[seq] for seq in e["calls"]):  # the calls this invocation made, in order
            print(f"       {c['action']:<28} {c['region']}  {c['error'] or 'ok'}")
    print(f"   ({quiet} more events matched no rule: tagpeer's own status tags, CloudTrail's records of the calls, "
          "and tagpeer's events on their sender's own bus where no function there acts on them.)")

    print("\n6. The routes after:")
    print_routes(person, SEOUL, vpc, "Seoul")
    print_routes(person, OSAKA, osaka_vpc, "Osaka")
    for name, region, v in (("Seoul", SEOUL, vpc), ("Osaka", OSAKA, osaka_vpc)):
        tags = person.aws(region, "describe-vpcs", "--vpc-ids", v, show=False, query="Vpcs[0].Tags") or []
        status = next((t["Value"] for t in tags if t["Key"] == "tagpeer-status"), "(none)")
        print(f"   {name} tagpeer-status: {status}")
    ready = all(
        "ready via pcx-" in next((t["Value"] for t in (person.aws(r, "describe-vpcs", "--vpc-ids", v, show=False,
                                                                     query="Vpcs[0].Tags") or [])
                                  if t["Key"] == "tagpeer-status"), "")
        for r, v in ((SEOUL, vpc), (OSAKA, osaka_vpc))
    )
    print("\n7. tagpeer's own view: the servers reach each other, both ways, and the link's state.")
    there = person.tagpeer("check", seoul_id, osaka_id)
    back = person.tagpeer("check", osaka_id, seoul_id)
    person.tagpeer("status")

    print("\n8. The metrics the functions published since the tag (their EMF lines, GET /_local/metrics):")
    print("\n".join("   " + line for line in metrics_table(since(read_metrics(cloud.endpoint), mark_metrics))))
    checks_agree = before.startswith("unreachable") and there.startswith("reachable") and back.startswith("reachable")
    if not checks_agree:
        print("\ntagpeer check does not agree with the story.", file=sys.stderr)
    if failed or not ready or not checks_agree:
        print("\nThe link did not become ready.", file=sys.stderr)
        return 1
    print(f"\n{seoul_server['PrivateIpAddress']} and {osaka_server['PrivateIpAddress']} now route to each other "
          "through the peering connection.")
    return 0


def main() -> None:
    cloud = localcloud.LocalCloud(localcloud.free_port(), REPO / "infra-template" / "template.yaml", BIN_DIR,
                                  [SEOUL, OSAKA])
    print("tagpeer demo: the seed scenario (Seoul <-> Osaka) on the local cloud\n")
    try:
        cloud.start()
        code = story(cloud)
    finally:
        cloud.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
