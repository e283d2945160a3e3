"""IAM as deployed: the local cloud refuses a function's call that its template role would not allow.

Each function process calls the local cloud with an access key of its own
(`ACCOUNT-BINARY-REGION`, cloud.py), which this module maps to the role the
template gives that function in that region's stack. Before a function's call
goes to moto, `Iam.check` evaluates the role's policies, as template.py
resolves them from `infra-template/` for that region and account (nothing is
copied here), against the call's request context, and refuses what they do not
allow, in the service's own protocol:

- EC2: `UnauthorizedOperation`, HTTP 403, EC2's error XML, with the message AWS
  writes ("You are not authorized to perform this operation. User: ARN is not
  authorized to perform: ec2:ACTION on resource: ARN because no identity-based
  policy allows the ec2:ACTION action. Encoded authorization failure message:
  ..."; IAM User Guide, "Troubleshoot access denied error messages"; the shape
  as EC2 returns it, e.g. ministryofjustice/modernisation-platform#6971).
- STS: `AccessDenied`, HTTP 403, STS's query-protocol `ErrorResponse`.
- EventBridge `PutEvents`: `AccessDeniedException`, HTTP 400, JSON protocol
  (EventBridge API Reference, "Common Errors").

The evaluation follows the IAM User Guide, "Policy evaluation logic" and "The
difference between explicit and implicit denies": an explicit Deny wins, then
any Allow, else the call is implicitly denied. Action/NotAction match with
wildcards, case-insensitively ("IAM JSON policy elements: Action");
Resource/NotResource and the Arn* operators match the six colon-separated ARN
parts one by one, case-sensitively, with `*` and `?` ("IAM JSON policy
elements: Resource", "Condition operators: ARN condition operators").
Conditions ("IAM JSON policy elements: Condition operators"): every operator of
a block and every key of an operator must hold (AND), any of a key's values may
match (OR); a key absent from the request context makes a condition false,
except the negated operators (StringNotEquals, StringNotLike, ArnNotEquals,
ArnNotLike, NumericNotEquals), which are then true, `...IfExists`, which is then
true, and `Null`, which tests just that. Multivalued keys ("Single-valued vs.
multivalued context keys"): `ForAllValues:` holds when every value in the
request matches, and also when the key is absent or empty; `ForAnyValue:`
holds when at least one does, never on an absent or empty key. A multivalued
key used without a set operator is taken as ForAnyValue for a positive
operator and as "none matches" for a negated one (the docs require a set
operator there; the template always uses one). Operators this module does not
implement (Date*, IpAddress, Binary*) never match, and each use is reported on
stderr once: a Deny with one of them would not apply, an Allow would not
allow. Policy variables (`${aws:username}`...) are not substituted.

Which resources a call authorizes, and with which condition keys, follows the
Service Authorization Reference, "Actions, resources, and condition keys for
Amazon EC2" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html;
the same data, machine-readable, is AWS's service reference that cfn-lint
ships as data/AdditionalSpecs/Policies.json, and iann0036/iam-dataset's
aws/iam_definition.json). Each resource is authorized on its own; the call is
refused on the first that is not allowed. See `EC2_RESOURCES` below.

Who is checked: the function processes, and the temporary keys STS gives a
function for a role of the template (the reader role, `AllowedAccounts`),
evaluated with that role's policies as the template makes it in the role's
account and region. Each account of the local cloud has its own template
parameters (`account_params`: its `AllowedAccounts` above all), so its roles are
the ones its own stacks make. Anyone else (tests, the CLI, a person's AWS CLI,
`cargo lambda deploy`) is an administrator and is not checked.

A role in another account is assumed only as AWS allows it across accounts:
the caller's identity policy and the role's trust policy must both allow it.
When that account is one of the local cloud's (it runs a deployment there), the
role must be one its stacks make (their Condition holding) and its trust
policy (AssumeRolePolicyDocument) must name the caller: its account id, the
account's root (`arn:aws:iam::ACCOUNT:root`), its role or its session, or "*";
else the call is refused with STS's `AccessDenied`. A role of an account the
local cloud does not run, or of the caller's own account, is not checked this
far (the other deployment is not there to ask).

Resource policies (`resource_decision`): the statements of a resource's policy
that name the caller in `Principal` (as above; `NotPrincipal` the reverse) are
evaluated as identity policies are (an explicit Deny wins, then an Allow, else
an implicit deny). The local cloud asks this of an event bus's policy
(AWS::Events::EventBusPolicy) when a rule of one account sends to another
account's bus, of a queue's policy (AWS::SQS::QueuePolicy) when a rule sends
to a queue (`send_message_refusal`: EventBridge, a service, has no identity
policy, so the queue's policy alone decides), and of a role's trust policy.

Lambda's poller reads a queue with the function's execution role
(`poller_refusal`: sqs:ReceiveMessage, sqs:DeleteMessage and
sqs:GetQueueAttributes on the queue, "Using Lambda with Amazon SQS", Lambda
Developer Guide); Lambda checks them when the event source mapping is created,
so the local cloud checks them when it starts.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterable
from xml.sax.saxutils import escape

from . import template as tpl

PARTITION = "aws"

# What Lambda's poller calls on an SQS event source with the function's execution role ("Using
# Lambda with Amazon SQS", Lambda Developer Guide: the execution role's permissions).
SQS_POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")

# --------------------------------------------------------------------- matching


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """`*` any run of characters, `?` any one character; the whole text."""
    return _wildcard(pattern, ignore_case).fullmatch(text) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Action names are not case-sensitive ("IAM JSON policy elements: Action")."""
    return pattern == "*" or wildcard_match(pattern, action, ignore_case=True)


def arn_matches(pattern: str, arn: str) -> bool:
    """Each of the six colon-separated parts on its own, case-sensitively, with `*` and `?`;
    the resource part keeps its own colons ("ARN condition operators")."""
    if pattern == "*":
        return True
    p, a = pattern.split(":", 5), arn.split(":", 5)
    if len(a) != 6:
        return wildcard_match(pattern, arn)
    if len(p) < 6:  # a shorter pattern: its last part must match all that is left
        a = a[: len(p) - 1] + [":".join(a[len(p) - 1:])]
    return all(wildcard_match(x, y) for x, y in zip(p, a))


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -------------------------------------------------------------- request context


class Context:
    """A request's condition keys, looked up case-insensitively ("Condition key names are not
    case-sensitive", IAM JSON policy elements: Condition). Values are a string, a list of strings
    (multivalued keys such as aws:TagKeys), or absent. Expensive values (a resource's tags) are
    looked up only when a condition asks for them, once; every key consulted is remembered, for
    the refusal's encoded message."""

    def __init__(self, values: dict[str, object] | None = None,
                 lazy: dict[str, Callable[[], object]] | None = None,
                 request_tags: dict[str, str] | None = None,
                 resource_tags: Callable[[], dict[str, str]] | None = None) -> None:
        self._values = {k.lower(): v for k, v in (values or {}).items()}
        self._lazy = {k.lower(): f for k, f in (lazy or {}).items()}
        self._request_tags = request_tags
        self._resource_tags = resource_tags
        self._tags_cache: dict[str, str] | None = None
        self.consulted: dict[str, object] = {}

    @staticmethod
    def _tag(tags: dict[str, str] | None, key: str):
        if tags is None:
            return None
        if key in tags:
            return tags[key]
        low = key.lower()
        return next((v for k, v in tags.items() if k.lower() == low), None)

    def get(self, key: str):
        low = key.lower()
        if low.startswith("aws:requesttag/"):
            value = self._tag(self._request_tags, key.split("/", 1)[1])
        elif low.startswith(("aws:resourcetag/", "ec2:resourcetag/")):
            if self._resource_tags is not None and self._tags_cache is None:
                self._tags_cache = self._resource_tags() or {}
            value = self._tag(self._tags_cache, key.split("/", 1)[1])
        elif low in self._values:
            value = self._values[low]
        elif low in self._lazy:
            value = self._lazy.pop(low)()
            self._values[low] = value
        else:
            value = None
        self.consulted[key] = value
        return value


# ------------------------------------------------------------------- conditions

_NEGATED = {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike",
            "numericnotequals"}


def _numeric(a: str, b: str, how: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return {"numericequals": x == y, "numericnotequals": x == y, "numericlessthan": x < y,
            "numericlessthanequals": x <= y, "numericgreaterthan": x > y, "numericgreaterthanequals": x >= y}[how]


def _positive(base: str, actual: str, wanted: str) -> bool | None:
    """Does one request value match one policy value? Negated operators use their positive form
    here (the caller negates). None: the operator is not implemented."""
    if base in ("stringequals", "stringnotequals"):
        return actual == wanted
    if base in ("stringequalsignorecase", "stringnotequalsignorecase"):
        return actual.lower() == wanted.lower()
    if base in ("stringlike", "stringnotlike"):
        return wildcard_match(wanted, actual)
    if base in ("arnequals", "arnlike", "arnnotequals", "arnnotlike"):
        return arn_matches(wanted, actual)
    if base == "bool":
        return actual.lower() == wanted.lower()
    if base.startswith("numeric"):
        return _numeric(actual, wanted, base)
    return None


_unknown_reported: set[str] = set()
_unknown_lock = threading.Lock()


def _report_unknown(operator: str, where: str) -> None:
    with _unknown_lock:
        if operator in _unknown_reported:
            return
        _unknown_reported.add(operator)
    print(f"localcloud iam: condition operator {operator} ({where}) is not implemented; "
          "it never matches", file=sys.stderr, flush=True)


def condition_holds(condition: dict, ctx: Context, where: str = "", notes: list[str] | None = None) -> bool:
    """A statement's whole Condition block."""
    for operator, keys in (condition or {}).items():
        qualifier, _, base_name = operator.rpartition(":")
        qualifier = qualifier.lower()
        base = base_name.lower()
        if_exists = base.endswith("ifexists")
        if if_exists:
            base = base[: -len("ifexists")]
        implemented = base == "null" or _positive(base, "", "") is not None
        if qualifier not in ("", "forallvalues", "foranyvalue") or not isinstance(keys, dict) or not implemented:
            _report_unknown(operator, where)
            if notes is not None:
                notes.append(f"{where}: {operator} is not implemented (never matches)")
            return False
        for key, wanted in keys.items():
            if not _key_holds(qualifier, base, if_exists, key, [_text(w) for w in _as_list(wanted)], ctx):
                return False
    return True


def _key_holds(qualifier: str, base: str, if_exists: bool, key: str, wanted: list[str], ctx: Context) -> bool:
    value = ctx.get(key)
    values = [_text(v) for v in value] if isinstance(value, (list, tuple)) else None
    absent = value is None or (values is not None and not values)
    if base == "null":
        # "Null": {"key": "true"} holds when the key is absent; "false" when it is present.
        return any((w.lower() == "true") == absent for w in wanted)
    negated = base in _NEGATED

    def one(v: str) -> bool:
        hit = any(_positive(base, v, w) for w in wanted)
        return not hit if negated else hit

    if qualifier == "forallvalues":
        return True if absent else all(one(v) for v in (values if values is not None else [_text(value)]))
    if qualifier == "foranyvalue":
        if absent:
            return if_exists
        return any(one(v) for v in (values if values is not None else [_text(value)]))
    if absent:
        return True if if_exists else negated
    if values is not None:  # a multivalued key without a set operator
        hits = [any(_positive(base, v, w) for w in wanted) for v in values]
        return not any(hits) if negated else any(hits)
    return one(_text(value))


# ------------------------------------------------------------------- statements


@dataclass
class Statement:
    label: str  # "RouterRole/router:ManageRoutes"
    effect: str
    actions: list[str]
    not_actions: list[str] | None
    resources: list[str] | None
    not_resources: list[str] | None
    condition: dict

    def applies(self, action: str, resource: str, ctx: Context, notes: list[str] | None = None) -> bool:
        if self.not_actions is not None:
            if any(action_matches(p, action) for p in self.not_actions):
                return False
        elif not any(action_matches(p, action) for p in self.actions):
            return False
        if self.not_resources is not None:
            if any(arn_matches(p, resource) for p in self.not_resources):
                return False
        elif self.resources is None or not any(arn_matches(p, resource) for p in self.resources):
            return False
        return condition_holds(self.condition, ctx, self.label, notes)


def statements(policies: Iterable[tuple[str, dict]]) -> list[Statement]:
    """The statements of policy documents, each labelled with where it comes from."""
    out = []
    for source, document in policies:
        body = (document or {}).get("Statement") or []
        for i, st in enumerate(body if isinstance(body, list) else [body]):
            out.append(statement(f"{source}:{st.get('Sid') or i}", st))
    return out


def statement(label: str, st: dict) -> Statement:
    """One policy statement, as the evaluation reads it."""
    return Statement(
        label=label,
        effect=str(st.get("Effect", "")),
        actions=[str(a) for a in _as_list(st.get("Action"))],
        not_actions=[str(a) for a in _as_list(st["NotAction"])] if "NotAction" in st else None,
        resources=[str(r) for r in _as_list(st["Resource"])] if "Resource" in st else None,
        not_resources=[str(r) for r in _as_list(st["NotResource"])] if "NotResource" in st else None,
        condition=st.get("Condition") or {},
    )


@dataclass
class Decision:
    allowed: bool
    explicit_deny: bool = False
    statement: str | None = None  # the Deny that decided, or the Allow that allowed
    notes: list[str] = field(default_factory=list)


def evaluate(stmts: list[Statement], action: str, resource: str, ctx: Context) -> Decision:
    """Explicit Deny, then Allow, else implicit deny (IAM User Guide, "Policy evaluation logic")."""
    notes: list[str] = []
    allow: str | None = None
    for st in stmts:
        if st.effect == "Deny":
            if st.applies(action, resource, ctx, notes):
                return Decision(False, True, st.label, notes)
        elif st.effect == "Allow" and allow is None:
            if st.applies(action, resource, ctx, notes):
                allow = st.label
    return Decision(allow is not None, False, allow, notes)


# ------------------------------------------------------------ resource policies


def principal_matches(spec, who: dict[str, list[str]]) -> bool:
    """Does a statement's `Principal` name the caller? `who`: the caller's names by kind, e.g.
    {"AWS": [account id, arn:aws:iam::ACCOUNT:root, role ARN, session ARN]} or {"Service":
    ["events.amazonaws.com"]}. "*" (or {"AWS": "*"}) names everyone ("AWS JSON policy elements:
    Principal")."""
    if spec == "*":
        return True
    if not isinstance(spec, dict):
        return False
    for kind, values in spec.items():
        for v in _as_list(values):
            v = _text(v)
            if (kind == "AWS" and v == "*") or v in who.get(kind, []):
                return True
    return False


def aws_names(account: str, *arns: str) -> dict[str, list[str]]:
    """The names a principal of `account` (a role, its session: `arns`) is known by in a Principal."""
    return {"AWS": [account, f"arn:{PARTITION}:iam::{account}:root", *[a for a in arns if a]]}


def resource_decision(policy_statements: Iterable[dict], who: dict[str, list[str]], action: str, resource: str,
                      ctx: Context, label: str = "policy") -> Decision:
    """A resource policy's statements that name the caller, evaluated as identity policies are. A
    statement without Resource (a trust policy's) applies to the resource it is attached to."""
    named = []
    for i, st in enumerate(policy_statements):
        if not isinstance(st, dict):
            continue
        if "NotPrincipal" in st:
            if principal_matches(st["NotPrincipal"], who):
                continue
        elif not principal_matches(st.get("Principal"), who):
            continue
        st = dict(st)
        if "Resource" not in st and "NotResource" not in st:
            st["Resource"] = "*"
        named.append(statement(f"{label}:{st.get('Sid') or i}", st))
    return evaluate(named, action, resource, ctx)


def _statements_of(document: dict | None) -> list[dict]:
    body = (document or {}).get("Statement") or []
    return body if isinstance(body, list) else [body]


# ----------------------------------------------------------- what a call asks


@dataclass
class Check:
    """One authorization a call needs: an action on one resource, with its context."""
    action: str  # "ec2:CreateRoute"
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    ctx: Context


class Lookup:
    """What the request context needs from the cloud's state. The local cloud passes its own
    (`CloudLookup`); tests of the evaluator pass a fake."""

    def tags(self, resource_id: str, region: str, account: str) -> dict[str, str]:
        return {}

    def peering(self, pcx_id: str, region: str, account: str) -> dict | None:
        """{"requester": (account, region, vpc), "accepter": (account, region, vpc)} or None."""
        return None


# ID prefix -> the resource type in EC2's ARNs ("Resource types defined by Amazon EC2").
ID_TYPES = {
    "vpc-": "vpc", "pcx-": "vpc-peering-connection", "rtb-": "route-table", "subnet-": "subnet",
    "igw-": "internet-gateway", "sg-": "security-group", "i-": "instance", "eni-": "network-interface",
    "acl-": "network-acl", "dopt-": "dhcp-options", "nat-": "natgateway", "eigw-": "egress-only-internet-gateway",
    "vgw-": "vpn-gateway", "tgw-": "transit-gateway", "ami-": "image", "vol-": "volume", "snap-": "snapshot",
}

# Calls that create a resource: the new resource's type (its ARN is TYPE/* until it exists).
EC2_CREATES = {
    "CreateVpc": "vpc", "CreateSubnet": "subnet", "CreateInternetGateway": "internet-gateway",
    "CreateRouteTable": "route-table", "CreateVpcPeeringConnection": "vpc-peering-connection",
    "CreateSecurityGroup": "security-group",
}

# The existing resources each call authorizes, as (request parameter, resource type); a created
# resource (EC2_CREATES) comes after them, then the tags given on create. From the Service
# Authorization Reference, "Actions, resources, and condition keys for Amazon EC2" (resource types
# marked * are required; the others are authorized when the request names them):
#   AcceptVpcPeeringConnection   vpc* (the accepter VPC), vpc-peering-connection*
#   AssociateRouteTable          route-table*, subnet, internet-gateway (GatewayId)
#   AttachInternetGateway        internet-gateway*, vpc*
#   CreateInternetGateway        internet-gateway*
#   CreateRoute / ReplaceRoute / DeleteRoute   route-table*
#   CreateRouteTable             route-table*, vpc*
#   CreateSubnet                 subnet*, vpc*
#   CreateTags / DeleteTags      every resource named (ResourceId.N), none required
#   CreateVpc                    vpc*
#   CreateVpcPeeringConnection   vpc* (always the requester VPC: VPC Peering Guide, "Identity and
#                                access management for VPC peering"), vpc-peering-connection*
#   DeleteVpcPeeringConnection / RejectVpcPeeringConnection / ModifyVpcPeeringConnectionOptions
#                                vpc-peering-connection*
#   ModifyVpcAttribute           vpc*
#   Describe*                    none: Resource "*" (no resource-level permissions)
EC2_RESOURCES: dict[str, list[tuple[str, str]]] = {
    "AcceptVpcPeeringConnection": [("VpcPeeringConnectionId", "vpc-peering-connection")],
    "AssociateRouteTable": [("RouteTableId", "route-table"), ("SubnetId", "subnet"),
                            ("GatewayId", "internet-gateway")],
    "AttachInternetGateway": [("InternetGatewayId", "internet-gateway"), ("VpcId", "vpc")],
    "CreateInternetGateway": [],
    "CreateRoute": [("RouteTableId", "route-table")],
    "ReplaceRoute": [("RouteTableId", "route-table")],
    "DeleteRoute": [("RouteTableId", "route-table")],
    "CreateRouteTable": [("VpcId", "vpc")],
    "CreateSubnet": [("VpcId", "vpc")],
    "CreateVpc": [],
    "CreateVpcPeeringConnection": [("VpcId", "vpc")],
    "DeleteVpcPeeringConnection": [("VpcPeeringConnectionId", "vpc-peering-connection")],
    "RejectVpcPeeringConnection": [("VpcPeeringConnectionId", "vpc-peering-connection")],
    "ModifyVpcPeeringConnectionOptions": [("VpcPeeringConnectionId", "vpc-peering-connection")],
    "ModifyVpcAttribute": [("VpcId", "vpc")],
}
# Any other EC2 call: the resources its request names among these, else "*".
_GENERIC_PARAMS = [("VpcPeeringConnectionId", "vpc-peering-connection"), ("RouteTableId", "route-table"),
                   ("SubnetId", "subnet"), ("InternetGatewayId", "internet-gateway"), ("VpcId", "vpc"),
                   ("GroupId", "security-group"), ("InstanceId", "instance")]


def ec2_arn(region: str, account: str, kind: str, rid: str) -> str:
    return f"arn:{PARTITION}:ec2:{region}:{account}:{kind}/{rid}"


def indexed(params: dict[str, str], prefix: str) -> list[str]:
    out, n = [], 1
    while f"{prefix}.{n}" in params:
        out.append(params[f"{prefix}.{n}"])
        n += 1
    return out


def request_tags(params: dict[str, str], prefix: str = "Tag") -> list[tuple[str, str | None]]:
    out, n = [], 1
    while f"{prefix}.{n}.Key" in params:
        out.append((params[f"{prefix}.{n}.Key"], params.get(f"{prefix}.{n}.Value")))
        n += 1
    return out


def tag_specifications(params: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """TagSpecification.N: resource type -> its (key, value) tags."""
    out: dict[str, list[tuple[str, str]]] = {}
    n = 1
    while f"TagSpecification.{n}.ResourceType" in params:
        kind = params[f"TagSpecification.{n}.ResourceType"]
        out.setdefault(kind, []).extend((k, v or "") for k, v in request_tags(params, f"TagSpecification.{n}.Tag"))
        n += 1
    return out


def _kind_of(rid: str, default: str | None = None) -> str:
    for prefix, kind in ID_TYPES.items():
        if rid.startswith(prefix):
            return kind
    return default or rid.split("-", 1)[0]


def ec2_checks(action: str, params: dict[str, str], region: str, account: str, lookup: Lookup,
               principal: "Principal") -> list[Check]:
    """The authorizations an EC2 call needs: the existing resources it names, the resource it creates,
    and the ec2:CreateTags of tags given on create. The call is refused on the first not allowed."""
    base = principal.global_keys(region)
    base["ec2:Region"] = region

    def existing(kind: str, rid: str, extra: dict | None = None, tags: dict[str, str] | None = None) -> Check:
        values = dict(base, **(extra or {}))
        lazy: dict[str, Callable[[], object]] = {}
        id_key = {"vpc": "ec2:VpcID", "vpc-peering-connection": "ec2:VpcPeeringConnectionID",
                  "route-table": "ec2:RouteTableID", "subnet": "ec2:SubnetID",
                  "internet-gateway": "ec2:InternetGatewayID", "security-group": "ec2:SecurityGroupID"}.get(kind)
        if id_key:
            values[id_key] = rid
        if kind == "vpc-peering-connection":
            seen: list = []

            def side_vpc(side: str):
                if not seen:
                    seen.append(lookup.peering(rid, region, account))
                info = seen[0]
                if not info or side not in info:
                    return None
                owner, where, vpc = info[side]
                return ec2_arn(where, owner, "vpc", vpc)

            lazy["ec2:AccepterVpc"] = lambda: side_vpc("accepter")
            lazy["ec2:RequesterVpc"] = lambda: side_vpc("requester")
        return Check(f"ec2:{action}", ec2_arn(region, account, kind, rid),
                     Context(values, lazy, request_tags=tags, resource_tags=lambda: lookup.tags(rid, region, account)))

    if action.startswith(("Describe", "Get", "List", "Search")):
        return [Check(f"ec2:{action}", "*", Context(base))]

    if action in ("CreateTags", "DeleteTags"):
        tags = request_tags(params)
        keys = [k for k, _ in tags]
        req = {k: v for k, v in tags if v is not None}
        checks = []
        for rid in indexed(params, "ResourceId"):
            checks.append(existing(_kind_of(rid), rid, {"aws:TagKeys": keys}, req))
        return checks or [Check(f"ec2:{action}", "*", Context(dict(base, **{"aws:TagKeys": keys}), request_tags=req))]

    checks: list[Check] = []
    table = EC2_RESOURCES.get(action)
    for param, kind in (table if table is not None else _GENERIC_PARAMS):
        rid = params.get(param)
        if not rid:
            continue
        if param == "GatewayId" and not rid.startswith("igw-"):
            kind = _kind_of(rid)
        checks.append(existing(kind, rid))
    created = EC2_CREATES.get(action)
    specs = tag_specifications(params)
    if created:
        tags = specs.get(created, [])
        values = dict(base)
        values["aws:TagKeys"] = [k for k, _ in tags]
        if action == "CreateVpcPeeringConnection":
            peer_region = params.get("PeerRegion") or region
            peer_account = params.get("PeerOwnerId") or account
            values["ec2:AccepterVpc"] = ec2_arn(peer_region, peer_account, "vpc", params.get("PeerVpcId", ""))
            values["ec2:RequesterVpc"] = ec2_arn(region, account, "vpc", params.get("VpcId", ""))
        checks.append(Check(f"ec2:{action}", ec2_arn(region, account, created, "*"),
                            Context(values, request_tags=dict(tags))))
    if action == "AcceptVpcPeeringConnection" and params.get("VpcPeeringConnectionId"):
        # The accepter VPC, this account's (the SAR's vpc* of AcceptVpcPeeringConnection).
        info = lookup.peering(params["VpcPeeringConnectionId"], region, account)
        if info and info.get("accepter"):
            checks.append(existing("vpc", info["accepter"][2]))
    if created and specs:
        # Tags given on create are authorized as ec2:CreateTags on the new resource, with
        # ec2:CreateAction (Amazon EC2 User Guide, "Grant permission to tag Amazon EC2 resources
        # during creation").
        for kind, tags in specs.items():
            values = dict(base)
            values["aws:TagKeys"] = [k for k, _ in tags]
            values["ec2:CreateAction"] = action
            checks.append(Check("ec2:CreateTags", ec2_arn(region, account, kind, "*"),
                                Context(values, request_tags=dict(tags))))
    if not checks:
        checks.append(Check(f"ec2:{action}", "*", Context(base)))
    return checks


# ---------------------------------------------------------------- principals


def assumed_key(response: bytes) -> str | None:
    """The temporary access key in an answer of STS AssumeRole*, or None."""
    try:
        root = ET.fromstring(response)
    except ET.ParseError:
        return None
    return next((e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "AccessKeyId"), None)


@dataclass
class Principal:
    access_key: str
    account: str
    role: tpl.Role
    session: str
    stack_region: str
    stmts: list[Statement]
    assumed: bool = False  # temporary keys from sts:AssumeRole, not a function's own

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:sts::{self.account}:assumed-role/{self.role.name}/{self.session}"

    def global_keys(self, region: str) -> dict[str, object]:
        # AWS global condition context keys (IAM User Guide).
        return {
            "aws:RequestedRegion": region,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalArn": self.role.arn,
            "aws:PrincipalType": "AssumedRole",
        }


@dataclass
class Refusal:
    status: int
    body: bytes
    content_type: str
    code: str
    record: dict  # what GET /_local/calls shows of it (`denied`)


class Iam:
    """The local cloud's IAM: which keys belong to which role, and the check before forwarding."""

    def __init__(self, template: dict, params: dict[str, str], regions: list[str], lookup: Lookup,
                 stack_name: str = "tagpeer", account_params: dict[str, dict[str, str]] | None = None) -> None:
        self._template = template
        self._params = params
        # The accounts the local cloud runs a deployment in, each with its own parameters; any
        # other account's roles are read with `params`.
        self._account_params = dict(account_params or {})
        self._regions = regions
        self._stack_name = stack_name
        self.lookup = lookup
        self._lock = threading.Lock()
        self._principals: dict[str, Principal] = {}
        self._stacks: dict[tuple[str, str], tpl.Iam] = {}  # (account, region) -> resolved roles

    # ---------------------------------------------------------- who is who

    def stack(self, account: str, region: str) -> tpl.Iam:
        key = (account, region)
        with self._lock:
            if key not in self._stacks:
                params = self._account_params.get(account, self._params)
                self._stacks[key] = tpl.iam(self._template, region, account, params, self._stack_name)
            return self._stacks[key]

    def deployed(self, account: str) -> bool:
        """Whether the local cloud runs a deployment in `account` (its stacks are there to ask)."""
        return account in self._account_params

    def _principal(self, access_key: str, account: str, region: str, role: tpl.Role, session: str) -> Principal:
        for arn in role.unknown_managed:
            print(f"localcloud iam: {role.logical_id} attaches {arn}, which the local cloud does not know; "
                  "it grants nothing here", file=sys.stderr, flush=True)
        return Principal(access_key, account, role, session, region, statements(role.policies))

    def add_function(self, access_key: str, account: str, region: str, function_logical_id: str,
                     function_name: str) -> Principal:
        """A function process's key: it acts as its template role, with its function's name as the
        session name (as Lambda names the role session of an execution role)."""
        resolved = self.stack(account, region)
        role = resolved.roles[resolved.function_roles[function_logical_id]]
        p = self._principal(access_key, account, region, role, function_name)
        with self._lock:
            self._principals[access_key] = p
        return p

    def principal(self, access_key: str) -> Principal | None:
        with self._lock:
            return self._principals.get(access_key)

    def forget_sessions(self) -> None:
        """Drops the temporary keys of assumed roles (after a reset, moto forgets them too)."""
        with self._lock:
            for key in [k for k, p in self._principals.items() if p.assumed]:
                del self._principals[key]

    def _role_by_arn(self, role_arn: str, present_only: bool = False) -> tuple[str, str, tpl.Role] | None:
        """The template's role of that ARN, in the first region whose stack makes it (its Condition
        holding), else (unless `present_only`) the first whose template names it."""
        m = re.match(r"^arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
        if not m:
            return None
        account, name = m.groups()
        found = [(account, region, role) for region in self._regions
                 for role in self.stack(account, region).roles.values() if role.name == name]
        present = [f for f in found if f[2].present]
        if present or present_only:
            return present[0] if present else None
        return found[0] if found else None

    def role_in_stack(self, account: str, region: str, role_arn: str) -> tpl.Role | None:
        """The role of that ARN that the stack of (account, region) makes, or None."""
        return next((r for r in self.stack(account, region).roles.values() if r.arn == role_arn and r.present),
                    None)

    def _trust_refusal(self, principal: Principal, role_arn: str, region: str) -> Decision | None:
        """sts:AssumeRole of a role in another account of the local cloud: its trust policy must
        name the caller (see the module's docstring). None: allowed, or not the local cloud's to say."""
        m = re.match(r"^arn:[^:]+:iam::(\d{12}):role/", role_arn)
        if not m or m.group(1) == principal.account or not self.deployed(m.group(1)):
            return None
        found = self._role_by_arn(role_arn, present_only=True)
        if found is None:
            return Decision(False, notes=[f"no stack of account {m.group(1)} makes the role {role_arn}"])
        role = found[2]
        ctx = Context(dict(principal.global_keys(region), **{"aws:SourceAccount": principal.account}))
        decision = resource_decision(_statements_of(role.trust), aws_names(principal.account, principal.role.arn,
                                                                           principal.arn),
                                     "sts:AssumeRole", role_arn, ctx, f"{role.logical_id}/AssumeRolePolicyDocument")
        return None if decision.allowed else decision

    # ------------------------------------------------------------- the check

    def check(self, service: str, action: str, region: str, access_key: str, params: dict[str, str],
              body: bytes, target: str = "") -> Refusal | None:
        """None when the call may go on; else the answer AWS would give instead."""
        principal = self.principal(access_key)
        if principal is None:
            return None  # not a function: an administrator
        account = principal.account
        if service == "ec2":
            checks = ec2_checks(action, params, region, account, self.lookup, principal)
        elif service == "sts":
            if action == "GetCallerIdentity":
                # "No permissions are required to perform this operation" (STS API Reference,
                # GetCallerIdentity).
                return None
            resource = params.get("RoleArn", "*") if action.startswith("AssumeRole") else "*"
            checks = [Check(f"sts:{action}", resource, Context(principal.global_keys(region)))]
        elif service == "events" and target == "AWSEvents.PutEvents":
            checks = []
            try:
                entries = json.loads(body or b"{}").get("Entries", [])
            except (ValueError, AttributeError):
                entries = []
            for entry in entries or [{}]:
                bus = (entry or {}).get("EventBusName") or "default"
                arn = bus if bus.startswith("arn:") else f"arn:{PARTITION}:events:{region}:{account}:event-bus/{bus}"
                values = principal.global_keys(region)
                values["events:source"] = (entry or {}).get("Source")
                values["events:detail-type"] = (entry or {}).get("DetailType")
                checks.append(Check("events:PutEvents", arn, Context({k: v for k, v in values.items()
                                                                      if v is not None})))
            action = "PutEvents"
        else:
            checks = [Check(f"{service}:{action}", "*", Context(principal.global_keys(region)))]
        for c in checks:
            decision = evaluate(principal.stmts, c.action, c.resource, c.ctx)
            if not decision.allowed:
                return self._refusal(service, principal, c, decision)
        if service == "sts" and action.startswith("AssumeRole"):
            trust = self._trust_refusal(principal, params.get("RoleArn", ""), region)
            if trust is not None:
                return self._refusal(service, principal, checks[0], trust, resource_policy=True)
        return None

    def put_events_refusal(self, account: str, region: str, role_arn: str | None, bus_arn: str, event: dict,
                           bus_policies: list[dict] | None, rule_arn: str = "") -> str | None:
        """A rule of (account, region) sends `event` to the bus `bus_arn` of another account, with
        the role `role_arn`: None when AWS would deliver it, else why not. The role (when the target
        names one) must be one the rule's stack makes, trusting EventBridge for this account, and
        let events:PutEvents on that bus; the bus's policy (`bus_policies`: its statements, None when
        the local cloud runs no deployment in that account, so the bus has no policy) must let the
        sending account in."""
        to_account = bus_arn.split(":")[4]
        values = {"events:source": event.get("source"), "events:detail-type": event.get("detail-type"),
                  "aws:PrincipalAccount": account, "aws:SourceAccount": account, "aws:SourceArn": rule_arn,
                  "aws:RequestedRegion": bus_arn.split(":")[3]}
        values = {k: v for k, v in values.items() if v}
        names = aws_names(account)
        if role_arn:
            role = self.role_in_stack(account, region, role_arn)
            if role is None:
                return f"the target's role {role_arn} is not a role the stack of {account} in {region} makes"
            trust = resource_decision(_statements_of(role.trust), {"Service": ["events.amazonaws.com"]},
                                      "sts:AssumeRole", role_arn, Context(dict(values)),
                                      f"{role.logical_id}/AssumeRolePolicyDocument")
            if not trust.allowed:
                return f"the role {role_arn} does not let EventBridge (events.amazonaws.com) assume it for " \
                       f"account {account}"
            decision = evaluate(statements(role.policies), "events:PutEvents", bus_arn, Context(dict(values)))
            if not decision.allowed:
                how = f"denies it ({decision.statement})" if decision.explicit_deny else "does not allow it"
                return f"the role {role_arn} {how}: events:PutEvents on {bus_arn}"
            names = aws_names(account, role_arn)
            values["aws:PrincipalArn"] = role_arn
        if bus_policies is None:
            return f"account {to_account} runs no deployment here: its default bus has no policy letting " \
                   f"account {account} put events on it"
        decision = resource_decision(bus_policies, names, "events:PutEvents", bus_arn, Context(values),
                                     "EventBusPolicy")
        if decision.allowed:
            return None
        if decision.explicit_deny:
            return f"the policy of {bus_arn} denies account {account} events:PutEvents ({decision.statement})"
        return f"no statement of the policy of {bus_arn} lets account {account} put this event " \
               f"(source {event.get('source')!r}) on it"

    def send_message_refusal(self, queue_arn: str, statements: list[dict], rule_arn: str,
                             account: str) -> str | None:
        """A rule (`rule_arn`, of `account`) sends an event to the queue `queue_arn`, whose policy is
        `statements`: None when the policy lets EventBridge (events.amazonaws.com) sqs:SendMessage
        from that rule, else why not."""
        ctx = Context({"aws:SourceArn": rule_arn, "aws:SourceAccount": account})
        decision = resource_decision(statements, {"Service": ["events.amazonaws.com"]}, "sqs:SendMessage",
                                     queue_arn, ctx, "QueuePolicy")
        if decision.allowed:
            return None
        if decision.explicit_deny:
            return f"the policy of {queue_arn} denies EventBridge sqs:SendMessage from {rule_arn} " \
                   f"({decision.statement})"
        return f"no statement of the policy of {queue_arn} lets EventBridge (events.amazonaws.com) " \
               f"sqs:SendMessage from the rule {rule_arn}"

    def poller_refusal(self, account: str, region: str, function_logical_id: str, queue_arn: str) -> str | None:
        """Lambda's poller reads `queue_arn` for the function `function_logical_id` of the stack of
        (account, region) with the function's execution role: None when the role allows every action
        the poller calls (SQS_POLLER_ACTIONS) on that queue, else why not."""
        resolved = self.stack(account, region)
        role = resolved.roles[resolved.function_roles[function_logical_id]]
        stmts = statements(role.policies)
        for action in SQS_POLLER_ACTIONS:
            ctx = Context({"aws:RequestedRegion": region, "aws:PrincipalAccount": account,
                           "aws:PrincipalArn": role.arn, "aws:PrincipalType": "AssumedRole"})
            decision = evaluate(stmts, action, queue_arn, ctx)
            if not decision.allowed:
                how = f"denies it ({decision.statement})" if decision.explicit_deny else "does not allow it"
                return f"the execution role {role.logical_id} of {function_logical_id} {how}: {action} on {queue_arn}"
        return None

    def observe(self, service: str, action: str, access_key: str, params: dict[str, str], status: int,
                response: bytes) -> None:
        """After a call: the temporary keys STS gave a function for a role of the template act as
        that role, with the template's policies for it."""
        if service != "sts" or action != "AssumeRole" or status != 200 or self.principal(access_key) is None:
            return
        key = assumed_key(response)
        found = self._role_by_arn(params.get("RoleArn", ""))
        if not key or found is None:
            return
        account, region, role = found
        p = self._principal(key, account, region, role, params.get("RoleSessionName", ""))
        p.assumed = True
        with self._lock:
            self._principals[key] = p

    # --------------------------------------------------------------- answers

    def _refusal(self, service: str, principal: Principal, c: Check, decision: Decision,
                 resource_policy: bool = False) -> Refusal:
        kind = "a resource-based" if resource_policy else "an identity-based"
        why = (f"with an explicit deny in {kind} policy" if decision.explicit_deny
               else f"because no {kind.split(' ', 1)[1]} policy allows the {c.action} action")
        base = f"User: {principal.arn} is not authorized to perform: {c.action} on resource: {c.resource} {why}"
        detail = {
            "principal": principal.arn,
            "role": principal.role.logical_id,
            "stack_region": principal.stack_region,
            "action": c.action,
            "resource": c.resource,
            "explicit_deny": decision.explicit_deny,
            "statement": decision.statement,
            "context": {k: v for k, v in c.ctx.consulted.items()},
        }
        if resource_policy:
            detail["policy"] = "trust"
        if decision.notes:
            detail["notes"] = decision.notes
        request_id = str(uuid.uuid4())
        if service == "ec2":
            # EC2 appends an encoded authorization failure message (decoded with
            # sts:DecodeAuthorizationMessage); here it is the decision itself, base64url JSON.
            blob = base64.urlsafe_b64encode(json.dumps(detail, default=str).encode()).decode().rstrip("=")
            message = f"You are not authorized to perform this operation. {base}. " \
                      f"Encoded authorization failure message: {blob}"
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>{escape(message)}"
                    f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
            return Refusal(403, body, "text/xml;charset=UTF-8", "UnauthorizedOperation", detail)
        if service == "events":
            body = json.dumps({"__type": "AccessDeniedException", "message": base}).encode()
            return Refusal(400, body, "application/x-amz-json-1.1", "AccessDeniedException", detail)
        if service == "sts":
            body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                    f"<Code>AccessDenied</Code><Message>{escape(base)}</Message></Error>"
                    f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
            return Refusal(403, body, "text/xml", "AccessDenied", detail)
        body = json.dumps({"__type": "AccessDeniedException", "message": base}).encode()
        return Refusal(403, body, "application/x-amz-json-1.1", "AccessDeniedException", detail)


# ------------------------------------------------------------ the cloud's state


class CloudLookup(Lookup):
    """Tags and connections as the caller's account and region see them, from the local cloud:
    `LocalCloud.resource_tags` when the cloud has it (peering tags per account and region), else
    moto's DescribeTags; connections from moto's DescribeVpcPeeringConnections."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud

    def _query(self, region: str, account: str, body: str) -> bytes:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={account}-localcloud-iam/20260101/{region}/ec2/"
                             "aws4_request, SignedHeaders=host, Signature=0",
            "x-moto-account-id": account,
        }
        _, _, out = self.cloud.forward("POST", "/", headers, body.encode())
        return out

    def tags(self, resource_id: str, region: str, account: str) -> dict[str, str]:
        own = getattr(self.cloud, "resource_tags", None)
        if callable(own):
            return dict(own(resource_id, region, account) or {})
        xml = self._query(region, account, "Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-id"
                                           f"&Filter.1.Value.1={resource_id}")
        tags = {}
        for item in _items(xml, "tagSet"):
            if _child(item, "resourceId") in (None, resource_id):
                tags[_child(item, "key") or ""] = _child(item, "value") or ""
        return tags

    def peering(self, pcx_id: str, region: str, account: str) -> dict | None:
        xml = self._query(region, account, "Action=DescribeVpcPeeringConnections&Version=2016-11-15"
                                           f"&VpcPeeringConnectionId.1={pcx_id}")
        for item in _items(xml, "vpcPeeringConnectionSet"):
            if _child(item, "vpcPeeringConnectionId") != pcx_id:
                continue
            out = {}
            for side, name in (("requester", "requesterVpcInfo"), ("accepter", "accepterVpcInfo")):
                info = next((c for c in item if _local(c.tag) == name), None)
                if info is not None:
                    out[side] = (_child(info, "ownerId") or account, _child(info, "region") or region,
                                 _child(info, "vpcId") or "")
            return out
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(e: ET.Element, name: str) -> str | None:
    c = next((c for c in e if _local(c.tag) == name), None)
    return None if c is None else (c.text or "")


def _items(xml: bytes, set_name: str) -> list[ET.Element]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    for e in root.iter():
        if _local(e.tag) == set_name:
            return [c for c in e if _local(c.tag) == "item"]
    return []
