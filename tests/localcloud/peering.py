"""VPC peering connections as AWS runs them, in front of moto.

moto's peering connection is one shared object: `pending-acceptance` the moment it
is requested, `active` the moment it is accepted, listed at once in both regions
and accounts with the requester's tags, deletable by anyone in any state, and
never forgotten. AWS is not like that. This module keeps, beside moto, what AWS
keeps for each connection (when it was requested, accepted, rejected, deleted,
by whom, and each (account, region)'s own tags) and answers the peering calls as
AWS does, on the cloud's clock:

- The lifecycle and its intermediate states (`initiating-request`,
  `provisioning`, `deleting`), the accepter's region not listing a new request
  for a while, overlapping ranges ending in `failed`, expiry after 7 days, and
  each final record forgotten after AWS's retention (2 hours or 2 days, per
  state, side and account).
- AWS's rules: who may delete a pending request, the state each action needs
  (`InvalidStateTransition`), the outstanding-requests quota, AWS's error codes
  and their capitalisation (`InvalidVpcPeeringConnectionID.NotFound`).
- Tags that exist only in the account and region that wrote them.

Sources (AWS is right wherever moto differs), cited next to each figure below:
- VPC Peering Guide, "VPC peering basics" > "VPC peering connection lifecycle"
  and "VPC peering limitations" (awsdocs/amazon-vpc-peering-guide,
  doc_source/vpc-peering-basics.md), "VPC peering connection quotas"
  (vpc-peering-connection-quotas.md), "Create a VPC peering connection"
  (create-vpc-peering-connection.md), "Delete a VPC peering connection"
  (delete-vpc-peering-connection.md).
- EC2 API Reference: DeleteVpcPeeringConnection, AcceptVpcPeeringConnection,
  CreateVpcPeeringConnection, and "Error codes" (errors-overview.html).
- Public issue threads where AWS's own answers are quoted (cited inline).

The interface other code uses: `Clock` (`LocalCloud.clock`), `Peerings.call`
(the EC2 hook of cloud.py's handler), `Peerings.resource_tags`, `Peerings.reset`,
`Lifecycle.set`/`state` (`/_local/lifecycle`), `Clock.set`/`state`
(`/_local/clock`), `parse_lifecycle` (`--lifecycle JSON`).
"""

from __future__ import annotations

import email.utils
import fnmatch
import ipaddress
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable
from xml.sax.saxutils import escape

from . import awsevents

HOUR = 3600.0
DAY = 24 * HOUR

# "If no action is taken on the request, it expires after 7 days" (VPC Peering Guide, lifecycle);
# "Expiry time for an unaccepted VPC peering connection request: 1 week (168 hours)", not adjustable
# (VPC Peering Guide, "VPC peering connection quotas").
EXPIRY_S = 7 * DAY
# How long ended records stay listed (VPC Peering Guide, lifecycle):
# - failed: "remains visible to the requester for 2 hours";
# - expired: "remains visible to both VPC owners for 2 days";
# - rejected: "visible to the owner of the requester VPC for 2 days, and visible to the owner of the
#   accepter VPC for 2 hours. If the request was created within the same AWS account, the rejected
#   request remains visible for 2 hours";
# - deleted: "visible to the party that deleted it for 2 hours, and visible to the other party for
#   2 days. If the VPC peering connection was created within the same AWS account, the deleted
#   request remains visible for 2 hours".
KEEP_SHORT_S = 2 * HOUR
KEEP_LONG_S = 2 * DAY

# AWS's timing, the default. AWS publishes no figures for the intermediate states; these are a few
# seconds each, from what AWS and public threads show:
# - initiating_s 2: CreateVpcPeeringConnection answers `initiating-request` (EC2 API Reference, the
#   CLI example of create-vpc-peering-connection) and the request is `pending-acceptance` "a moment
#   later"; Terraform's resource, which waits for that, reports "Creation complete after 2s"
#   (hashicorp/terraform-provider-aws#30423).
# - visibility_s 5: the accepter's region does not list a new request at once: an accept right after
#   the create gets InvalidVpcPeeringConnectionID.NotFound "The vpcPeeringConnection ID 'pcx-...' does
#   not exist" (hashicorp/terraform-provider-aws#30423, #7178): EC2's eventual consistency, where a
#   just-created ID "might not have propagated throughout the system" and calls answer that it does not
#   exist, to be retried "starting with a couple of seconds of wait time" (Amazon EC2 Developer Guide,
#   "Eventual consistency in the Amazon EC2 API").
# - provisioning_s 5: an accepted connection is `provisioning` ("will soon be in the active state",
#   VPC Peering Guide, lifecycle); the accept's own answer says so (EC2 API Reference,
#   AcceptVpcPeeringConnection CLI example: {"Code": "provisioning", "Message": "Provisioning"});
#   options can be set only once it is active (OperationNotPermitted "Peering pcx-... is not active.
#   Peering options can be added only to active peerings.", quoted in
#   grem11n/terraform-aws-vpc-peering#21; Terraform retries that, hashicorp/terraform-provider-aws#28705).
# - deleting_s 5: "When you delete a peering connection, the status is set to Deleting and then
#   Deleted" (VPC Peering Guide, "Delete a VPC peering connection"); `deleting` "applies to an
#   inter-Region VPC peering connection" (lifecycle), so same-region deletes are `deleted` at once.
AWS_TIMING = {"initiating_s": 2.0, "visibility_s": 5.0, "provisioning_s": 5.0, "deleting_s": 5.0}
# "Outstanding VPC peering connection requests: 25", adjustable (VPC Peering Guide, "VPC peering
# connection quotas"); Amazon VPC quotas are "for your AWS account ... per Region" (Amazon VPC User
# Guide, "Amazon VPC quotas"). Counted on the requester's side: the requests an account made in a
# region that are `initiating-request` or `pending-acceptance`.
OUTSTANDING_REQUESTS = 25

OUTSTANDING = ("initiating-request", "pending-acceptance")
# Status messages as AWS writes them (EC2 API Reference CLI examples; the failed one as quoted in
# hashicorp/terraform-provider-aws issues and in public Terragrunt configurations).
FAILED_MESSAGE = "Failed due to incorrect VPC-ID, Account ID, or overlapping CIDR range"
PCX_TYPE = "vpc-peering-connection"


def imf_date(ts: float) -> str:
    """An HTTP Date header (RFC 7231 IMF-fixdate), as AWS sends it."""
    return email.utils.formatdate(ts, usegmt=True)


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------- clock


class Clock:
    """The cloud's clock: real time plus an offset that only grows (`POST /_local/clock`)."""

    def __init__(self, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._real() + self._offset

    def advance(self, seconds: float) -> None:
        seconds = _number(seconds, "advance_s")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def set(self, spec) -> dict:
        """`{"advance_s": N}`; anything else is refused (ValueError) and changes nothing."""
        if not isinstance(spec, dict) or set(spec) != {"advance_s"}:
            raise ValueError('the clock takes {"advance_s": N} with N >= 0')
        self.advance(spec["advance_s"])
        return self.state()

    def state(self) -> dict:
        with self._lock:
            now, offset = self._real() + self._offset, self._offset
        return {"now": now, "offset_s": offset, "date": imf_date(now)}


# ------------------------------------------------------------------------------------ lifecycle


class Lifecycle:
    """How long a connection stays in AWS's intermediate states, and the outstanding-requests quota.

    `set` takes any subset of `initiating_s`, `visibility_s`, `provisioning_s`, `deleting_s`
    (numbers >= 0), `outstanding_requests` (an integer >= 0), `instant` (true: moto's behaviour,
    every duration zero and nothing hidden; false: the durations set), and `aws` (true: back to
    AWS's defaults first). Setting a duration without `instant` turns `instant` off. A bad object
    is refused (ValueError) and changes nothing."""

    DURATIONS = tuple(AWS_TIMING)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._durations = dict(AWS_TIMING)
        self._instant = False
        self._outstanding = OUTSTANDING_REQUESTS

    def set(self, spec) -> dict:
        if not isinstance(spec, dict):
            raise ValueError("the lifecycle is a JSON object")
        unknown = set(spec) - set(self.DURATIONS) - {"instant", "outstanding_requests", "aws"}
        if unknown:
            raise ValueError(f"unknown lifecycle fields: {sorted(unknown)}")
        durations = {k: _number(spec[k], k) for k in self.DURATIONS if k in spec}
        instant = spec.get("instant")
        if instant is not None and not isinstance(instant, bool):
            raise ValueError("instant must be true or false")
        aws = spec.get("aws", False)
        if not isinstance(aws, bool):
            raise ValueError("aws must be true or false")
        outstanding = spec.get("outstanding_requests")
        if outstanding is not None and (isinstance(outstanding, bool) or not isinstance(outstanding, int)
                                        or outstanding < 0):
            raise ValueError(f"outstanding_requests must be an integer >= 0, not {outstanding!r}")
        with self._lock:
            if aws:
                self._durations, self._instant, self._outstanding = dict(AWS_TIMING), False, OUTSTANDING_REQUESTS
            self._durations.update(durations)
            if durations and instant is None:
                self._instant = False
            if instant is not None:
                self._instant = instant
            if outstanding is not None:
                self._outstanding = outstanding
        return self.state()

    def duration(self, name: str) -> float:
        with self._lock:
            return 0.0 if self._instant else self._durations[name]

    @property
    def instant(self) -> bool:
        with self._lock:
            return self._instant

    @property
    def outstanding_requests(self) -> int:
        with self._lock:
            return self._outstanding

    def state(self) -> dict:
        with self._lock:
            out: dict = {k: (0.0 if self._instant else v) for k, v in self._durations.items()}
            out.update(instant=self._instant, outstanding_requests=self._outstanding, aws_defaults=dict(AWS_TIMING))
            return out


def parse_lifecycle(text: str) -> dict:
    """`--lifecycle JSON`: the same object as `POST /_local/lifecycle` (checked, ValueError if bad)."""
    spec = json.loads(text)
    Lifecycle().set(spec)  # validate only
    return spec


# ---------------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class Side:
    account: str
    region: str
    vpc_id: str

    @property
    def view(self) -> tuple[str, str]:
        return (self.account, self.region)


@dataclass
class Connection:
    id: str
    requester: Side
    accepter: Side
    created: float
    initiating_end: float
    accepter_sees_from: float
    fails: bool = False
    accepted: float | None = None
    active_from: float | None = None
    rejected: float | None = None
    rejected_by: str | None = None
    deleted: float | None = None
    deleted_from: float | None = None
    deleted_by: str | None = None
    # (account, region) -> that view's own tags.
    tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @property
    def same_account(self) -> bool:
        return self.requester.account == self.accepter.account

    def role(self, account: str, region: str) -> str | None:
        """Whose view (account, region) is: the requester's, the accepter's, or neither's."""
        if (account, region) == self.requester.view:
            return "requester"
        if (account, region) == self.accepter.view:
            return "accepter"
        return None

    def status(self, t: float) -> tuple[str, float]:
        """The state at time t and when it began (events are stamped with the clock, which only
        moves forward, so every recorded event is at or before t)."""
        if self.deleted is not None:
            if t < self.deleted_from:
                return "deleting", self.deleted
            return "deleted", self.deleted_from
        if self.rejected is not None:
            return "rejected", self.rejected
        if self.accepted is not None:
            if t < self.active_from:
                return "provisioning", self.accepted
            return "active", self.active_from
        if t < self.initiating_end:
            return "initiating-request", self.created
        if self.fails:
            # "If they overlap, the status of the VPC peering connection immediately goes to failed"
            # (VPC Peering Guide, "Create a VPC peering connection", prerequisites).
            return "failed", self.initiating_end
        if t >= self.created + EXPIRY_S:
            return "expired", self.created + EXPIRY_S
        return "pending-acceptance", self.initiating_end

    def message(self, code: str) -> str:
        return {
            "initiating-request": f"Initiating Request to {self.accepter.account}",
            "pending-acceptance": f"Pending Acceptance by {self.accepter.account}",
            "provisioning": "Provisioning",
            "active": "Active",
            "deleting": "Deleting",
            "deleted": f"Deleted by {self.deleted_by}",
            "rejected": f"Rejected by {self.rejected_by}",
            "expired": "Expired",
            "failed": FAILED_MESSAGE,
        }[code]

    def forgotten_from(self, role: str, t: float) -> float | None:
        """When `role`'s view stops listing the record (the retention figures above), or None."""
        code, since = self.status(t)
        if code == "failed":
            # Visible to the requester only; the accepter never had it delivered.
            return since + KEEP_SHORT_S if role == "requester" else since
        if code == "expired":
            return since + KEEP_LONG_S
        if code == "rejected":
            return since + (KEEP_SHORT_S if self.same_account or role == "accepter" else KEEP_LONG_S)
        if code == "deleted":
            if self.same_account:
                return since + KEEP_SHORT_S
            deleter = "requester" if self.deleted_by == self.requester.account else "accepter"
            return since + (KEEP_SHORT_S if role == deleter else KEEP_LONG_S)
        return None

    def visible(self, role: str | None, t: float) -> bool:
        if role is None:
            return False
        if role == "accepter" and t < self.accepter_sees_from:
            return False
        gone = self.forgotten_from(role, t)
        return gone is None or t < gone

    def expiration(self, t: float) -> float | None:
        code, _ = self.status(t)
        return self.created + EXPIRY_S if code in ("initiating-request", "pending-acceptance", "expired") else None


def account_of(access_key: str) -> str | None:
    """Access keys that start with an account id and a dash (`222222222222-alice`)
    act in that account; any other key is left to moto (its default account,
    or the account of a role assumed through STS)."""
    m = re.match(r"^(\d{12})-", access_key)
    return m.group(1) if m else None


def caller_account(access_key: str, fallback: str) -> str:
    """The account moto acts in for this key: the `ACCOUNT-…` convention (`account_of`), else moto's
    own mapping (STS credentials of an assumed role act in the role's account)."""
    account = account_of(access_key or "")
    if account:
        return account
    try:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key)
    except Exception:  # noqa: BLE001 - moto's internals moved: the cloud's own guess
        return fallback


def error_xml(code: str, message: str) -> bytes:
    """An EC2 error response body, as EC2 writes it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


Answer = tuple[int, list, bytes]


def _error(code: str, message: str, status: int = 400) -> Answer:
    # EC2's client errors are HTTP 400 (EC2 API Reference, "Error codes": client errors).
    return status, [("Content-Type", "text/xml;charset=UTF-8")], error_xml(code, message)


def not_found(pcx_id: str) -> Answer:
    # AWS's code and capitalisation (moto says InvalidVpcPeeringConnectionId.NotFound) and message, as
    # quoted in hashicorp/terraform-provider-aws#30423; EC2 API Reference, "Error codes".
    return _error("InvalidVpcPeeringConnectionID.NotFound", f"The vpcPeeringConnection ID '{pcx_id}' does not exist")


def invalid_transition(pcx_id: str, state: str, to: str) -> Answer:
    # "InvalidStateTransition: Invalid state transition for pcx-0865e661, attempted to transition from
    # rejected to deleting", HTTP 400 (hashicorp/terraform#7465, #2322; ekristen/aws-nuke#723); EC2 API
    # Reference, "Error codes": "The specified VPC peering connection is not in the correct state for
    # the request. For example, you may be trying to accept a VPC peering request that has failed, or
    # that was rejected."
    return _error("InvalidStateTransition",
                  f"Invalid state transition for {pcx_id}, attempted to transition from {state} to {to}")


def _unless_pending(c: Connection, code: str, to: str) -> Answer | None:
    """Accept and reject need a request pending acceptance: InvalidStateTransition to `to` otherwise."""
    return None if code == "pending-acceptance" else invalid_transition(c.id, code, to)


# ------------------------------------------------------------------------------------------ XML


def _ns(root: ET.Element) -> str:
    return root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""


_NS_LOCK = threading.Lock()
_REGISTERED: set[str] = set()


class _Doc:
    """moto's XML answer, edited in place and written back in EC2's namespace."""

    def __init__(self, body: bytes) -> None:
        self.root = ET.fromstring(body)
        self.ns = _ns(self.root)
        if self.ns and self.ns not in _REGISTERED:
            with _NS_LOCK:  # ElementTree's prefix map is global: written once per namespace
                if self.ns not in _REGISTERED:
                    ET.register_namespace("", self.ns)
                    _REGISTERED.add(self.ns)

    def q(self, tag: str) -> str:
        return f"{{{self.ns}}}{tag}" if self.ns else tag

    def child(self, parent: ET.Element, tag: str, create: bool = False) -> ET.Element | None:
        e = parent.find(self.q(tag))
        if e is None and create:
            e = ET.SubElement(parent, self.q(tag))
        return e

    def text(self, parent: ET.Element, path: str) -> str:
        e = parent
        for tag in path.split("/"):
            e = e.find(self.q(tag)) if e is not None else None
        return (e.text or "").strip() if e is not None else ""

    def set_text(self, parent: ET.Element, tag: str, value: str) -> None:
        self.child(parent, tag, create=True).text = value

    def set_status(self, item: ET.Element, code: str, message: str) -> None:
        status = self.child(item, "status", create=True)
        self.set_text(status, "code", code)
        self.set_text(status, "message", message)

    def set_tags(self, item: ET.Element, tags: dict[str, str]) -> None:
        tag_set = self.child(item, "tagSet", create=True)
        for e in list(tag_set):
            tag_set.remove(e)
        for k, v in sorted(tags.items()):
            entry = ET.SubElement(tag_set, self.q("item"))
            ET.SubElement(entry, self.q("key")).text = k
            ET.SubElement(entry, self.q("value")).text = v

    def set_expiration(self, item: ET.Element, ts: float | None) -> None:
        e = self.child(item, "expirationTime")
        if ts is None:
            if e is not None:
                item.remove(e)
            return
        self.set_text(item, "expirationTime", iso(ts))

    def bytes(self) -> bytes:
        return ET.tostring(self.root, encoding="utf-8", xml_declaration=True)


def _filters(params: dict[str, str]) -> list[tuple[str, list[str]]]:
    out = []
    n = 1
    while f"Filter.{n}.Name" in params:
        out.append((params[f"Filter.{n}.Name"], awsevents.indexed(params, f"Filter.{n}.Value")))
        n += 1
    return out


def _like(value: str, patterns: list[str]) -> bool:
    # EC2 filter values take `*` and `?` wildcards.
    return any(fnmatch.fnmatchcase(value, p.replace("[", "[[]")) for p in patterns)


def _tag_matches(filters: list[tuple[str, list[str]]], resource_id: str, key: str, value: str,
                 all_tags: dict[str, str]) -> bool:
    """DescribeTags' filters (EC2 API Reference, DescribeTags): key, value, resource-id, resource-type,
    tag:<key>; all must match, any value of each."""
    for name, values in filters:
        if name == "key":
            ok = _like(key, values)
        elif name == "value":
            ok = _like(value, values)
        elif name == "resource-id":
            ok = _like(resource_id, values)
        elif name == "resource-type":
            ok = _like(PCX_TYPE, values)
        elif name.startswith("tag:"):
            k = name[4:]
            ok = k in all_tags and _like(all_tags[k], values)
        else:
            ok = True
        if not ok:
            return False
    return True


# ------------------------------------------------------------------------------------- peerings

Forward = Callable[[], Answer]


class Peerings:
    """The peering connections AWS would hold, and the hook that answers EC2's peering calls."""

    def __init__(self, cloud, clock: Clock, lifecycle: Lifecycle | None = None) -> None:
        self.cloud = cloud  # for cloud.forward (moto) and cloud.vpc_tags
        self.clock = clock
        self.lifecycle = lifecycle or Lifecycle()
        self.lock = threading.RLock()
        self.conns: dict[str, Connection] = {}

    def reset(self) -> None:
        """`/_local/reset`: no connections, the clock back to real time; the lifecycle stays."""
        with self.lock:
            self.conns.clear()
        self.clock.reset()

    # ---------------------------------------------------------------- hook

    def call(self, action: str, params: dict[str, str], region: str, account: str, access_key: str,
             forward: Forward) -> Answer:
        """An EC2 call: answered as AWS would, going to moto (`forward`) when AWS would act."""
        handler = self._HANDLERS.get(action)
        if handler is None:
            return forward()
        return handler(self, params, region, caller_account(access_key, account), forward)

    # ------------------------------------------------------------- actions

    def _create(self, params, region, account, forward) -> Answer:
        # Under the lock from the quota's count to the record: concurrent requests cannot both take the
        # last place, and a describe never sees moto's connection before its record exists.
        with self.lock:
            t = self.clock.now()
            limit = self.lifecycle.outstanding_requests
            outstanding = sum(1 for c in self.conns.values()
                              if c.requester.view == (account, region) and c.status(t)[0] in OUTSTANDING)
            if outstanding >= limit:
                # EC2 API Reference, "Error codes": OutstandingVpcPeeringConnectionLimitExceeded, "You've
                # reached the limit on the number of VPC peering connection requests that you can create"
                # (the list also has PendingVpcPeeringConnectionLimitExceeded; the quota is named
                # "Outstanding VPC peering connection requests", so this one).
                return _error("OutstandingVpcPeeringConnectionLimitExceeded",
                              f"You have reached the limit of {limit} outstanding VPC peering connection requests "
                              f"for account {account} in {region}.")
            status, headers, body = forward()
            if status != 200:
                return status, headers, body
            doc = _Doc(body)
            item = doc.child(doc.root, "vpcPeeringConnection")
            if item is None:
                return status, headers, body
            req = Side(doc.text(item, "requesterVpcInfo/ownerId") or account,
                       doc.text(item, "requesterVpcInfo/region") or region, doc.text(item, "requesterVpcInfo/vpcId"))
            acc = Side(doc.text(item, "accepterVpcInfo/ownerId") or params.get("PeerOwnerId") or account,
                       doc.text(item, "accepterVpcInfo/region") or params.get("PeerRegion") or region,
                       doc.text(item, "accepterVpcInfo/vpcId") or params.get("PeerVpcId", ""))
            c = Connection(
                id=doc.text(item, "vpcPeeringConnectionId"),
                requester=req,
                accepter=acc,
                created=t,
                initiating_end=t + self.lifecycle.duration("initiating_s"),
                accepter_sees_from=t + self.lifecycle.duration("visibility_s"),
                fails=self._overlap(req, acc),
            )
            # The tags given at creation are the requester's, in its account and region ("This tag is only
            # visible to you; the owner of the peer VPC can create their own tags", VPC Peering Guide,
            # "Create a VPC peering connection").
            c.tags[req.view] = _spec_tags(params)
            self.conns[c.id] = c
            self._rewrite(doc, item, c, "requester", t, force="initiating-request")
            return status, headers, doc.bytes()

    def _describe(self, params, region, account, forward) -> Answer:
        asked = awsevents.indexed(params, "VpcPeeringConnectionId")
        status, headers, body = forward()
        if status != 200:
            return status, headers, body
        doc = _Doc(body)
        listing = doc.child(doc.root, "vpcPeeringConnectionSet")
        shown = set()
        with self.lock:
            t = self.clock.now()
            for item in list(listing) if listing is not None else []:
                pcx_id = doc.text(item, "vpcPeeringConnectionId")
                c = self.conns.get(pcx_id)
                if c is None:
                    shown.add(pcx_id)  # not made through the endpoint: moto's word
                    continue
                role = c.role(account, region)
                if not c.visible(role, t):
                    listing.remove(item)
                    continue
                self._rewrite(doc, item, c, role, t)
                shown.add(pcx_id)
        for pcx_id in asked:
            if pcx_id not in shown:
                # AWS fails a describe by id of a connection it does not list (Terraform's finder treats
                # InvalidVpcPeeringConnectionID.NotFound from DescribeVpcPeeringConnections as "gone").
                return not_found(pcx_id)
        return status, headers, doc.bytes()

    def _on_connection(self, params, region, account, forward, allowed: Callable[[Connection, str], Answer | None],
                       answered: Callable[[Connection, float, Answer], Answer] | None = None) -> Answer:
        """A call on one connection (its VpcPeeringConnectionId), as AWS answers it: NotFound where the
        caller's view does not list the connection (`_find`); `allowed(c, code)`'s refusal where the
        connection's state `code` does not allow the call (None: it does); else moto's answer. With
        `answered`, moto's answer goes through `answered(c, t, answer)` once moto has acted (status 200),
        all under the lock, so that a describe never sees moto's change before its record; without, there
        is nothing to record, and the call goes to moto once the lock is released."""
        pcx_id = params.get("VpcPeeringConnectionId", "")
        with self.lock:
            t = self.clock.now()
            c, refusal = self._find(pcx_id, account, region, t)
            if refusal:
                return refusal
            refusal = allowed(c, c.status(t)[0])
            if refusal:
                return refusal
            if answered is not None:
                answer = forward()
                return answered(c, t, answer) if answer[0] == 200 else answer
        return forward()

    def _accept(self, params, region, account, forward) -> Answer:
        def accepted(c: Connection, t: float, answer: Answer) -> Answer:
            c.accepted = t
            c.active_from = t + self.lifecycle.duration("provisioning_s")
            status, headers, body = answer
            doc = _Doc(body)
            item = doc.child(doc.root, "vpcPeeringConnection")
            if item is None:
                return answer
            # The accept's own answer says provisioning (EC2 API Reference, AcceptVpcPeeringConnection
            # example; hashicorp/terraform#8733), moto's says active; `instant` keeps moto's.
            self._rewrite(doc, item, c, c.role(account, region), t,
                          force=None if self.lifecycle.instant else "provisioning")
            return status, headers, doc.bytes()

        # "To accept a request, the VPC peering connection must be in the pending-acceptance state"
        # (EC2 API Reference, AcceptVpcPeeringConnection). moto: only the accepter's owner, in the
        # accepter's region.
        return self._on_connection(params, region, account, forward,
                                   lambda c, code: _unless_pending(c, code, "provisioning"), accepted)

    def _reject(self, params, region, account, forward) -> Answer:
        def rejected(c: Connection, t: float, answer: Answer) -> Answer:
            c.rejected, c.rejected_by = t, account
            return answer

        # "You can reject any VPC peering connection request that you've received that's in the
        # pending-acceptance state" (VPC Peering Guide, "Reject a VPC peering connection"). moto: only the
        # accepter's owner, in the accepter's region.
        return self._on_connection(params, region, account, forward,
                                   lambda c, code: _unless_pending(c, code, "rejected"), rejected)

    def _delete(self, params, region, account, forward) -> Answer:
        def allowed(c: Connection, code: str) -> Answer | None:
            # "Either the owner of the requester VPC or the owner of the accepter VPC can delete the VPC
            # peering connection if it's in the active state. The owner of the requester VPC can delete a
            # VPC peering connection in the pending-acceptance state. You cannot delete a VPC peering
            # connection that's in the failed or rejected state." (EC2 API Reference,
            # DeleteVpcPeeringConnection). Undocumented, modelled on the nearest documented state:
            # initiating-request as pending-acceptance, provisioning as active; expired, deleting and
            # deleted cannot be deleted ("After you delete a connection, it can't be accepted,
            # rejected, or edited", "no action can be taken on it by either VPC owner" once expired).
            if code in OUTSTANDING:
                if account != c.requester.account:
                    # AWS documents the rule, not the error; OperationNotPermitted is EC2's code for "the
                    # specified operation is not allowed" (EC2 API Reference, "Error codes"), the one it
                    # gives the other peering operations a side may not perform.
                    return _error("OperationNotPermitted",
                                  f"Only the owner of the requester VPC ({c.requester.account}) can delete the "
                                  f"VPC peering connection {c.id} while it is {code}; the accepter can reject it.")
            elif code not in ("provisioning", "active"):
                return invalid_transition(c.id, code, "deleting")
            return None

        def deleted(c: Connection, t: float, answer: Answer) -> Answer:
            inter_region = c.requester.region != c.accepter.region
            c.deleted, c.deleted_by = t, account
            c.deleted_from = t + (self.lifecycle.duration("deleting_s") if inter_region else 0.0)
            return answer

        return self._on_connection(params, region, account, forward, allowed, deleted)

    def _modify_options(self, params, region, account, forward) -> Answer:
        def allowed(c: Connection, code: str) -> Answer | None:
            if code == "active":
                return None
            # OperationNotPermitted "Peering pcx-12345 is not active. Peering options can be added only
            # to active peerings.", HTTP 400 (quoted in grem11n/terraform-aws-vpc-peering#21).
            return _error("OperationNotPermitted",
                          f"Peering {c.id} is not active. Peering options can be added only to active peerings.")

        return self._on_connection(params, region, account, forward, allowed)

    def _tags(self, params, region, account, forward, delete: bool) -> Answer:
        pcx_ids = [r for r in awsevents.indexed(params, "ResourceId") if r.startswith("pcx-")]
        if not pcx_ids:
            return forward()
        with self.lock:
            t = self.clock.now()
            targets = []
            for pcx_id in pcx_ids:
                c, refusal = self._find(pcx_id, account, region, t)
                if refusal:
                    return refusal  # the whole call fails, as EC2 does for any unknown resource
                targets.append(c)
            status, headers, body = forward()
            if status != 200:
                return status, headers, body
            items = awsevents.tag_items(params)
            for c in targets:
                # Tags on a connection "are only applied in the account or Region in which you create
                # them" (VPC Peering Guide, "VPC peering limitations").
                own = c.tags.setdefault((account, region), {})
                if not delete:
                    own.update({i["key"]: i.get("value", "") for i in items})
                elif not items:
                    own.clear()  # DeleteTags without tags: all of them (EC2 API Reference, DeleteTags)
                else:
                    for i in items:
                        # A value given deletes the tag only if it has that value (EC2 API Reference,
                        # DeleteTags); no value, whatever it holds.
                        if i["key"] in own and ("value" not in i or own[i["key"]] == i["value"]):
                            del own[i["key"]]
            return status, headers, body

    def _create_tags(self, params, region, account, forward) -> Answer:
        return self._tags(params, region, account, forward, delete=False)

    def _delete_tags(self, params, region, account, forward) -> Answer:
        return self._tags(params, region, account, forward, delete=True)

    def _describe_tags(self, params, region, account, forward) -> Answer:
        status, headers, body = forward()
        if status != 200 or params.get("NextToken"):
            return status, headers, body
        doc = _Doc(body)
        tag_set = doc.child(doc.root, "tagSet", create=True)
        for item in list(tag_set):
            if doc.text(item, "resourceId").startswith("pcx-") or doc.text(item, "resourceType") == PCX_TYPE:
                tag_set.remove(item)  # moto's shared tags; the caller's own are added below
        filters = _filters(params)
        with self.lock:
            t = self.clock.now()
            for c in sorted(self.conns.values(), key=lambda c: c.id):
                if not c.visible(c.role(account, region), t):
                    continue
                own = c.tags.get((account, region), {})
                for k, v in sorted(own.items()):
                    if not _tag_matches(filters, c.id, k, v, own):
                        continue
                    entry = ET.SubElement(tag_set, doc.q("item"))
                    for name, value in (("key", k), ("resourceId", c.id), ("resourceType", PCX_TYPE), ("value", v)):
                        ET.SubElement(entry, doc.q(name)).text = value
        return status, headers, doc.bytes()

    _HANDLERS = {
        "CreateVpcPeeringConnection": _create,
        "DescribeVpcPeeringConnections": _describe,
        "AcceptVpcPeeringConnection": _accept,
        "RejectVpcPeeringConnection": _reject,
        "DeleteVpcPeeringConnection": _delete,
        "ModifyVpcPeeringConnectionOptions": _modify_options,
        "CreateTags": _create_tags,
        "DeleteTags": _delete_tags,
        "DescribeTags": _describe_tags,
    }

    # ------------------------------------------------------------- helpers

    def _find(self, pcx_id: str, account: str, region: str, t: float) -> tuple[Connection | None, Answer | None]:
        """The connection as the caller's (account, region) sees it, or AWS's NotFound: not listed there
        yet (the accepter's region right after the request), forgotten, or never made."""
        c = self.conns.get(pcx_id)
        if c is None or not c.visible(c.role(account, region), t):
            return None, not_found(pcx_id)
        return c, None

    def _rewrite(self, doc: _Doc, item: ET.Element, c: Connection, role: str | None, t: float,
                 force: str | None = None) -> None:
        code = force or c.status(t)[0]
        doc.set_status(item, code, c.message(code))
        view = c.requester.view if role == "requester" else c.accepter.view
        doc.set_tags(item, c.tags.get(view, {}))
        doc.set_expiration(item, c.created + EXPIRY_S if force == "initiating-request" else c.expiration(t))

    def _overlap(self, a: Side, b: Side) -> bool:
        """Whether any IPv4 or IPv6 range of one VPC overlaps one of the other's ("You cannot create a VPC
        peering connection between VPCs that have matching or overlapping IPv4 CIDR blocks", likewise
        IPv6, "even if you intend to use only the non-overlapping CIDR blocks", VPC Peering Guide, "VPC
        peering limitations")."""
        ranges_a, ranges_b = self._ranges(a), self._ranges(b)
        return any(x.version == y.version and x.overlaps(y) for x in ranges_a for y in ranges_b)

    def _ranges(self, side: Side) -> list:
        body = f"Action=DescribeVpcs&Version=2016-11-15&VpcId.1={side.vpc_id}".encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={side.account}-localcloud/20260101/{side.region}/ec2/"
                             "aws4_request, SignedHeaders=host, Signature=0",
            "x-moto-account-id": side.account,
        }
        try:
            status, _, xml = self.cloud.forward("POST", "/", headers, body)
            if status != 200:
                return []
            doc = _Doc(xml)
        except Exception:  # noqa: BLE001 - no ranges known: no overlap claimed
            return []
        out = []
        for vpc in doc.root.iter(doc.q("item")):
            if doc.text(vpc, "vpcId") != side.vpc_id:
                continue
            for tag, block in (("cidrBlockAssociationSet", "cidrBlock"), ("ipv6CidrBlockAssociationSet", "ipv6CidrBlock")):
                assoc_set = doc.child(vpc, tag)
                for assoc in list(assoc_set) if assoc_set is not None else []:
                    state = doc.text(assoc, block + "State/state")
                    if state in ("", "associated", "associating"):
                        try:
                            out.append(ipaddress.ip_network(doc.text(assoc, block), strict=False))
                        except ValueError:
                            pass
            if doc.text(vpc, "cidrBlock"):
                try:
                    out.append(ipaddress.ip_network(doc.text(vpc, "cidrBlock"), strict=False))
                except ValueError:
                    pass
        return out

    # ------------------------------------------------------------- for other code

    def resource_tags(self, resource_id: str, region: str, account: str) -> dict[str, str]:
        """A resource's tags as (account, region) sees them: a peering connection's own tags there (none
        where it is not listed), anything else's from moto."""
        if resource_id.startswith("pcx-"):
            with self.lock:
                c = self.conns.get(resource_id)
                if c is None or not c.visible(c.role(account, region), self.clock.now()):
                    return {}
                return dict(c.tags.get((account, region), {}))
        return self.cloud.vpc_tags(resource_id, region, f"{account}-localcloud", account)

    def state(self, pcx_id: str, account: str, region: str) -> str | None:
        """The state (account, region) sees, or None where it is not listed (for other modules and tests)."""
        with self.lock:
            c = self.conns.get(pcx_id)
            t = self.clock.now()
            if c is None or not c.visible(c.role(account, region), t):
                return None
            return c.status(t)[0]


def _spec_tags(params: dict[str, str]) -> dict[str, str]:
    """CreateVpcPeeringConnection's TagSpecification.N.Tag.M for vpc-peering-connection."""
    tags: dict[str, str] = {}
    n = 1
    while f"TagSpecification.{n}.ResourceType" in params or f"TagSpecification.{n}.Tag.1.Key" in params:
        if params.get(f"TagSpecification.{n}.ResourceType", PCX_TYPE) == PCX_TYPE:
            m = 1
            while f"TagSpecification.{n}.Tag.{m}.Key" in params:
                tags[params[f"TagSpecification.{n}.Tag.{m}.Key"]] = params.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
                m += 1
        n += 1
    return tags
