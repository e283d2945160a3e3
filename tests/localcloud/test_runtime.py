"""Tests for runtime.py, against a tiny Python "function" speaking the Lambda Runtime API (testing.py's
fake_bootstrap).

Run with `PYTHONPATH=tests .venv/bin/python -m pytest tests/localcloud/test_runtime.py` (`make test` runs them all).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager

from localcloud import runtime as rt
from localcloud.testing import alive, fake_bootstrap, wait_until


@contextmanager
def function(concurrency=1, timeout=10.0, env=None, log=None, **kwargs):
    """A started Function running the fake bootstrap from a fresh temp dir; stopped on exit."""
    root = tempfile.mkdtemp(prefix="lambda-fake-")
    path = fake_bootstrap(root)
    fn = rt.Function(
        "fake-fn", [path], dict(env or {}), concurrency=concurrency, timeout=timeout, log=log, **kwargs
    )
    try:
        fn.start()
        yield fn
    finally:
        fn.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _tempdir():
    path = tempfile.mkdtemp(prefix="lambda-journal-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _journal(d: str) -> list[tuple[str, str, int]]:
    """The entries the fake function recorded in d, in order: (what, tag, pid)."""
    out = []
    for name in sorted(n for n in os.listdir(d) if not n.startswith(".")):
        with open(os.path.join(d, name)) as f:
            what, tag, pid = f.read().split()
        out.append((what, tag, int(pid)))
    return out


def _invoke_together(fn, events: list, **kwargs) -> list:
    """Invoke fn with every event at once, one thread each; the results in the events' order."""
    results = [None] * len(events)

    def call(i):
        results[i] = fn.invoke(events[i], **kwargs)

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)  # safety net: a hung invocation fails the test instead of hanging it
    assert not any(t.is_alive() for t in threads), "an invocation never returned"
    return results


def _post(endpoint: str, path: str, body: bytes = b"{}"):
    host, port = endpoint.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


# -- tests -------------------------------------------------------------------------------------


def test_warm_start():
    with function(concurrency=2) as fn:
        pids = fn.pids
        assert len(pids) == 2 and all(alive(p) for p in pids)
        assert len(set(fn.endpoints)) == 2
        for worker in fn._workers:  # each process already sits in GET /invocation/next
            assert worker.sandbox.warm.is_set()
            assert worker.sandbox.init_duration_ms > 0


def test_echo():
    with function() as fn:
        event = {"hello": "world", "n": [1, 2, 3], "tag": "echo"}
        result = fn.invoke(event)
        assert result.ok, result.error
        assert result.response == event
        assert result.error is None
        assert str(uuid.UUID(result.request_id)) == result.request_id
        assert result.duration_ms > 0
        other = fn.invoke({"tag": "again"})
        assert other.ok and other.request_id != result.request_id


def test_raw_text_response():
    with function() as fn:
        result = fn.invoke({"raw": "plain text, not JSON"})
        assert result.ok
        assert result.response == "plain text, not JSON"


def test_headers_and_environment():
    with function(env={"AWS_REGION": "ap-northeast-2", "CUSTOM": "yes"}, timeout=7.0, memory_mb=256) as fn:
        before = time.time()
        result = fn.invoke({"context": True})
        after = time.time()
        assert result.ok, result.error
        ctx = result.response
        headers = {k.lower(): v for k, v in ctx["headers"].items()}
        assert headers["lambda-runtime-aws-request-id"] == result.request_id
        deadline_s = int(headers["lambda-runtime-deadline-ms"]) / 1000
        # The deadline is the moment of the invocation plus the 7 s timeout, in whole ms: it
        # lies between the clock readings taken around the call, whatever the call took.
        assert before + 7 - 0.002 <= deadline_s <= after + 7 + 0.001, (before, deadline_s, after)
        assert headers["lambda-runtime-invoked-function-arn"] == (
            "arn:aws:lambda:ap-northeast-2:123456789012:function:fake-fn"
        )
        assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
        assert headers["content-type"] == "application/json"
        env = ctx["env"]
        assert env["AWS_LAMBDA_RUNTIME_API"] in fn.endpoints
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fake-fn"
        assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
        assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fake-fn"
        assert "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
        assert env["_HANDLER"] == "bootstrap"
        assert env["LAMBDA_TASK_ROOT"] == ctx["cwd"] == os.path.dirname(fn.argv[0])
        assert env["PATH"]
        assert env["AWS_REGION"] == "ap-northeast-2" and env["CUSTOM"] == "yes"


def test_runtime_api_status_codes():
    with function() as fn:
        endpoint = fn.endpoints[0]
        status, body = _post(endpoint, "/2018-06-01/runtime/invocation/no-such-id/response")
        assert status == 400 and body["errorType"] == "InvalidRequestID"
        status, body = _post(endpoint, "/2018-06-01/runtime/invocation/no-such-id/error")
        assert status == 400 and body["errorType"] == "InvalidRequestID"
        status, _ = _post(endpoint, "/2018-06-01/runtime/nowhere")
        assert status == 404
        done = fn.invoke({"tag": "x"})
        assert done.ok
        # Answering an invocation that is already answered is a state-transition error.
        status, body = _post(endpoint, f"/2018-06-01/runtime/invocation/{done.request_id}/response")
        assert status == 403 and body["errorType"] == "InvalidStateTransition"
        assert fn.invoke({"tag": "still fine"}).ok


def test_keepalive_connection_and_chunked_bodies():
    # hyper (under lambda_runtime) keeps one HTTP/1.1 connection alive across /next and /response.
    with function(env={"FAKE_KEEPALIVE": "1"}) as fn:
        first = fn.invoke({"context": True})
        second = fn.invoke({"context": True})
        assert first.ok and second.ok, (first.error, second.error)
        assert first.response["local_port"] == second.response["local_port"]  # same connection
        assert fn.invoke({"tag": "chunked", "n": 12345}).response == {"tag": "chunked", "n": 12345}
        failed = fn.invoke({"fail": True})
        assert failed.error["errorType"] == "Boom"
        assert fn.invoke({"raw": "abcdef"}).response == "abcdef"


def test_function_error():
    with function() as fn:
        pid = fn.pids[0]
        result = fn.invoke({"fail": True, "tag": "err"})
        assert not result.ok
        assert result.response is None
        assert result.error == {"errorType": "Boom", "errorMessage": "asked to fail", "stackTrace": []}
        assert fn.pids == [pid]  # a handled error keeps the process
        assert fn.invoke({"tag": "after"}).ok


def test_crash_mid_invocation_restarts():
    with function() as fn:
        pid = fn.pids[0]
        assert fn.invoke({"tag": "first"}).ok
        result = fn.invoke({"exit": True, "tag": "crash"})
        assert not result.ok
        assert result.error["errorType"] == "Runtime.ExitError"
        assert "exit status 3" in result.error["errorMessage"]
        assert result.request_id in result.error["errorMessage"]
        assert "exiting tag=crash" in result.logs  # output up to the crash belongs to it
        # Restarted before the answer came back: a new, warm process.
        assert not alive(pid)
        assert len(fn.pids) == 1 and fn.pids[0] != pid
        assert fn._workers[0].sandbox.warm.is_set()
        after = fn.invoke({"tag": "after"})
        assert after.ok and after.response == {"tag": "after"}
        assert after.init_duration_ms is not None  # first invocation of the new process


def test_failed_restart_serves_the_init_error():
    marker = os.path.join(tempfile.mkdtemp(prefix="lambda-marker-"), "broken")
    try:
        with function(env={"FAKE_INIT_ERROR_FILE": marker}) as fn:
            assert fn.invoke({"tag": "fine"}).ok
            open(marker, "w").close()  # from now on the function cannot initialise
            crashed = fn.invoke({"exit": True})
            assert crashed.error["errorType"] == "Runtime.ExitError"
            assert fn.pids == []  # the restart failed
            broken = fn.invoke({"tag": "while broken"})
            assert not broken.ok
            assert broken.error == {"errorType": "Runtime.ConfigInvalid", "errorMessage": "bad config"}
            os.remove(marker)  # fixed: the next invocation initialises a new process
            healed = fn.invoke({"tag": "healed"})
            assert healed.ok and healed.init_duration_ms is not None
            assert len(fn.pids) == 1
    finally:
        shutil.rmtree(os.path.dirname(marker), ignore_errors=True)


def _assert_timed_out(fn, result, pid, limit):
    assert not result.ok
    assert result.response is None
    assert result.error["errorType"] == "Sandbox.Timedout", result.error
    assert result.error["errorMessage"] == (
        "RequestId: %s Error: Task timed out after %.2f seconds" % (result.request_id, limit)
    )
    assert result.duration_ms == limit * 1000.0  # reported as the limit, as Lambda does
    # Killed and restarted before the answer came back: a new, warm process.
    assert not alive(pid)
    assert len(fn.pids) == 1 and fn.pids[0] != pid
    assert fn._workers[0].sandbox.warm.is_set()


def test_timeout_kills_and_restarts():
    with function(timeout=0.3) as fn:
        # The function's timeout applies when invoke() names none.
        pid = fn.pids[0]
        result = fn.invoke({"sleep": 600, "tag": "slow"})
        _assert_timed_out(fn, result, pid, 0.3)
        # The new process serves the next invocation, and a per-invocation timeout overrides the
        # function's: this one sleeps past 0.3 s, so it can only succeed under the longer limit.
        after = fn.invoke({"sleep": 0.5, "tag": "override"}, timeout=30)
        assert after.ok, after.error
        assert after.response == {"sleep": 0.5, "tag": "override"}
        assert after.init_duration_ms is not None  # the first invocation of the new process


def test_timeout_keeps_the_output_written_before_the_kill():
    # Output written before the kill belongs to the timed-out invocation. Whether the process got
    # to write anything before its deadline depends on the machine's load, so check the logs on
    # the first attempt whose journal proves the process had written its line (it journals the
    # start only after printing it), lengthening the timeout until one does.
    with function(timeout=30) as fn, _tempdir() as jdir:
        for attempt, limit in enumerate((0.5, 1.0, 2.0, 4.0, 8.0)):
            tag = "slow%d" % attempt
            pid = fn.pids[0]
            result = fn.invoke({"journal": jdir, "tag": tag, "sleep": 600}, timeout=limit)
            _assert_timed_out(fn, result, pid, limit)
            if ("start", tag, pid) in _journal(jdir):
                break
        else:
            raise AssertionError("the process never received its event before the deadline")
        assert "event %s tag=%s" % (result.request_id, tag) in result.logs, result.logs
        assert "stderr line tag=%s" % tag in result.logs, result.logs
        assert ("finish", tag, pid) not in _journal(jdir)  # it was killed, not finished
        quick = fn.invoke({"tag": "quick"})
        assert quick.ok and quick.logs and all("tag=quick" in line for line in quick.logs), quick.logs


def test_concurrency_two_runs_in_parallel():
    # Each invocation records its start, then waits (10 s at most, a safety net) until two starts
    # are recorded: both see two only if both ran at the same time, on two processes.
    with function(concurrency=2, timeout=30) as fn, _tempdir() as jdir:
        events = [{"journal": jdir, "tag": tag, "waits": [[2, 10]]} for tag in ("a", "b")]
        results = _invoke_together(fn, events)
        assert all(r.ok for r in results), [r.error for r in results]
        assert [r.response["seen"] for r in results] == [[2], [2]]
        assert len({r.response["pid"] for r in results}) == 2
        assert [what for what, _, _ in _journal(jdir)] == ["start", "start", "finish", "finish"]


def test_concurrency_one_runs_one_at_a_time():
    # The same rendezvous on one process cannot happen: the first invocation gives up waiting
    # (after 0.5 s; it would see one start however long it waited) and the second starts after it.
    with function(concurrency=1, timeout=30) as fn, _tempdir() as jdir:
        events = [{"journal": jdir, "tag": tag, "waits": [[2, 0.5]]} for tag in ("a", "b")]
        results = _invoke_together(fn, events)
        assert all(r.ok for r in results), [r.error for r in results]
        assert sorted(r.response["seen"] for r in results) == [[1], [2]]
        assert len({r.response["pid"] for r in results}) == 1
        assert [what for what, _, _ in _journal(jdir)] == ["start", "finish", "start", "finish"]


def test_each_slot_has_an_environment_of_its_own_and_in_flight_names_the_invocation_it_serves():
    # The two invocations meet (two starts), then wait for a third start: the test records it once
    # it has asked each slot which invocation it serves.
    with function(concurrency=2, timeout=30, slot_env=lambda slot: {"FAKE_SLOT": str(slot)}) as fn, \
            _tempdir() as jdir:
        assert [fn.in_flight(0), fn.in_flight(1)] == [None, None], "idle"
        serving = {}

        def release():
            if wait_until(lambda: len(_journal(jdir)) == 2):
                serving.update((slot, fn.in_flight(slot)) for slot in (0, 1))
            with open(os.path.join(jdir, ".release"), "w") as f:
                f.write("start release 0")
            os.rename(os.path.join(jdir, ".release"), os.path.join(jdir, "999999"))

        releaser = threading.Thread(target=release, daemon=True)
        releaser.start()
        events = [{"journal": jdir, "tag": tag, "waits": [[3, 10]], "context": True} for tag in ("a", "b")]
        results = _invoke_together(fn, events)
        releaser.join(10)
        assert all(r.ok for r in results), [r.error for r in results]
        by_slot = {int(r.response["env"]["FAKE_SLOT"]): r.request_id for r in results}
        assert sorted(by_slot) == [0, 1], by_slot
        assert serving == by_slot, (serving, by_slot)
        assert [fn.in_flight(0), fn.in_flight(1)] == [None, None], "idle again"


def _three_invocations(concurrency, linger):
    """Three simultaneous invocations that each meet a second one, then wait up to `linger` s
    for a third to start before finishing; the results and the journal."""
    with function(concurrency=concurrency, timeout=30) as fn, _tempdir() as jdir:
        events = [{"journal": jdir, "tag": tag, "waits": [[2, 10], [3, linger]]} for tag in ("a", "b", "c")]
        results = _invoke_together(fn, events)
        assert all(r.ok for r in results), [r.error for r in results]
        return results, _journal(jdir)


def test_third_invocation_waits_for_a_free_process():
    # The first two meet (so both processes are busy at once), then linger: a third invocation
    # that started without waiting for a free process would make them finish at once, and its
    # start would come before any finish. The linger only gives such a bug time to show.
    results, entries = _three_invocations(concurrency=2, linger=0.5)
    kinds = [what for what, _, _ in entries]
    assert kinds[:3] == ["start", "start", "finish"], entries  # the third starts after a finish
    assert sorted(kinds) == ["finish"] * 3 + ["start"] * 3, entries
    third = [e for e in entries if e[0] == "start"][2]
    finished_before = {pid for what, _, pid in entries[: entries.index(third)] if what == "finish"}
    assert third[2] in finished_before, entries  # on a process whose invocation had finished
    assert len({r.response["pid"] for r in results}) == 2
    # The first to finish saw the other one start and no third; the third saw all three.
    seen = {r.response["tag"]: r.response["seen"] for r in results}
    first_finish = entries[2][1]
    assert seen[first_finish] == [2, 2] and seen[third[1]] == [3, 3], (seen, entries)
    running = peak = 0
    for what, _, _ in entries:
        running += 1 if what == "start" else -1
        peak = max(peak, running)
    assert peak == 2, entries


def test_three_processes_take_three_invocations_at_once():
    # The control for the test above: with a third process free, the third invocation starts at
    # once, before any finishes (the others wait for it, 10 s at most).
    results, entries = _three_invocations(concurrency=3, linger=10)
    assert [what for what, _, _ in entries] == ["start"] * 3 + ["finish"] * 3, entries
    assert all(r.response["seen"][1] == 3 for r in results), [r.response["seen"] for r in results]
    assert len({r.response["pid"] for r in results}) == 3


def test_logs_attributed_to_the_right_invocation():
    seen = []
    with function(concurrency=2, log=lambda name, line: seen.append((name, line))) as fn:
        results = {}

        def call(tag, sleep):
            results[tag] = fn.invoke({"sleep": sleep, "tag": tag})

        threads = [threading.Thread(target=call, args=(t, s)) for t, s in (("red", 0.3), ("blue", 0.1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for tag, result in results.items():
            assert result.ok
            # stdout and stderr are separate pipes: their relative order is not guaranteed.
            expected = ["event %s tag=%s" % (result.request_id, tag), "stderr line tag=%s" % tag, "done tag=%s" % tag]
            assert sorted(result.logs) == sorted(expected), result.logs
        # Back to back on one process: nothing leaks from one invocation into the next.
        for i in range(5):
            r = fn.invoke({"tag": "seq%d" % i})
            assert all(("tag=seq%d" % i) in line for line in r.logs), r.logs
            assert len(r.logs) == 3
    lines = [line for name, line in seen]
    assert all(name == "fake-fn" for name, _ in seen)
    assert sum(1 for line in lines if line.startswith("init pid=")) == 2  # init output too
    assert "done tag=red" in lines and "done tag=blue" in lines


def test_init_duration_only_on_first_invocation():
    with function() as fn:
        first = fn.invoke({"tag": "1"})
        second = fn.invoke({"tag": "2"})
        assert first.init_duration_ms is not None and first.init_duration_ms > 0
        assert second.init_duration_ms is None


def test_stop_leaves_no_process_behind():
    root = tempfile.mkdtemp(prefix="lambda-fake-")
    try:
        fn = rt.Function("fake-fn", [fake_bootstrap(root)], {}, concurrency=3, timeout=5)
        with fn:
            pids = fn.pids
            endpoints = fn.endpoints
            assert len(pids) == 3
            assert fn.invoke({"tag": "x"}).ok
        assert not any(alive(p) for p in pids)
        assert fn.pids == []
        for endpoint in endpoints:
            host, port = endpoint.split(":")
            s = socket.socket()
            s.settimeout(1)
            try:
                assert s.connect_ex((host, int(port))) != 0  # the Runtime API endpoint is closed
            finally:
                s.close()
        try:
            fn.invoke({"tag": "late"})
        except RuntimeError:
            pass
        else:
            raise AssertionError("invoke after stop() should raise")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_stop_during_invocation():
    with function(timeout=30) as fn, _tempdir() as jdir:
        out = {}
        t = threading.Thread(
            target=lambda: out.setdefault("r", fn.invoke({"journal": jdir, "tag": "long", "sleep": 600})),
            daemon=True,
        )
        t.start()
        pid = fn.pids[0]
        assert wait_until(lambda: ("start", "long", pid) in _journal(jdir)), "the event never arrived"
        fn.stop()
        # The invocation would sleep for ten minutes (and time out after 30 s): it can only
        # return within the join's safety net because stop() killed its process.
        t.join(20)
        assert not t.is_alive()
        assert not out["r"].ok and out["r"].error["errorType"] == "Runtime.ExitError", out["r"].error
        assert not alive(pid) and fn.pids == []


def test_kill_in_flight_ends_busy_invocations_at_once_and_restarts_them():
    # Two of three processes run an invocation that would sleep ten minutes (and time out after
    # 30 s); the third is idle. kill_in_flight() ends both at once with Runtime.ExitError and
    # leaves the idle one alone; both processes are restarted before their invocations return.
    with function(concurrency=3, timeout=30) as fn, _tempdir() as jdir:
        results = {}

        def call(tag):
            results[tag] = fn.invoke({"journal": jdir, "tag": tag, "sleep": 600})

        threads = [threading.Thread(target=call, args=(tag,), daemon=True) for tag in ("a", "b")]
        for t in threads:
            t.start()
        assert wait_until(lambda: len(_journal(jdir)) == 2), "the events never arrived"
        busy = {pid for _, _, pid in _journal(jdir)}
        idle = set(fn.pids) - busy
        assert len(busy) == 2 and len(idle) == 1
        assert fn.kill_in_flight() == 2
        assert fn.kill_in_flight() == 0, "a process already killed is not counted again"
        for t in threads:
            t.join(20)  # the safety net: only the kill lets them return before 30 s
        assert not any(t.is_alive() for t in threads)
        for tag, result in results.items():
            assert not result.ok and result.error["errorType"] == "Runtime.ExitError", (tag, result.error)
            assert "signal: killed" in result.error["errorMessage"], result.error
            assert result.duration_ms < 20000, result.duration_ms
        assert [what for what, _, _ in _journal(jdir)] == ["start", "start"], "neither finished"
        assert not any(alive(p) for p in busy)
        assert idle <= set(fn.pids) and len(fn.pids) == 3, "restarted; the idle process untouched"
        assert all(w.sandbox.warm.is_set() for w in fn._workers)
        assert rt.kill_in_flight([fn]) == 0, "nothing in flight"
        after = fn.invoke({"tag": "after"})
        assert after.ok and after.response == {"tag": "after"}


def test_admit_refuses_an_invocation_before_it_reaches_a_process():
    with function() as fn, _tempdir() as jdir:
        pid = fn.pids[0]
        refusal = {"errorType": "Down", "errorMessage": "not now"}
        refused = fn.invoke({"journal": jdir, "tag": "no"}, admit=lambda: refusal)
        assert not refused.ok and refused.error is refusal and refused.logs == []
        assert _journal(jdir) == [], "the process never saw it"
        admitted = fn.invoke({"journal": jdir, "tag": "yes"}, admit=lambda: None)
        assert admitted.ok and admitted.init_duration_ms is not None, "still the process's first invocation"
        assert [tag for _, tag, _ in _journal(jdir)] == ["yes", "yes"] and fn.pids == [pid]


def test_admit_is_asked_once_a_process_is_free_so_a_kill_leaves_no_gap():
    # One process, busy; a second invocation waits for it. The crash comes (the gate closes, then
    # the busy process is killed): the waiting invocation is refused once the restarted process is
    # free, and never runs on it.
    with function(concurrency=1, timeout=30) as fn, _tempdir() as jdir:
        down = threading.Event()
        refusal = {"errorType": "Down", "errorMessage": "crashed"}
        admit = lambda: refusal if down.is_set() else None  # noqa: E731
        results = {}

        def call(tag):
            results[tag] = fn.invoke({"journal": jdir, "tag": tag, "sleep": 600}, admit=admit)

        first = threading.Thread(target=call, args=("first",), daemon=True)
        first.start()
        assert wait_until(lambda: len(_journal(jdir)) == 1), "the first event never arrived"
        second = threading.Thread(target=call, args=("second",), daemon=True)
        second.start()
        time.sleep(0.1)  # let the second one queue for the process (it would wait ten minutes)
        down.set()
        assert fn.kill_in_flight() == 1
        first.join(20)
        second.join(20)
        assert not first.is_alive() and not second.is_alive()
        assert results["first"].error["errorType"] == "Runtime.ExitError", results["first"].error
        assert results["second"].error is refusal, results["second"].error
        assert [tag for _, tag, _ in _journal(jdir)] == ["first"]
        down.clear()
        assert fn.invoke({"tag": "later"}, admit=admit).ok


def _expect_start_failure(env, *needles, **kwargs):
    try:
        with function(env=env, **kwargs):
            pass
    except RuntimeError as exc:
        message = str(exc)
        for needle in needles:
            assert needle in message, message
        return message
    raise AssertionError("start() should have failed")


def test_start_fails_when_process_exits():
    _expect_start_failure({"FAKE_CRASH_AT_INIT": "1"}, "exited with status 101", "panicked at src/main.rs:1:1")


def test_start_fails_on_init_error():
    _expect_start_failure({"FAKE_INIT_ERROR": "1"}, "init/error", "Runtime.ConfigInvalid", "cannot initialise")


def test_start_fails_when_never_ready():
    # The process would hang for 30 s; the message shows start() gave up at init_timeout.
    _expect_start_failure({"FAKE_HANG_AT_INIT": "1"}, "not ready within 0.5 s", init_timeout=0.5)


def test_start_fails_when_command_missing():
    fn = rt.Function("ghost", ["/nonexistent/bootstrap"], {})
    try:
        fn.start()
    except RuntimeError as exc:
        assert "/nonexistent/bootstrap" in str(exc)
    else:
        raise AssertionError("start() should have failed")
