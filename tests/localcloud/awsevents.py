"""The events AWS emits for API calls, in AWS's own shapes, and when it emits them.

- "Tag Change on Resource" (source `aws.tag`): EventBridge User Guide, "Tag
  change events"; `detail` has `changed-tag-keys`, `service`, `resource-type`,
  `version` and `tags` (all of the resource's tags after the change).
- "AWS API Call via CloudTrail" (source `aws.ec2`): the CloudTrail record of
  the call in `detail` (`cloudtrail()`), delivered
  * only while a trail with logging on records the call: "To record events
    with a detail-type value of AWS API Call via CloudTrail, a CloudTrail trail
    with logging enabled is required" (EventBridge User Guide, "Events from AWS
    services"; awsdocs/amazon-eventbridge-user-guide, doc_source/eb-service-event.md).
    `Trails` says which (account, region) the deployed template's trails
    record: a multi-region trail every region of its account, another trail
    its own region (AWS::CloudTrail::Trail IsMultiRegionTrail; CloudTrail User
    Guide, "Working with CloudTrail trails"). Only write calls: "Events from
    API actions that start with the keywords List, Get, or Describe aren't
    processed by EventBridge" (same page);
  * only to the default bus of the account and region where the call was made
    (the caller's account: the local cloud runs a deployment per account,
    each with its own trails): "Both the
    EventBridge rule and the source event that it monitors must exist in the
    same AWS Region" (AWS re:Post Knowledge Center, "use-eventbridge-rule-across-
    regions"); the envelope's `region` is "the AWS Region where the event
    originated" (EventBridge User Guide, "Events", doc_source/eb-events.md);
  * for failed calls too, with `errorCode` and `errorMessage` and
    `responseElements` null (CloudTrail User Guide, "CloudTrail record
    contents": errorCode/errorMessage; EC2 writes its codes as
    `Client.UnauthorizedOperation`, real records in DataDog/stratus-red-team's
    docs, e.g. docs/attack-techniques/AWS/aws.execution.ec2-launch-unusual-instances.md).

How EC2 records a call (`request_parameters`, `response_elements`): EC2 has two
styles of record, and which one an action gets follows the EC2 API model
(botocore's, pinned with moto): an action whose request members carry EC2's
old lower-camel XML names (`routeTableId`, `vpcId`, `dryRun`) is recorded in
the *legacy* style, the others (NAT gateways, flow logs, VPC endpoints, launch
templates, ModifyVpcPeeringConnectionOptions...) in the *wrapped* style.
Evidence for the rule, from real records: legacy CreateTags, CreateRoute,
CreateRouteTable, AttachInternetGateway, StartInstances, RunInstances,
ModifyInstanceAttribute, CreateVpcPeeringConnection, CreateVpc (CloudTrail User
Guide, "CloudTrail log file examples"; DataDog/stratus-red-team attack-technique
docs; GorillaStack/auto-tag src/workers: `responseElements.vpcPeeringConnection.
vpcPeeringConnectionId`, `responseElements.vpc.vpcId`; Cloudzero/pairing test
fixtures: CreateRouteTable, AttachInternetGateway, StartInstances; Panther
panther-analysis rules/aws_cloudtrail_rules/aws_ec2_route_table_modified.yml:
CreateRoute); wrapped CreateNatGateway (auto-tag:
`responseElements.CreateNatGatewayResponse.natGateway.natGatewayId`; Cloudzero
fixture) and DeleteFlowLogs (stratus-red-team, aws.defense-evasion.vpc-remove-flow-logs).
By the rule, AssociateVpcCidrBlock and DisassociateVpcCidrBlock are legacy
(their request members are `vpcId`, `amazonProvidedIpv6CidrBlock`,
`associationId`): DisassociateVpcCidrBlock's requestParameters are
`{"associationId": ...}` alone, and the VPC is only in its responseElements
(`vpcId`, as the EC2 API Reference's DisassociateVpcCidrBlock response elements
have it). No public record of those two actions was found to confirm it.

- Legacy: requestParameters are the request's parameters under EC2's lower-camel
  names, typed (booleans, numbers); lists are `{"items": [...]}` under `<name>Set`
  (`resourcesSet`/`tagSet` for tags, `tagSpecificationSet` with its `tags`
  array, `filterSet`/`valueSet`). responseElements are EC2's XML answer under
  the same names, typed, lists as `{"items": [...]}` and empty ones as `{}`,
  timestamps in epoch milliseconds, `return` as `_return`, with `requestId`.
- Wrapped: requestParameters are `{"<Action>Request": {...}}` with the
  request's own names, a list's members as `{"content": ..., "tag": N}`;
  responseElements are `{"<Action>Response": {"xmlns": ..., ...}}`, EC2's XML as
  it is (strings, `{"item": ...}` lists, empty elements as "").
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

from . import template as _template

READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Search")
EVENT_VERSION = "1.09"  # EC2 records of 2024 (stratus-red-team docs); the format is backward compatible
EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"  # as wrapped records give it (with the slash)


def now(at: float | None = None) -> str:
    t = time.time() if at is None else at
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cloud_time(cloud) -> float:
    """The cloud's clock (peering.py's `Clock`, POST /_local/clock) when it has one, else the machine's."""
    clock = getattr(cloud, "clock", None)
    if clock is None:
        return time.time()
    return clock.now() if hasattr(clock, "now") else float(clock())


def envelope(detail_type: str, source: str, account: str, region: str, resources: list[str], detail: dict,
             at: float | None = None) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": now(at),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def tag_change(account: str, region: str, vpc_id: str, changed: list[str], tags: dict[str, str], version: int,
               at: float | None = None) -> dict:
    return envelope(
        "Tag Change on Resource",
        "aws.tag",
        account,
        region,
        [f"arn:aws:ec2:{region}:{account}:vpc/{vpc_id}"],
        {
            "changed-tag-keys": changed,
            "service": "ec2",
            "resource-type": "vpc",
            "version": version,
            "tags": tags,
        },
        at,
    )


def form(body: bytes) -> dict[str, str]:
    """An EC2 Query request's parameters, one value each."""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def indexed(params: dict[str, str], prefix: str) -> list[str]:
    """`Prefix.1`, `Prefix.2`, ... in order."""
    found = []
    n = 1
    while f"{prefix}.{n}" in params:
        found.append(params[f"{prefix}.{n}"])
        n += 1
    return found


def tag_items(params: dict[str, str]) -> list[dict]:
    items = []
    n = 1
    while f"Tag.{n}.Key" in params:
        item = {"key": params[f"Tag.{n}.Key"]}
        if f"Tag.{n}.Value" in params:
            item["value"] = params[f"Tag.{n}.Value"]
        items.append(item)
        n += 1
    return items


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


# ------------------------------------------------------------------ the EC2 model

_MODEL = None
_MODEL_LOCK = threading.Lock()


def _ec2_model():
    """botocore's EC2 service model (botocore comes with moto, pinned in tests/requirements.txt)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            import botocore.session

            _MODEL = botocore.session.get_session().get_service_model("ec2")
        return _MODEL


def _operation(action: str):
    try:
        return _ec2_model().operation_model(action)
    except Exception:  # noqa: BLE001 - an action the model does not know (botocore raises its own errors)
        return None


def record_style(action: str) -> str:
    """"legacy" or "wrapped": how EC2's CloudTrail record of `action` is shaped (module docstring)."""
    op = _operation(action)
    if op is None or op.input_shape is None:
        return "legacy"
    names = [m.serialization.get("name", "") for m in op.input_shape.members.values()]
    return "legacy" if any(n[:1].islower() for n in names) else "wrapped"


def _query_name(name: str, shape) -> str:
    """The name a member goes by in an EC2 Query request (botocore's EC2 serializer)."""
    ser = shape.serialization
    if ser.get("queryName"):
        return ser["queryName"]
    if ser.get("name"):
        return ser["name"][:1].upper() + ser["name"][1:]
    return name


def _typed(value: str, shape):
    kind = getattr(shape, "type_name", "string")
    if kind == "boolean":
        return value.lower() == "true"
    if kind in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            return value
    if kind in ("float", "double"):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _tree(params: dict[str, str]) -> dict:
    """`A.1.B=x` -> {"A": {"1": {"B": "x"}}}."""
    root: dict = {}
    for key, value in params.items():
        if key in ("Action", "Version"):
            continue
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return root


def _indexed_values(node) -> list:
    if not isinstance(node, dict):
        return [node]
    keys = sorted((k for k in node if k.isdigit()), key=int)
    return [node[k] for k in keys]


# The legacy names EC2 gives some lists, where they are not `<name>Set` of `{<name>: value}` items
# (CreateTags and DeleteTags in every CloudTrail sample; the instance calls in the CloudTrail User
# Guide's examples): member name -> (set name, item key).
_LEGACY_LISTS = {
    ("CreateTags", "Resources"): ("resourcesSet", "resourceId"),
    ("DeleteTags", "Resources"): ("resourcesSet", "resourceId"),
    ("CreateTags", "Tags"): ("tagSet", None),
    ("DeleteTags", "Tags"): ("tagSet", None),
    ("StartInstances", "InstanceIds"): ("instancesSet", "instanceId"),
    ("StopInstances", "InstanceIds"): ("instancesSet", "instanceId"),
    ("TerminateInstances", "InstanceIds"): ("instancesSet", "instanceId"),
    ("RebootInstances", "InstanceIds"): ("instancesSet", "instanceId"),
}


def _legacy_struct(action: str, shape, node: dict, top: bool = True) -> dict:
    out: dict = {}
    members = dict(shape.members) if shape is not None else {}
    by_query = {_query_name(n, s): (n, s) for n, s in members.items()}
    for key, value in node.items():
        name, mshape = by_query.get(key, (key, None))
        wire = _lower_camel(mshape.serialization.get("name", name) if mshape is not None else key)
        kind = getattr(mshape, "type_name", None)
        if kind == "list" or (mshape is None and isinstance(value, dict) and value and all(k.isdigit() for k in value)):
            member = getattr(mshape, "member", None)
            values = _indexed_values(value)
            set_name, item_key = _LEGACY_LISTS.get((action, name), (None, None)) if top else (None, None)
            if name == "TagSpecifications" or key == "TagSpecification":
                # {"resourceType": ..., "tags": [{"key": ..., "value": ...}]} (RunInstances, CreateSnapshot
                # records; see the module docstring)
                items = []
                for spec in values:
                    spec = spec if isinstance(spec, dict) else {}
                    entry = {}
                    if "ResourceType" in spec:
                        entry["resourceType"] = spec["ResourceType"]
                    entry["tags"] = [{_lower_camel(k): v for k, v in t.items()} for t in _indexed_values(spec.get("Tag", {}))
                                     if isinstance(t, dict)]
                    items.append(entry)
                out["tagSpecificationSet"] = {"items": items}
                continue
            set_name = set_name or (wire + "Set")
            if member is not None and member.type_name == "structure":
                items = [_legacy_struct(action, member, v, top=False) if isinstance(v, dict) else v for v in values]
            else:
                item_key = item_key or wire
                items = [{item_key: _typed(v, member) if isinstance(v, str) else v} for v in values]
            out[set_name] = {"items": items} if items else {}
        elif isinstance(value, dict):
            out[wire] = _legacy_struct(action, mshape, value, top=False)
        else:
            out[wire] = _typed(value, mshape) if mshape is not None else value
    return out


def _wrapped_struct(shape, node: dict) -> dict:
    out: dict = {}
    members = dict(shape.members) if shape is not None else {}
    by_query = {_query_name(n, s): s for n, s in members.items()}
    for key, value in node.items():
        mshape = by_query.get(key)
        kind = getattr(mshape, "type_name", None)
        if kind == "list" or (mshape is None and isinstance(value, dict) and value and all(k.isdigit() for k in value)):
            member = getattr(mshape, "member", None)
            entries = []
            for n, v in enumerate(_indexed_values(value), start=1):
                if isinstance(v, dict):
                    entries.append({**_wrapped_struct(member, v), "tag": n})
                else:
                    entries.append({"content": _typed(v, member) if member is not None else v, "tag": n})
            out[key] = entries[0] if len(entries) == 1 else entries
        elif isinstance(value, dict):
            out[key] = _wrapped_struct(mshape, value)
        else:
            out[key] = _typed(value, mshape) if mshape is not None else value
    return out


def request_parameters(action: str, params: dict[str, str]) -> dict:
    """CloudTrail's `requestParameters` for an EC2 call, in the style EC2 records `action` in."""
    op = _operation(action)
    shape = op.input_shape if op is not None else None
    node = _tree(params)
    if record_style(action) == "wrapped":
        return {f"{action}Request": _wrapped_struct(shape, node)}
    return _legacy_struct(action, shape, node)


# ------------------------------------------------------------- responses

def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element(e: ET.Element):
    """EC2's XML as JSON, untyped (for reading moto's answers, and for members the model does not know)."""
    children = list(e)
    if not children:
        text = (e.text or "").strip()
        if _strip(e.tag) == "return":
            return text == "true"
        if not text and _strip(e.tag).endswith("Set"):
            return {}
        return text
    if all(_strip(c.tag) == "item" for c in children):
        return {"items": [_element(c) for c in children]}
    return {(("_" + _strip(c.tag)) if _strip(c.tag) == "return" else _strip(c.tag)): _element(c) for c in children}


def response_elements(xml_body: bytes) -> dict | None:
    """EC2's XML answer as JSON, untyped (what cloud.py reads moto's DescribeTags with)."""
    try:
        root = ET.fromstring(xml_body)
    except ET.ParseError:
        return None
    return _element(root) if list(root) else None


def _epoch_ms(text: str):
    try:
        return int(_dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return text


def _legacy_value(e: ET.Element, shape):
    kind = getattr(shape, "type_name", None)
    if shape is None:
        return _element(e)
    if kind == "list":
        items = [_legacy_value(c, shape.member) for c in e if _strip(c.tag) == "item"]
        return {"items": items} if items else {}
    if kind == "structure":
        return _legacy_members(e, shape)
    if kind == "map":
        return _element(e)
    text = (e.text or "").strip()
    if kind == "timestamp":
        return _epoch_ms(text)
    return _typed(text, shape)


def _legacy_members(e: ET.Element, shape) -> dict:
    members = dict(shape.members) if shape is not None else {}
    by_wire = {}
    for name, mshape in members.items():
        by_wire[mshape.serialization.get("name", _lower_camel(name))] = mshape
    out = {}
    for c in e:
        tag = _strip(c.tag)
        key = "_return" if tag == "return" else tag
        out[key] = (_element(c) if tag == "return" else _legacy_value(c, by_wire.get(tag)))
    return out


def _wrapped_value(e: ET.Element):
    children = list(e)
    if not children:
        return (e.text or "").strip()
    out: dict = {}
    for c in children:
        tag, value = _strip(c.tag), _wrapped_value(c)
        if tag in out:
            out[tag] = (out[tag] if isinstance(out[tag], list) else [out[tag]]) + [value]
        else:
            out[tag] = value
    return out


def record_response(action: str, xml_body: bytes, request_id: str) -> dict | None:
    """CloudTrail's `responseElements` for a successful EC2 call."""
    try:
        root = ET.fromstring(xml_body)
    except ET.ParseError:
        return None
    if record_style(action) == "wrapped":
        inner = _wrapped_value(root)
        inner = inner if isinstance(inner, dict) else {}
        inner["requestId"] = request_id
        return {f"{action}Response": {"xmlns": EC2_XMLNS, **inner}}
    op = _operation(action)
    out = _legacy_members(root, op.output_shape if op is not None else None)
    out["requestId"] = request_id
    if set(out) == {"requestId"}:
        # EC2 answers `<return>true</return>` where moto leaves it out (CreateTags, DeleteRoute...);
        # CloudTrail records it as `_return` (the CreateTags and ModifyInstanceAttribute records above).
        out["_return"] = True
    return out


# ---------------------------------------------------------------- records

def user_identity(account: str, access_key: str, principal=None) -> dict:
    """`userIdentity`: the template role's session for a function's key (iam.py's Principal: `arn`,
    `role.name`, `role.arn`, `session`), else an IAM user named after the key (CloudTrail User Guide,
    "CloudTrail userIdentity element"; the AssumedRole shape as in stratus-red-team's records)."""
    if principal is not None:
        role_id = "AROA" + hashlib.sha1(principal.role.arn.encode()).hexdigest()[:17].upper()
        return {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{principal.session}",
            "arn": principal.arn,
            "accountId": principal.account,
            "accessKeyId": access_key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": principal.role.arn,
                    "accountId": principal.account,
                    "userName": principal.role.name,
                },
                "attributes": {"creationDate": now(), "mfaAuthenticated": "false"},
            },
        }
    name = access_key.split("-", 1)[1] if access_key[:12].isdigit() and "-" in access_key else access_key
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + hashlib.sha1(f"{account}/{name}".encode()).hexdigest()[:17].upper(),
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": access_key,
        "userName": name,
    }


def cloudtrail(action: str, account: str, region: str, access_key: str, user_agent: str, params: dict[str, str],
               response: bytes | None, request_id: str | None = None, *, at: float | None = None, principal=None,
               error: tuple[str, str, int] | None = None) -> dict:
    """The "AWS API Call via CloudTrail" event of an EC2 call: `response` is EC2's answer to a call that
    succeeded; `error` (code, message, HTTP status) one that failed."""
    request_id = request_id or str(uuid.uuid4())
    detail = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(account, access_key, principal),
        "eventTime": now(at),
        "eventSource": "ec2.amazonaws.com",
        "eventName": action,
        "awsRegion": region,
        "sourceIPAddress": "127.0.0.1",
        "userAgent": user_agent,
    }
    if error is not None:
        code, message, status = error
        # "Client.UnauthorizedOperation" (stratus-red-team's records); the server's own faults "Server.".
        detail["errorCode"] = code if "." in code and code.split(".")[0] in ("Client", "Server") else \
            ("Server." if status >= 500 else "Client.") + code
        detail["errorMessage"] = message
    detail["requestParameters"] = request_parameters(action, params)
    detail["responseElements"] = None if error is not None else record_response(action, response or b"", request_id)
    detail.update({
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": action.startswith(READ_ONLY_PREFIXES),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    })
    return envelope("AWS API Call via CloudTrail", "aws.ec2", account, region, [], detail, at)


# ------------------------------------------------------------------ trails

class Trails:
    """Which (account, region) the deployed template's trails record: the stacks' AWS::CloudTrail::Trail
    resources (template.trails), evaluated with the deployment's parameters, in each account the local
    cloud runs a deployment in (`accounts`: account -> its parameters; default: `account` alone, with
    `params`). A trail records its own region of its own account; a multi-region trail every region of
    its account. `set` re-evaluates them with other parameter values (`POST /_local/trail`), in every
    account, the functions and rules staying as deployed."""

    def __init__(self, template: dict, regions: list[str], account: str, params: dict[str, str],
                 accounts: dict[str, dict[str, str]] | None = None) -> None:
        self.template, self.regions, self.account = template, regions, account
        self.base = dict(params)
        self.bases = {a: dict(p) for a, p in (accounts or {account: params}).items()}
        self.bases.setdefault(account, self.base)
        self.lock = threading.Lock()
        self.overrides: dict[str, str] = {}
        self.by_account = self._evaluate({})
        _ec2_model()  # loaded now (a quarter of a second), not on the first call's event

    @property
    def trails(self) -> list:
        """The trails of the first account (`account`)."""
        return self.by_account.get(self.account, [])

    def _evaluate(self, overrides: dict[str, str]) -> dict[str, list]:
        return {a: [t for r in self.regions for t in _template.trails(self.template, r, a, {**base, **overrides})]
                for a, base in self.bases.items()}

    def covers(self, account: str, region: str) -> bool:
        """Whether a write call `account` makes in `region` reaches EventBridge as a CloudTrail event."""
        with self.lock:
            trails = self.by_account.get(account)
            # None: no stack of the deployment runs in that account, so no trail of the template.
            return trails is not None and any(t.covers(region) for t in trails)

    def set(self, overrides) -> dict:
        """Template parameters (names and string values) the trails are evaluated with instead of the
        deployment's, e.g. {"CreateTrail": "false"}; {} is the deployment's own. A bad one is refused
        (ValueError) and changes nothing."""
        if not isinstance(overrides, dict):
            raise ValueError('the trail takes template parameters, e.g. {"CreateTrail": "false"}')
        known = set((self.template.get("Parameters") or {}))
        for k, v in overrides.items():
            if k not in known or not isinstance(v, (str, bool, int)):
                raise ValueError(f"{k!r} is not a template parameter with a value")
        overrides = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in overrides.items()}
        allowed = (self.template.get("Parameters") or {}).get("CreateTrail", {}).get("AllowedValues")
        if "CreateTrail" in overrides and allowed and overrides["CreateTrail"] not in allowed:
            raise ValueError(f"CreateTrail must be one of {allowed}")
        by_account = self._evaluate(overrides)
        with self.lock:
            self.overrides, self.by_account = overrides, by_account
        return self.state()

    def reset(self) -> None:
        self.set({})

    def _coverage(self, trails: list) -> dict:
        return {
            "trails": [{"name": t.name, "region": t.region, "multi_region": t.multi_region, "logging": t.logging,
                        "write_management_events": t.writes} for t in trails],
            "regions": sorted({r for r in self.regions if any(t.covers(r) for t in trails)}),
            "all_regions": any(t.covers("*") for t in trails),
        }

    def state(self) -> dict:
        """The first account's trails and coverage (`account`), and every account's (`accounts`)."""
        with self.lock:
            by_account = {a: list(ts) for a, ts in self.by_account.items()}
            overrides = dict(self.overrides)
        mine = self._coverage(by_account.get(self.account, []))
        return {
            "params": overrides,
            "trails": mine["trails"],
            "account": self.account,
            "regions": mine["regions"],
            "all_regions": mine["all_regions"],
            "accounts": {a: self._coverage(ts) for a, ts in by_account.items()},
        }
