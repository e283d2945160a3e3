"""Faults the local cloud injects, set with `POST /_local/faults` and read with
`GET /_local/faults`. Every field is optional; a POST replaces the whole set
(and resets the counters, the random generator and the throttle's buckets), so
`POST /_local/faults {}` turns every fault off.

    {
      "seed": 7,
      "drop":   [{"detail-type": "Peering Accepted", "region": "ap-northeast-2", "count": 1}],
      "errors": [{"action": "CreateRoute", "region": "ap-northeast-2", "caller": "functions",
                  "rate": 0.2, "code": "RequestLimitExceeded", "latency_ms": 0}],
      "latency": [{"action": "Describe*", "ms": 50}],
      "throttle": true,
      "crash_after": 3,
      "events": {"duplicate": 1.0, "drop": 0.1, "shuffle": true}
    }

- `drop`: the next `count` events whose fields match every field given
  (nested objects field by field) are dropped before any rule sees them.
- `errors`: EC2 calls matching `action` (a name, `Prefix*`, `*`, or `mutating`:
  every action but `Describe*`/`Get*`/`List*`/`Search*`; a list of those for
  several), `region` and `caller` (`functions`: the function processes; else an
  access key) fail at `rate` (0..1) with `code`, one code or a list to pick
  from: `RequestLimitExceeded` (HTTP 503, as EC2 throttles), `InternalError`
  (500), `ServiceUnavailable` (503), `Unavailable` (503), `connection` (the
  connection is closed with no answer), or any other code with its `status`.
  The failed call never reaches moto. `latency_ms` is added to every matching
  call, failed or not; the first entry whose rate fires decides the error.
- `latency`: `[{"action", "region", "caller", "ms"}]`, latency alone (the
  same as an `errors` entry with `rate` 0 and `latency_ms`).
- `seed`: the random generator's seed, for runs that repeat.
- `throttle`: `true`, or an object overriding bucket sizes: EC2's request token
  buckets, one per (account, region, action), with the sizes and refill rates
  AWS publishes (`BUCKETS`); a call that finds its bucket empty gets
  `RequestLimitExceeded` (HTTP 503) and does not reach moto. Override a
  category (`{"mutating": {"capacity": 10, "refill": 1}}`) or an action
  (`{"actions": {"CreateRoute": {"capacity": 2, "refill": 0}}}`).
- `crash_after`: k. The function processes' k-th successful mutating call (an
  EC2 action but Describe/Get/List/Search, or EventBridge PutEvents) goes
  through and its answer is sent to the caller; then every function process
  with an invocation in flight is killed (SIGKILL of its process group, as
  Lambda kills a runtime on a timeout or when it runs out of memory), so that
  each of those invocations ends at once with Runtime.ExitError and its process
  is restarted (runtime.py). Until the faults are set again the functions are
  down: every later invocation of a function fails at once (Lambda's retries of
  it too, and each receive of a queue's batch), and a mutating call of a function
  that still arrives (one sent before the kill landed) is answered by closing
  the connection. Calls of anyone else
  (the tests' own SDK, the AWS CLI) neither count nor fail.
- `events`: deliveries of events from a rule to a function or to a queue
  (queues.py): each is dropped with probability `drop`, else delivered a second
  time with probability `duplicate` (to a queue: two messages); with `shuffle`,
  deliveries are held and handed out one at a time, in random order, whenever
  nothing else is running (messages waiting in a queue are not running).
  Scheduled events (`POST /_local/schedule`) are not subject to it.

Every injected fault is recorded on the call in `GET /_local/calls`
(`injected`: the code; `throttled`: true; `crashed`: true; `latency_ms`;
`crash_point`: true on crash_after's k-th call) and on the event in
`GET /_local/events` (outcome `dropped` or `duplicated`).
"""

from __future__ import annotations

import random
import threading
import time
import uuid

READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Search")

# EC2's request token buckets ("Request throttling for the Amazon EC2 API",
# Amazon EC2 Developer Guide: "Request token bucket sizes and refill rates"):
# capacity in tokens, refill in tokens a second.
BUCKETS = {
    "non-mutating": {"capacity": 100, "refill": 20},
    "unfiltered": {"capacity": 50, "refill": 10},
    "mutating": {"capacity": 50, "refill": 5},
    "resource-intensive": {"capacity": 50, "refill": 5},
}
# Non-mutating actions that, called with neither a filter nor pagination, take
# their token from the smaller "unfiltered and unpaginated" bucket.
UNFILTERED_ACTIONS = frozenset({
    "DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces", "DescribeSecurityGroups",
    "DescribeSnapshots", "DescribeSpotInstanceRequests", "DescribeVolumes",
})
RESOURCE_INTENSIVE_ACTIONS = frozenset({
    "AcceptVpcPeeringConnection", "AuthorizeSecurityGroupIngress", "CancelSpotInstanceRequests", "CreateKeyPair",
    "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection", "RejectVpcPeeringConnection",
    "RevokeSecurityGroupIngress", "RequestSpotInstances",
})
# "Uncategorized actions" with buckets of their own (the ones the tests, the
# demo and tagpeer call, and a few neighbours).
ACTION_BUCKETS = {
    "CreateTags": {"capacity": 100, "refill": 10},
    "DeleteTags": {"capacity": 100, "refill": 10},
    "RunInstances": {"capacity": 5, "refill": 2},
    "StartInstances": {"capacity": 5, "refill": 2},
    "TerminateInstances": {"capacity": 100, "refill": 5},
    "CreateNetworkInterface": {"capacity": 100, "refill": 5},
    "DeleteNetworkInterface": {"capacity": 100, "refill": 5},
    "CreateNatGateway": {"capacity": 10, "refill": 1},
    "DeleteNatGateway": {"capacity": 10, "refill": 1},
    "CreateVpcEndpoint": {"capacity": 4, "refill": 0.3},
    "DeleteVpcEndpoints": {"capacity": 4, "refill": 0.3},
    "CreateDefaultVpc": {"capacity": 1, "refill": 1},
    "CreateDefaultSubnet": {"capacity": 1, "refill": 1},
}

# EC2's error codes and their HTTP statuses.
STATUS = {
    "RequestLimitExceeded": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
}
CONNECTION = "connection"
MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error has occurred.",
    "InternalFailure": "The request processing has failed because of an unknown error, exception or failure.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
    "Unavailable": "The server is overloaded and can't handle the request.",
}


def is_mutating(action: str) -> bool:
    return not action.startswith(READ_ONLY_PREFIXES)


def error_xml(code: str, message: str | None = None) -> bytes:
    """An EC2 error response body, as EC2 writes it."""
    message = message or MESSAGES.get(code, code)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


class Call:
    """What the faults look at in an API call (and the invocation that made it, which they do not)."""

    def __init__(self, service: str, action: str, region: str, account: str, caller: str, function: bool,
                 params: dict[str, str] | None = None, invocation: str | None = None) -> None:
        self.service = service
        self.action = action
        self.region = region
        self.account = account
        self.caller = caller
        self.function = function
        self.params = params or {}
        self.invocation = invocation

    @property
    def mutating(self) -> bool:
        return is_mutating(self.action)


class Decision:
    """What to do with a call instead of (or before) forwarding it."""

    def __init__(self) -> None:
        self.latency_ms = 0
        self.code: str | None = None  # an error code, or "connection"
        self.status = 0
        self.throttled = False
        self.crashed = False
        self.admitted = False  # a function's mutating call, counted toward crash_after once answered
        # The function processes are to be killed once this call is answered: crash_after's
        # k-th call (`crash_point`), or a call refused after the crash (a race with the kill).
        self.kill = False
        self.crash_point = False

    @property
    def fails(self) -> bool:
        return self.code is not None

    def record(self) -> dict:
        """The fields this decision adds to the call's record."""
        out: dict = {}
        if self.latency_ms:
            out["latency_ms"] = self.latency_ms
        if self.code:
            out["injected"] = self.code
        if self.throttled:
            out["throttled"] = True
        if self.crashed:
            out["crashed"] = True
        if self.crash_point:
            out["crash_point"] = True
        return out


def _number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be between {low} and {high}")
    return float(value)


def _actions(value, name: str) -> list[str]:
    actions = value if isinstance(value, list) else [value]
    if not actions or not all(isinstance(a, str) and a for a in actions):
        raise ValueError(f"{name}.action must be an action name, a list of them, \"*\" or \"mutating\"")
    return actions


def _action_matches(patterns: list[str], action: str) -> bool:
    for p in patterns:
        if p == "*" or p == action or (p == "mutating" and is_mutating(action)):
            return True
        if p.endswith("*") and action.startswith(p[:-1]):
            return True
    return False


class _Rule:
    def __init__(self, spec: dict, name: str, latency_only: bool = False) -> None:
        if not isinstance(spec, dict):
            raise ValueError(f"{name} must be an object")
        known = {"action", "region", "caller", "ms"} if latency_only else \
            {"action", "region", "caller", "rate", "code", "status", "latency_ms"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"{name}: unknown field(s) {', '.join(sorted(unknown))}")
        self.actions = _actions(spec.get("action", "*"), name)
        self.region = spec.get("region")
        self.caller = spec.get("caller")
        for field in ("region", "caller"):
            if spec.get(field) is not None and not isinstance(spec[field], str):
                raise ValueError(f"{name}.{field} must be a string")
        if latency_only:
            self.latency_ms = int(_number(spec.get("ms", 0), f"{name}.ms", 0, 600_000))
            self.rate, self.codes, self.status = 0.0, [], None
            return
        self.latency_ms = int(_number(spec.get("latency_ms", 0), f"{name}.latency_ms", 0, 600_000))
        self.rate = _number(spec.get("rate", 0), f"{name}.rate", 0, 1)
        codes = spec.get("code", "RequestLimitExceeded")
        self.codes = codes if isinstance(codes, list) else [codes]
        if not self.codes or not all(isinstance(c, str) and c for c in self.codes):
            raise ValueError(f"{name}.code must be an error code or a list of them")
        self.status = spec.get("status")
        if self.status is not None:
            self.status = int(_number(self.status, f"{name}.status", 400, 599))
        for c in self.codes:
            if c != CONNECTION and c not in STATUS and self.status is None:
                raise ValueError(f"{name}: {c} needs a status (known codes: {', '.join(sorted(STATUS))}, connection)")

    def matches(self, call: Call) -> bool:
        if self.region is not None and self.region != call.region:
            return False
        if self.caller == "functions":
            if not call.function:
                return False
        elif self.caller is not None and self.caller != call.caller:
            return False
        return _action_matches(self.actions, call.action)


class _Bucket:
    def __init__(self, capacity: float, refill: float, now: float) -> None:
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Throttle:
    """EC2's request rate limiting: a token bucket per (account, region, action)."""

    def __init__(self, spec) -> None:
        if spec is True:
            spec = {}
        if not isinstance(spec, dict):
            raise ValueError("throttle must be true, false or an object")
        unknown = set(spec) - set(BUCKETS) - {"actions"}
        if unknown:
            raise ValueError(f"throttle: unknown field(s) {', '.join(sorted(unknown))}")
        self.categories = {k: dict(v) for k, v in BUCKETS.items()}
        for category in BUCKETS:
            if category in spec:
                self.categories[category] = self._size(spec[category], f"throttle.{category}")
        self.actions = {k: dict(v) for k, v in ACTION_BUCKETS.items()}
        extra = spec.get("actions", {})
        if not isinstance(extra, dict):
            raise ValueError("throttle.actions must be an object of action names")
        for action, size in extra.items():
            self.actions[action] = self._size(size, f"throttle.actions.{action}")
        self.buckets: dict[tuple, _Bucket] = {}

    @staticmethod
    def _size(value, name: str) -> dict:
        if not isinstance(value, dict) or set(value) - {"capacity", "refill"}:
            raise ValueError(f"{name} must be {{\"capacity\": N, \"refill\": N}}")
        return {"capacity": _number(value.get("capacity", 1), f"{name}.capacity", 0),
                "refill": _number(value.get("refill", 0), f"{name}.refill", 0)}

    def bucket_of(self, call: Call) -> tuple[str, dict]:
        """The bucket a call takes its token from: its name and size."""
        if call.action in self.actions:
            return call.action, self.actions[call.action]
        if not call.mutating:
            if call.action in UNFILTERED_ACTIONS and not any(
                    k.startswith(("Filter.", "MaxResults", "NextToken")) for k in call.params):
                return "unfiltered", self.categories["unfiltered"]
            return "non-mutating", self.categories["non-mutating"]
        if call.action in RESOURCE_INTENSIVE_ACTIONS:
            return "resource-intensive", self.categories["resource-intensive"]
        return "mutating", self.categories["mutating"]

    def admit(self, call: Call, now: float) -> bool:
        category, size = self.bucket_of(call)
        key = (call.account, call.region, call.action, category)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(size["capacity"], size["refill"], now)
        return bucket.take(now)

    def describe(self) -> dict:
        return {**self.categories, "actions": self.actions}


class EventFaults:
    def __init__(self, spec) -> None:
        if not isinstance(spec, dict):
            raise ValueError("events must be an object")
        unknown = set(spec) - {"duplicate", "drop", "shuffle"}
        if unknown:
            raise ValueError(f"events: unknown field(s) {', '.join(sorted(unknown))}")
        self.duplicate = _number(spec.get("duplicate", 0), "events.duplicate", 0, 1)
        self.drop = _number(spec.get("drop", 0), "events.drop", 0, 1)
        self.shuffle = spec.get("shuffle", False)
        if not isinstance(self.shuffle, bool):
            raise ValueError("events.shuffle must be true or false")

    def describe(self) -> dict:
        return {"duplicate": self.duplicate, "drop": self.drop, "shuffle": self.shuffle}


def _subset(want, have) -> bool:
    """Every field of `want` is in `have` with the same value (objects compared field by field)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _subset(v, have[k]) for k, v in want.items())
    return want == have


class Faults:
    """The faults in force, their random generator and their counters. Thread-safe."""

    FIELDS = {"drop", "errors", "latency", "seed", "throttle", "crash_after", "events"}

    def __init__(self, clock=time.monotonic) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.set({})

    # ------------------------------------------------------------ settings

    def set(self, spec: dict) -> None:
        """Replaces every fault with `spec` (validated whole first: a bad spec changes nothing)."""
        if not isinstance(spec, dict):
            raise ValueError("faults must be a JSON object")
        unknown = set(spec) - self.FIELDS
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(self.FIELDS))}")
        drop = spec.get("drop", [])
        if not isinstance(drop, list) or not all(isinstance(d, dict) for d in drop):
            raise ValueError("drop must be a list of objects")
        drop = [dict(d, count=int(_number(d.get("count", 1), "drop.count", 0))) for d in drop]
        errors = spec.get("errors", [])
        latency = spec.get("latency", [])
        if not isinstance(errors, list) or not isinstance(latency, list):
            raise ValueError("errors and latency must be lists of objects")
        rules = [_Rule(e, f"errors[{i}]") for i, e in enumerate(errors)]
        rules += [_Rule(e, f"latency[{i}]", latency_only=True) for i, e in enumerate(latency)]
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        throttle_spec = spec.get("throttle", False)
        throttle = None if throttle_spec is False or throttle_spec is None else Throttle(throttle_spec)
        crash_after = spec.get("crash_after")
        if crash_after is not None:
            crash_after = int(_number(crash_after, "crash_after", 0))
        events = EventFaults(spec["events"]) if spec.get("events") is not None else None
        with self.lock:
            self.spec = spec
            self.drop = drop
            self.rules = rules
            self.seed = seed
            self.rng = random.Random(seed)
            self.throttle = throttle
            self.crash_after = crash_after
            self.events = events
            self.admitted = 0
            self.counters = {
                "mutating_calls": 0,
                "injected": {},
                "throttled": 0,
                "crashed": False,
                "refused_after_crash": 0,
                "invocations_refused": 0,
                "killed": 0,
                "latency_ms": 0,
                "events_dropped": 0,
                "events_duplicated": 0,
                "events_reordered": 0,
            }

    def state(self) -> dict:
        """For GET /_local/faults: the faults in force and what they did."""
        with self.lock:
            faults = {
                "drop": [dict(d) for d in self.drop],
                "errors": [e for e in self.spec.get("errors", [])],
                "latency": [e for e in self.spec.get("latency", [])],
                "seed": self.seed,
                "throttle": self.throttle.describe() if self.throttle else False,
                "crash_after": self.crash_after,
                "events": self.events.describe() if self.events else None,
            }
            counters = dict(self.counters, injected=dict(self.counters["injected"]))
        return {"faults": faults, "counters": counters}

    # -------------------------------------------------------------- events

    def should_drop(self, event: dict, region: str) -> bool:
        """The `drop` rules: whether this event is one of the next `count` that match."""
        with self.lock:
            for rule in self.drop:
                if rule["count"] <= 0:
                    continue
                fields = {k: v for k, v in rule.items() if k != "count"}
                if _subset(fields, dict(event, region=region)):
                    rule["count"] -= 1
                    return True
        return False

    def copies(self) -> int:
        """How many times one delivery of an event to a function or a queue happens: 0 (dropped), 1 or 2
        (duplicated)."""
        with self.lock:
            if not self.events:
                return 1
            if self.events.drop and self.rng.random() < self.events.drop:
                self.counters["events_dropped"] += 1
                return 0
            if self.events.duplicate and self.rng.random() < self.events.duplicate:
                self.counters["events_duplicated"] += 1
                return 2
            return 1

    def shuffling(self) -> bool:
        with self.lock:
            return bool(self.events and self.events.shuffle)

    def pick(self, n: int) -> int:
        """Which of `n` held deliveries goes next (0 is the oldest)."""
        with self.lock:
            i = self.rng.randrange(n) if n > 1 else 0
            if i:
                self.counters["events_reordered"] += 1
            return i

    # --------------------------------------------------------------- calls

    def before(self, call: Call) -> Decision:
        """What happens to a call before it is forwarded: latency, and maybe an error instead of an answer.
        Every call that `before` saw must be handed to `after` once it is answered."""
        d = Decision()
        with self.lock:
            counted = call.function and call.mutating
            if counted and self.crash_after is not None and self.admitted >= self.crash_after:
                # Refused while the k-th call is still unanswered too (it may yet fail and give
                # its place back); only once the crash has happened is the caller killed.
                d.code, d.crashed = CONNECTION, True
                d.kill = self.counters["mutating_calls"] >= self.crash_after
                self.counters["crashed"] = True
                self.counters["refused_after_crash"] += 1
                return d
            if call.service == "ec2":
                matching = [r for r in self.rules if r.matches(call)]
                d.latency_ms = sum(r.latency_ms for r in matching)
                self.counters["latency_ms"] += d.latency_ms
                if self.throttle and not self.throttle.admit(call, self.clock()):
                    d.code, d.status, d.throttled = "RequestLimitExceeded", 503, True
                    self.counters["throttled"] += 1
                    return d
                for r in matching:
                    if r.rate and self.rng.random() < r.rate:
                        code = r.codes[self.rng.randrange(len(r.codes))] if len(r.codes) > 1 else r.codes[0]
                        d.code = code
                        d.status = r.status or STATUS.get(code, 0)
                        injected = self.counters["injected"]
                        injected[code] = injected.get(code, 0) + 1
                        return d
            if counted:
                # Held until answered, so that calls running side by side
                # never let more than `crash_after` through.
                d.admitted = True
                self.admitted += 1
        return d

    def down(self) -> bool:
        """Whether the functions are down: crash_after's last call went through. Counts the invocation refused."""
        with self.lock:
            if self.crash_after is None or self.counters["mutating_calls"] < self.crash_after:
                return False
            self.counters["crashed"] = True
            self.counters["invocations_refused"] += 1
            return True

    def after(self, call: Call, decision: Decision, status: int) -> None:
        """Counts a function's successful mutating call; the `crash_after`-th is the crash point:
        `decision.kill` says to kill the function processes once its answer is sent."""
        if not decision.admitted:
            return
        with self.lock:
            if 200 <= status < 300:
                self.counters["mutating_calls"] += 1
                if self.crash_after is not None and self.counters["mutating_calls"] == self.crash_after:
                    self.counters["crashed"] = True
                    decision.kill = decision.crash_point = True
            else:
                self.admitted -= 1

    def note_killed(self, processes: int) -> None:
        """Counts the function processes killed by the crash."""
        with self.lock:
            self.counters["killed"] += processes
