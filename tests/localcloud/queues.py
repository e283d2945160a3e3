"""SQS standard queues, and Lambda's event source mappings that read them, as AWS runs them.

The template puts a queue between the rules and each of the requester, accepter and router
(infra-template/template.yaml, "queues"), so that a burst of events is a few invocations, not one
each. This module is that path in the local cloud, from the rule's delivery to the function's
answer, following "Amazon SQS queues as targets" (EventBridge User Guide), "Using Lambda with
Amazon SQS" and "Lambda parameters for Amazon SQS event source mappings" (Lambda Developer Guide):

- A rule delivers to a queue only when the queue's policy (AWS::SQS::QueuePolicy) lets EventBridge
  (events.amazonaws.com) sqs:SendMessage from that rule's ARN (iam.py's `send_message_refusal`);
  else the delivery is recorded "denied", with the reason, and goes nowhere. A delivery let in is
  one message whose body is the EventBridge event as JSON, recorded "queued" (`send`). The event
  faults of cloud.py's `_dispatch` (dropped, duplicated, held and shuffled) apply before this, to
  a queue's deliveries as to a function's.
- Each mapping (AWS::Lambda::EventSourceMapping) has a poller (`Poller`). Once a message is
  visible, it gathers a batch until MaximumBatchingWindowInSeconds has passed since the oldest
  visible message became visible (real seconds), or BatchSize messages are visible, or one more
  would take the invocation past Lambda's 6 MB payload; then it invokes the function synchronously
  (cloud.py's `invoke_once`) with Lambda's SQS event, `{"Records": [...]}`, one record a message
  (`sqs_record`). No more than ScalingConfig.MaximumConcurrency batches of one mapping are in flight
  at once.
- A batch that succeeds is deleted. One that fails (an error, a crash, a timeout) comes back whole
  (no ReportBatchItemFailures), each receive counted in its messages' ApproximateReceiveCount; a
  message received maxReceiveCount times (its queue's RedrivePolicy) that fails again goes to the
  dead-letter queue, recorded "dead-lettered".

Compressed, so that tests do not wait for AWS's timeouts: a failed batch is visible again after
`REDELIVERY_S` (a quarter of a second), not after the queue's VisibilityTimeout (360 s in the template), as
the local cloud's asynchronous retries were immediate rather than a minute or two apart; and a
message that used up its receives goes to the dead-letter queue as soon as it fails, where SQS moves
it when it would have been received once more, a visibility timeout later.

Not modelled: FIFO queues, message retention (messages are kept until read or reset), delay
queues, a batch that outlives its visibility timeout while in flight (the template's is six times
the functions' timeout), long polling's empty receives, the SQS API itself (the functions never call
SQS), KMS, and the poller's scaling (the concurrency limit is MaximumConcurrency, or the function's
own).

A queue that no running mapping reads (the dead-letter queue; any queue of a cloud whose function is
not running) keeps its messages: settle does not wait for them. Every message of a queue a mapping
reads counts as pending work for the cloud's `settle` (cloud.py's `_begin`/`_end`) until it is
deleted or dead-lettered; while it waits in the queue (not in flight) it also counts as resting
(`_rest`), so that held deliveries are handed out while a batching window is open.

What GET /_local/events records, besides cloud.py's deliveries:

- "queued": account, region, rule (the rule's name), target (the queue's name), queue (its logical
  id), source, detail_type, outcome, message (the message's id), event (the EventBridge event);
  "denied": the same, with `reason` instead of `message`.
- a batch's invocation, cloud.py's record of an invocation: account, region, rule (the mapping's
  logical id), target (the function's name), function, caller, time, source ("aws:sqs"),
  detail_type (the batch's detail-types, distinct, in order, joined with " + ": a batch of one
  reads as its event's), attempt (the highest ApproximateReceiveCount of the batch), outcome, error,
  response, started, duration_ms, init_duration_ms, invocation, calls; and queue, events (the
  batch's EventBridge events, in order), messages (their count), event (the SQS event sent).
- "dead-lettered", one a message: account, region, rule (the mapping), target (the dead-letter
  queue's name), queue, dead_letter_queue (logical ids), source, detail_type, outcome, message,
  receive_count, event (the EventBridge event).

GET /_local/queues (`state`): per account, region and queue, the messages visible, in flight,
waiting to be visible again, and dead-lettered from it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import runtime, template

# A failed batch's messages are visible again this many seconds later (AWS: the queue's
# VisibilityTimeout; see the module's docstring).
REDELIVERY_S = 0.25
# Lambda's synchronous invocation payload, the most a batch's event may weigh.
MAX_PAYLOAD_BYTES = runtime.MAX_REQUEST_BYTES
# What a record of the SQS event weighs besides its body (JSON-quoted): an upper bound of its other
# fields (ids, a receipt handle, timestamps, the queue's ARN and region).
RECORD_OVERHEAD_BYTES = 1024
EVENT_OVERHEAD_BYTES = 32  # {"Records": []}
# The SenderId SQS gives a message: the sending principal's id. EventBridge's is AWS's own; the local
# cloud writes the service's name.
EVENTBRIDGE_SENDER = "events.amazonaws.com"


def now_ms(cloud) -> int:
    """The cloud's clock (peering.py's Clock, which POST /_local/clock moves), in Unix milliseconds."""
    clock = getattr(cloud, "clock", None)
    return int((clock.now() if clock is not None else time.time()) * 1000)


@dataclass
class Message:
    """One message of a queue: an EventBridge event, as a rule sent it."""
    id: str
    body: str  # the event, as JSON
    md5: str
    event: dict
    sent_ms: int
    sender_id: str
    size: int  # an upper bound of its record's weight in the SQS event
    visible_at: float  # time.monotonic() from when it may be received (again)
    counted: bool  # counted as pending work for settle (a mapping reads its queue)
    generation: int  # the queues' generation it was sent in (a reset starts a new one)
    receive_count: int = 0
    first_receive_ms: int | None = None
    receipt_handle: str | None = None


@dataclass
class Queue:
    """One queue of one account and region, and what became of its messages."""
    spec: template.Queue
    account: str
    region: str
    stored: list[Message] = field(default_factory=list)  # not in flight: visible, or waiting to be
    in_flight: dict[str, Message] = field(default_factory=dict)  # received, neither deleted nor back
    dead_lettered: int = 0  # its messages moved to its dead-letter queue
    polled: bool = False  # a running mapping reads it

    def visible(self, now: float) -> list[Message]:
        """The messages that may be received now, the longest visible first."""
        return sorted((m for m in self.stored if m.visible_at <= now), key=lambda m: m.visible_at)


def sqs_record(queue: Queue, m: Message) -> dict:
    """A message as Lambda hands it to the function, one record of the SQS event ("Using Lambda with
    Amazon SQS": example standard queue message event)."""
    return {
        "messageId": m.id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": str(m.receive_count),
            "SentTimestamp": str(m.sent_ms),
            "SenderId": m.sender_id,
            "ApproximateFirstReceiveTimestamp": str(m.first_receive_ms),
        },
        "messageAttributes": {},
        "md5OfBody": m.md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.spec.arn,
        "awsRegion": queue.region,
    }


def detail_types(events: list[dict]) -> str:
    """The distinct detail-types of a batch's events, in order, joined with " + " (a batch of one
    event reads as its detail-type alone)."""
    return " + ".join(dict.fromkeys(str(e.get("detail-type")) for e in events))


class Queues:
    """Every queue of the cloud, by (account, region, logical id), and the pollers that read them.
    Thread-safe: one condition guards every queue (`cv`); it is taken before the cloud's pending_cv
    and its record's lock, never after."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.cv = threading.Condition()
        self.queues: dict[tuple[str, str, str], Queue] = {}
        self.pollers: list[Poller] = []
        self.generation = 0
        self.stopping = False

    # ---------------------------------------------------------------- life

    def queue(self, account: str, region: str, logical_id: str) -> Queue:
        """The queue `logical_id` of the stack of (account, region), made on first use."""
        key = (account, region, logical_id)
        with self.cv:
            q = self.queues.get(key)
            if q is None:
                q = self.queues[key] = Queue(self.cloud.stacks[(account, region)].queues[logical_id], account, region)
            return q

    def check(self) -> None:
        """Lambda creates an event source mapping only when the function's execution role lets the
        poller read the queue (CreateEventSourceMapping checks it; iam.py's `poller_refusal`): a
        mapping of a stack's function that it would refuse fails the deployment, here RuntimeError."""
        for (account, region), stack in self.cloud.stacks.items():
            for mapping in stack.mappings:
                if mapping.function not in stack.functions:
                    continue
                arn = stack.queues[mapping.queue].arn
                refusal = self.cloud.iam.poller_refusal(account, region, mapping.function, arn)
                if refusal is not None:
                    raise RuntimeError(f"{mapping.logical_id} ({account}, {region}): Lambda would not create the "
                                       f"event source mapping: {refusal}")

    def start(self) -> None:
        """A poller for each enabled mapping whose function runs (cloud.functions)."""
        for (account, region), stack in self.cloud.stacks.items():
            for mapping in stack.mappings:
                if not mapping.enabled or (account, region, mapping.function) not in self.cloud.functions:
                    continue
                q = self.queue(account, region, mapping.queue)
                q.polled = True
                self.pollers.append(Poller(self, q, mapping))
        for poller in self.pollers:
            poller.start()

    def stop(self) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify_all()

    def reset(self) -> None:
        """Every queue emptied, its counters zeroed. A batch still in flight (settle timed out) ends
        without putting its messages back."""
        with self.cv:
            self.generation += 1
            for q in self.queues.values():
                for m in q.stored:
                    self._forget(m, resting=True)
                q.stored.clear()
                q.dead_lettered = 0
            self.cv.notify_all()

    def _forget(self, m: Message, resting: bool) -> None:
        """`m` leaves its queue (deleted, dead-lettered, reset): no longer pending work for settle."""
        if m.counted:
            if resting:
                self.cloud._rest(-1)
            self.cloud._end()

    # ------------------------------------------------------- rule -> queue

    def send(self, event: dict, account: str, region: str, rule: template.Rule, target: template.Target) -> None:
        """The rule `rule` of the bus of (account, region) delivers `event` to its target queue: refused
        unless the queue's policy lets the rule send (recorded "denied"), else one message, recorded
        "queued"."""
        stack = self.cloud.stacks[(account, region)]
        q = self.queue(account, region, target.queue)
        rule_arn = f"arn:{template.PARTITION}:events:{region}:{account}:rule/{rule.name}"
        entry = dict(account=account, region=region, rule=rule.name, target=q.spec.name, queue=q.spec.logical_id,
                     source=event.get("source"), detail_type=event.get("detail-type"))
        reason = self.cloud.iam.send_message_refusal(q.spec.arn, stack.queue_statements(q.spec.logical_id),
                                                     rule_arn, account)
        if reason is not None:
            self.cloud.record.event(**entry, outcome="denied", reason=reason, event=event)
            return
        body = json.dumps(event)
        with self.cv:  # recorded and stored in one step: the queue's order is the records' order
            m = Message(id=str(uuid.uuid4()), body=body, md5=hashlib.md5(body.encode()).hexdigest(), event=event,
                        sent_ms=now_ms(self.cloud), sender_id=EVENTBRIDGE_SENDER,
                        size=len(json.dumps(body)) + RECORD_OVERHEAD_BYTES, visible_at=time.monotonic(),
                        counted=q.polled, generation=self.generation)
            self.cloud.record.event(**entry, outcome="queued", message=m.id, event=event)
            if m.counted:
                self.cloud._begin()
                self.cloud._rest(1)
            q.stored.append(m)
            self.cv.notify_all()

    # ------------------------------------------------------------ state

    def state(self) -> list[dict]:
        """For GET /_local/queues: every queue of every stack, by account, region and logical id: its
        messages visible, in flight, waiting to be visible again (a failed batch's), and dead-lettered
        from it; the mapping that reads it (None: nothing reads it, its messages stay) and its batches
        in flight."""
        readers = {(p.queue.account, p.queue.region, p.queue.spec.logical_id): p for p in self.pollers}
        now = time.monotonic()
        out = []
        with self.cv:
            for (account, region), stack in sorted(self.cloud.stacks.items()):
                for logical_id in stack.queues:
                    self.queue(account, region, logical_id)
            for (account, region, logical_id), q in sorted(self.queues.items()):
                visible = len(q.visible(now))
                poller = readers.get((account, region, logical_id))
                out.append({
                    "account": account, "region": region, "queue": logical_id, "name": q.spec.name,
                    "arn": q.spec.arn, "visible": visible, "in_flight": len(q.in_flight),
                    "waiting": len(q.stored) - visible, "dead_lettered": q.dead_lettered,
                    "dead_letter_queue": q.spec.dead_letter, "max_receive_count": q.spec.max_receive_count,
                    "mapping": poller.mapping.logical_id if poller else None,
                    "batches_in_flight": poller.batches if poller else 0,
                })
        return out


class Poller(threading.Thread):
    """Lambda's poller of one event source mapping: gathers batches of its queue and invokes the
    function with each, at most MaximumConcurrency at once."""

    def __init__(self, queues: Queues, queue: Queue, mapping: template.EventSourceMapping) -> None:
        super().__init__(daemon=True, name=f"sqs-{queue.account}-{queue.region}-{mapping.logical_id}")
        self.queues = queues
        self.queue = queue
        self.mapping = mapping
        self.batches = 0  # in flight

    def run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            threading.Thread(target=self._run, args=(batch,), daemon=True, name=f"{self.name}-batch").start()

    def _room(self) -> bool:
        limit = self.mapping.max_concurrency
        return limit is None or self.batches < int(limit)

    def _next_batch(self) -> list[Message] | None:
        """The next batch, received (in flight) once it is due; None when the cloud stops."""
        qs, q, m = self.queues, self.queue, self.mapping
        with qs.cv:
            while True:
                if qs.stopping:
                    return None
                now = time.monotonic()
                wake: float | None = None  # when to look again without being told
                visible = q.visible(now) if self._room() else []
                if visible:
                    batch, weight = [], EVENT_OVERHEAD_BYTES
                    for msg in visible[: max(1, int(m.batch_size))]:
                        if batch and weight + msg.size > MAX_PAYLOAD_BYTES:
                            break
                        batch.append(msg)
                        weight += msg.size
                    full = len(batch) >= int(m.batch_size) or len(batch) < len(visible)
                    due = visible[0].visible_at + m.window_s
                    if full or now >= due:
                        self._receive(batch)
                        return batch
                    wake = due
                elif self._room() and q.stored:
                    wake = min(msg.visible_at for msg in q.stored)  # a failed batch coming back
                qs.cv.wait(None if wake is None else max(0.0, wake - now))

    def _receive(self, batch: list[Message]) -> None:
        """ReceiveMessage of `batch` (under the queues' lock): in flight, each receive counted."""
        q, ms = self.queue, now_ms(self.queues.cloud)
        for msg in batch:
            q.stored.remove(msg)
            q.in_flight[msg.id] = msg
            msg.receive_count += 1
            if msg.first_receive_ms is None:
                msg.first_receive_ms = ms
            msg.receipt_handle = base64.b64encode(secrets.token_bytes(96)).decode()
            if msg.counted:
                self.queues.cloud._rest(-1)
        self.batches += 1

    def _run(self, batch: list[Message]) -> None:
        """Invoke the function with the batch; delete it, or put it back (or dead-letter it)."""
        cloud, q = self.queues.cloud, self.queue
        events = [msg.event for msg in batch]
        ok = False
        try:
            ok = cloud.invoke_once(q.account, q.region, self.mapping.function, {"Records": [sqs_record(q, msg)
                                                                                          for msg in batch]},
                                   rule=self.mapping.logical_id, source="aws:sqs", detail_type=detail_types(events),
                                   attempt=max(msg.receive_count for msg in batch), queue=q.spec.logical_id,
                                   events=events, messages=len(batch))
        except Exception as e:  # noqa: BLE001 - the function stopped (the cloud stops), or a bug: the batch fails
            if not self.queues.stopping:
                print(f"localcloud queues: {self.mapping.logical_id} could not invoke {self.mapping.function}: {e!r}",
                      file=sys.stderr, flush=True)
        dead: list[Message] = []
        with self.queues.cv:
            self.batches -= 1
            current = self.queues.generation
            for msg in batch:
                q.in_flight.pop(msg.id, None)
                if ok or msg.generation != current:  # deleted; or the queue was reset meanwhile
                    self.queues._forget(msg, resting=False)
                elif q.spec.dead_letter is not None and msg.receive_count >= int(q.spec.max_receive_count or 0):
                    dead.append(msg)
                else:  # visible again once its (compressed) visibility timeout ends
                    msg.visible_at = time.monotonic() + REDELIVERY_S
                    msg.receipt_handle = None
                    q.stored.append(msg)
                    if msg.counted:
                        cloud._rest(1)
            self.queues.cv.notify_all()
        for msg in dead:
            self._dead_letter(msg)

    def _dead_letter(self, msg: Message) -> None:
        """The redrive: `msg` moves to its queue's dead-letter queue (the template's: read by no one,
        its messages stay until a reset)."""
        q = self.queue
        dlq = self.queues.queue(q.account, q.region, q.spec.dead_letter)
        cloud = self.queues.cloud
        with self.queues.cv:
            if msg.generation != self.queues.generation:  # reset meanwhile: gone with the rest
                self.queues._forget(msg, resting=False)
                return
        cloud.record.event(account=q.account, region=q.region, rule=self.mapping.logical_id, target=dlq.spec.name,
                           queue=q.spec.logical_id, dead_letter_queue=dlq.spec.logical_id,
                           source=msg.event.get("source"), detail_type=msg.event.get("detail-type"),
                           outcome="dead-lettered", message=msg.id, receive_count=msg.receive_count, event=msg.event)
        with self.queues.cv:
            q.dead_lettered += 1
            moved = Message(id=msg.id, body=msg.body, md5=msg.md5, event=msg.event, sent_ms=msg.sent_ms,
                            sender_id=msg.sender_id, size=msg.size, visible_at=time.monotonic(), counted=dlq.polled,
                            generation=self.queues.generation, receive_count=msg.receive_count,
                            first_receive_ms=msg.first_receive_ms)
            if moved.counted:  # a dead-letter queue a mapping reads (not the template's): pending there
                cloud._begin()
                cloud._rest(1)
            dlq.stored.append(moved)
            self.queues._forget(msg, resting=False)
            self.queues.cv.notify_all()
