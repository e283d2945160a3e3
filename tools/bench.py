"""`make bench`: tagpeer's figures, measured on the local cloud, written to BENCHMARKS.md.

    PYTHONPATH=tests .venv/bin/python tools/bench.py --profile release=BIN_DIR,LAMBDA_DIR
        [--profile baseline=...] [--out BENCHMARKS.md]

Each `--profile` names a release profile's x86_64 binaries (BIN_DIR, where `cargo build
--release` put them) and its arm64 zips (LAMBDA_DIR, where `cargo lambda build --release
--arm64 --output-format zip` put `<function>/bootstrap.zip`). The first profile is the one
the workflow figures (items 2 to 4) run on.

1. artifacts and cold starts: each function's zip, and, per cold start under the local
   cloud's Lambda Runtime API (tests/localcloud/runtime.py), its init duration, first
   invocation duration and peak memory (VmHWM of its process);
2. the EC2 calls that bring the seed's link to ready and take it down, per function and
   action, from GET /_local/calls;
3. a mesh of 24 VPCs over 3 regions (276 links), under the local cloud's AWS-like throttle
   when it has one;
4. a sweep with nothing to do, at 24 and at 96 VPCs.

The benchmark reports; it asserts nothing about time. A reader judges the figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import tomllib
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from localcloud import awsevents, runtime
from localcloud.cloud import free_port

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
SEOUL, OSAKA, TOKYO = "ap-northeast-2", "ap-northeast-3", "ap-northeast-1"
FUNCTIONS = ["tagpeer-requester", "tagpeer-accepter", "tagpeer-router", "tagpeer-provisioner"]
SHORT = {f: f.removeprefix("tagpeer-") for f in FUNCTIONS}
# The harness's own calls are recorded under this caller, apart from the functions'.
HARNESS_KEY = f"{ACCOUNT}-bench"

def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the local cloud


class Cloud:
    """`python -m localcloud` in a process of its own, on a free loopback port."""

    def __init__(self, bin_dir: Path, regions: list[str]):
        self.regions = regions
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localcloud", "--port", str(self.port), "--bin-dir", str(bin_dir),
             "--regions", ",".join(regions), "--log-level", "info"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 180
        while True:
            line = self.proc.stdout.readline()
            if line.startswith("ready "):
                break
            if not line and self.proc.poll() is not None:
                raise SystemExit(f"the local cloud exited with {self.proc.returncode}")
            if time.time() > deadline:
                self.stop()
                raise SystemExit("the local cloud did not say ready within 180 s")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # drain

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Cloud":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float = 3600):
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code == 504:  # not settled within the local cloud's 300 s: the caller waits again
                return json.loads(e.read() or b"null")
            raise

    def settle(self) -> None:
        while not self._request("POST", "/_local/settle").get("settled"):
            # The local cloud gives up after 300 s; a long run waits again.
            log(f"  still settling: {len(self.calls())} calls, {len(self.events())} deliveries so far")

    def schedule(self) -> None:
        if not self._request("POST", "/_local/schedule").get("settled"):
            self.settle()

    def calls(self) -> list[dict]:
        return self._request("GET", "/_local/calls")

    def events(self) -> list[dict]:
        return self._request("GET", "/_local/events")

    def faults(self, spec: dict):
        return self._request("POST", "/_local/faults", spec)

    def reset(self) -> None:
        self._request("POST", "/_local/reset")

    def ec2(self, region: str):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "ec2", region_name=region, endpoint_url=self.endpoint, aws_access_key_id=HARNESS_KEY,
            aws_secret_access_key="local",
            config=Config(retries={"mode": "standard", "max_attempts": 20}, max_pool_connections=32))

    def function_pids(self) -> dict[tuple[str, str], int]:
        """(function, region) -> PID of the function processes the local cloud runs."""
        out = {}
        for pid in _children(self.proc.pid):
            env = _environ(pid)
            if env.get("AWS_LAMBDA_FUNCTION_NAME"):
                binary = Path(os.readlink(f"/proc/{pid}/exe")).name
                out[(binary, env.get("AWS_REGION", ""))] = pid
        return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            kids.append(int(entry))
    return kids


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    return dict(item.decode("utf-8", "replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def vm_hwm_kb(pid: int) -> int | None:
    """The process's peak resident set (VmHWM), in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def caller_function(caller: str) -> tuple[str, str] | None:
    """`123456789012-tagpeer-router-ap-northeast-2` -> ("tagpeer-router", "ap-northeast-2")."""
    for f in FUNCTIONS:
        prefix = f"{ACCOUNT}-{f}-"
        if caller.startswith(prefix):
            return f, caller[len(prefix):]
    return None


# --------------------------------------------------------------------------- building networks


def build_seed(cloud: Cloud) -> dict:
    """Seoul's network as the seed builds it by hand (tests/src/lib.rs build_seed), and Osaka's default VPC."""
    seoul = cloud.ec2(SEOUL)

    def named(kind: str, name: str) -> list:
        return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]

    vpc = seoul.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=named("vpc", "seoul"))["Vpc"]["VpcId"]
    subnet = seoul.create_subnet(VpcId=vpc, CidrBlock="10.0.6.0/24", AvailabilityZone=f"{SEOUL}a",
                                 TagSpecifications=named("subnet", "seoul-a"))["Subnet"]["SubnetId"]
    igw = seoul.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    seoul.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = seoul.create_route_table(VpcId=vpc, TagSpecifications=named("route-table", "seoul-public"))
    table = table["RouteTable"]["RouteTableId"]
    seoul.associate_route_table(RouteTableId=table, SubnetId=subnet)
    seoul.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return {"seoul": vpc, "osaka": default_vpc(cloud, OSAKA), "table": table}


def default_vpc(cloud: Cloud, region: str) -> str:
    vpcs = cloud.ec2(region).describe_vpcs()["Vpcs"]
    return next(v["VpcId"] for v in vpcs if v.get("IsDefault"))


def statuses(cloud: Cloud, regions: list[str]) -> dict[str, str]:
    """vpc id -> tagpeer-status, one DescribeVpcs a region (recorded under the harness's caller)."""
    out = {}
    for region in regions:
        for v in cloud.ec2(region).describe_vpcs()["Vpcs"]:
            tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
            out[v["VpcId"]] = tags.get("tagpeer-status", "")
    return out


def ready_parts(status: str) -> int:
    return sum(1 for part in status.split("; ") if ": ready via pcx-" in part)


def tag(cloud: Cloud, region: str, vpc: str, key: str, value: str | None) -> None:
    client = cloud.ec2(region)
    if value is None:
        client.delete_tags(Resources=[vpc], Tags=[{"Key": key}])
    else:
        client.create_tags(Resources=[vpc], Tags=[{"Key": key, "Value": value}])


def build_vpcs(cloud: Cloud, regions: list[str], count: int) -> list[tuple[str, str, str]]:
    """`count` VPCs spread over `regions` in turn, each with its own 10.N.0.0/16 (or 10.N.M.0/20
    beyond 255): (region, vpc id, cidr). Each has its main route table, nothing else."""
    out = []
    for i in range(count):
        region = regions[i % len(regions)]
        n = i + 1
        cidr = f"10.{n}.0.0/16" if n < 256 else f"11.{n - 255}.0.0/16"
        vpc = cloud.ec2(region).create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        out.append((region, vpc, cidr))
    return out


# --------------------------------------------------------------------------- summaries


def function_calls(calls: list[dict]) -> list[dict]:
    return [c for c in calls if caller_function(c.get("caller", ""))]


def invocations(events: list[dict], since: float) -> list[dict]:
    return sorted((e for e in events if e.get("function") and e.get("time", 0) >= since), key=lambda e: e["time"])


# --------------------------------------------------------------------------- 1. artifacts and cold starts


def artifacts(lambda_dir: Path) -> dict[str, dict]:
    import zipfile
    out = {}
    for f in FUNCTIONS:
        z = lambda_dir / f / "bootstrap.zip"
        if not z.exists():
            out[f] = {"zip": None, "binary": None}
            continue
        with zipfile.ZipFile(z) as archive:
            unzipped = sum(i.file_size for i in archive.infolist())
        out[f] = {"zip": z.stat().st_size, "binary": unzipped}
    return out


def cold_start(cloud: Cloud, bin_dir: Path, function: str, event: dict, region: str) -> dict:
    """One cold start of `function`: a new process behind the Runtime API, one invocation."""
    env = {
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": cloud.endpoint,
        "AWS_ACCESS_KEY_ID": f"{ACCOUNT}-cold-{function}-{region}",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TAGPEER_REGIONS": ",".join(cloud.regions),
        "TAGPEER_EVENT_BUS": "default",
        "RUST_LOG": "info",
    }
    fn = runtime.Function(f"bench-{function}", [str(bin_dir / function)], env, concurrency=1, timeout=60)
    fn.start()
    try:
        pid = fn.pids[0]
        result = fn.invoke(event)
        hwm = vm_hwm_kb(pid)
    finally:
        fn.stop()
    if not result.ok:
        log(f"{function}: cold invocation failed: {result.error}")
    return {"init_ms": result.init_duration_ms, "first_ms": result.duration_ms, "hwm_kb": hwm, "ok": result.ok}


def cold_starts(cloud: Cloud, bin_dir: Path, seed: dict, runs: int) -> dict[str, list[dict]]:
    """Cold starts of each function on the converged seed: the requester, accepter and router
    with the schedule's event (a full observation of both regions, nothing to change), the
    provisioner with a "Network Requested" event (it builds a network each time)."""
    out: dict[str, list[dict]] = {f: [] for f in FUNCTIONS}
    scheduled = awsevents.envelope("Scheduled Event", "aws.events", ACCOUNT, SEOUL,
                                   [f"arn:aws:events:{SEOUL}:{ACCOUNT}:rule/tagpeer-sweep"], {})
    for i in range(runs):
        for f in FUNCTIONS:
            if f == "tagpeer-provisioner":
                event = awsevents.envelope("Network Requested", "tagpeer", ACCOUNT, SEOUL, [],
                                           {"region": SEOUL, "name": f"bench-cold-{i}", "subnets": 1})
            else:
                event = scheduled
            out[f].append(cold_start(cloud, bin_dir, f, event, SEOUL))
        cloud.settle()
    return out


# --------------------------------------------------------------------------- 2. one link


def seed_link(cloud: Cloud) -> dict:
    seed = build_seed(cloud)
    cloud.settle()
    mark = len(cloud.calls())
    t0 = time.time()
    tag(cloud, SEOUL, seed["seoul"], "tagpeer:peers", f"{OSAKA}/{seed['osaka']}")
    cloud.settle()
    up_s = time.time() - t0
    calls = cloud.calls()[mark:]
    up_invocations = invocations(cloud.events(), t0)
    st = statuses(cloud, [SEOUL, OSAKA])
    ready = ready_parts(st.get(seed["seoul"], "")) == 1 and ready_parts(st.get(seed["osaka"], "")) == 1
    if not ready:
        log(f"seed: not ready after the tag: {st.get(seed['seoul'])!r} / {st.get(seed['osaka'])!r}")
    up = {"calls": calls, "invocations": up_invocations, "seconds": up_s, "ready": ready, "status": st}

    # Keep the link for the cold starts (an idle sweep of a converged link); tear it down after.
    return {"seed": seed, "up": up}


def seed_teardown(cloud: Cloud, seed: dict) -> dict:
    cloud.settle()
    mark = len(cloud.calls())
    t0 = time.time()
    tag(cloud, SEOUL, seed["seoul"], "tagpeer:peers", None)
    cloud.settle()
    down_s = time.time() - t0
    calls = cloud.calls()[mark:]
    st = statuses(cloud, [SEOUL, OSAKA])
    peerings = cloud.ec2(SEOUL).describe_vpc_peering_connections()["VpcPeeringConnections"]
    # `deleting` is on its way: AWS takes a few seconds over an inter-region delete.
    live = [p for p in peerings if p["Status"]["Code"] not in ("deleting", "deleted", "rejected", "failed", "expired")]
    tables = cloud.ec2(SEOUL).describe_route_tables()["RouteTables"] + cloud.ec2(OSAKA).describe_route_tables()[
        "RouteTables"]
    pcx_routes = sum(1 for t in tables for r in t.get("Routes", []) if r.get("VpcPeeringConnectionId"))
    done = not live and pcx_routes == 0
    if not done:
        log(f"teardown: {len(live)} live connections and {pcx_routes} peering routes left")
    return {"calls": calls, "invocations": invocations(cloud.events(), t0), "seconds": down_s, "done": done,
            "status": st}


# --------------------------------------------------------------------------- 3. mesh, 4. idle sweeps


def missing_links(cloud: Cloud, regions: list[str], vpcs: list[tuple[str, str, str]],
                  wanted: list[tuple[int, int]]) -> int:
    """How many of the `wanted` links (pairs of indexes into `vpcs`) are not done: an active connection
    tagpeer made between the two, and the peer's range through it in every route table of each side.
    Two describe calls a region, recorded under the harness's caller. (The status tags cannot tell: a
    tag value holds 256 characters, a few links' worth.)"""
    peerings, tables = {}, []
    for region in regions:
        client = cloud.ec2(region)
        for p in client.describe_vpc_peering_connections()["VpcPeeringConnections"]:
            # The requester's region's view: only it carries the connection's tags (AWS keeps
            # tags per account and region), so the accepter's listing must not replace it.
            if p["RequesterVpcInfo"].get("Region", region) == region or p["VpcPeeringConnectionId"] not in peerings:
                peerings[p["VpcPeeringConnectionId"]] = p
        tables += client.describe_route_tables()["RouteTables"]
    active = {}
    for pcx, p in peerings.items():
        tags = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
        if p["Status"]["Code"] == "active" and tags.get("tagpeer-managed") == "true":
            active[frozenset((p["RequesterVpcInfo"]["VpcId"], p["AccepterVpcInfo"]["VpcId"]))] = pcx
    routes: dict[str, set] = {}
    for t in tables:
        for r in t.get("Routes", []):
            if r.get("VpcPeeringConnectionId"):
                routes.setdefault(t["VpcId"], set()).add((t["RouteTableId"], r.get("DestinationCidrBlock"),
                                                          r["VpcPeeringConnectionId"]))
    table_ids: dict[str, set] = {}
    for t in tables:
        table_ids.setdefault(t["VpcId"], set()).add(t["RouteTableId"])
    missing = 0
    for i, j in wanted:
        (_, a, a_cidr), (_, b, b_cidr) = vpcs[i], vpcs[j]
        pcx = active.get(frozenset((a, b)))
        done = pcx is not None and all(
            (table, peer_cidr, pcx) in routes.get(vpc, set())
            for vpc, peer_cidr in ((a, b_cidr), (b, a_cidr)) for table in table_ids.get(vpc, ()))
        missing += not done
    return missing


def converge(cloud: Cloud, vpcs: list[tuple[str, str, str]], wanted: list[tuple[int, int]],
             max_sweeps: int) -> tuple[bool, int]:
    """Settles, then runs the schedule until every wanted link is done. Returns (converged, sweeps it took)."""
    cloud.settle()
    for sweeps in range(max_sweeps + 1):
        missing = missing_links(cloud, cloud.regions, vpcs, wanted)
        if not missing:
            return True, sweeps
        log(f"  {missing} of {len(wanted)} links not done yet" + (f"; sweep {sweeps + 1}" if sweeps < max_sweeps else ""))
        if sweeps < max_sweeps:
            cloud.schedule()
    return False, max_sweeps


def mesh(cloud: Cloud, count: int, throttle: bool, max_sweeps: int) -> dict:
    regions = cloud.regions
    vpcs = build_vpcs(cloud, regions, count)
    cloud.settle()
    throttle_spec = None
    if throttle:
        throttle_spec = cloud.faults({"throttle": True})
    mark = len(cloud.calls())
    t0 = time.time()
    for region, vpc, _ in vpcs:
        tag(cloud, region, vpc, "tagpeer:mesh", "bench")
    tagged_s = time.time() - t0
    cloud.settle()
    event_s = time.time() - t0
    wanted = [(i, j) for i in range(count) for j in range(i + 1, count)]
    ok, sweeps = converge(cloud, vpcs, wanted, max_sweeps)
    total_s = time.time() - t0
    calls = cloud.calls()[mark:]
    result = {"vpcs": vpcs, "links": count * (count - 1) // 2, "calls": calls, "tagged_s": tagged_s,
              "event_s": event_s, "total_s": total_s, "converged": ok, "sweeps": sweeps,
              "invocations": invocations(cloud.events(), t0), "throttle": throttle_spec}
    return result


def idle_sweep(cloud: Cloud, label: str, links: int) -> dict:
    cloud.settle()
    vpcs = sum(len(cloud.ec2(r).describe_vpcs()["Vpcs"]) for r in cloud.regions)
    tables = sum(len(cloud.ec2(r).describe_route_tables()["RouteTables"]) for r in cloud.regions)
    peerings = {p["VpcPeeringConnectionId"] for r in cloud.regions
                for p in cloud.ec2(r).describe_vpc_peering_connections()["VpcPeeringConnections"]}
    mark = len(cloud.calls())
    t0 = time.time()
    cloud.schedule()
    seconds = time.time() - t0
    calls = cloud.calls()[mark:]
    fcalls = [c for c in function_calls(calls) if c.get("service") == "ec2"]
    puts = [c for c in function_calls(calls) if c.get("action") == "PutEvents"]
    mutating = [c for c in fcalls if not c["action"].startswith(READ_ONLY)]
    invs = invocations(cloud.events(), t0)
    return {"label": label, "regions": len(cloud.regions), "vpcs": vpcs, "links": links, "tables": tables,
            "peerings": len(peerings), "puts": len(puts),
            "calls": len(fcalls), "mutating": len(mutating), "invocations": len(invs), "seconds": seconds,
            "by_action": Counter(c["action"] for c in fcalls),
            "max_ms": max((e.get("duration_ms") or 0 for e in invs), default=0)}


# Regions for the idle sweeps by region count: ten of AWS's, any of which moto serves.
MANY_REGIONS = ["ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2",
                "eu-central-1", "eu-west-1", "us-east-1", "us-east-2", "us-west-2"]


def ring(cloud: Cloud) -> int:
    """One VPC a region, each naming the next region's with `tagpeer:peers` (two regions: one
    link), converged by events alone. Returns the number of links."""
    vpcs = build_vpcs(cloud, cloud.regions, len(cloud.regions))
    links = len(vpcs) if len(vpcs) > 2 else 1
    for i in range(links):
        (region, vpc, _), (peer_region, peer, _) = vpcs[i], vpcs[(i + 1) % len(vpcs)]
        tag(cloud, region, vpc, "tagpeer:peers", f"{peer_region}/{peer}")
    cloud.settle()
    return links


def pairs(cloud: Cloud, count: int, max_sweeps: int) -> tuple[list, int]:
    """`count` VPCs over the regions, joined in pairs across regions with `tagpeer:peers`."""
    regions = cloud.regions
    vpcs = build_vpcs(cloud, regions, count)
    cloud.settle()
    for a, b in zip(vpcs[0::2], vpcs[1::2]):
        tag(cloud, a[0], a[1], "tagpeer:peers", f"{b[0]}/{b[1]}")
    ok, _ = converge(cloud, vpcs, [(i, i + 1) for i in range(0, count - 1, 2)], max_sweeps)
    if not ok:
        log(f"{count} VPCs in pairs did not converge")
    return vpcs, count // 2


# --------------------------------------------------------------------------- the report


def planner(binary: Path, sizes: list[int]) -> list[dict]:
    """The planner alone (functions/core/examples/planner.rs, a release build): one JSON line per
    world size, as the example prints it."""
    out = subprocess.run([str(binary), *map(str, sizes)], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gb = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) / 1024 / 1024
    except (OSError, StopIteration):
        pass

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    import moto
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {mem_gb:.0f} GB, {platform.system()} {platform.release()}",
        "rustc": version(["rustc", "--version"]),
        "cargo-lambda": version([str(REPO / ".venv" / "bin" / "cargo-lambda"), "lambda", "--version"]),
        "python": platform.python_version(),
        "moto": moto.__version__,
        "commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


READ_ONLY = ("Describe", "Get", "List", "Search")


# =========================================================================== the report (BENCHMARKS.md)


def _caller_function(caller: str) -> tuple[str, str] | None:
    for f in FUNCTIONS:
        prefix = f"{ACCOUNT}-{f}-"
        if caller.startswith(prefix):
            return SHORT[f], caller[len(prefix):]
    return None


def _fcalls(calls: list[dict]) -> list[dict]:
    return [c for c in calls if _caller_function(c.get("caller", ""))]


def _throttled(c: dict) -> bool:
    return bool(c.get("throttled")) or c.get("error") == "RequestLimitExceeded"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kib(n) -> str:
    return "-" if n is None else f"{n / 1024:,.0f} KiB"


def _mib(n) -> str:
    return "-" if n is None else f"{n / 1024 / 1024:.2f} MiB"


def _range(values, unit: str, digits: int = 0) -> str:
    """median (min-max) unit"""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return (f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}) {unit}")


def _ms(values) -> str:
    return _range(values, "ms")


def _pct(before, after) -> str:
    if not before or after is None:
        return ""
    return f" ({(after - before) / before * 100:+.0f}%)"


def _profile_settings(label: str) -> str:
    """The `[profile.LABEL]` section of the root Cargo.toml, as `key = value, ...`."""
    try:
        manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return "?"
    section = manifest.get("profile", {}).get(label)
    if section is None:
        return "Cargo's defaults" if label == "release" else "?"
    def toml(v) -> str:
        return str(v).lower() if isinstance(v, bool) else f'"{v}"' if isinstance(v, str) else str(v)
    return ", ".join(f"`{k} = {toml(v)}`" for k, v in section.items())


# --------------------------------------------------------------------------- 1


def section_artifacts(report: dict, profiles: list) -> str:
    labels = [p[0] for p in profiles]
    out = ["## 1. Artifacts, cold start and memory", ""]
    out.append("Profiles measured (root `Cargo.toml`; a profile that `inherits` takes `[profile.release]` "
               "and changes what it names):")
    out.append("")
    for label in labels:
        out.append(f"- **{label}**: {_profile_settings(label)}")
    out.append("")
    if len(labels) == 1:
        out.append(f"Only `{labels[0]}` was measured in this run; `make bench` measures `release-baseline` "
                   f"(Cargo's defaults: {_profile_settings('release-baseline')}) beside it by default.")
        out.append("")
    out.append("Zip: `cargo lambda build --release --arm64 --output-format zip` (with `--profile` for the others), "
               "the file Lambda receives; unzipped: the `bootstrap` inside it. The x86_64 binary is the same "
               "code built for this machine, the one the cold starts run.")
    out.append("")
    base = report["profiles"][labels[0]]
    rows = []
    for f in FUNCTIONS:
        for label in labels:
            p = report["profiles"][label]
            a = p["artifacts"].get(f, {})
            b0 = base["artifacts"].get(f, {})
            rows.append([SHORT[f], label, _kib(a.get("zip")) + (_pct(b0.get("zip"), a.get("zip")) if label != labels[0] else ""),
                         _mib(a.get("binary")),
                         _mib(p["binaries"].get(f)) + (_pct(base["binaries"].get(f), p["binaries"].get(f))
                                                       if label != labels[0] else "")])
    out.append(_table(["function", "profile", "arm64 zip", "arm64 bootstrap", "x86_64 binary"], rows))
    out.append("")
    if any(report["profiles"][label]["artifacts"].get(f, {}).get("zip") is None for label in labels for f in FUNCTIONS):
        out.append("`-`: not built for this run (the builds of this run were made by hand, one at a time, and "
                   "time ran out before that one).")
        out.append("")
    runs = len(next(iter(base["cold"].values()), []))
    out.append(f"Cold starts on this machine (x86_64), {runs} each, median (min-max). Each is a new process behind "
               "the local cloud's Lambda Runtime API (`tests/localcloud/runtime.py`): **init** is from spawning "
               "the process to its first `GET /runtime/invocation/next` (reading the configuration, building the "
               "SDK clients); **first invocation** from handing over the event to the response. The requester, "
               "accepter and router are given the schedule's event on the converged seed (one full observation of "
               "both regions, six describe calls, nothing to change); the provisioner a \"Network Requested\" "
               "event (it builds a VPC, a subnet, a gateway and a route table: about ten calls). **Peak memory** "
               "is the process's `VmHWM` (`/proc/PID/status`) after that invocation. Lambda's own figures add "
               "its sandbox and the network to AWS; these are the functions' share.")
    out.append("")
    rows = []
    for f in FUNCTIONS:
        for label in labels:
            cold = report["profiles"][label]["cold"].get(f, [])
            rows.append([SHORT[f], label, _ms([c["init_ms"] for c in cold]), _ms([c["first_ms"] for c in cold]),
                         _range([c["hwm_kb"] / 1024 for c in cold if c["hwm_kb"]], "MiB", 1),
                         sum(1 for c in cold if c["ok"])])
    out.append(_table(["function", "profile", "init", "first invocation", "peak memory (VmHWM)", "ok"], rows))
    out.append("")
    hwm = report["profiles"][labels[0]].get("workflow_hwm", {})
    if hwm:
        peak = max(v for v in hwm.values() if v)
        out.append(f"The warm processes of the seed's run ({labels[0]}), after the link came up: peak memory "
                   f"{min(v for v in hwm.values() if v) / 1024:.1f}-{peak / 1024:.1f} MiB "
                   "over the eight (four functions, two regions), against the template's `MemorySize: 128`.")
        out.append("")
    out.append("Dependency features were already minimal and are left as they are: every AWS crate "
               "(`aws-config`, `aws-sdk-ec2`, `aws-sdk-eventbridge`) has `default-features = false` with only "
               "`rt-tokio`, `default-https-client` (rustls, the SDK's own choice of TLS; no OpenSSL to link or "
               "ship) and `behavior-version-latest`; `lambda_runtime` has only `tracing`; `aws_lambda_events` only "
               "`eventbridge`; `tracing-subscriber` only `fmt`, `json`, `env-filter`, `std`. `aws-sdk-ec2` is "
               "most of every binary: it is one crate with every EC2 operation, and the linker keeps only what "
               "is called, which LTO helps it find.")
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- 2


MIN_UP = {
    # action: {function: count}
    "DescribeVpcs": {"requester": 2, "accepter": 1, "router": 3},
    "DescribeVpcPeeringConnections": {"requester": 1, "accepter": 1, "router": 2},
    "DescribeRouteTables": {"router": 2},
    "CreateVpcPeeringConnection": {"requester": 1},
    "AcceptVpcPeeringConnection": {"accepter": 1},
    "CreateRoute": {"router": 3},
    "CreateTags": {"router": 2},
    "PutEvents": {"requester": 1, "accepter": 1, "router": 2},
}
MIN_DOWN = {
    "DescribeVpcs": {"requester": 2, "router": 1},
    "DescribeVpcPeeringConnections": {"requester": 1},
    "DescribeRouteTables": {"requester": 2},
    "DeleteRoute": {"requester": 3},
    "DeleteVpcPeeringConnection": {"requester": 1},
    "DeleteTags": {"requester": 1, "router": 1},
    "PutEvents": {"requester": 1},
}
ROLES = ["requester", "accepter", "router"]


def _per_action(calls: list[dict], minimum: dict) -> tuple[str, dict]:
    counts: dict[str, Counter] = defaultdict(Counter)
    errors: Counter = Counter()
    for c in _fcalls(calls):
        fn, _ = _caller_function(c["caller"])
        counts[c["action"]][fn] += 1
        if c.get("status", 200) >= 300:
            errors[c["action"]] += 1
    actions = sorted(set(counts) | set(minimum),
                     key=lambda a: (a == "PutEvents", not a.startswith(READ_ONLY), a))
    rows = []
    tot = Counter()
    for a in actions:
        row = [f"`{a}`"]
        for r in ROLES:
            have, need = counts[a][r], minimum.get(a, {}).get(r, 0)
            row.append(f"{have} / {need}" if have or need else "")
            tot[(r, "have")] += have
            tot[(r, "need")] += need
        have, need = sum(counts[a].values()), sum(minimum.get(a, {}).values())
        row.append(f"**{have} / {need}**")
        row.append(errors[a] or "")
        rows.append(row)
    rows.append(["all"] + [f"{tot[(r, 'have')]} / {tot[(r, 'need')]}" for r in ROLES]
                + [f"**{sum(tot[(r, 'have')] for r in ROLES)} / {sum(tot[(r, 'need')] for r in ROLES)}**", ""])
    summary = {
        "ec2": sum(1 for c in _fcalls(calls) if c["service"] == "ec2"),
        "reads": sum(1 for c in _fcalls(calls) if c["action"].startswith(READ_ONLY)),
        "writes": sum(1 for c in _fcalls(calls) if c["service"] == "ec2" and not c["action"].startswith(READ_ONLY)),
        "events": sum(1 for c in _fcalls(calls) if c["action"] == "PutEvents"),
        "min_reads": sum(sum(v.values()) for a, v in minimum.items() if a.startswith(READ_ONLY)),
        "min_writes": sum(sum(v.values()) for a, v in minimum.items()
                          if not a.startswith(READ_ONLY) and a != "PutEvents"),
        "min_events": sum(minimum.get("PutEvents", {}).values()),
        "errors": sum(errors.values()),
    }
    return _table(["action", "requester", "accepter", "router", "all", "errors"], rows), summary


def _owned(invocations: list[dict], calls: list[dict]) -> dict[int, list]:
    """The calls each invocation made (index into `invocations` -> calls): the local cloud records on
    each call the invocation that made it (`invocation`, the delivery's own)."""
    if any("invocation" not in c for c in calls):
        raise SystemExit("bench: the calls carry no `invocation` (a --json from before the local cloud recorded "
                         "it): measure again")
    index = {e["invocation"]: n for n, e in enumerate(invocations) if e.get("invocation")}
    owned: dict[int, list] = defaultdict(list)
    for c in calls:
        if c.get("invocation") in index:
            owned[index[c["invocation"]]].append(c)
    return owned


def _invocation_rows(invocations: list[dict], calls: list[dict]) -> str:
    """One row an invocation, with the calls it made."""
    owned = _owned(invocations, calls)
    rows = []
    for n, e in enumerate(invocations):
        fn = _caller_function(e.get("caller", ""))
        mine = owned.get(n, [])
        acted = [c["action"] for c in mine if not c["action"].startswith(READ_ONLY)]
        rows.append([fn[0] if fn else "?", e.get("region"), e.get("detail_type"), e.get("outcome"),
                     f"{e.get('duration_ms') or 0:.0f} ms", len(mine) - len(acted),
                     ", ".join(f"{a} x{n}" if n > 1 else a for a, n in Counter(acted).items())])
    return _table(["function", "region", "triggered by", "outcome", "duration", "reads", "writes"], rows)


def section_link(report: dict) -> str:
    up, down = report["seed_up"], report["seed_down"]
    up_table, s_up = _per_action(up["calls"], MIN_UP)
    down_table, s_down = _per_action(down["calls"], MIN_DOWN)
    out = ["## 2. One link: EC2 calls to ready and back", ""]
    out.append("The seed: Seoul's VPC `10.0.0.0/16` built as the seed builds it by hand (a subnet, an internet "
               "gateway, a route table with its association and default route: two route tables in all, the main "
               "one and the public one), Osaka's default VPC `172.31.0.0/16` (its main route table), then one "
               "`CreateTags` of `tagpeer:peers = ap-northeast-3/<Osaka's VPC>` on Seoul's VPC, and nothing else "
               "until the local cloud is settled. The calls are the functions' own (each function process has its "
               "own access key, so `GET /_local/calls` tells them from the harness's); each cell is "
               "**made / minimum**.")
    out.append("")
    out.append(f"**Up** ({'ready on both sides' if up['ready'] else 'NOT READY'}, {up['seconds']:.2f} s from the tag "
               f"to settled on the local cloud): {s_up['ec2']} EC2 calls ({s_up['reads']} reads, {s_up['writes']} "
               f"writes) and {s_up['events']} `PutEvents`, in {len(up['invocations'])} invocations; the minimum is "
               f"{s_up['min_reads'] + s_up['min_writes']} EC2 calls ({s_up['min_reads']} reads, {s_up['min_writes']} "
               f"writes) and {s_up['min_events']} `PutEvents`, in 4 invocations.")
    out.append("")
    out.append(up_table)
    out.append("")
    out.append(_invocation_rows(up["invocations"], up["calls"]))
    out.append("")
    out.append(f"**Down** (`DeleteTags` of `tagpeer:peers`; {'connection deleted, no peering route left' if down['done'] else 'NOT DONE'}, "
               f"{down['seconds']:.2f} s): {s_down['ec2']} EC2 calls ({s_down['reads']} reads, {s_down['writes']} "
               f"writes, {s_down['errors']} of them answered with an error) and {s_down['events']} `PutEvents`, "
               f"in {len(down['invocations'])} invocations; the minimum is {s_down['min_reads'] + s_down['min_writes']} "
               f"EC2 calls ({s_down['min_reads']} reads, {s_down['min_writes']} writes) and {s_down['min_events']} "
               "`PutEvents`.")
    out.append("")
    out.append(down_table)
    out.append("")
    out.append(_invocation_rows(down["invocations"], down["calls"]))
    out.append("")
    stale = [s for s in down.get("status", {}).values() if "ready via" in s]
    if stale:
        out.append(f"After the teardown settled, Osaka's VPC still says `{stale[0]}`: no Osaka function was invoked "
                   "(nothing of the teardown is an event in Osaka: the requester in Seoul deletes Osaka's route "
                   "itself, and the connection's deletion is a CloudTrail event in Seoul only), and each VPC's status "
                   "is written by its own region's functions. The next sweep corrects it (up to `Schedule`, 10 "
                   "minutes, later).")
        out.append("")
    out.append(MINIMUM_TEXT)
    return "\n".join(out)


MINIMUM_TEXT = """### The minimum, and why

What the workflow must do for one link, calling no API it can do without, but keeping the contract
(`DESIGN.md`): every function re-reads what it acts on (events say where to look, never what is true),
the status tags and the outcome events are part of the result, and each region's functions write that
region's statuses.

Up, 7 writes:
- `CreateVpcPeeringConnection` 1 (the requester, in Seoul). It is born tagged (`TagSpecifications`), so
  no `CreateTags` for `tagpeer-managed`/`tagpeer-link`.
- `AcceptVpcPeeringConnection` 1 (the accepter, in Osaka).
- `CreateRoute` 3: the peer's range in every selected route table (`tagpeer:route-tables` is `all` by
  default): Seoul's main and public tables, Osaka's main table.
- `CreateTags` 2: `tagpeer-status = ... ready via pcx-...` once on each VPC, by each region's router.
  The intermediate states (`requesting`, `pending acceptance`, `active, routes 1/2`) are worth a person's
  reading but are not needed: 0 in the minimum.

Up, 12 reads, each function reading only what its decision needs:
- requester (Seoul) 3: `DescribeVpcs` in Seoul (the intent and the range) and in Osaka (the peer exists,
  its range does not overlap), `DescribeVpcPeeringConnections` in Seoul (no connection joins them yet).
- accepter (Osaka) 2: `DescribeVpcPeeringConnections` in Osaka (pending, made by tagpeer, which link) and
  `DescribeVpcs` in Seoul (the link is still wanted: the intent is on the requester's VPC).
- router, each side: `DescribeVpcPeeringConnections` (active; both sides' ranges are in the connection's
  `RequesterVpcInfo`/`AccepterVpcInfo`), `DescribeRouteTables` and `DescribeVpcs` (its VPC's
  `tagpeer:route-tables`) in its own region: 3 in Seoul, and 4 in Osaka, which also reads Seoul's VPCs
  (the link is still wanted).

Up, 4 `PutEvents` in 4 invocations: "Peering Requested" (requester), "Peering Accepted" (accepter; the
template's rules carry the one event to both regions' routers), and "Link Ready" from each side's router.

Down, 6 writes: `DeleteRoute` 3 (the same three tables), `DeleteVpcPeeringConnection` 1 (after the
routes), and each VPC's status removed (`DeleteTags` 2). 5 reads: the requester sees the intent gone and
finds the connection and both sides' routes (`DescribeVpcs` 2, `DescribeVpcPeeringConnections` 1,
`DescribeRouteTables` 2). 1 `PutEvents` ("Link Removed"). Osaka's status needs an Osaka function: one more
invocation, one more read (`DescribeVpcs` in Osaka, counted under router).

### Where the gap comes from

- **Every invocation observes everything.** Whatever the event, a function reads the three describe
  APIs in every region of the deployment (six calls with two regions, nine with three), then plans. That
  is the design's level-triggered simplicity: one observation is what makes any event (lost, doubled,
  late, reordered) safe, and it costs a fixed number of calls per invocation, never per link.
- **More invocations than steps.** One tag is two events in AWS (the tag change and the `CreateTags`
  CloudTrail record), and the template sends both to the requester; the router takes the tag change
  too (for `tagpeer:route-tables`, `dns`, `ipv6`), and an acceptance reaches it twice (tagpeer's "Peering
  Accepted" and CloudTrail's `AcceptVpcPeeringConnection`). Each extra invocation is one more full
  observation, and sometimes a write that races another (an error above is a `DeleteRoute` the router
  made for a route the requester had just deleted: `InvalidRoute.NotFound`, taken as done).
- **Status as it goes.** The status is written at each step (`requesting`, `pending acceptance`,
  `active`, `ready`), not only at the end.

Closing it would mean changing the functions or the template, which this benchmark does not do; the
figures here are the baseline against which such a change is judged. The changes that would close most
of it: send the requester only one of the two tag events (the "Tag Change on Resource" rule alone
carries the tags); let the router's tag-change rule match only the keys it acts on (`changed-tag-keys`
of `tagpeer:route-tables`, `tagpeer:dns`, `tagpeer:ipv6`); keep one of the two acceptance triggers for
the router; and observe per role (the accepter needs no route tables, the router only its own region's).
"""


# --------------------------------------------------------------------------- 3


def _buckets_module():
    try:
        from localcloud import faults  # the local cloud's throttle
        return faults
    except ImportError:
        return None


def _bucket(faults, action: str, region: str) -> tuple[str, float, float] | None:
    if faults is None or not hasattr(faults, "Throttle"):
        return None
    t = faults.Throttle(True)
    name, size = t.bucket_of(faults.Call("ec2", action, region, ACCOUNT, "", True, {}))
    return name, size["capacity"], size["refill"]


def mesh_necessary(vpcs: list[tuple[str, str, str]]) -> Counter:
    """The writes a mesh needs, per (region, action): one request in the requester's region (the smaller
    (region, vpc id) of the pair), one acceptance in the other's, a route in each side's main table, and
    one final status per VPC."""
    need: Counter = Counter()
    for i, a in enumerate(vpcs):
        for b in vpcs[i + 1:]:
            req, acc = sorted([a, b], key=lambda v: (v[0], v[1]))
            need[(req[0], "CreateVpcPeeringConnection")] += 1
            need[(acc[0], "AcceptVpcPeeringConnection")] += 1
            need[(a[0], "CreateRoute")] += 1
            need[(b[0], "CreateRoute")] += 1
    for region, _, _ in vpcs:
        need[(region, "CreateTags")] += 1
    return need


def section_mesh(report: dict) -> str:
    m = report["mesh"]
    faults = _buckets_module()
    calls = _fcalls(m["calls"])
    throttled = [c for c in calls if _throttled(c)]
    n, links = len(m["vpcs"]), m["links"]
    regions = sorted({r for r, _, _ in m["vpcs"]})
    out = [f"## 3. A mesh: {n} VPCs over {len(regions)} regions, {links} links", ""]
    throttle_on = bool(m.get("throttle"))
    out.append(f"{n} VPCs, {n // len(regions)} a region ({', '.join(regions)}), each with its own `10.N.0.0/16` and "
               "its main route table, all tagged `tagpeer:mesh = bench` by the harness one after the other; then "
               "the local cloud settles (every event and everything that follows from it), and, while some link is "
               "not done, the schedule fires (a sweep of every function in every region, as `Schedule` would every "
               "10 minutes) and the cloud settles again. A link is done when an active connection tagpeer made "
               "joins its two VPCs and every route table of each side routes the other's range through it; the "
               "harness checks with two describes a region (the status tags cannot tell: a tag value holds 256 "
               "characters, a few links' worth). Time runs from the first tag to the check that finds every link "
               "done.")
    out.append("")
    if throttle_on:
        out.append("**The throttle is on** (`POST /_local/faults {\"throttle\": true}`): a token bucket per "
                   "(account, region, action), sized as AWS publishes for EC2 (`tests/localcloud/faults.py`); a "
                   "call that finds its bucket empty is answered `RequestLimitExceeded` and does not reach moto. "
                   "The SDK retries it (standard mode: three attempts, exponential backoff with jitter), then the "
                   "invocation fails, Lambda retries it twice, and the sweep follows up.")
    else:
        out.append("**The throttle was off for this run**: the local cloud this ran on has no `throttle` fault "
                   "(`POST /_local/faults` did not take it). Times here are moto's and the local cloud's speed, "
                   "not AWS's limits; the bound below is what the throttle would set.")
    out.append("")
    ok = m["converged"]
    owned = _owned(m["invocations"], m["calls"])
    sweep_writes = Counter(c["action"] for n, e in enumerate(m["invocations"])
                           if e.get("detail_type") == "Scheduled Event"
                           for c in owned.get(n, []) if not c["action"].startswith(READ_ONLY))
    swept = (", ".join(f"`{a}` x{k}" for a, k in sorted(sweep_writes.items())) + " (made by the sweeps: what the "
             "events left undone)") if sweep_writes else "nothing: the events did it all"
    busy: Counter = Counter()
    count: Counter = Counter()
    for e in m["invocations"]:
        busy[(e.get("function"), e.get("region"))] += (e.get("duration_ms") or 0) / 1000
        count[(e.get("function"), e.get("region"))] += 1
    if busy:
        (fn, region), secs = busy.most_common(1)[0]
        busiest = (f"{fn.removesuffix('Function').lower()} in {region}: {count[(fn, region)]} invocations, "
                   f"busy {secs:.0f} s")
    else:
        busiest = "-"
    out.append(_table(["", ""], [
        ["converged", f"{'yes' if ok else 'NO'}, after {m['sweeps']} sweep(s) beyond the events"],
        ["time to converge", f"{m['total_s']:.1f} s from the first tag ({m['event_s']:.1f} s for the events "
                             f"alone; tagging took {m['tagged_s']:.1f} s)"],
        ["invocations", f"{len(m['invocations'])} ({sum(1 for e in m['invocations'] if e.get('outcome') != 'ok')} "
                        "answered with an error)"],
        ["API calls (functions)", f"{len(calls)}: {sum(1 for c in calls if c['action'].startswith(READ_ONLY))} "
                                  f"reads, {sum(1 for c in calls if c['service'] == 'ec2' and not c['action'].startswith(READ_ONLY))} "
                                  f"writes, {sum(1 for c in calls if c['action'] == 'PutEvents')} `PutEvents`"],
        ["throttled calls", f"{len(throttled)}" + (f" ({len(throttled) / len(calls) * 100:.0f}% of calls)"
                                                    if calls else "")],
        ["busiest function process", busiest],
        ["left to the sweeps", swept],
    ]))
    out.append("")
    out.append("The local cloud runs one process per function and region, as the template's functions would run "
               "with a concurrency of one (AWS would run more side by side), so invocations of one function in "
               "one region wait for each other: the busiest process's time is the floor the local cloud sets, "
               "and on a machine this size moto's time answering describes over hundreds of connections and "
               "routes is most of every invocation. "
               + ("No call was throttled: the calls never came fast enough to empty a bucket." if not throttled
                  else f"{len(throttled)} calls were throttled and retried."))
    out.append("")
    if sweep_writes.get("CreateVpcPeeringConnection"):
        out.append(f"{sweep_writes['CreateVpcPeeringConnection']} links were requested only by the sweep. A "
                   "link's request is made by the requester side's region (the smaller `(account, region, "
                   "vpc-id)`); when that side was tagged first and the other side, in another region, joined the "
                   "group later, the second tag is an event in the second region only, whose requester plans "
                   "for its own region and leaves the request to the first. No event reaches the first region, "
                   "so the link waits for the schedule (10 minutes by default). Which links wait depends on the "
                   "order the tags land in, so the count varies from run to run.")
        out.append("")
    by = Counter((c["region"], c["action"]) for c in calls)
    thr = Counter((c["region"], c["action"]) for c in throttled)
    need = mesh_necessary(m["vpcs"])
    rows = []
    bound_s = 0.0
    bound_at = ""
    floor_s = 0.0
    floor_at = ""
    for key in sorted(set(by) | set(need), key=lambda k: (k[1], k[0])):
        region, action = key
        b = _bucket(faults, action, region) if action != "PutEvents" else None
        necessary = need.get(key, 0)
        if b:
            name, cap, refill = b
            t = max(0.0, (necessary - cap) / refill) if refill else (math.inf if necessary > cap else 0.0)
            t_actual = max(0.0, (by[key] - thr[key] - cap) / refill) if refill else 0.0
            if t > bound_s:
                bound_s, bound_at = t, f"`{action}` in {region}"
            if t_actual > floor_s:
                floor_s, floor_at = t_actual, f"`{action}` in {region}: {by[key] - thr[key]} calls"
            size = f"{name}: {cap:g} + {refill:g}/s"
            tb, ta = f"{t:.1f} s", f"{t_actual:.1f} s"
        else:
            size, tb, ta = ("EventBridge, not throttled here" if action == "PutEvents" else "?"), "", ""
        rows.append([f"`{action}`", region, by[key], thr[key] or "", necessary or "", size, tb, ta])
    out.append("Per bucket: calls made, of them throttled, the necessary calls (the minimum of item 2 for each "
               "link: a request in the requester's region, the requester being the side with the smaller "
               "(region, VPC id); an acceptance in the other's; a route in each side's one table; one final "
               "status per VPC; reads are left out of the minimum, a few a function); the bucket; the bound that "
               "bucket sets on the necessary calls, `max(0, necessary - capacity) / refill`; and the same for the "
               "calls admitted (each took a token; a throttled call takes none), the floor tagpeer's own calls "
               "set.")
    out.append("")
    out.append(_table(["action", "region", "calls", "throttled", "necessary", "bucket (capacity + refill)",
                       "bound (necessary)", "floor (calls admitted)"], rows))
    out.append("")
    if bound_at:
        out.append(f"**The throttle's bound for this mesh: {bound_s:.1f} s**, set by the slowest bucket of the "
                   f"necessary calls ({bound_at}; the buckets refill side by side, and a link's steps follow one "
                   "another, so the true floor is a little higher). The calls tagpeer made set a higher floor, "
                   f"**{floor_s:.1f} s** ({floor_at}): every invocation observes every region, so each describe "
                   "bucket of a region pays one token per invocation anywhere, and the reads, not the writes, are "
                   f"what the throttle would hold back first. Measured here: **{m['total_s']:.0f} s**, "
                   + ("with no call throttled: on this machine the local cloud, one process per function and "
                      "region and moto answering describes over hundreds of connections, is slower than the "
                      "throttle, so the time is the busiest process's, not the buckets'."
                      if not throttled else
                      f"with {len(throttled)} calls throttled and retried."))
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- 4


def section_idle(report: dict) -> str:
    out = ["## 4. A sweep with nothing to do", ""]
    out.append("The schedule fires (`POST /_local/schedule`: the template's `SweepSchedule`, which exists in the "
               "first region of `Regions` alone and runs that region's router, the deployment's sweeper), on a "
               "deployment that has converged, so nothing is to be done. EC2 calls and `PutEvents` are the "
               "functions'; time is from firing to settled; VPCs, route tables and connections are what the "
               "describes return, each region's default VPC included.")
    out.append("")
    rows = []
    for s in report["idle"]:
        per_inv = s["calls"] / s["invocations"] if s["invocations"] else 0
        rows.append([s["label"], s["regions"], s["vpcs"], s["tables"], s["links"], s.get("peerings", ""),
                     s["invocations"], s["calls"], f"{per_inv:g}", s.get("puts", ""), s["mutating"],
                     f"{s['seconds']:.2f} s", f"{s['max_ms']:.0f} ms"])
    out.append(_table(["deployment", "regions", "VPCs", "route tables", "links", "connections", "invocations",
                       "EC2 calls", "calls / invocation", "PutEvents", "writes", "time", "slowest invocation"], rows))
    out.append("")
    out.append("An idle sweep is one invocation that reads: the sweeper observes the R regions once, with 3 "
               "describe calls each (`DescribeVpcs`, `DescribeRouteTables`, `DescribeVpcPeeringConnections`): 3R "
               "calls, plus one more a page. It puts one \"Sweep Requested\" on the bus of each other region with "
               "links, carrying that region's gauges, whose router publishes them with no call of its own. It does "
               "not depend on the number of links or VPCs. Pages: the adapter sets no `MaxResults` and follows `NextToken` "
               "(the SDK's paginators); moto answers each of these describes in one page whatever its size, so "
               "every figure above is one page a describe. Where AWS splits an answer into pages, each page is one "
               "more call for that describe in that region, for every invocation: the count grows with the pages "
               "of the largest region, still not with links. What grows with the deployment is the time of each call "
               "(the answer's size; moto's describes are linear in what they hold) and the planner's work.")
    out.append("")
    return "\n".join(out)


def section_planner(report: dict) -> str:
    rows = report.get("planner") or []
    if not rows:
        return ""
    out = ["## 5. The planner alone, on synthetic worlds", ""]
    out.append("`functions/core/examples/planner.rs`, release build, no AWS: one account over ten regions, "
               "`tagpeer:mesh` groups of 50 (49 peers a VPC, as many links as AWS's default quotas allow), every "
               "connection active, every route and status in place (what a sweep finds). One invocation's "
               "planning in the first region, per role (`plan::for_role`, then `status::statuses`), and the heap "
               "it takes beyond the world's own, counted by the example's allocator.")
    out.append("")
    table = []
    for r in rows:
        if "skipped" in r:
            table.append([f"{r['vpcs']:,}", f"{r['links']:,}", "", "", "", "", "", r["skipped"]])
            continue
        roles = [r[k] for k in ("requester", "accepter", "router")]
        table.append([f"{r['vpcs']:,}", f"{r['links']:,}", f"{r['world_mb']:.1f} MB",
                      *[f"{x['seconds']:.3f} s" for x in roles],
                      f"{max(x['heap_mb'] for x in roles):.1f} MB", ""])
    out.append(_table(["VPCs", "links", "world", "requester", "accepter", "router", "heap (most)", ""], table))
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- the page


def _load(report: dict) -> str:
    """The 1-minute load average around each part: other work on the machine slows every figure of time."""
    parts = [f"{label} cold starts and seed {p['load'][0]:.1f} -> {p['load'][-1]:.1f}"
             for label, p in report["profiles"].items() if p.get("load")]
    mesh = report.get("load", {}).get("mesh")
    if mesh:
        parts.append(f"mesh {mesh[0]:.1f} -> {mesh[-1]:.1f}")
    return ("1-minute load average before -> after: " + "; ".join(parts) +
            " (more than the CPUs means the figures of time include waiting for a CPU)")


def _builds(text: str) -> str:
    """`make bench` passes the builds' seconds; a run by hand may say what it built and how."""
    if not text:
        return ""
    if text.isdigit():
        return f"; the builds before them: {int(text) / 60:.0f} min (every profile, arm64 and x86_64, one job)"
    return f"; {text}"


def render(report: dict, profiles: list) -> str:
    m = report["machine"]
    minutes = report["seconds"] / 60
    out = ["# Benchmarks", ""]
    out.append("Written by `make bench` (`tools/bench.py`); the figures are from one run, on the "
               "machine below. Nothing here is asserted: a reader compares runs.")
    out.append("")
    out.append(_table(["", ""], [
        ["date", m["date"]],
        ["commit", f"`{m['commit']}`"],
        ["machine", m["machine"]],
        ["toolchain", f"{m['rustc']}; {m['cargo-lambda']}"],
        ["local cloud", f"moto {m['moto']} on Python {m['python']}, loopback only"],
        ["load", _load(report)],
        ["run", f"{minutes:.0f} min of measurements" + _builds(report.get("build_seconds", ""))],
    ]))
    out.append("")
    out.append("To reproduce: `make bench` from a clone (it needs `cargo`, `rustup` and `python3`, like `make test`; "
               "it builds the venv, adds the `aarch64-unknown-linux-gnu` target, builds each profile for arm64 "
               "with cargo-lambda and for x86_64 with cargo, in a target directory of its own, "
               "`BENCH_TARGET_DIR`, one job at a time, `BENCH_JOBS`; then measures). From nothing the builds take "
               "the better part of an hour on a 2-core machine (`aws-sdk-ec2` is most of it), the measurements "
               "a quarter of an hour (most of it the mesh). `make bench BENCH_PROFILES=release` measures the committed profile alone.")
    out.append("")
    out.append(section_artifacts(report, profiles))
    out.append(section_link(report))
    out.append(section_mesh(report))
    out.append(section_idle(report))
    out.append(section_planner(report))
    return "\n".join(out).rstrip() + "\n"


def measure_profile(report: dict, label: str, bin_dir: Path, cold_runs: int, workflow: bool) -> None:
    """Item 1 for one profile, on the seed; with `workflow`, item 2 and the seed's idle sweep too."""
    log(f"profile {label}: binaries in {bin_dir}")
    prof = {"binaries": {f: (bin_dir / f).stat().st_size if (bin_dir / f).exists() else None for f in FUNCTIONS}}
    load = [os.getloadavg()[0]]
    with Cloud(bin_dir, [SEOUL, OSAKA]) as cloud:
        log(f"profile {label}: the seed's link")
        link = seed_link(cloud)
        seed = link["seed"]
        if workflow:
            log("idle sweep of the seed")
            report["idle"] = [idle_sweep(cloud, "the seed", 1)]
        pids = cloud.function_pids()
        prof["workflow_hwm"] = {f"{k[0]} {k[1]}": vm_hwm_kb(p) for k, p in pids.items()}
        log(f"profile {label}: {cold_runs} cold starts of each function")
        prof["cold"] = cold_starts(cloud, bin_dir, seed, cold_runs)
        load.append(os.getloadavg()[0])
        if workflow:
            report["seed_up"] = link["up"]
            log("the seed's link, torn down")
            report["seed_down"] = seed_teardown(cloud, seed)
    prof["load"] = load
    report["profiles"][label] = prof


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="append", required=True,
                        help="LABEL=BIN_DIR,LAMBDA_DIR (x86_64 binaries, arm64 zips); the first runs items 2-4")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--mesh", type=int, default=24)
    parser.add_argument("--big", type=int, default=96)
    parser.add_argument("--max-sweeps", type=int, default=5)
    parser.add_argument("--no-throttle", action="store_true", help="run the mesh without the throttle")
    parser.add_argument("--planner", type=Path, help="the planner example's binary (a release build)")
    parser.add_argument("--planner-sizes", type=lambda v: [int(x) for x in v.split(",") if x],
                        default=[100, 1000, 10000], help="world sizes in VPCs, separated by commas")
    parser.add_argument("--idle-regions", type=lambda v: [int(x) for x in v.split(",") if x], default=[2, 3, 6, 10],
                        help="region counts of the idle sweeps of a ring, separated by commas (at most 10)")
    parser.add_argument("--build-seconds", default="", help="how long the builds took, for the report")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--from-json", type=Path,
                        help="render the figures of an earlier --json, with the zips read again, measuring only "
                             "item 1 for the profiles it lacks")
    args = parser.parse_args(argv)

    profiles = []
    for spec in args.profile:
        label, _, dirs = spec.partition("=")
        bin_dir, _, lambda_dir = dirs.partition(",")
        profiles.append((label, Path(bin_dir), Path(lambda_dir)))
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        for label, bin_dir, _ in profiles:
            if label not in report["profiles"]:  # item 1 for a profile built since
                measure_profile(report, label, bin_dir, args.cold_runs, workflow=False)
        if args.json:
            args.json.write_text(json.dumps(report, default=str))
        for label, _, lambda_dir in profiles:
            report["profiles"][label]["artifacts"] = artifacts(lambda_dir)
        text = render(report, profiles)
        args.out.write_text(text)
        print(text)
        return
    started = time.time()
    report: dict = {"machine": machine(), "profiles": {}}

    # 1 and 2: the seed, per profile (the workflow figures from the first).
    for n, (label, bin_dir, lambda_dir) in enumerate(profiles):
        measure_profile(report, label, bin_dir, args.cold_runs, workflow=n == 0)

    label, bin_dir, _ = profiles[0]
    regions3 = [SEOUL, OSAKA, TOKYO]
    report["load"] = {"mesh": [os.getloadavg()[0]]}
    with Cloud(bin_dir, regions3) as cloud:
        throttle = not args.no_throttle
        if throttle:
            answer = cloud.faults({"throttle": True})
            cloud.faults({})
            if "throttle" not in json.dumps(answer):
                log("this local cloud has no throttle (POST /_local/faults ignores it): the mesh runs without")
                throttle = False
        log(f"mesh: {args.mesh} VPCs over {len(regions3)} regions, throttle {'on' if throttle else 'off'}")
        report["mesh"] = mesh(cloud, args.mesh, throttle, args.max_sweeps)
        report["load"]["mesh"].append(os.getloadavg()[0])
        if throttle:
            cloud.faults({})
        log("idle sweep of the converged mesh")
        report["idle"].append(idle_sweep(cloud, f"{args.mesh}-VPC mesh", report["mesh"]["links"]))
        cloud.reset()
        log(f"{args.mesh} VPCs in pairs")
        _, links = pairs(cloud, args.mesh, args.max_sweeps)
        report["idle"].append(idle_sweep(cloud, f"{args.mesh} VPCs in pairs", links))
        cloud.reset()
        log(f"{args.big} VPCs in pairs")
        _, links = pairs(cloud, args.big, args.max_sweeps)
        report["idle"].append(idle_sweep(cloud, f"{args.big} VPCs in pairs", links))
    for n in args.idle_regions:
        log(f"idle sweep of a ring over {n} regions")
        with Cloud(bin_dir, MANY_REGIONS[:n]) as cloud:
            links = ring(cloud)
            report["idle"].append(idle_sweep(cloud, f"a ring over {n} regions", links))

    if args.planner:
        log(f"the planner alone: {args.planner_sizes} VPCs")
        report["planner"] = planner(args.planner, args.planner_sizes)

    # The zips last: `make bench` builds them first; a run by hand may build them meanwhile.
    for label, _, lambda_dir in profiles:
        report["profiles"][label]["artifacts"] = artifacts(lambda_dir)
    report["seconds"] = time.time() - started
    report["build_seconds"] = args.build_seconds
    if args.json:
        args.json.write_text(json.dumps(report, default=str))
    text = render(report, profiles)
    args.out.write_text(text)
    print(text)
    log(f"wrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
