"""A local AWS Lambda execution environment: the Runtime API (2018-06-01), served per process.

The local cloud runs the real function binaries (built with the `lambda_runtime` crate, which
polls the Runtime API) as plain processes: one warm process per unit of concurrency, each with
its own Runtime API endpoint on 127.0.0.1 (an ephemeral port, passed in AWS_LAMBDA_RUNTIME_API).

    with Function("router", ["target/debug/router"], {"AWS_REGION": "ap-northeast-2"},
                  concurrency=2, timeout=10) as fn:
        result = fn.invoke({"detail-type": "..."})
        assert result.ok, result.error

What is emulated, following "Using the Lambda runtime API for custom runtimes" and its OpenAPI
specification (runtime-api.zip):

* GET  /2018-06-01/runtime/invocation/next          blocks until an event; 200 with the event
  body and the headers Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms (Unix epoch ms),
  Lambda-Runtime-Invoked-Function-Arn, Lambda-Runtime-Trace-Id, Content-Type: application/json.
* POST /2018-06-01/runtime/invocation/{id}/response  202 {"status":"OK"}.
* POST /2018-06-01/runtime/invocation/{id}/error     202 {"status":"OK"}; the body is the
  ErrorRequest ({errorType, errorMessage, stackTrace}); when the body is missing or unreadable the
  error is built from the Lambda-Runtime-Function-Error-Type header, as the specification says.
* POST /2018-06-01/runtime/init/error                202 {"status":"OK"}; the error is served in
  answer to the first invoke (here: start() raises it, or the invocation that re-initialises).
* A request ID that is not the one in flight: 400 {"errorType":"InvalidRequestID"}; answering an
  invocation twice: 403 {"errorType":"InvalidStateTransition"} (the shapes the AWS Runtime
  Interface Emulator renders). A response over 6291556 bytes: 413, and the invocation fails with
  Function.ResponseSizeTooLarge.
* The process dies mid-invocation: the invocation fails with Runtime.ExitError and the process is
  restarted before the caller gets the answer. No answer by the deadline: the process is killed
  and restarted, and the invocation fails with Sandbox.Timedout.
* `Function.kill_in_flight()` (and `kill_in_flight(functions)`) SIGKILLs the process group of
  every process with an invocation in flight, as Lambda does when a runtime runs out of memory:
  each of those invocations ends at once with Runtime.ExitError ("Runtime exited with error:
  signal: killed") and its process is restarted. `invoke(..., admit=)` is the gate the local
  cloud's crash fault uses: checked just before the event is handed to a process, under the lock
  kill_in_flight takes, so an invocation either runs on a process the kill will find or never
  reaches a process at all.
* Each concurrency slot may have an environment of its own (`slot_env`), as each Lambda execution
  environment has credentials of its own: the local cloud gives each slot its own access key, so
  that a call tells which process made it. `Function.in_flight(slot)` is the request ID of the
  invocation that slot's process is serving (from the moment its event is handed over until its
  runtime asks for the next one), or None: a process serves one invocation at a time, so a call a
  process makes is that invocation's.

The process runs in LAMBDA_TASK_ROOT (the command's directory, unless env names another), in its
own process group, with an environment made of the given env plus the variables Lambda reserves.
An invocation's `logs` are the lines the process writes from the moment its event is handed over
until it asks for the next one (as CloudWatch groups them between START and END); every line, init
output included, also goes to `log(function_name, line)`.

The CloudWatch embedded metric format (EMF): every line a process writes on standard output that
is a JSON object whose `_aws` holds `CloudWatchMetrics` is a record CloudWatch Logs would extract
metrics from. `Metrics` (each Function's `metrics`, or one store the functions share) keeps what
CloudWatch would publish: one datapoint per metric and dimension set, with the function, region,
account and invocation (request ID) that wrote it; a record CloudWatch would not accept (a
dimension's value missing, a metric's value not a number, a limit broken: `emf_datapoints`) is
dropped whole and kept among the `rejected`, with the reason. Lines that are not EMF (plain text,
other JSON) are only log lines. The line stays in the invocation's logs either way.

Not emulated: freezing the process between invocations, memory limits (AWS_LAMBDA_FUNCTION_MEMORY_SIZE
is only advertised), the Extensions and Telemetry APIs, CloudWatch's START/END/REPORT lines,
client context and Cognito identity headers, and response streaming beyond collecting the
chunked body (an error trailer is honoured).

Python 3.11 standard library only.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import select
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["EmfRejected", "Function", "Invocation", "Metrics", "emf_datapoints", "emf_record", "kill_in_flight"]

API_PREFIX = "/2018-06-01/runtime"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
# The PATH of the Lambda execution environment.
DEFAULT_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
# Synchronous invocation payload limits (6 MB); the numbers are the ones AWS's messages quote.
MAX_REQUEST_BYTES = 6291456
MAX_RESPONSE_BYTES = 6291556
INIT_TIMEOUT = 30.0
# How long an answered invocation keeps collecting output while waiting for the next /next.
FOLLOW_WAIT = 1.0
STOP_GRACE = 2.0
TAIL_LINES = 40


# -- CloudWatch embedded metric format ----------------------------------------------------------
#
# As CloudWatch Logs reads it ("Specification: Embedded metric format", CloudWatch User Guide):
# the root is a JSON object whose `_aws` (the metadata object) holds `CloudWatchMetrics`, an array
# of MetricDirectives, and `Timestamp`, a number (ms since the epoch). A MetricDirective holds
# `Namespace` (a string), `Dimensions` (an array of DimensionSets: arrays of at most 30 dimension
# keys, each the name of a top-level member whose value is a string) and `Metrics` (at most 100
# MetricDefinitions: `Name`, the name of a top-level member whose value is a number or an array of
# at most 100 numbers; `Unit`, one of CloudWatch's standard units, "None" when absent;
# `StorageResolution`, 1 or 60, 60 when absent). The root holds every member a directive refers to;
# a record that breaks a rule yields no metric at all. A DimensionSet with no keys (`[[]]`), or no
# DimensionSet (`[]`), publishes the metrics without dimensions.

EMF_MAX_DIMENSIONS = 30
EMF_MAX_METRICS = 100
EMF_MAX_VALUES = 100
EMF_UNITS = frozenset(
    "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits "
    "Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second "
    "Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second "
    "None".split()
)


class EmfRejected(ValueError):
    """An EMF record CloudWatch would extract no metric from; the message says why."""


def emf_record(line: str) -> dict | None:
    """The JSON object of `line` when it is an EMF record (its `_aws` holds `CloudWatchMetrics`),
    else None (plain text, other JSON)."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("_aws"), dict) and "CloudWatchMetrics" in doc["_aws"]:
        return doc
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def emf_datapoints(record: dict) -> list[dict]:
    """The datapoints CloudWatch publishes for the EMF `record` (emf_record's object): one per metric
    and dimension set, each {"namespace", "name", "unit", "storage_resolution", "value" (a number) or
    "values" (an array's numbers), "dimensions": {key: value}, "timestamp" (ms), "properties": the
    record's other top-level members (dimensions' included, `_aws` and the metrics' not)}, in the
    order of the directives, their metrics, then their dimension sets. EmfRejected when CloudWatch
    would reject the record."""
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        raise EmfRejected("_aws is not an object")
    timestamp = meta.get("Timestamp")
    if timestamp is None:
        raise EmfRejected("_aws.Timestamp is missing")
    if not _is_number(timestamp):
        raise EmfRejected(f"_aws.Timestamp is not a number: {timestamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise EmfRejected("_aws.CloudWatchMetrics is not an array")
    parsed = []
    metric_names: set[str] = set()
    for i, directive in enumerate(directives):
        where = f"CloudWatchMetrics[{i}]"
        if not isinstance(directive, dict):
            raise EmfRejected(f"{where} is not an object")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not namespace.strip():
            raise EmfRejected(f"{where}.Namespace is missing or not a non-empty string")
        if len(namespace) > 1024:
            raise EmfRejected(f"{where}.Namespace is longer than 1024 characters")
        if namespace.startswith("AWS/"):
            raise EmfRejected(f"{where}.Namespace {namespace!r}: namespaces starting with AWS/ are AWS's own")
        dimension_sets = directive.get("Dimensions", [])
        if not isinstance(dimension_sets, list):
            raise EmfRejected(f"{where}.Dimensions is not an array of dimension sets")
        sets: list[dict[str, str]] = []
        for j, keys in enumerate(dimension_sets):
            if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
                raise EmfRejected(f"{where}.Dimensions[{j}] is not an array of dimension keys (strings)")
            if len(keys) > EMF_MAX_DIMENSIONS:
                raise EmfRejected(f"{where}.Dimensions[{j}] has {len(keys)} dimensions (at most {EMF_MAX_DIMENSIONS})")
            dims = {}
            for key in keys:
                if key not in record:
                    raise EmfRejected(f"dimension {key!r} has no value (no top-level member {key!r})")
                value = record[key]
                if not isinstance(value, str):
                    raise EmfRejected(f"dimension {key!r} is not a string: {value!r}")
                if not value.strip() or len(value) > 1024:
                    raise EmfRejected(f"dimension {key!r}: a value of 1 to 1024 characters, not only spaces: {value!r}")
                dims[key] = value
            sets.append(dims)
        if not sets:
            sets = [{}]
        definitions = directive.get("Metrics")
        if not isinstance(definitions, list):
            raise EmfRejected(f"{where}.Metrics is missing or not an array")
        if len(definitions) > EMF_MAX_METRICS:
            raise EmfRejected(f"{where}.Metrics has {len(definitions)} metrics (at most {EMF_MAX_METRICS})")
        metrics = []
        for j, definition in enumerate(definitions):
            if not isinstance(definition, dict):
                raise EmfRejected(f"{where}.Metrics[{j}] is not an object")
            name = definition.get("Name")
            if not isinstance(name, str) or not name:
                raise EmfRejected(f"{where}.Metrics[{j}].Name is missing or not a string")
            unit = definition.get("Unit", "None")
            if unit not in EMF_UNITS:
                raise EmfRejected(f"metric {name!r}: Unit {unit!r} is not a CloudWatch unit")
            resolution = definition.get("StorageResolution", 60)
            if resolution not in (1, 60) or isinstance(resolution, bool):
                raise EmfRejected(f"metric {name!r}: StorageResolution {resolution!r} is neither 1 nor 60")
            if name not in record:
                raise EmfRejected(f"metric {name!r} has no value (no top-level member {name!r})")
            value = record[name]
            if isinstance(value, list):
                if not value or not all(_is_number(v) for v in value):
                    raise EmfRejected(f"metric {name!r} is not a number or a non-empty array of numbers: {value!r}")
                if len(value) > EMF_MAX_VALUES:
                    raise EmfRejected(f"metric {name!r} has {len(value)} values (at most {EMF_MAX_VALUES})")
            elif not _is_number(value):
                raise EmfRejected(f"metric {name!r} is not a number: {value!r}")
            metrics.append((name, unit, resolution, value))
            metric_names.add(name)
        parsed.append((namespace, sets, metrics))
    properties = {k: v for k, v in record.items() if k != "_aws" and k not in metric_names}
    out = []
    for namespace, sets, metrics in parsed:
        for name, unit, resolution, value in metrics:
            for dims in sets:
                point = {"namespace": namespace, "name": name, "unit": unit, "storage_resolution": resolution}
                point["values" if isinstance(value, list) else "value"] = list(value) if isinstance(value, list) else value
                point.update(dimensions=dict(dims), timestamp=timestamp, properties=dict(properties))
                out.append(point)
    return out


class Metrics:
    """The metrics the functions' EMF lines publish, as GET /_local/metrics serves them: `metrics`,
    their datapoints (emf_datapoints'), each with `seq` (its number), `record` (the number of the
    line it came from: the datapoints of one line share it) and who wrote it: `function`, `region`,
    `account`, `invocation` (the request ID it was written during, None outside an invocation);
    `rejected`: the lines CloudWatch would reject, {"seq", "line", "reason", "function", "region",
    "account", "invocation"}. Thread-safe."""

    # Filters on these match the datapoint's own field; any other, a dimension or property of that name.
    FIELDS = ("namespace", "name", "unit", "function", "region", "account", "invocation")
    WHO = ("function", "region", "account", "invocation")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.datapoints: list[dict] = []
        self.rejected: list[dict] = []
        self._records = 0

    def observe(self, line: str, *, function: str, region: str, account: str, invocation: str | None) -> bool:
        """Take `line` (one line of a function's standard output): True when it is an EMF record
        (published, or rejected), False when it is not one (nothing kept)."""
        record = emf_record(line)
        if record is None:
            return False
        # A line that names its invocation (tagpeer's carry the Lambda request id as `RequestId`)
        # is that invocation's: the reader may see it only after the runtime has its answer.
        if isinstance(record.get("RequestId"), str):
            invocation = record["RequestId"]
        who = {"function": function, "region": region, "account": account, "invocation": invocation}
        try:
            points = emf_datapoints(record)
        except EmfRejected as e:
            with self.lock:
                self.rejected.append({"seq": len(self.rejected) + 1, "line": line, "reason": str(e), **who})
            return True
        with self.lock:
            self._records += 1
            for point in points:
                point.update(seq=len(self.datapoints) + 1, record=self._records, **who)
                self.datapoints.append(point)
        return True

    def query(self, filters: dict[str, list[str] | str] | None = None) -> dict:
        """{"metrics": [...], "rejected": [...]}: the datapoints that match every filter (a key and
        the values it accepts, any of them): `namespace`, `name`, `unit`, `function` (the function's
        name, or the record's `Function` property: `router`), `region`, `account`, `invocation`, and
        any other key a dimension or property of that name (`VpcId=vpc-1`); the rejected lines that
        match the filters on function, region, account and invocation (the others say nothing of a
        line that published nothing)."""
        wanted = {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}
        with self.lock:
            points = [p for p in self.datapoints if self._matches(p, wanted)]
            rejected = [r for r in self.rejected
                        if all(self._field(r, k, vs) for k, vs in wanted.items() if k in self.WHO)]
            return json.loads(json.dumps({"metrics": points, "rejected": rejected}))  # copies

    @staticmethod
    def _field(entry: dict, key: str, values: list[str]) -> bool:
        got = entry.get(key)
        return (got is None and "" in values) or (got is not None and str(got) in values)

    def _matches(self, point: dict, wanted: dict[str, list[str]]) -> bool:
        for key, values in wanted.items():
            if key in self.FIELDS:
                if self._field(point, key, values):
                    continue
                if key == "function" and str(point["properties"].get("Function")) in values:
                    continue
                return False
            found = point["dimensions"].get(key, point["properties"].get(key))
            if found is None or str(found) not in values:
                return False
        return True

    def clear(self) -> None:
        with self.lock:
            self.datapoints.clear()
            self.rejected.clear()
            self._records = 0


@dataclass
class Invocation:
    request_id: str
    ok: bool
    response: object | None = None
    error: dict | None = None
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    logs: list[str] = field(default_factory=list)


class _Record:
    """One invocation in flight on one process."""

    def __init__(self, request_id: str, payload: bytes, deadline_ms: int):
        self.request_id = request_id
        self.payload = payload
        self.deadline_ms = deadline_ms
        self.done = threading.Event()
        self.followed = threading.Event()  # the runtime asked for its next event after this one
        self.ok = False
        self.response: object | None = None
        self.error: dict | None = None
        self.logs: list[str] = []
        self.t_done: float | None = None

    def finish(self, ok: bool, response: object | None = None, error: dict | None = None) -> None:
        self.ok, self.response, self.error = ok, response, error
        self.t_done = time.monotonic()
        self.done.set()


def _json_status(code: int, error_type: str | None = None, message: str = "") -> tuple[int, bytes]:
    if error_type is None:
        return code, b'{"status":"OK"}'
    return code, json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def _error_from(body: bytes, header_type: str | None, default_message: str) -> dict:
    """The error document a runtime posted, or one built from Lambda-Runtime-Function-Error-Type."""
    fallback_type = header_type or "Runtime.Unknown"
    try:
        doc = json.loads(body) if body.strip() else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    if doc is not None:
        return {"errorType": fallback_type, "errorMessage": str(doc)}
    text = body.decode("utf-8", "replace").strip()
    return {"errorType": fallback_type, "errorMessage": text or default_message}


def _decode_response(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a /next handler may be parked; never join handler threads on close

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        # A killed process drops its connections mid-request: that is not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Rust client's connection pool expects
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- plumbing ----------------------------------------------------------------------------

    def _read_body(self) -> tuple[bytes, dict[str, str]]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, trailers = [], {}
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                        name, _, value = trailer.decode("latin-1").partition(":")
                        trailers[name.strip().lower()] = value.strip()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks), trailers
        length = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(length) if length > 0 else b""), {}

    def _send(self, code: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        for name, value in headers or [("Content-Type", "application/json")]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _route(self) -> list[str]:
        path = self.path.split("?", 1)[0]
        if not path.startswith(API_PREFIX + "/"):
            return []
        return path[len(API_PREFIX) + 1 :].split("/")

    # -- endpoints ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        sandbox: _Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        parts = self._route()
        if parts == ["invocation", "next"]:
            self._next(sandbox)
        elif parts == ["init", "error"] or (
            len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error")
        ):
            self._send(*_json_status(405, "MethodNotAllowed", "Method not allowed"))
        else:
            self._send(*_json_status(404, "NotFound", f"Not found: {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        sandbox: _Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        body, trailers = self._read_body()
        parts = self._route()
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if parts == ["init", "error"]:
            sandbox.init_error = _error_from(body, error_type, "Runtime reported an init error")
            self._send(*_json_status(202))
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            self._send(*sandbox.complete(parts[1], parts[2], body, error_type, trailers))
        elif parts == ["invocation", "next"]:
            self._send(*_json_status(405, "MethodNotAllowed", "Method not allowed"))
        else:
            self._send(*_json_status(404, "NotFound", f"Not found: {self.path}"))

    def _next(self, sandbox: _Sandbox) -> None:
        sandbox.mark_warm()
        sandbox.note_next()
        record = sandbox.wait_event()
        if record is None:  # the sandbox is going away
            self.close_connection = True
            try:
                self._send(*_json_status(500, "Sandbox.Shutdown", "The execution environment is shutting down"))
            except OSError:
                pass
            return
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", record.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(record.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", sandbox.fn.arn),
            ("Lambda-Runtime-Trace-Id", _trace_id()),
        ]
        sandbox.delivered(record)
        try:
            self._send(200, record.payload, headers)
        except OSError:
            self.close_connection = True  # the process died; its invocation will notice


class _Sandbox:
    """One process of a function, with its own Runtime API server and output readers."""

    def __init__(self, fn: Function, slot: int):
        self.fn = fn
        self.slot = slot
        self.lock = threading.Lock()
        self.events: queue.Queue[_Record] = queue.Queue()
        self.current: _Record | None = None
        self.last_delivered: _Record | None = None
        self.answered: deque[str] = deque(maxlen=64)
        self.warm = threading.Event()
        self.init_duration_ms: float | None = None
        self.init_error: dict | None = None
        self.served = 0
        self.closed = False
        self.killed = False  # kill_in_flight() sent SIGKILL (counted once)
        self._closing = False
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.stdout_tail: deque[str] = deque(maxlen=TAIL_LINES)

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.sandbox = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self._serve_thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lambda-api-{fn.name}-{slot}",
            daemon=True,
        )
        self._serve_thread.start()

        # Output readers: one thread selects over stdout, stderr and a wake-up pipe.
        self._out_cond = threading.Condition()
        self._wake_seq = 0
        self._idle_seq = 0
        self._out_eof = False
        self._reader_stop = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

        self.log_stream = f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.t_spawn = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                fn.argv,
                env=fn.process_env(self.port, self.log_stream, slot),
                cwd=fn.task_root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so stop() reaches its children
            )
        except OSError:
            self._shutdown_server()
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise
        self._reader = threading.Thread(target=self._read_output, name=f"lambda-out-{fn.name}-{slot}", daemon=True)
        self._reader.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- Runtime API side --------------------------------------------------------------------

    def mark_warm(self) -> None:
        if not self.warm.is_set():
            self.init_duration_ms = (time.monotonic() - self.t_spawn) * 1000.0
            self.warm.set()

    def note_next(self) -> None:
        with self.lock:
            if self.last_delivered is not None:
                self.last_delivered.followed.set()

    def delivered(self, record: _Record) -> None:
        with self.lock:
            self.last_delivered = record

    def wait_event(self) -> _Record | None:
        while not self.closed:
            try:
                return self.events.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def complete(
        self, request_id: str, kind: str, body: bytes, error_type: str | None, trailers: dict[str, str]
    ) -> tuple[int, bytes]:
        with self.lock:
            record = self.current
            if record is None or record.request_id != request_id:
                if request_id in self.answered:
                    return _json_status(403, "InvalidStateTransition", "State transition is not allowed")
                return _json_status(400, "InvalidRequestID", "Invalid request ID")
            if record.done.is_set():
                return _json_status(403, "InvalidStateTransition", "State transition is not allowed")
            self.answered.append(request_id)
            if kind == "error":
                record.finish(False, error=_error_from(body, error_type, "Runtime reported an error"))
                return _json_status(202)
            if len(body) > MAX_RESPONSE_BYTES:
                message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                record.finish(False, error={"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})
                return _json_status(413, "RequestEntityTooLarge", message)
            trailer_type = trailers.get("lambda-runtime-function-error-type")
            if trailer_type:  # a streamed response that failed midway
                detail = trailers.get("lambda-runtime-function-error-body", "")
                record.finish(False, error=_error_from(detail.encode(), trailer_type, "Streaming response failed"))
            else:
                record.finish(True, response=_decode_response(body))
            return _json_status(202)

    # -- process side ------------------------------------------------------------------------

    def exit_status(self) -> int | None:
        """The exit status (negative: killed by that signal), without reaping the process.

        Leaving the zombie in place keeps its PID, hence its process group ID, from being
        reused until close() has swept the group."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.proc.poll()
        if info is None or info.si_pid == 0:
            return None
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return -info.si_status

    def signal_group(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return  # reaped: the group ID may belong to someone else now
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait_exit(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while True:
            status = self.exit_status()
            if status is not None or time.monotonic() >= end:
                return status
            time.sleep(0.01)

    def wait_warm(self, timeout: float) -> str | None:
        """None once the process has asked for its first event, else why it never will."""
        end = time.monotonic() + timeout
        while not self.warm.wait(0.01):
            if self.init_error is not None:
                return f"posted /runtime/init/error: {json.dumps(self.init_error)}"
            status = self.exit_status()
            if status is not None:
                if self.init_error is not None:
                    return f"posted /runtime/init/error: {json.dumps(self.init_error)}"
                return f"{_describe_exit(status)} before calling /runtime/invocation/next"
            if time.monotonic() >= end:
                return f"was not ready within {timeout:g} s (never called /runtime/invocation/next)"
        return None

    def tail(self) -> str:
        self.wait_output_eof(0.3 if self.exit_status() is not None else 0.0)
        parts = []
        if self.stderr_tail:
            parts.append("--- stderr (last lines) ---\n" + "\n".join(self.stderr_tail))
        if self.stdout_tail:
            parts.append("--- stdout (last lines) ---\n" + "\n".join(self.stdout_tail))
        return "\n".join(parts) if parts else "(no output)"

    def close(self) -> None:
        """Kill the process group, reap the process, stop the server and the reader."""
        with self.lock:
            if self._closing:
                return
            self._closing = True
        self.closed = True
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass
        self.wait_output_eof(0.5)
        self._shutdown_server()
        with self._out_cond:
            self._reader_stop = True
        self._wake()
        self._reader.join(timeout=1.0)
        if not self._reader.is_alive():
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def _shutdown_server(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- output ------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def sync_output(self, timeout: float = 0.5) -> None:
        """Wait until every byte the process wrote before now has been read and attributed."""
        with self._out_cond:
            if self._out_eof:
                return
            self._wake_seq += 1
            target = self._wake_seq
        self._wake()
        with self._out_cond:
            self._out_cond.wait_for(lambda: self._idle_seq >= target or self._out_eof, timeout)

    def wait_output_eof(self, timeout: float) -> None:
        with self._out_cond:
            self._out_cond.wait_for(lambda: self._out_eof, timeout)

    def _read_output(self) -> None:
        streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        partial = {fd: b"" for fd in streams}
        try:
            while streams and not self._reader_stop:
                start_seq = self._wake_seq
                pending = self._idle_seq < start_seq  # a sync_output() is waiting: do not block
                ready, _, _ = select.select([*streams, self._wake_r], [], [], 0 if pending else 1.0)
                if self._wake_r in ready:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                got_data = False
                for fd in [fd for fd in ready if fd in streams]:
                    got_data = True
                    data = os.read(fd, 65536)
                    if not data:
                        if partial[fd]:
                            self._line(streams[fd], partial[fd])
                        del streams[fd], partial[fd]
                        continue
                    *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                    for raw in lines:
                        self._line(streams[fd], raw)
                if not got_data:
                    with self._out_cond:
                        self._idle_seq = max(self._idle_seq, start_seq)
                        self._out_cond.notify_all()
        finally:
            with self._out_cond:
                self._out_eof = True
                self._out_cond.notify_all()

    def _line(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        (self.stderr_tail if stream == "stderr" else self.stdout_tail).append(line)
        with self.lock:
            invocation = self.current.request_id if self.current is not None else None
            if self.current is not None:
                self.current.logs.append(line)
        if stream == "stdout":  # an EMF record: the invocation it was written during is its own
            fn = self.fn
            try:
                fn.metrics.observe(line, function=fn.name, region=fn.region, account=fn.account, invocation=invocation)
            except Exception:  # noqa: BLE001 - a bad record must not stop the reader
                pass
        if self.fn.log is not None:
            try:
                self.fn.log(self.fn.name, line)
            except Exception:  # noqa: BLE001 - a broken log sink must not stop the reader
                pass


def _describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by signal {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _exit_error_message(request_id: str, status: int | None) -> str:
    # Lambda's words, as its logs show them: "Runtime exited with error: exit status 129"
    # (AWS re:Post Knowledge Center on Lambda's Runtime.ExitError,
    # repost.aws/knowledge-center/lambda-runtime-error); a signal by its description in lower
    # case, "signal: killed" for SIGKILL, as out-of-memory kills read (Sparticuz/chromium
    # issue #43) and "signal: segmentation fault" (awslabs/aws-lambda-cpp issue #30).
    if status is None or status == 0:
        reason = "Runtime exited without providing a reason"
    elif status < 0:
        try:
            description = signal.strsignal(-status)
        except ValueError:
            description = None
        if not description or description.startswith("Unknown signal"):
            description = f"signal {-status}"
        reason = f"Runtime exited with error: signal: {description.lower()}"
    else:
        reason = f"Runtime exited with error: exit status {status}"
    return f"RequestId: {request_id} Error: {reason}"


class _Worker:
    """A concurrency slot: serves one invocation at a time on its current process."""

    def __init__(self, fn: Function, slot: int):
        self.fn = fn
        self.slot = slot
        self.lock = threading.Lock()
        self.sandbox: _Sandbox | None = None

    def spawn(self) -> _Sandbox:
        with self.lock:
            if self.fn._stopping:
                raise RuntimeError(f"function {self.fn.name} is stopped")
            self.sandbox = _Sandbox(self.fn, self.slot)
            return self.sandbox

    def retire(self, sandbox: _Sandbox) -> None:
        sandbox.close()
        with self.lock:
            if self.sandbox is sandbox:
                self.sandbox = None

    def _init_failure(self, sandbox: _Sandbox, reason: str) -> dict:
        error = sandbox.init_error
        if error is None:
            status = sandbox.exit_status()
            message = f"Init failed: process {reason}\n{sandbox.tail()}"
            error = {"errorType": "Runtime.ExitError" if status is not None else "Sandbox.Timedout", "errorMessage": message}
        self.retire(sandbox)
        return error

    def restart(self) -> None:
        """Replace a dead process, as Lambda does; a failure is served to the next invocation."""
        try:
            sandbox = self.spawn()
        except (RuntimeError, OSError):
            return
        if sandbox.wait_warm(self.fn.init_timeout) is not None:
            self.retire(sandbox)  # the next invocation initialises again and reports why

    def invoke(self, payload: bytes, timeout: float, admit: Callable[[], dict | None] | None = None) -> Invocation:
        request_id = str(uuid.uuid4())
        sandbox = self.sandbox
        if sandbox is None or sandbox.closed or sandbox.exit_status() is not None:
            # The process is gone (it died between invocations, or its restart failed):
            # initialise a new one inside this invocation, as a cold start.
            if sandbox is not None and not sandbox.closed:
                self.retire(sandbox)
            try:
                sandbox = self.spawn()
            except OSError as exc:
                return Invocation(request_id, False, error={"errorType": "Runtime.InvalidEntrypoint", "errorMessage": str(exc)})
            reason = sandbox.wait_warm(self.fn.init_timeout)
            if reason is not None:
                error = self._init_failure(sandbox, reason)
                return Invocation(request_id, False, error=error)

        record = _Record(request_id, payload, int((time.time() + timeout) * 1000))
        with sandbox.lock:
            # Under the lock kill_in_flight() takes: a refused invocation never reaches the
            # process, an admitted one is in flight before a kill can look for it.
            refusal = admit() if admit is not None else None
            if refusal is None:
                sandbox.current = record
        if refusal is not None:
            return Invocation(request_id, False, error=refusal)
        init_ms = sandbox.init_duration_ms if sandbox.served == 0 else None
        sandbox.served += 1
        t0 = time.monotonic()
        sandbox.events.put(record)

        deadline = t0 + timeout
        outcome = "timeout"
        while True:
            remaining = deadline - time.monotonic()
            if record.done.wait(max(0.0, min(0.02, remaining))):
                outcome = "done"
                break
            status = sandbox.exit_status()
            if status is not None:
                outcome = "done" if record.done.is_set() else "exit"
                break
            if remaining <= 0:
                break

        if outcome == "done":
            # As in CloudWatch, an invocation's log runs until the runtime asks for the next
            # event (lambda_runtime does so right after its response is accepted).
            end = time.monotonic() + FOLLOW_WAIT
            while not record.followed.wait(0.01):
                if time.monotonic() >= end or sandbox.exit_status() is not None:
                    break
            sandbox.sync_output()
            with sandbox.lock:
                sandbox.current = None
            duration = ((record.t_done or time.monotonic()) - t0) * 1000.0
            return Invocation(request_id, record.ok, record.response, record.error, duration, init_ms, list(record.logs))

        if outcome == "timeout":
            sandbox.signal_group(signal.SIGKILL)
            sandbox.wait_exit(2.0)
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
            }
            duration = timeout * 1000.0
        else:
            error = {"errorType": "Runtime.ExitError", "errorMessage": _exit_error_message(request_id, sandbox.exit_status())}
            duration = (time.monotonic() - t0) * 1000.0
        sandbox.wait_output_eof(0.5)
        with sandbox.lock:
            sandbox.current = None
            if not record.done.is_set():
                record.finish(False, error=error)
        logs = list(record.logs)
        self.retire(sandbox)
        if not self.fn._stopping:
            self.restart()
        return Invocation(request_id, False, None, error, duration, init_ms, logs)


def kill_in_flight(functions) -> int:
    """Function.kill_in_flight() for each of `functions`; the number of processes killed."""
    return sum(fn.kill_in_flight() for fn in functions)


class Function:
    """A Lambda function run locally: `concurrency` warm processes behind the Runtime API."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        concurrency: int = 1,
        timeout: float = 60.0,
        memory_mb: int = 128,
        log: Callable[[str, str], None] | None = None,
        *,
        init_timeout: float = INIT_TIMEOUT,
        slot_env: Callable[[int], dict[str, str]] | None = None,
        account: str = ACCOUNT_ID,
        metrics: Metrics | None = None,
    ):
        if not command:
            raise ValueError("command must not be empty")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.log = log
        self.init_timeout = float(init_timeout)
        # The environment of each concurrency slot's process on top of `env` (slot -> variables).
        self.slot_env = slot_env
        self.region = self.env.get("AWS_REGION") or DEFAULT_REGION
        self.account = account
        self.arn = f"arn:aws:lambda:{self.region}:{account}:function:{name}"
        # Where the EMF lines of its processes' standard output go (a store of its own unless given one).
        self.metrics = metrics if metrics is not None else Metrics()

        program = self.command[0]
        if os.sep in program:
            program = os.path.abspath(program)
        else:
            program = shutil.which(program) or program
        self.argv = [program, *self.command[1:]]
        self.task_root = self.env.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.abspath(program))

        self._workers: list[_Worker] = []
        self._free: queue.Queue[_Worker] = queue.Queue()
        self._lifecycle = threading.Lock()
        self._started = False
        self._stopping = False

    # -- environment ---------------------------------------------------------------------------

    def process_env(self, port: int, log_stream: str, slot: int = 0) -> dict[str, str]:
        env = {
            "PATH": DEFAULT_PATH,
            "TZ": ":UTC",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
        env.update(self.env)
        if self.slot_env is not None:
            env.update(self.slot_env(slot))
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "_HANDLER": "bootstrap",
                "LAMBDA_TASK_ROOT": self.task_root,
            }
        )
        return env

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        with self._lifecycle:
            if self._started:
                return
            self._stopping = False
            self._workers = [_Worker(self, slot) for slot in range(self.concurrency)]
            self._free = queue.Queue()
            failure = None
            try:
                sandboxes = [worker.spawn() for worker in self._workers]  # initialise in parallel
            except OSError as exc:
                failure = f"function {self.name}: cannot run {self.argv[0]}: {exc}"
                sandboxes = []
            for sandbox in sandboxes:
                reason = sandbox.wait_warm(self.init_timeout)
                if reason is not None:
                    failure = f"function {self.name}: process {sandbox.slot} (pid {sandbox.proc.pid}) {reason}\n{sandbox.tail()}"
                    break
            if failure is not None:
                self._stopping = True
                self._close_all()
                raise RuntimeError(failure)
            for worker in self._workers:
                self._free.put(worker)
            self._started = True

    def stop(self) -> None:
        with self._lifecycle:
            self._stopping = True
            self._started = False
            self._close_all()

    def _close_all(self) -> None:
        sandboxes = []
        for worker in self._workers:
            with worker.lock:
                if worker.sandbox is not None:
                    sandboxes.append(worker.sandbox)
        for sandbox in sandboxes:  # SIGTERM everyone, then give them STOP_GRACE together
            sandbox.signal_group(signal.SIGTERM)
        end = time.monotonic() + STOP_GRACE
        for sandbox in sandboxes:
            sandbox.wait_exit(max(0.0, end - time.monotonic()))
        for sandbox in sandboxes:
            sandbox.close()  # SIGKILL to whatever is left of the group, reap, close the server

    def __enter__(self) -> Function:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- invoking ------------------------------------------------------------------------------

    def invoke(
        self, event: object, timeout: float | None = None, *, admit: Callable[[], dict | None] | None = None
    ) -> Invocation:
        """Run one invocation on a free process (waiting for one) and return its outcome.

        `admit`, when given, is called once a process is free, just before the event is handed over:
        None lets the invocation run; an error document ({"errorType", "errorMessage"}) fails it at
        once, without the process ever seeing it."""
        # Any JSON value; bytes are sent as they are (an already-serialised event).
        payload = bytes(event) if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
        if len(payload) > MAX_REQUEST_BYTES:
            raise ValueError(
                f"RequestTooLargeException: Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
            )
        limit = self.timeout if timeout is None else float(timeout)
        while True:
            if not self._started or self._stopping:
                raise RuntimeError(f"function {self.name} is not running (call start() first)")
            try:
                worker = self._free.get(timeout=0.05)
                break
            except queue.Empty:
                continue
        try:
            return worker.invoke(payload, limit, admit)
        finally:
            self._free.put(worker)

    def kill_in_flight(self) -> int:
        """SIGKILL the process group of every process with an invocation in flight (handed over and
        not yet answered), as Lambda kills a runtime that runs out of memory. Each such invocation
        ends at once with Runtime.ExitError and its process is restarted (by the invocation, as for
        any process that dies mid-invocation). Idle processes are left alone. Returns how many
        processes were killed (a process already killed is not counted again)."""
        killed = 0
        for worker in list(self._workers):
            sandbox = worker.sandbox
            if sandbox is None:
                continue
            with sandbox.lock:
                record = sandbox.current
                if record is None or record.done.is_set() or sandbox.closed or sandbox.killed:
                    continue
                if sandbox.exit_status() is not None:
                    continue  # already dead: its invocation is ending on its own
                sandbox.killed = True
                sandbox.signal_group(signal.SIGKILL)
                killed += 1
        return killed

    # -- introspection -------------------------------------------------------------------------

    def in_flight(self, slot: int) -> str | None:
        """The request ID of the invocation the process of concurrency slot `slot` is serving (its
        event handed over, its runtime not yet asking for the next one), or None (idle, starting)."""
        workers = self._workers
        sandbox = workers[slot].sandbox if 0 <= slot < len(workers) else None
        if sandbox is None:
            return None
        with sandbox.lock:
            return sandbox.current.request_id if sandbox.current is not None else None

    @property
    def pids(self) -> list[int]:
        """The PIDs of the live processes."""
        out = []
        for worker in self._workers:
            sandbox = worker.sandbox
            if sandbox is not None and not sandbox.closed and sandbox.exit_status() is None:
                out.append(sandbox.proc.pid)
        return out

    @property
    def endpoints(self) -> list[str]:
        """The AWS_LAMBDA_RUNTIME_API value of each live process."""
        return [w.sandbox.endpoint for w in self._workers if w.sandbox is not None and not w.sandbox.closed]
