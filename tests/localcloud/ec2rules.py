"""EC2's answers where moto forgives: route races and the DNS prerequisite of a peering.

The local cloud asks this module before an EC2 call goes to moto (`Ec2Rules.call`, from
cloud.py's handler, after IAM and peering.py have had their say). It reads the state it
judges from moto itself (DescribeRouteTables, DescribeVpcPeeringConnections,
DescribeVpcAttribute, as the caller's account in the caller's region) and answers with
EC2's error where AWS refuses, or lets the call through.

What moto does, and what AWS does instead (AWS is right wherever they differ):

- CreateRoute for a destination the table already routes: moto refuses an IPv4
  destination with `RouteAlreadyExists`, but silently *replaces* an existing IPv6 or
  prefix-list route, and overwrites the `local` route of an IPv4 range. AWS refuses all
  of them: `RouteAlreadyExists`, HTTP 400, "The route identified by 172.30.16.0/23
  already exists." (EC2 API Reference, "Error codes": RouteAlreadyExists, "A route for
  the specified CIDR block already exists in this route table"; the message as AWS
  wrote it for a destination its `local` route held, hashicorp/terraform-provider-aws
  #23866). Modelled here for every kind of destination, atomically per route table so
  that two racing creates cannot both succeed.
- DeleteRoute for a route that is not there: `InvalidRoute.NotFound` (EC2 API
  Reference, "Error codes"; the code Terraform's provider takes for an already deleted
  route, hashicorp/terraform-provider-aws #12979 / #13048). moto answers the same:
  nothing to model.
- ReplaceRoute for a route that is not there: moto answers `InvalidParameterValue`
  "There is no route defined for '…' in the route table. Use CreateRoute instead.", and
  its tests say that is what AWS answers (getmoto/moto tests/test_ec2/test_route_tables.py:
  "for some reason AWS returns InvalidParameterValue instead", checked against AWS).
  The EC2 "Error codes" page describes InvalidRoute.NotFound in general terms and names
  no action; nothing in AWS's documentation contradicts moto here, so it is left to moto.
- ModifyVpcPeeringConnectionOptions: moto sets any option on any connection from any
  region and account ("TODO: check if actual vpc has this options enabled", moto's
  models/vpc_peering_connections.py). AWS:
  * "Both VPCs must be enabled for DNS hostnames and DNS resolution" before
    AllowDnsResolutionFromRemoteVpc can be turned on (VPC Peering Guide, "Modify VPC
    peering connection options" > "Enable DNS resolution for a VPC peering connection";
    awsdocs/amazon-vpc-peering-guide, doc_source/modify-peering-connections.md).
    AWS's error for it is not quoted in any public source found; it is answered here
    with `OperationNotPermitted`, the code EC2 gives every other refusal of this action
    (below), HTTP 400.
  * "For inter-Region peering connections, you must use the Region for the requester
    VPC to modify the requester VPC peering options and the Region for the accepter VPC
    to modify the accepter VPC peering options" (same page): OperationNotPermitted
    "Requester's VPC Peering connection options cannot be modified for a different
    region" (quoted in hashicorp/terraform-provider-aws #12113).
  * Across accounts "each AWS account owner must initiate a separate request" (EC2 API
    Reference, ModifyVpcPeeringConnectionOptions): OperationNotPermitted "User
    123456789012 does not have permission to modify the accepter side peering options"
    (hashicorp/terraform-provider-aws #582, #31068).
  * Across regions only AllowDnsResolutionFromRemoteVpc exists: OperationNotPermitted
    "Modifying VPC peering connection options AllowEgressFromLocalClassicLinkToRemoteVpc,
    AllowEgressFromLocalVpcToRemoteClassicLink is not supported for cross-region VPC
    peering connections" (hashicorp/terraform-provider-aws #6730).
  * Only an active connection takes options: peering.py answers that (its lifecycle).
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Callable
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from .peering import caller_account

Answer = tuple[int, list, bytes]
Forward = Callable[[], Answer]

ROUTE_ACTIONS = ("CreateRoute", "ReplaceRoute", "DeleteRoute")
DNS_OPTION = "AllowDnsResolutionFromRemoteVpc"
CLASSIC_LINK_OPTIONS = ("AllowEgressFromLocalClassicLinkToRemoteVpc", "AllowEgressFromLocalVpcToRemoteClassicLink")
# Targets AWS lets a route through the `local` destination take (EC2 API Reference, ReplaceRoute:
# LocalTarget; Amazon VPC User Guide, "Route tables" > "Routes for more specific subnets"). A
# CreateRoute for the local route's destination is refused whatever the target.


def error(code: str, message: str, status: int = 400) -> Answer:
    """EC2's error answer (EC2 API Reference, "Error responses"), XML-escaped."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>").encode()
    return status, [("Content-Type", "text/xml;charset=UTF-8")], body


def error_of(body: bytes | None) -> tuple[str, str]:
    """(code, message) of EC2's error answer; ("", "") when there is none."""
    try:
        root = ET.fromstring(body or b"")
    except ET.ParseError:
        return "", ""
    err = next((e for e in root.iter() if _local(e.tag) == "Error"), None)
    return (_text(err, "Code"), _text(err, "Message")) if err is not None else ("", "")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(e: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in e if _local(c.tag) == name), None)


def _text(e: ET.Element | None, name: str) -> str:
    c = _find(e, name) if e is not None else None
    return (c.text or "").strip() if c is not None else ""


def _items(e: ET.Element | None, name: str) -> list[ET.Element]:
    c = _find(e, name) if e is not None else None
    return [i for i in c if _local(i.tag) == "item"] if c is not None else []


def _network(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _destination(params: dict[str, str]) -> tuple[str, str] | None:
    """(kind, value) of a route call's destination."""
    for kind in ("DestinationCidrBlock", "DestinationIpv6CidrBlock", "DestinationPrefixListId"):
        if params.get(kind):
            return kind, params[kind]
    return None


def _route_key(kind: str, value: str):
    if kind == "DestinationPrefixListId":
        return ("pl", value)
    net = _network(value)
    return ("net", net) if net is not None else ("raw", value)


class Ec2Rules:
    def __init__(self, cloud) -> None:
        self.cloud = cloud  # cloud.forward: moto
        self._locks: dict[tuple, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # --------------------------------------------------------------- hook

    def call(self, action: str, params: dict[str, str], region: str, account: str, access_key: str,
             forward: Forward) -> Answer:
        """An EC2 call about to reach moto: AWS's refusal, or moto's answer (`forward`)."""
        if action not in ROUTE_ACTIONS and action != "ModifyVpcPeeringConnectionOptions":
            return forward()
        account = caller_account(access_key, account)
        if action in ROUTE_ACTIONS and params.get("RouteTableId"):
            # One route table's route calls one at a time, from the check to moto's answer, so
            # that a race is decided as AWS decides it: one create wins, the other is refused.
            with self._lock(account, region, params["RouteTableId"]):
                return self._route(action, params, region, account) or forward()
        return self._options(params, region, account) or forward()

    def _lock(self, *key) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------- moto

    def _describe(self, action: str, params: dict[str, str], region: str, account: str) -> ET.Element | None:
        """A read of moto's, as `account` in `region`; None when moto refuses it."""
        body = urlencode({"Action": action, "Version": "2016-11-15", **params}).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={account}-localcloud/20260101/{region}/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0",
            "x-moto-account-id": account,
        }
        status, _, xml = self.cloud.forward("POST", "/", headers, body)
        if status != 200:
            return None
        try:
            return ET.fromstring(xml)
        except ET.ParseError:
            return None

    # ----------------------------------------------------------- routes

    def _route(self, action: str, params: dict[str, str], region: str, account: str) -> Answer | None:
        if action != "CreateRoute":
            return None  # DeleteRoute and ReplaceRoute: moto answers as AWS does (module docstring)
        dest = _destination(params)
        if dest is None:
            return None  # moto's MissingParameter
        root = self._describe("DescribeRouteTables", {"RouteTableId.1": params["RouteTableId"]}, region, account)
        tables = _items(root, "routeTableSet")
        if not tables:
            return None  # moto's InvalidRouteTableID.NotFound
        wanted = _route_key(*dest)
        for route in _items(tables[0], "routeSet"):
            for kind in ("destinationCidrBlock", "destinationIpv6CidrBlock", "destinationPrefixListId"):
                have = _text(route, kind)
                if not have:
                    continue
                key = _route_key(kind[0].upper() + kind[1:], have)
                if key == wanted:
                    # "The route identified by 172.30.16.0/23 already exists." (hashicorp/terraform-provider-aws
                    # #23866): the destination as the request gave it.
                    return error("RouteAlreadyExists", f"The route identified by {dest[1]} already exists.")
        return None

    # ------------------------------------------------------ peering options

    def _options(self, params: dict[str, str], region: str, account: str) -> Answer | None:
        pcx_id = params.get("VpcPeeringConnectionId", "")
        sides = {}
        for side in ("Requester", "Accepter"):
            prefix = f"{side}PeeringConnectionOptions."
            sides[side] = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        if not pcx_id or not any(sides.values()):
            return None  # moto's own answer to a malformed request
        root = self._describe("DescribeVpcPeeringConnections", {"VpcPeeringConnectionId.1": pcx_id}, region, account)
        conns = _items(root, "vpcPeeringConnectionSet")
        if not conns:
            return None  # NotFound: peering.py or moto answers it
        pcx = conns[0]
        info = {"Requester": _find(pcx, "requesterVpcInfo"), "Accepter": _find(pcx, "accepterVpcInfo")}
        where = {side: (_text(i, "ownerId") or account, _text(i, "region") or region, _text(i, "vpcId"))
                 for side, i in info.items()}
        cross_region = where["Requester"][1] != where["Accepter"][1]
        for side, options in sides.items():
            if not options:
                continue
            owner, side_region, _ = where[side]
            if owner != account:
                # hashicorp/terraform-provider-aws #582, #31068
                return error("OperationNotPermitted",
                             f"User {account} does not have permission to modify the {side.lower()} side peering "
                             "options")
            if cross_region and side_region != region:
                # hashicorp/terraform-provider-aws #12113
                return error("OperationNotPermitted",
                             f"{side}'s VPC Peering connection options cannot be modified for a different region")
            if cross_region and any(o in options for o in CLASSIC_LINK_OPTIONS):
                # hashicorp/terraform-provider-aws #6730
                return error("OperationNotPermitted",
                             "Modifying VPC peering connection options " + ", ".join(CLASSIC_LINK_OPTIONS) +
                             " is not supported for cross-region VPC peering connections")
        if not any(o.get(DNS_OPTION, "").lower() == "true" for o in sides.values()):
            return None
        # "Both VPCs must be enabled for DNS hostnames and DNS resolution" (VPC Peering Guide).
        for side in ("Requester", "Accepter"):
            owner, side_region, vpc_id = where[side]
            if not vpc_id:
                continue
            off = [attribute for attribute in ("enableDnsSupport", "enableDnsHostnames")
                   if not self._vpc_attribute(vpc_id, attribute, side_region, owner)]
            if off:
                names = {"enableDnsSupport": "DNS resolution", "enableDnsHostnames": "DNS hostnames"}
                return error("OperationNotPermitted",
                             f"Cannot enable DNS resolution from the remote VPC for {pcx_id}: both VPCs must have DNS "
                             f"hostnames and DNS resolution enabled, and {vpc_id} has "
                             + " and ".join(names[a] for a in off) + " disabled")
        return None

    def _vpc_attribute(self, vpc_id: str, attribute: str, region: str, account: str) -> bool:
        """moto's DescribeVpcAttribute, in the VPC's own region and account."""
        root = self._describe("DescribeVpcAttribute", {"VpcId": vpc_id, "Attribute": attribute}, region, account)
        value = _find(root, attribute) if root is not None else None
        return _text(value, "value").lower() == "true" if value is not None else True  # unknown: not refused
