"""What the local cloud's tests share: the deployment's names, the clouds a test module runs
(conftest.py's `clouds` and `cloud` fixtures hand them out), and the helpers that talk to the
cloud a test was last handed (its `/_local/` interface, boto3 clients), read AWS's errors, and
wait. A helper given `cloud=` talks to that cloud instead.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
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
            c = lc.LocalCloud(lc.free_port(), template, bin_dir(), [SEOUL, OSAKA])
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
