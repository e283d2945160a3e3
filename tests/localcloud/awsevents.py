"""The events AWS emits for API calls, in AWS's own shapes.

- "Tag Change on Resource" (source `aws.tag`): EventBridge User Guide, "Tag
  change events"; `detail` has `changed-tag-keys`, `service`, `resource-type`,
  `version` and `tags` (all of the resource's tags after the change).
- "AWS API Call via CloudTrail" (source `aws.ec2`): the CloudTrail record in
  `detail`, with `eventSource`, `eventName`, `awsRegion`, `userIdentity`,
  `requestParameters` and `responseElements` in CloudTrail's EC2 style (lists
  as `{"items": [...]}`, the boolean result as `_return`).
"""

from __future__ import annotations

import datetime as _dt
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Search")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(detail_type: str, source: str, account: str, region: str, resources: list[str], detail: dict) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": now(),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def tag_change(account: str, region: str, vpc_id: str, changed: list[str], tags: dict[str, str], version: int) -> dict:
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


def request_parameters(action: str, params: dict[str, str]) -> dict:
    """CloudTrail's `requestParameters` for an EC2 call."""
    if action in ("CreateTags", "DeleteTags"):
        return {
            "resourcesSet": {"items": [{"resourceId": r} for r in indexed(params, "ResourceId")]},
            "tagSet": {"items": tag_items(params)},
        }
    # Everything else: the flat parameters in CloudTrail's lower camel case;
    # `X.N` lists become `xSet: {items: [...]}`.
    out: dict = {}
    for key, value in params.items():
        if key in ("Action", "Version"):
            continue
        head, _, rest = key.partition(".")
        if rest and rest.split(".")[0].isdigit():
            out.setdefault(_lower_camel(head) + "Set", {"items": []})["items"].append(value)
        else:
            out[_lower_camel(key.replace(".", ""))] = value
    return out


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element(e: ET.Element):
    children = list(e)
    if not children:
        text = (e.text or "").strip()
        if _strip(e.tag) == "return":
            return text == "true"
        return text
    if all(_strip(c.tag) == "item" for c in children):
        return {"items": [_element(c) for c in children]}
    return {(("_" + _strip(c.tag)) if _strip(c.tag) == "return" else _strip(c.tag)): _element(c) for c in children}


def response_elements(xml_body: bytes) -> dict | None:
    """CloudTrail's `responseElements`: EC2's XML answer as JSON."""
    try:
        root = ET.fromstring(xml_body)
    except ET.ParseError:
        return None
    return _element(root) if list(root) else None


def cloudtrail(action: str, account: str, region: str, caller: str, user_agent: str, params: dict[str, str],
               response: bytes, request_id: str) -> dict:
    response_elements_ = response_elements(response) or {}
    if isinstance(response_elements_, dict):
        response_elements_.setdefault("requestId", request_id)
    return envelope(
        "AWS API Call via CloudTrail",
        "aws.ec2",
        account,
        region,
        [],
        {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": caller,
                "arn": f"arn:aws:iam::{account}:user/{caller}",
                "accountId": account,
                "accessKeyId": caller,
            },
            "eventTime": now(),
            "eventSource": "ec2.amazonaws.com",
            "eventName": action,
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": user_agent,
            "requestParameters": request_parameters(action, params),
            "responseElements": response_elements_,
            "requestID": request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    )
