"""The local cloud: tagpeer's event-driven workflow on one machine, as deployed.

One endpoint on loopback that AWS SDKs and the AWS CLI use through
`AWS_ENDPOINT_URL`:

- AWS API calls go through to moto's server (started here, on a port of its
  own), except EventBridge `PutEvents`, which goes to the local event buses. An
  access key `ACCOUNT-...` acts in that account (peering.py's `account_of`);
  the temporary keys of an assumed role act in the role's account.
- The deployment runs in one account (`DEFAULT_ACCOUNT`), or in each of several
  (`accounts`, `--accounts A,B`): one stack per account and region, evaluated
  with that account as `AWS::AccountId` and, unless `AllowedAccounts` is given,
  the other accounts listed as `AllowedAccounts`, so each allows the others
  (`account_params`, `--param ACCOUNT:NAME=VALUE`: one account's own).
- For the calls made through it, it emits the events AWS would emit: "Tag
  Change on Resource" for VPC tag changes and "AWS API Call via CloudTrail" for
  every EC2 call that changes something (or fails to), on the bus of the
  call's account and region, when a trail of that account's deployment records
  that region (awsevents.py).
- The event buses are one default bus per account and region. `PutEvents`
  lands on the caller's own account's bus (the region it called, or the one
  its bus ARN names); an entry naming another account's bus fails. Each bus
  routes events through the rules of `infra-template/` itself, evaluated for
  its account and region, with EventBridge's pattern semantics, to the real
  function binaries (one warm process per function, account, region and unit of
  concurrency, behind an emulated Lambda Runtime API), to SQS queues, and to
  other buses: of its own account in any region, or of another account in the
  same region, as EventBridge sends across accounts: only when the rule's role
  may put events on that bus and that bus's policy (AWS::Events::EventBusPolicy)
  lets the sending account in; the event keeps the account it was put in. A
  delivery refused is recorded as "denied", with the reason.
- A rule whose target is a function invokes it asynchronously (retried twice
  on error: `invoke`). A rule whose target is a queue sends it a message, when
  the queue's policy lets the rule in; each account and region has its own
  queues, and the template's event source mappings read them in batches and
  invoke their functions synchronously (queues.py).
- IAM as each account's template grants it (iam.py); CloudTrail trails per
  account (awsevents.Trails).
- Every API call is recorded: service, action, region, account, caller, outcome,
  and the function invocation that made it: each function process has an access
  key of its own (`process_key`) and serves one invocation at a time. Every
  delivery is recorded with the account and region of the bus it was on.

Control interface (`/_local/...`): POST settle, POST schedule (every stack's), GET events,
GET calls, GET metrics, GET queues, POST reset, POST faults, GET/POST clock, GET/POST lifecycle,
GET/POST trail. See DESIGN.md and the README.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import awsevents, patterns, runtime, template
from . import ec2rules  # route races and the DNS prerequisite, as EC2 answers them (ec2rules.py)
from . import iam as iam_
from . import faults
from . import peering as peering_  # peering connections as AWS runs them (peering.py)
from . import queues as queues_  # SQS queues and Lambda's event source mappings (queues.py)
from .faults import Call, Faults

DEFAULT_ACCOUNT = "123456789012"
SECOND_ACCOUNT = "222222222222"
DEFAULT_REGIONS = ["ap-northeast-2", "ap-northeast-3"]
# Lambda retries a failed asynchronous invocation twice.
ASYNC_RETRIES = 2

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_AUTH = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_key(function_key: str, slot: int) -> str:
    """The access key of a function's process in concurrency slot `slot`: its function's key
    (`ACCOUNT-BINARY-REGION`, which IAM, the faults and GET /_local/calls know) and the slot."""
    return f"{function_key}.{slot}"


class PerAccount(dict):
    """The cloud's stacks by (account, region), its functions by (account, region, logical id). A
    key without its account (a region; (region, logical id)) is the first account's, as when the
    cloud had one account."""

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account

    def _full(self, key):
        if isinstance(key, str):
            return (self.account, key)
        if isinstance(key, tuple) and key and not (isinstance(key[0], str) and _ACCOUNT_ID.match(key[0])):
            return (self.account, *key)
        return key

    def __getitem__(self, key):
        return super().__getitem__(self._full(key))

    def __setitem__(self, key, value) -> None:
        super().__setitem__(self._full(key), value)

    def __delitem__(self, key) -> None:
        super().__delitem__(self._full(key))

    def __contains__(self, key) -> bool:
        return super().__contains__(self._full(key))

    def get(self, key, default=None):
        return super().get(self._full(key), default)


def params_of_accounts(accounts: list[str], template_params: dict[str, str] | None,
                       per_account: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Each account's template parameters: `template_params` for all; with several accounts and no
    `AllowedAccounts` among them, the other accounts listed, so each allows the others; then the
    account's own (`per_account`)."""
    out = {}
    for account in accounts:
        p = dict(template_params or {})
        if len(accounts) > 1 and "AllowedAccounts" not in p:
            p["AllowedAccounts"] = ",".join(a for a in accounts if a != account)
        p.update((per_account or {}).get(account) or {})
        out[account] = p
    return out


class Record:
    """What happened, in order, for GET /_local/calls and /_local/events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.events: list[dict] = []
        self._by_invocation: dict[str, list[int]] = {}  # invocation -> the seqs of its calls

    def call(self, **entry) -> dict:
        """A call, with `invocation`: the function invocation that made it, or None."""
        with self.lock:
            entry["seq"] = len(self.calls) + 1
            entry["time"] = time.time()
            self.calls.append(entry)
            if entry.get("invocation"):
                self._by_invocation.setdefault(entry["invocation"], []).append(entry["seq"])
            return entry

    def calls_of(self, invocation: str) -> list[int]:
        """The seqs of the calls `invocation` made: the list itself, so that a call still in flight
        when the invocation ended (its process killed) joins it when it is recorded."""
        with self.lock:
            return self._by_invocation.setdefault(invocation, [])

    def event(self, **entry) -> dict:
        with self.lock:
            entry["seq"] = len(self.events) + 1
            entry.setdefault("time", time.time())
            self.events.append(entry)
            return entry

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
            self.events.clear()
            self._by_invocation.clear()


class LocalCloud:
    def __init__(self, port: int, template_path: Path, bin_dir: Path, regions: list[str], log_level: str = "info",
                 verbose: bool = False, template_params: dict[str, str] | None = None,
                 accounts: list[str] | None = None, account_params: dict[str, dict[str, str]] | None = None):
        """`accounts`: the accounts the deployment runs in (default: DEFAULT_ACCOUNT alone; the first is
        the one `stacks[region]` and `functions[(region, logical id)]` name); `template_params` every
        stack's parameters, `account_params` one account's own on top (account -> {name: value})."""
        self.accounts = list(dict.fromkeys(accounts or [DEFAULT_ACCOUNT]))
        for a in self.accounts + list(account_params or {}):
            if not _ACCOUNT_ID.match(a):
                raise ValueError(f"{a!r} is not a 12-digit account id")
        unknown = set(account_params or {}) - set(self.accounts)
        if unknown:
            raise ValueError(f"parameters for {sorted(unknown)}, which are not among the accounts {self.accounts}")
        self.account = self.accounts[0]
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.regions = regions
        self.verbose = verbose
        self.record = Record()
        # What the functions' EMF lines publish to CloudWatch (runtime.Metrics; GET /_local/metrics).
        self.metrics = runtime.Metrics()
        self.faults = Faults()
        # The cloud's clock (POST /_local/clock) and the peering connections AWS would hold, with
        # their lifecycle (POST /_local/lifecycle): peering.py.
        self.clock = peering_.Clock()
        self.peering = peering_.Peerings(self, self.clock)
        # Deliveries held back while `events.shuffle` is on: (event, region, rule, target).
        self.held: list[tuple] = []
        # The access keys of the functions (faults tell their calls apart), which their calls are
        # recorded and judged under.
        self.function_callers: set[str] = set()
        # The access keys the function processes call with -> (the caller they are recorded under,
        # the function, its concurrency slot): each slot's own key (`process_key`), and the
        # temporary keys STS gave a process for a role (see `caller_of`).
        self.process_keys: dict[str, tuple[str, runtime.Function, int]] = {}
        self.tag_versions: dict[str, int] = {}
        # Work not done yet (settle waits for none): events being routed and delivered, deliveries
        # held, and the messages of the queues a mapping reads (queues.py). Of those, the messages
        # waiting in a queue, not in flight, are also `resting`.
        self.pending = 0
        self.resting = 0
        self.pending_cv = threading.Condition()
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bus")
        self.moto = None
        self.moto_port = 0
        # (account, region, logical id) -> the function's processes (PerAccount).
        self.functions: PerAccount = PerAccount(self.account)
        # Each account's template parameters, and its stack in each region: (account, region) -> stack.
        self.params = params_of_accounts(self.accounts, {"Regions": ",".join(regions), "LogLevel": log_level,
                                                         **(template_params or {})}, account_params)
        tpl = template.load(str(template_path))
        self.stacks: PerAccount = PerAccount(self.account)
        for account in self.accounts:
            for r in regions:
                self.stacks[(account, r)] = template.stack(tpl, r, account, self.params[account])
        # The template's CloudTrail trails: which (account, region) CloudTrail events exist for
        # (awsevents.Trails; GET/POST /_local/trail). EC2's answers where moto forgives (ec2rules.py).
        self.trails = awsevents.Trails(tpl, regions, self.account, self.params[self.account], accounts=self.params)
        self.ec2_rules = ec2rules.Ec2Rules(self)
        # IAM as deployed (iam.py): each function's key acts as its template role, in its account.
        self.iam = iam_.Iam(tpl, self.params[self.account], regions, iam_.CloudLookup(self),
                            account_params=self.params)
        # The queues of every account and region, and the pollers of the event source mappings.
        self.queues = queues_.Queues(self)
        self.bin_dir = bin_dir
        self.server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- life

    def start(self) -> None:
        self.queues.check()  # as the deployment would fail (queues.py), before anything runs
        # Real AWS has its managed policies (cargo lambda deploy attaches
        # AWSLambdaBasicExecutionRole to the role it creates).
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        # Port 0: the kernel's choice, bound at once, then read back. Choosing a free port first and
        # binding it later leaves a moment in which a neighbour (another local cloud, its moto) can take it.
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self.moto_port = self.moto.get_host_and_port()[1]
        cloud = self

        class Handler(_Handler):
            pass

        Handler.cloud = cloud
        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]  # the one bound, when asked for 0
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="endpoint").start()
        for (account, region), stack in self.stacks.items():
            for logical_id, fn in stack.functions.items():
                binary = self.bin_dir / fn.binary
                if not binary.exists():
                    raise SystemExit(f"{binary} is missing: build the functions first (cargo build --bins)")
                key = f"{account}-{fn.binary}-{region}"  # the caller the calls are recorded under
                env = dict(fn.environment)
                env.update({
                    "AWS_REGION": region,
                    "AWS_DEFAULT_REGION": region,
                    "AWS_ENDPOINT_URL": self.endpoint,
                    "AWS_ACCESS_KEY_ID": key,
                    "AWS_SECRET_ACCESS_KEY": "local",
                    "AWS_EC2_METADATA_DISABLED": "true",
                })
                f = runtime.Function(
                    name=fn.name,
                    command=[str(binary)],
                    env=env,
                    concurrency=int(fn.concurrency or 1),
                    timeout=fn.timeout,
                    memory_mb=fn.memory_mb,
                    log=self._function_log,
                    # Each process calls with its slot's key, so a call tells which process made it.
                    slot_env=lambda slot, key=key: {"AWS_ACCESS_KEY_ID": process_key(key, slot)},
                    account=account,
                    metrics=self.metrics,
                )
                self.functions[(account, region, logical_id)] = f
                self.function_callers.add(key)
                for slot in range(f.concurrency):
                    self.process_keys[process_key(key, slot)] = (key, f, slot)
                self.iam.add_function(key, account, region, logical_id, fn.name)
        threading.Thread(target=self._release_held, daemon=True, name="shuffle").start()
        for f in self.functions.values():
            f.start()
        self.queues.start()  # the mappings' pollers, once their functions run

    def stop(self) -> None:
        self.queues.stop()
        if self.server:
            self.server.shutdown()
        for f in self.functions.values():
            f.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.moto:
            self.moto.stop()

    def _function_log(self, name: str, line: str) -> None:
        if self.verbose:
            print(f"[{name}] {line}", file=sys.stderr, flush=True)

    # --------------------------------------------------------------- events

    def _begin(self) -> None:
        with self.pending_cv:
            self.pending += 1

    def _end(self) -> None:
        with self.pending_cv:
            self.pending -= 1
            self.pending_cv.notify_all()

    def _rest(self, delta: int) -> None:
        """Pending messages that wait in a queue: `delta` more (or fewer)."""
        with self.pending_cv:
            self.resting += delta
            self.pending_cv.notify_all()

    def settle(self, timeout: float = 300.0) -> bool:
        """Wait until nothing is pending: no event routed or delivered, none held, and every queue a
        mapping reads empty, no batch in flight or waiting to be received again. False after
        `timeout` seconds."""
        deadline = time.time() + timeout
        with self.pending_cv:
            while self.pending > 0:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.pending_cv.wait(left)
        return True

    def put(self, event: dict, region: str, account: str | None = None) -> None:
        """An event arrives on the default bus of `account` (default: the first account) in `region`."""
        self._begin()
        self.pool.submit(self._route, event, region, account or self.account)

    def _route(self, event: dict, region: str, account: str | None = None) -> None:
        """The rules of the bus of (account, region): its stack's."""
        account = account or self.account
        try:
            if self.faults.should_drop(event, region):
                self.record.event(account=account, region=region, rule=None, target=None, source=event.get("source"),
                                  detail_type=event.get("detail-type"), outcome="dropped", event=event)
                return
            stack = self.stacks.get((account, region))
            matched = False
            for rule in stack.rules if stack else []:
                if not rule.enabled or rule.pattern is None:
                    continue
                if not patterns.matches(rule.pattern, event):
                    continue
                matched = True
                for target in rule.targets:
                    self._dispatch(event, region, rule, target)
            if not matched:
                self.record.event(account=account, region=region, rule=None, target=None, source=event.get("source"),
                                  detail_type=event.get("detail-type"), outcome="no rule", event=event)
        finally:
            self._end()

    def _dispatch(self, event: dict, region: str, rule: template.Rule, target: template.Target) -> None:
        """A rule's target gets the event: at once, or as the `events` faults say (dropped,
        doubled, held back to be handed out in random order: the faults of deliveries to functions
        and to queues; a bus or an SNS topic gets it once, at once)."""
        faulty = target.function is not None or target.queue is not None
        copies = self.faults.copies() if faulty else 1
        if copies != 1:
            account = rule.account or self.account
            where = {"target": target.function}
            if target.queue is not None:  # as the queue's own records name it (queues.py)
                where = {"target": self.stacks[(account, region)].queues[target.queue].name, "queue": target.queue}
            self.record.event(account=account, region=region, rule=rule.name, **where, source=event.get("source"),
                              detail_type=event.get("detail-type"),
                              outcome="dropped" if copies == 0 else "duplicated", event=event)
        for _ in range(copies):
            self._begin()
            if faulty and self.faults.shuffling():
                with self.pending_cv:
                    self.held.append((event, region, rule, target))
                    self.pending_cv.notify_all()
            else:
                self.pool.submit(self._deliver, event, region, rule, target)

    def _release_held(self) -> None:
        """Hands out held deliveries one at a time, a random one each time nothing else is running
        (messages waiting in a queue are not running: a batching window stays open for the next)."""
        while True:
            with self.pending_cv:
                while not self.held or self.pending - self.resting > len(self.held):
                    self.pending_cv.wait()
                i = self.faults.pick(len(self.held))
                delivery = self.held.pop(i)
            self.pool.submit(self._deliver, *delivery)

    def _deliver(self, event: dict, region: str, rule: template.Rule, target: template.Target) -> None:
        account = rule.account or self.account  # the rule's bus's
        try:
            if target.bus_arn:
                self._forward(event, account, region, rule, target)
                return
            if target.topic_arn:  # no SNS here: the publication is recorded, and goes no further
                self.record.event(account=account, region=region, rule=rule.name, target=target.topic_arn,
                                  function=None, source=event.get("source"), detail_type=event.get("detail-type"),
                                  outcome="published", event=event)
                return
            if target.queue:  # a message, read by the queue's mapping (queues.py)
                self.queues.send(event, account, region, rule, target)
                return
            self.invoke(region, target.function, event, rule.name, account)
        finally:
            self._end()

    def _forward(self, event: dict, account: str, region: str, rule: template.Rule, target: template.Target) -> None:
        """A rule's target is a default bus. Of its own account: in any region, as today. Of another
        account: as EventBridge sends between accounts, within the rule's region, with the target's
        role, into a bus whose policy lets this account in (iam.Iam.put_events_refusal); else the
        delivery is "denied", with the reason. The event goes on as it is: its `account` stays the
        one it was put in."""
        to_region, to_account = target.bus_arn.split(":")[3:5]
        entry = dict(account=account, region=region, rule=rule.name, target=target.bus_arn, to_account=to_account,
                     to_region=to_region, source=event.get("source"), detail_type=event.get("detail-type"))
        reason = None
        if to_account != account:
            receiving = self.stacks.get((to_account, to_region))
            if to_region != region:
                reason = f"EventBridge sends to another account's bus only in the rule's own region ({region}), " \
                         f"not {to_region}"
            else:
                reason = self.iam.put_events_refusal(
                    account, region, target.role_arn, target.bus_arn, event,
                    None if receiving is None else [p.statement for p in receiving.bus_policies],
                    f"arn:aws:events:{region}:{account}:rule/{rule.name}")
        if reason is not None:
            self.record.event(**entry, outcome="denied", reason=reason, event=event)
            return
        self.record.event(**entry, outcome="forwarded", event=event)
        if (to_account, to_region) in self.stacks:
            self.put(event, to_region, to_account)

    def invoke(self, region: str, logical_id: str, event: dict, rule_name: str, account: str | None = None) -> None:
        """Asynchronous invocation, as EventBridge does it: retried twice on error. The function of
        `account` (default: the first account's) in `region`."""
        account = account or self.account
        for attempt in range(1 + ASYNC_RETRIES):
            if self.invoke_once(account, region, logical_id, event, rule=rule_name, source=event.get("source"),
                                detail_type=event.get("detail-type"), attempt=attempt + 1):
                return

    def invoke_once(self, account: str, region: str, logical_id: str, event: dict, *, rule: str,
                    source: str | None, detail_type: str | None, attempt: int, **more) -> bool:
        """One synchronous invocation of the function `logical_id` of (account, region) with `event`,
        recorded in GET /_local/events: who ran it, `rule`, `source`, `detail_type` and `attempt` as
        the caller says (an asynchronous delivery: the event's own; a queue's batch: queues.py's),
        `more`'s fields, the outcome, and the invocation with the calls it made. Whether it succeeded.

        After crash_after's last call the functions are down (their processes that were in flight
        killed, see _kill_functions): the invocation fails at once, and no process runs it."""
        fn = self.functions[(account, region, logical_id)]
        down = {"errorType": "crashed", "errorMessage": "crashed (crash_after)"}

        def admit() -> dict | None:
            # Asked again once a process is free, under the lock the crash's kill takes: an
            # invocation that waited for a process while the crash happened fails at once too.
            return down if self.faults.down() else None

        who = dict(account=account, region=region, rule=rule, target=fn.name, function=logical_id,
                   caller=fn.env["AWS_ACCESS_KEY_ID"])
        started = time.time()
        result = None if self.faults.down() else fn.invoke(event, admit=admit)
        if result is None or result.error is down:
            self.record.event(**who, source=source, detail_type=detail_type, attempt=attempt, outcome="error",
                              error="crashed (crash_after)", invocation=None, calls=[], **more, event=event)
            return False
        self.record.event(
            **who,
            time=started,
            source=source,
            detail_type=detail_type,
            attempt=attempt,
            outcome="ok" if result.ok else "error",
            error=None if result.ok else result.error,
            response=result.response if result.ok else None,
            started=started,
            duration_ms=result.duration_ms,
            init_duration_ms=result.init_duration_ms,
            # The invocation (its request ID) and the seqs of the calls it made (caller_of).
            invocation=result.request_id,
            calls=self.record.calls_of(result.request_id),
            **more,
            event=event,
        )
        return result.ok

    def fire_schedules(self) -> None:
        """Every stack's schedules, of every account and region."""
        for (_, region), stack in self.stacks.items():
            for rule in stack.rules:
                if not rule.enabled or not rule.schedule:
                    continue
                event = awsevents.envelope(
                    "Scheduled Event", "aws.events", stack.account, region,
                    [f"arn:aws:events:{region}:{stack.account}:rule/{rule.name}"], {},
                )
                for target in rule.targets:
                    self._begin()
                    self.pool.submit(self._deliver, event, region, rule, target)

    def reset(self) -> None:
        self.settle()
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=30)
        conn.request("POST", "/moto-api/reset")
        conn.getresponse().read()
        conn.close()
        self.queues.reset()  # every queue empty (the dead-letter queues too)
        self.record.clear()
        self.metrics.clear()
        self.tag_versions.clear()
        self.faults.set({})
        self.iam.forget_sessions()  # moto forgot the temporary keys it gave (iam.py)
        self.peering.reset()  # no connections, the clock back to real time; the lifecycle stays
        self.trails.reset()  # the trails as deployed (POST /_local/trail undone)

    # ------------------------------------------------------------ AWS calls

    def caller_of(self, access_key: str) -> tuple[str, str | None]:
        """Whose call this is: (the caller it is recorded and judged under, the function invocation
        that made it). A function process's key (`process_key`) is its function's key and the
        invocation the process is serving (runtime.Function.in_flight: a process serves one at a
        time), asked when the call arrives, while the process waits for its answer; the temporary
        keys STS gave a process stay themselves (IAM knows them as their role) and are that process's
        too. Any other key (a person's, a test's) is itself, with no invocation."""
        found = self.process_keys.get(access_key)
        if found is None:
            return access_key, None
        caller, fn, slot = found
        return caller, fn.in_flight(slot)

    def note_assumed(self, access_key: str, action: str, status: int, response: bytes) -> None:
        """After an STS call: the temporary keys STS gave a function process are that process's
        (caller_of). (moto forgets them on a reset, the process keeps using them until they expire:
        kept.)"""
        found = self.process_keys.get(access_key)
        if found is None or not action.startswith("AssumeRole") or status != 200:
            return
        key = iam_.assumed_key(response)
        if key:
            _, fn, slot = found
            self.process_keys[key] = (key, fn, slot)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def resource_tags(self, resource_id: str, region: str, account: str) -> dict[str, str]:
        """A resource's tags as `account` sees them in `region`: a peering connection's own tags there
        (AWS keeps them per account and region, peering.py), anything else's from moto."""
        return self.peering.resource_tags(resource_id, region, account)

    def vpc_tags(self, vpc_id: str, region: str, access_key: str, account: str | None) -> dict[str, str]:
        body = f"Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-id&Filter.1.Value.1={vpc_id}".encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/20260101/{region}/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        }
        if account:
            headers["x-moto-account-id"] = account
        _, _, xml = self.forward("POST", "/", headers, body)
        parsed = awsevents.response_elements(xml) or {}
        items = (parsed.get("tagSet") or {}).get("items", []) if isinstance(parsed, dict) else []
        return {i.get("key", ""): i.get("value", "") for i in items if isinstance(i, dict)}

    def after_ec2(self, action: str, params: dict[str, str], region: str, account: str, access_key: str,
                  user_agent: str, response: bytes, moto_account: str | None, status: int = 200) -> None:
        """The events AWS emits for an EC2 call, on the bus of the caller's account in the call's region:
        its CloudTrail record, when a trail of that account's deployment records that region (failed
        calls too); tag changes of a VPC."""
        if action.startswith(awsevents.READ_ONLY_PREFIXES):
            return
        caller_account = peering_.caller_account(access_key, account)
        if self.trails.covers(caller_account, region):
            error = None
            if status != 200:
                code, message = ec2rules.error_of(response)
                error = (code or f"HTTP {status}", message, status)
            iam = getattr(self, "iam", None)
            principal = iam.principal(access_key) if iam is not None else None
            self.put(awsevents.cloudtrail(action, caller_account, region, access_key, user_agent, params,
                                          response if status == 200 else None, str(uuid.uuid4()),
                                          at=awsevents.cloud_time(self), principal=principal, error=error),
                     region, caller_account)
        if status != 200:
            return
        if action in ("CreateTags", "DeleteTags"):
            keys = [t["key"] for t in awsevents.tag_items(params)]
            for resource in awsevents.indexed(params, "ResourceId"):
                if not resource.startswith("vpc-"):
                    continue
                self.tag_versions[resource] = self.tag_versions.get(resource, 0) + 1
                tags = self.vpc_tags(resource, region, access_key, moto_account)
                self.put(awsevents.tag_change(caller_account, region, resource, keys, tags,
                                              self.tag_versions[resource], at=awsevents.cloud_time(self)),
                         region, caller_account)

    def put_events(self, body: bytes, region: str, account: str) -> tuple[int, bytes]:
        try:
            entries = json.loads(body or b"{}").get("Entries", [])
        except json.JSONDecodeError as e:
            return 400, json.dumps({"__type": "SerializationException", "message": str(e)}).encode()
        results, failed = [], 0
        for entry in entries:
            try:
                detail = json.loads(entry.get("Detail", "{}"))
                if not entry.get("Source") or not entry.get("DetailType"):
                    raise ValueError("Source and DetailType are required")
            except (ValueError, json.JSONDecodeError) as e:
                failed += 1
                results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": str(e)})
                continue
            bus = entry.get("EventBusName") or "default"
            parts = bus.split(":")
            to_region = parts[3] if bus.startswith("arn:") and len(parts) > 4 else region
            if bus.startswith("arn:") and len(parts) > 4 and parts[4] != account:
                # Only a rule sends to another account's bus (_forward); a caller puts on its own.
                failed += 1
                results.append({"ErrorCode": "AccessDeniedException",
                                "ErrorMessage": f"account {account} cannot put events on {bus}, a bus of account "
                                                f"{parts[4]}: PutEvents puts on the caller's own account's buses"})
                continue
            event = awsevents.envelope(entry["DetailType"], entry["Source"], account, region,
                                       entry.get("Resources", []), detail)
            self.put(event, to_region, account)
            results.append({"EventId": event["id"]})
        return 200, json.dumps({"FailedEntryCount": failed, "Entries": results}).encode()


class _Server(ThreadingHTTPServer):
    """The endpoint's server. Its listen backlog is the kernel's usual 128, not socketserver's 5:
    forty function processes of a ten-region deployment, each with an SDK connection pool, open
    connections in bursts, and an accept queue that overflows drops the connections it cannot
    hold (their clients see them reset), as no AWS endpoint does."""

    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    cloud: LocalCloud
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def date_time_string(self, timestamp=None) -> str:
        # Every answer's Date header (IMF-fixdate, as AWS sends it) is the cloud's clock (peering.py).
        return peering_.imf_date(self.cloud.clock.now() if timestamp is None else timestamp)

    def handle_one_request(self) -> None:
        # A function process killed mid-call (the crash fault, a timeout) resets its connection:
        # not worth a traceback. (moto hanging up shows as RemoteDisconnected: still reported.)
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError) as e:
            if isinstance(e, http.client.RemoteDisconnected):
                raise
            self.close_connection = True

    def _reply(self, status: int, body: bytes, headers: list | None = None, content_type: str | None = None) -> None:
        self.send_response(status)
        sent = set()
        for k, v in headers or []:
            if k.lower() in ("content-length", "transfer-encoding", "connection", "server", "date"):
                continue
            self.send_header(k, v)
            sent.add(k.lower())
        if content_type and "content-type" not in sent:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._reply(status, json.dumps(value, default=str).encode(), content_type="application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        body = self._body()
        if self.path.startswith("/_local/"):
            return self._local(method, self.path.split("?")[0], body)
        cloud = self.cloud
        auth = self.headers.get("Authorization", "")
        m = _AUTH.search(auth)
        sent_key, region, service = (m.group(1), m.group(2), m.group(3)) if m else ("anonymous", "us-east-1", "")
        # A function process's key is its function's from here on; `invocation`: whose call it is.
        access_key, invocation = cloud.caller_of(sent_key)
        moto_account = peering_.account_of(access_key)  # None: moto says (its default, or an assumed role's)
        # The account the call acts in: the key's, or the assumed role's (moto's mapping).
        account = moto_account or peering_.caller_account(access_key, DEFAULT_ACCOUNT)
        target = self.headers.get("X-Amz-Target", "")
        function = access_key in cloud.function_callers
        if service == "events" and target == "AWSEvents.PutEvents":
            call = Call("events", "PutEvents", region, account, access_key, function, invocation=invocation)
            if self._iam_refused(call, body, target):  # IAM as deployed (iam.py)
                return None
            fault = cloud.faults.before(call)
            if fault.fails:
                return self._refuse(call, fault)
            status, out = cloud.put_events(body, region, account)
            cloud.faults.after(call, fault, status)
            self._record(call, status, None if status == 200 else "Malformed", **fault.record())
            try:
                return self._reply(status, out, content_type="application/x-amz-json-1.1")
            finally:
                if fault.kill:  # crash_after's k-th call, answered: now the crash
                    self._kill_functions()

        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        if moto_account:
            headers["x-moto-account-id"] = moto_account
        params = awsevents.form(body) if service == "ec2" or (service in ("sts", "iam") and body) else {}
        action = params.get("Action") or (target.split(".")[-1] if target else f"{method} {self.path.split('?')[0]}")
        call = Call(service or "unknown", action, region, account, access_key, function, params, invocation)
        if self._iam_refused(call, body, target):  # IAM as deployed (iam.py)
            return None
        fault = cloud.faults.before(call)
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.fails:
            return self._refuse(call, fault)
        status = 0
        try:
            if service == "ec2":
                # Peering connections as AWS runs them (peering.py): an error of AWS's answered here
                # instead of moto, or moto's answer rewritten (states, tags per account and region).
                status, resp_headers, out = cloud.peering.call(
                    action, params, region, account, access_key,
                    # then EC2's own refusals where moto forgives (ec2rules.py), then moto
                    lambda: cloud.ec2_rules.call(action, params, region, account, access_key,
                                                 lambda: cloud.forward(method, self.path, headers, body)))
            else:
                status, resp_headers, out = cloud.forward(method, self.path, headers, body)
        finally:
            cloud.faults.after(call, fault, status)
        error = None
        if status >= 300:
            code = _ERROR_CODE.search(out)
            if code:
                error = code.group(1).decode()
            else:
                try:
                    error = json.loads(out).get("__type", f"HTTP {status}")
                except (ValueError, AttributeError):
                    error = f"HTTP {status}"
        self._record(call, status, error, **fault.record())
        if service == "sts":  # the keys of a role a function assumed act as that role (iam.py), its process's
            cloud.iam.observe(service, action, access_key, params, status, out)
            cloud.note_assumed(sent_key, action, status, out)
        if service == "ec2" and (status == 200 or (400 <= status < 600 and error)):  # failed calls too (CloudTrail)
            try:
                cloud.after_ec2(action, params, region, account, access_key, self.headers.get("User-Agent", ""), out,
                                moto_account, status)
            except Exception as e:  # an event we failed to build must not fail the call
                print(f"localcloud: no event for {action}: {e!r}", file=sys.stderr, flush=True)
        try:
            self._reply(status, out, resp_headers)
        finally:
            if fault.kill:  # crash_after's k-th call, answered: now the crash
                self._kill_functions()

    def _kill_functions(self) -> None:
        """The crash (crash_after): every function process with an invocation in flight is killed,
        as Lambda kills a runtime (runtime.py: Runtime.ExitError, the process restarted)."""
        self.cloud.faults.note_killed(runtime.kill_in_flight(self.cloud.functions.values()))

    def _record(self, call: Call, status: int, error: str | None, **more) -> None:
        """GET /_local/calls' record of `call`: its caller the function's key, and its invocation."""
        self.cloud.record.call(service=call.service, action=call.action, region=call.region, account=call.account,
                               caller=call.caller, invocation=call.invocation, status=status, error=error, **more)

    def _iam_refused(self, call: Call, body: bytes, target: str) -> bool:
        """A function's call its template role does not allow is answered as AWS answers it (iam.py),
        never reaches moto, and is recorded with `denied`: what was refused and why."""
        try:
            refusal = self.cloud.iam.check(call.service, call.action, call.region, call.caller, call.params, body,
                                           target)
        except Exception as e:  # noqa: BLE001 - a bug in the check must not take the endpoint down
            print(f"localcloud iam: cannot check {call.action}: {e!r}", file=sys.stderr, flush=True)
            return False
        if refusal is None:
            return False
        self._record(call, refusal.status, refusal.code, denied=refusal.record)
        self._reply(refusal.status, refusal.body, content_type=refusal.content_type)
        return True

    def _refuse(self, call: Call, fault) -> None:
        """An injected fault answers the call instead of moto: an EC2 error, or a closed connection."""
        self._record(call, fault.status, fault.code, **fault.record())
        if fault.kill:  # a mutating call after the crash, sent before the kill landed: the caller dies too
            self._kill_functions()
        if fault.code == faults.CONNECTION:
            # No answer at all: the client sees the connection close mid-request.
            self.close_connection = True
            return None
        return self._reply(fault.status, faults.error_xml(fault.code), content_type="text/xml;charset=UTF-8")

    def _local(self, method: str, path: str, body: bytes) -> None:
        cloud = self.cloud
        try:
            if method == "POST" and path == "/_local/settle":
                ok = cloud.settle()
                return self._json(200 if ok else 504, {"settled": ok})
            if method == "POST" and path == "/_local/schedule":
                cloud.fire_schedules()
                ok = cloud.settle()
                return self._json(200 if ok else 504, {"settled": ok})
            if method == "GET" and path == "/_local/events":
                with cloud.record.lock:
                    return self._json(200, list(cloud.record.events))
            if method == "GET" and path == "/_local/calls":
                with cloud.record.lock:
                    return self._json(200, list(cloud.record.calls))
            if method == "GET" and path == "/_local/queues":  # the SQS queues' messages (queues.py)
                return self._json(200, cloud.queues.state())
            if method == "GET" and path == "/_local/metrics":  # the EMF lines' datapoints (runtime.Metrics)
                return self._json(200, cloud.metrics.query(parse_qs(urlsplit(self.path).query)))
            if method == "POST" and path == "/_local/reset":
                cloud.reset()
                return self._json(200, {"reset": True})
            if method == "POST" and path == "/_local/faults":
                cloud.faults.set(json.loads(body or b"{}"))
                return self._json(200, cloud.faults.state())
            if method == "GET" and path == "/_local/faults":
                return self._json(200, cloud.faults.state())
            if path == "/_local/clock" and method in ("GET", "POST"):  # peering.py: Clock
                return self._json(200, cloud.clock.set(json.loads(body or b"null")) if method == "POST"
                                  else cloud.clock.state())
            if path == "/_local/lifecycle" and method in ("GET", "POST"):  # peering.py: Lifecycle
                return self._json(200, cloud.peering.lifecycle.set(json.loads(body or b"{}")) if method == "POST"
                                  else cloud.peering.lifecycle.state())
            if path == "/_local/trail" and method in ("GET", "POST"):  # awsevents.Trails: CloudTrail as deployed
                return self._json(200, cloud.trails.set(json.loads(body or b"{}")) if method == "POST"
                                  else cloud.trails.state())
            return self._json(404, {"error": f"no {method} {path}"})
        except (ValueError, json.JSONDecodeError) as e:
            return self._json(400, {"error": str(e)})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    repo = Path(__file__).resolve().parents[2]
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or repo / "target")
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4566, help="0: a free port of the kernel's choosing, named in the ready line")
    parser.add_argument("--template", type=Path, default=repo / "infra-template" / "template.yaml")
    parser.add_argument("--bin-dir", type=Path, default=target_dir / "debug",
                        help="where the function binaries are (default: $CARGO_TARGET_DIR/debug)")
    parser.add_argument("--regions", default=",".join(DEFAULT_REGIONS))
    parser.add_argument("--accounts", default=DEFAULT_ACCOUNT,
                        help="the accounts the deployment runs in, 12-digit ids separated by commas (default: "
                             f"{DEFAULT_ACCOUNT} alone): a stack per account and region, each account's "
                             "AllowedAccounts the others unless --param sets it; an access key ACCOUNT-NAME acts in "
                             "ACCOUNT")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--verbose", action="store_true", help="print the functions' log lines")
    parser.add_argument("--param", metavar="[ACCOUNT:]NAME=VALUE", action="append", default=[],
                        help="a template parameter, as `sam deploy --parameter-overrides` takes it (repeatable), "
                             "e.g. CreateTrail=false: no trail, so no CloudTrail events; ACCOUNT:NAME=VALUE sets it "
                             "for that account's stacks alone, e.g. 222222222222:AllowedAccounts=")
    parser.add_argument("--no-functions", action="store_true",
                        help="AWS's endpoint alone: no function processes and no rules (events are recorded and "
                             "delivered nowhere), for tests that run tagpeer's handlers in their own process")
    parser.add_argument("--batching-window", metavar="SECONDS", type=float, default=None,
                        help="at most this batching window for every queue's event source mapping, shorter than "
                             "the template's MaximumBatchingWindowInSeconds (default: the template's), as "
                             "--lifecycle shortens AWS's states: for tests that would otherwise wait a second "
                             "at every step")
    parser.add_argument("--lifecycle", metavar="JSON", default=None,
                        help='peering connections\' intermediate states, as POST /_local/lifecycle takes them '
                             '(default: AWS\'s timing), e.g. \'{"instant": true}\'')
    args = parser.parse_args(argv)
    try:
        args.lifecycle = peering_.parse_lifecycle(args.lifecycle) if args.lifecycle else None
    except ValueError as e:  # json.JSONDecodeError is one
        parser.error(f"--lifecycle: {e}")
    args.accounts = [a.strip() for a in args.accounts.split(",") if a.strip()] or [DEFAULT_ACCOUNT]
    bad = [a for a in args.accounts if not _ACCOUNT_ID.match(a)]
    if bad:
        parser.error(f"--accounts: {', '.join(bad)}: not 12-digit account ids")
    args.template_params, args.account_params = {}, {}
    for item in args.param:
        name, sep, value = item.partition("=")
        account, colon, name = name.rpartition(":")
        if not sep or not name or (colon and account not in args.accounts):
            parser.error(f"--param {item!r}: NAME=VALUE, or ACCOUNT:NAME=VALUE for an account of --accounts")
        (args.account_params.setdefault(account, {}) if colon else args.template_params)[name] = value
    return args


def cloud_from_args(args: argparse.Namespace) -> LocalCloud:
    """The local cloud `parse_args` describes, not started."""
    cloud = LocalCloud(args.port, args.template, args.bin_dir, [r for r in args.regions.split(",") if r],
                       args.log_level, args.verbose, args.template_params, accounts=args.accounts,
                       account_params=args.account_params)
    if args.lifecycle is not None:
        cloud.peering.lifecycle.set(args.lifecycle)
    if args.batching_window is not None:
        for stack in cloud.stacks.values():
            for mapping in stack.mappings:
                mapping.window_s = min(mapping.window_s, max(0.0, args.batching_window))
    if args.no_functions:
        for stack in cloud.stacks.values():
            stack.functions.clear()
            stack.rules.clear()
    return cloud


def main(argv: list[str] | None = None) -> None:
    cloud = cloud_from_args(parse_args(argv))
    stopping = threading.Event()

    def stop(*_):
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        cloud.start()
        print(f"ready {cloud.endpoint}", flush=True)
        stopping.wait()
    finally:
        cloud.stop()
