"""What the local cloud's tests share: the deployment's names, the clouds a test module runs
(conftest.py's `clouds` and `cloud` fixtures hand them out), and the helpers that talk to the
cloud a test was last handed (its `/_local/` interface, the metrics its functions published,
boto3 clients), read AWS's errors, and wait. A helper given `cloud=` talks to that cloud instead. And a fake function, a Python script
speaking the Lambda Runtime API (`fake_bootstrap`), for runtime.py's tests and the cloud's.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from localcloud import cloud as lc

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra-template" / "template.yaml"
SEOUL, OSAKA = "ap-northeast-2", "ap-northeast-3"
ACCOUNT, OTHER = "123456789012", "222222222222"
# A person's access key: an administrator, in ACCOUNT (cloud.py's `ACCOUNT-…` keys).
TESTER = f"{ACCOUNT}-tester"


def bin_dir() -> Path:
    """Where the function binaries are (`make functions`): $CARGO_TARGET_DIR/debug."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"


# ------------------------------------------------------------------------------- the clouds

# The function a cloud of one fake function runs (one_fake_function).
FAKE_FUNCTION = "RequesterFunction"


# The queue the template puts before it, and the mapping that reads that queue.
FAKE_QUEUE = "RequesterQueue"
FAKE_MAPPING = "RequesterQueueMapping"


def one_fake_function(bins: Path, concurrency: int | None = None, queue_rules: bool = False,
                      mapping: dict | None = None) -> lc.LocalCloud:
    """A started local cloud whose one function is Seoul's requester, the fake one
    (`fake_bootstrap`, in `bins`), with no rules: the tests invoke it. With `queue_rules`, Seoul's
    rules that send to the requester's queue stay (their events reach the fake function in batches,
    through the template's queue, queue policy and mapping), and `mapping` overrides fields of that
    mapping (template.EventSourceMapping's, e.g. {"batch_size": 1})."""
    c = lc.LocalCloud(0, TEMPLATE, bins, [SEOUL, OSAKA])
    for (_, region), stack in c.stacks.items():
        keep = [r for r in stack.rules if queue_rules and region == SEOUL and r.targets
                and all(t.queue == FAKE_QUEUE for t in r.targets)]
        stack.rules[:] = keep
        for logical_id in [f for f in stack.functions if (region, f) != (SEOUL, FAKE_FUNCTION)]:
            del stack.functions[logical_id]
    fn = c.stacks[SEOUL].functions[FAKE_FUNCTION]
    if concurrency is not None:
        fn.concurrency = concurrency
    for m in c.stacks[SEOUL].mappings:
        if m.logical_id == FAKE_MAPPING:
            for name, value in (mapping or {}).items():
                assert hasattr(m, name), name
                setattr(m, name, value)
    fake_bootstrap(bins, fn.binary)
    c.start()
    return c


_current: lc.LocalCloud | None = None


class Clouds:
    """The local clouds of one test module, one per template and kind, each started on first use
    and kept for the module's other tests."""

    def __init__(self) -> None:
        self._started: dict[tuple[str, bool], lc.LocalCloud] = {}

    def reset(self, template: Path = TEMPLATE, functions: bool = True) -> lc.LocalCloud:
        """The cloud of `template` in Seoul and Osaka, reset (cloud.reset: the lifecycle stays), and the
        one the helpers below talk to from now on. With `functions`, the template's function binaries
        run (`bin_dir()`); without, the cloud has no functions and so no rules: events are recorded,
        delivered nowhere (moto's server and the endpoint only, no binaries needed)."""
        global _current
        key = (str(template), functions)
        c = self._started.get(key)
        if c is None:
            c = lc.LocalCloud(0, template, bin_dir(), [SEOUL, OSAKA])
            if not functions:
                for stack in c.stacks.values():
                    stack.functions.clear()
                    stack.rules.clear()
            c.start()
            self._started[key] = c
        c.reset()
        _current = c
        return c

    def stop(self, c: lc.LocalCloud | None = None) -> None:
        """Stop `c` (every cloud without one)."""
        for key, started in list(self._started.items()):
            if c is None or started is c:
                del self._started[key]
                started.stop()


def _cloud(cloud: lc.LocalCloud | None) -> lc.LocalCloud:
    c = cloud or _current
    assert c is not None, "no local cloud: the test takes the `cloud` fixture"
    return c


# ------------------------------------------------------------------------ talking to a cloud

def request(method: str, path: str, data: bytes | None = None, *, cloud: lc.LocalCloud | None = None):
    """An HTTP call to the cloud's endpoint: (status, headers, the JSON answer)."""
    req = urllib.request.Request(_cloud(cloud).endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def local(path: str, body=None, *, cloud: lc.LocalCloud | None = None):
    """`/_local/…`: GET, or POST of `body` as JSON. (status, the JSON answer)."""
    status, _, answer = request("GET" if body is None else "POST", path,
                                None if body is None else json.dumps(body).encode(), cloud=cloud)
    return status, answer


def metrics(*, cloud: lc.LocalCloud | None = None, **filters) -> dict:
    """`GET /_local/metrics`: what the functions' EMF lines published, {"metrics": [datapoint, ...],
    "rejected": [{"line", "reason", ...}, ...]}; `filters` its query (`name="LinksReady"`,
    `region=SEOUL`, `function="router"`, `invocation=...`, a dimension or property: `VpcId=...`;
    a list for any of several values)."""
    query = urllib.parse.urlencode(filters, doseq=True)
    status, answer = local("/_local/metrics" + (f"?{query}" if query else ""), cloud=cloud)
    assert status == 200, answer
    return answer


def client(service: str, region: str = SEOUL, key: str = TESTER, *, cloud: lc.LocalCloud | None = None,
           retries: bool = False):
    """A boto3 client of the cloud, calling with the access key `key`: one attempt a call (a test sees
    every error), or with `retries` boto3's default retries."""
    config = {} if retries else {
        "config": botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})}
    return boto3.client(service, region_name=region, endpoint_url=_cloud(cloud).endpoint, aws_access_key_id=key,
                        aws_secret_access_key="local", **config)


def ec2(region: str = SEOUL, key: str = TESTER, *, cloud: lc.LocalCloud | None = None):
    return client("ec2", region, key, cloud=cloud)


def vpc(region: str = SEOUL, cidr: str = "10.20.0.0/16", key: str = TESTER) -> str:
    """A new VPC's id."""
    return ec2(region, key).create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]


# ------------------------------------------------------------------------------ AWS's errors

def error_of(fn, message: bool = False) -> tuple:
    """The AWS error the call `fn` fails with: (code, HTTP status), and its message with `message`.
    AssertionError if it succeeds."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        found = e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        return (*found, e.response["Error"].get("Message", "")) if message else found
    raise AssertionError("the call succeeded")


def dropped(fn) -> type:
    """The type of the exception a call whose connection is dropped fails with (faults.py's
    `connection`). AssertionError if it succeeds; an AWS error fails the test."""
    try:
        fn()
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as e:
        return type(e)
    raise AssertionError("the call succeeded")


# ---------------------------------------------------------------------------------- waiting

def wait_until(predicate, limit: float = 10.0, interval: float = 0.01) -> bool:
    """Poll predicate until it holds; False after `limit` seconds (a safety net, not a measure)."""
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- a fake function

# The fake function: a Runtime API client loop in the shape of the lambda_runtime crate's.
BOOTSTRAP = r'''#!{python}
import http.client, json, os, re, sys, time, urllib.error, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
# FAKE_KEEPALIVE: one persistent HTTP/1.1 connection and chunked bodies, like hyper's pool.
KEEPALIVE = os.environ.get("FAKE_KEEPALIVE")
conn = http.client.HTTPConnection(*os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")) if KEEPALIVE else None


def post(path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if KEEPALIVE:
        conn.request("POST", "/2018-06-01/runtime" + path, body=iter([data[:3], data[3:]]),
                     headers=headers or {{}}, encode_chunked=True)
        r = conn.getresponse()
        r.read()
        return r.status
    req = urllib.request.Request(API + path, data=data, method="POST", headers=headers or {{}})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def aws(region, service, form, key):
    """An AWS query-API call through AWS_ENDPOINT_URL with the access key `key` (the local cloud reads
    the key and checks no signature): the answer's body, an error's too."""
    auth = "AWS4-HMAC-SHA256 Credential=%s/20260101/%s/%s/aws4_request, SignedHeaders=host, Signature=0" % (
        key, region, service)
    req = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + "/", data=form.encode(), method="POST",
                                 headers={{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def journal(d, what, tag):
    """Append "<what> <tag> <pid>" to the journal directory d as its next numbered entry.

    The entry is written aside and hard-linked into place (atomic, and EEXIST if the number is
    taken), so a reader never sees half an entry and an entry made after another one completed
    always gets a higher number, whichever process made it."""
    tmp = os.path.join(d, ".tmp-%d" % os.getpid())
    with open(tmp, "w") as f:
        f.write("%s %s %d" % (what, tag, os.getpid()))
    i = 0
    while True:
        try:
            os.link(tmp, os.path.join(d, "%06d" % i))
            break
        except FileExistsError:
            i += 1
    os.remove(tmp)


def starts(d):
    n = 0
    for name in os.listdir(d):
        if not name.startswith("."):
            with open(os.path.join(d, name)) as f:
                n += f.read().startswith("start ")
    return n


class Next:
    def __enter__(self):
        if KEEPALIVE:
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            self.r = conn.getresponse()
        else:
            self.r = urllib.request.urlopen(API + "/invocation/next")
        return self.r

    def __exit__(self, *exc):
        self.r.close()


BROKEN = os.environ.get("FAKE_INIT_ERROR_FILE")
if os.environ.get("FAKE_INIT_ERROR") or (BROKEN and os.path.exists(BROKEN)):
    print("cannot initialise", file=sys.stderr, flush=True)
    post("/init/error", {{"errorType": "Runtime.ConfigInvalid", "errorMessage": "bad config"}},
         {{"Lambda-Runtime-Function-Error-Type": "Runtime.ConfigInvalid"}})
    sys.exit(1)
if os.environ.get("FAKE_CRASH_AT_INIT"):
    print("panicked at src/main.rs:1:1: no config", file=sys.stderr, flush=True)
    sys.exit(101)
if os.environ.get("FAKE_HANG_AT_INIT"):
    time.sleep(30)
print("init pid=%d" % os.getpid(), flush=True)

while True:
    with Next() as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = dict(r.headers.items())
        event = json.loads(r.read())
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        # An SQS batch (Lambda's event source mapping): its instructions are in the `detail` of the
        # EventBridge events its messages carry: "fail" and "exit" if any asks, the longest "sleep",
        # the first "journal"/"waits"/"fail_once"; the tags joined. The answer echoes the batch.
        merged = {{}}
        for record in event["Records"]:
            detail = json.loads(record["body"]).get("detail") or {{}}
            for k, v in detail.items():
                if k == "sleep":
                    merged[k] = max(merged.get(k, 0), v)
                elif k == "tag":
                    merged[k] = merged[k] + "," + v if k in merged else v
                elif k in ("fail", "exit"):
                    merged[k] = merged.get(k) or v
                elif k in ("journal", "waits", "fail_once"):
                    merged.setdefault(k, v)
        event = dict(merged, Records=event["Records"])
    # "fail_once": a file; the invocation fails unless it exists, and makes it.
    if isinstance(event, dict) and event.get("fail_once"):
        if not os.path.exists(event["fail_once"]):
            open(event["fail_once"], "w").close()
            event = dict(event, fail=True)
    tag = event.get("tag", "-") if isinstance(event, dict) else "-"
    print("event %s tag=%s" % (rid, tag), flush=True)
    print("stderr line tag=%s" % tag, file=sys.stderr, flush=True)
    if not isinstance(event, dict):
        post("/invocation/%s/response" % rid, event)
        continue
    # "stdout": lines to write on standard output during the invocation (EMF records, say).
    for line in event.get("stdout", []):
        print(line, flush=True)
    # "journal": a directory where the invocation records its start and its finish; "waits":
    # [[n, seconds], ...] then waits, step by step, until n starts are recorded there (at most
    # that long), and the response tells how many it saw after each step ("seen") and "pid".
    # "calls": [[region, action, role], ...]: EC2 calls through AWS_ENDPOINT_URL, with the process's
    # access key, or with the temporary key of the role ARN `role` (when given: sts:AssumeRole first).
    # Made before the journal's start, so that a rendezvous below holds the invocation until the
    # others have made theirs.
    for region, action, *role in event.get("calls", []):
        key = os.environ["AWS_ACCESS_KEY_ID"]
        if role:
            answer = aws(region, "sts", "Action=AssumeRole&Version=2011-06-15&RoleSessionName=fake&RoleArn="
                         + role[0], key)
            key = re.search("<AccessKeyId>([^<]+)</AccessKeyId>", answer).group(1)
        aws(region, "ec2", "Action=%s&Version=2016-11-15" % action, key)
    jdir = event.get("journal")
    if jdir:
        journal(jdir, "start", tag)
        seen = []
        for want, limit in event.get("waits", []):
            end = time.monotonic() + limit
            while starts(jdir) < want and time.monotonic() < end:
                time.sleep(0.01)
            seen.append(starts(jdir))
        event = dict(event, seen=seen, pid=os.getpid())
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if jdir:
        journal(jdir, "finish", tag)
    if event.get("exit"):
        print("exiting tag=%s" % tag, file=sys.stderr, flush=True)
        os._exit(3)
    if event.get("fail"):
        post("/invocation/%s/error" % rid,
             {{"errorType": "Boom", "errorMessage": "asked to fail", "stackTrace": []}},
             {{"Lambda-Runtime-Function-Error-Type": "Unhandled"}})
    elif event.get("raw"):
        post("/invocation/%s/response" % rid, event["raw"].encode())
    elif event.get("context"):
        env = {{k: v for k, v in os.environ.items()}}
        post("/invocation/%s/response" % rid,
             {{"request_id": rid, "headers": headers, "env": env, "cwd": os.getcwd(), "pid": os.getpid(),
              "local_port": conn.sock.getsockname()[1] if KEEPALIVE else None}})
    else:
        post("/invocation/%s/response" % rid, event)
    print("done tag=%s" % tag, flush=True)
'''


def fake_bootstrap(root: str, name: str = "bootstrap") -> str:
    """The fake function, written to the executable `name` in the directory `root`: its path."""
    path = os.path.join(root, name)
    with open(path, "w") as f:
        f.write(BOOTSTRAP.format(python=sys.executable))
    os.chmod(path, 0o755)
    return path
