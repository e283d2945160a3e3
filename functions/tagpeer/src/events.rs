//! The events tagpeer takes and the events it sends, in EventBridge's shapes.
//!
//! Taken: `aws.tag` "Tag Change on Resource" for a VPC, `aws.events` "Scheduled
//! Event", CloudTrail's records of the calls in [`API_CALLS`], and tagpeer's
//! own events (the handoffs between steps, regions and accounts, and the
//! sweeper's "Sweep Requested"). Events say where to look, never what is
//! true: each becomes a [`Scope`].
//!
//! Most arrive in batches: each rule that starts the requester, accepter or
//! router sends to that function's SQS queue, and Lambda hands the function
//! what the queue gathered in its batching window ([`events_of`]); the
//! schedule and the provisioner's request arrive alone.

use std::collections::BTreeSet;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EventError;
use crate::ids::{AccountId, Endpoint, PeeringId, Region, VpcId};
use crate::intent::INTENT_PREFIX;
use crate::model::LinkKey;
use crate::plan::{Deployment, Scope};

/// The `source` of tagpeer's own events.
pub const SOURCE: &str = "tagpeer";
pub const PEERING_REQUESTED: &str = "Peering Requested";
pub const PEERING_ACCEPTED: &str = "Peering Accepted";
pub const TAG_CHANGE: &str = "Tag Change on Resource";
pub const SCHEDULED: &str = "Scheduled Event";
pub const API_CALL: &str = "AWS API Call via CloudTrail";

/// The EC2 calls whose CloudTrail records tagpeer takes.
pub const API_CALLS: [&str; 8] = [
    "CreateTags",
    "DeleteTags",
    "AcceptVpcPeeringConnection",
    "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection",
    "AssociateVpcCidrBlock",
    "DisassociateVpcCidrBlock",
    "ModifyVpcAttribute",
];

/// The detail of tagpeer's "Peering Requested" and "Peering Accepted" events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeeringDetail {
    /// The link's canonical id, as in `tagpeer-link`.
    pub link: String,
    pub peering_connection_id: PeeringId,
    pub requester: Endpoint,
    pub accepter: Endpoint,
}

/// The detail of tagpeer's outcome events, "Link Ready", "Link Failed" and
/// "Link Removed": for people and their tools. One rule of tagpeer's takes
/// one of them: "Link Removed" reaches the router of the link's other region,
/// which alone writes the statuses there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OutcomeDetail {
    /// The link's canonical id, as in `tagpeer-link`.
    pub link: String,
    pub requester: Endpoint,
    pub accepter: Endpoint,
    /// The VPC whose side the outcome is about (Link Ready: that side routes).
    pub side: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peering_connection_id: Option<PeeringId>,
    /// The EC2 call of the step: `CreateRoute`, `DeleteVpcPeeringConnection`…
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A link asked for in one region whose requester side is in another region
/// of the account: that region's requester requests it (it alone requests
/// for its region's VPCs).
pub const LINK_WANTED: &str = "Link Wanted";

/// The detail of "Link Wanted": the link, and its two sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinkDetail {
    /// The link's canonical id, as in `tagpeer-link`.
    pub link: String,
    pub requester: Endpoint,
    pub accepter: Endpoint,
}

pub const LINK_READY: &str = "Link Ready";
pub const LINK_FAILED: &str = "Link Failed";
pub const LINK_REMOVED: &str = "Link Removed";
/// One side of a link across accounts has no route through its connection
/// any more, and the link's intent is gone: the other account's side goes
/// next (its router removes its routes; its requester, once both sides are
/// unrouted, deletes the connection). A deployment removes only its own
/// account's routes, so a teardown across accounts passes this back and
/// forth; within an account the requester unroutes both sides itself.
pub const ROUTES_REMOVED: &str = "Routes Removed";

/// A VPC's `tagpeer:accept` changed: the allowed accounts' requesters look
/// again at the links they ask of it, which may have waited for consent.
/// The accepter's account does not know which of their VPCs ask (it reads
/// another account only for the VPCs it names), so the event names the VPC
/// and goes to every region, and each forwarding rule carries it over.
pub const CONSENT_CHANGED: &str = "Consent Changed";

/// The detail of "Consent Changed".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConsentDetail {
    /// The VPC whose `tagpeer:accept` changed.
    pub vpc: Endpoint,
    /// The accounts it is for: the deployment's allowed accounts.
    pub accounts: Vec<AccountId>,
}

/// The deployment's sweep found work in a region, or has its gauges: the
/// sweeper (the router the schedule runs, in one region of the deployment)
/// reads every region once and wakes only the functions with something to
/// do, instead of every function of every region reading every region.
pub const SWEEP_REQUESTED: &str = "Sweep Requested";

/// The detail of "Sweep Requested".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SweepDetail {
    /// The region whose functions it is for.
    pub region: Region,
    /// The functions of that region with work (`requester`, `accepter`,
    /// `router`): each sweeps its region as a scheduled sweep would.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Whether the region's router publishes `metrics` (CloudWatch is
    /// regional, and each region's alarms read its own region's gauges).
    #[serde(default)]
    pub publish: bool,
    /// The region's gauges as the sweeper read them: embedded-metric-format
    /// lines, the region's own first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Value>,
}

/// What an event tagpeer sends carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Peering(PeeringDetail),
    Outcome(OutcomeDetail),
    Link(LinkDetail),
    Sweep(SweepDetail),
    Consent(ConsentDetail),
}

impl Detail {
    /// The link's requester; `None` for an event about no link.
    pub fn requester(&self) -> Option<&Endpoint> {
        match self {
            Detail::Peering(d) => Some(&d.requester),
            Detail::Outcome(d) => Some(&d.requester),
            Detail::Link(d) => Some(&d.requester),
            Detail::Sweep(_) | Detail::Consent(_) => None,
        }
    }

    /// The link's accepter; `None` for an event about no link.
    pub fn accepter(&self) -> Option<&Endpoint> {
        match self {
            Detail::Peering(d) => Some(&d.accepter),
            Detail::Outcome(d) => Some(&d.accepter),
            Detail::Link(d) => Some(&d.accepter),
            Detail::Sweep(_) | Detail::Consent(_) => None,
        }
    }

    /// The VPCs the event is about (its `resources`).
    pub fn vpcs(&self) -> Vec<&Endpoint> {
        match self {
            Detail::Consent(d) => vec![&d.vpc],
            _ => self.requester().into_iter().chain(self.accepter()).collect(),
        }
    }
}

/// An event tagpeer sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outgoing {
    pub detail_type: &'static str,
    pub detail: Detail,
}

impl Outgoing {
    /// The regions whose default bus this event is put on: the sender's own
    /// (every event tagpeer sends shows on its region's bus, for people and
    /// their tools), and each region of the deployment, in its account, whose
    /// functions act on it. "Peering Requested" is for the accepter's region,
    /// "Link Wanted" for the requester's, "Peering Accepted" for both (each
    /// router routes its side, and the requester's region requests what
    /// waited for room), "Link Removed" for the link's other region (its
    /// router writes the statuses there), "Routes Removed" for the side
    /// after the one unrouted. The outcomes "Link Ready" and "Link Failed"
    /// stay in the sender's region. Another account's bus takes no
    /// `PutEvents` from this one: its side is reached through this account's
    /// bus in its region, whose `ForwardTo<ACCOUNT>` rule sends the event on.
    pub fn destinations(&self, own: &Region, deployment: &Deployment) -> BTreeSet<Region> {
        let (requester, accepter) = match (&self.detail, self.detail.requester(), self.detail.accepter()) {
            // For the region it names, and nothing else.
            (Detail::Sweep(d), _, _) => return BTreeSet::from([d.region.clone()]),
            // Every region: the other account's requester may be in any.
            (Detail::Consent(_), _, _) => return deployment.regions.iter().cloned().collect(),
            (_, Some(requester), Some(accepter)) => (requester, accepter),
            _ => return BTreeSet::from([own.clone()]),
        };
        let acting: Vec<&Endpoint> = match (self.detail_type, &self.detail) {
            (PEERING_REQUESTED, _) => vec![accepter],
            (LINK_WANTED, _) => vec![requester],
            (PEERING_ACCEPTED | LINK_REMOVED, _) => vec![requester, accepter],
            // The other side of the one whose routes went.
            (ROUTES_REMOVED, Detail::Outcome(d)) => {
                vec![if &d.side == requester { accepter } else { requester }]
            }
            _ => Vec::new(),
        };
        // A side in this account is reached on its region's bus; another
        // account's side through this account's bus in that side's region,
        // whose forwarding rule sends it on (no PutEvents crosses accounts).
        // A region outside the deployment has neither, and that side's
        // sweep finds the change.
        let mut to = BTreeSet::from([own.clone()]);
        to.extend(acting.iter().map(|side| &side.region).filter(|r| deployment.regions.contains(r)).cloned());
        to
    }
}

/// The detail AWS gives a "Tag Change on Resource" event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TagChangeDetail {
    changed_tag_keys: Vec<String>,
    service: String,
    resource_type: String,
}

/// The `eventSource` of each record of a batch Lambda reads from an SQS queue.
const SQS_SOURCE: &str = "aws:sqs";

/// The EventBridge events a payload holds: each message's body of a batch
/// from the function's queue (an EventBridge rule sends the event itself as
/// the body), in the queue's order; or the payload itself, an event a rule
/// sent the function directly. A message whose body is not JSON is an error
/// of its own, and the rest are read.
pub fn events_of(payload: &Value) -> Vec<Result<Value, EventError>> {
    let is_batch = payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| records.first().is_some_and(|r| r["eventSource"] == SQS_SOURCE));
    if !is_batch {
        return vec![Ok(payload.clone())];
    }
    let batch: SqsEvent = match serde_json::from_value(payload.clone()) {
        Ok(batch) => batch,
        Err(e) => return vec![Err(EventError::Envelope(format!("not Lambda's batch of SQS messages: {e}")))],
    };
    batch
        .records
        .into_iter()
        .map(|message| {
            let message_id = message.message_id.unwrap_or_default();
            let body = message.body.unwrap_or_default();
            serde_json::from_str(&body).map_err(|e| EventError::Message { message_id, reason: e.to_string() })
        })
        .collect()
}

/// What started an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `tagpeer:` tags changed on this VPC.
    TagChange {
        vpc: Endpoint,
        changed: Vec<String>,
    },
    /// A tag change that touched no `tagpeer:` key: nothing to do.
    UnrelatedTagChange {
        vpc: Endpoint,
    },
    Schedule,
    PeeringRequested(PeeringDetail),
    PeeringAccepted(PeeringDetail),
    /// A link's connection was deleted, in the other region.
    LinkRemoved(OutcomeDetail),
    /// The other account's side of a link whose intent went is unrouted.
    RoutesRemoved(OutcomeDetail),
    /// The deployment's sweeper found work here, or carries this region's gauges.
    SweepRequested(SweepDetail),
    /// Another account's VPC changed whom it consents to peer with.
    ConsentChanged(ConsentDetail),
    /// Another region asks this one's requester to request a link.
    LinkWanted(LinkDetail),
    /// A CloudTrail record of an EC2 call that may change a link: where to look.
    ApiCall {
        name: String,
        scope: Option<Scope>,
    },
}

impl Trigger {
    /// Reads an event as Lambda hands it over.
    pub fn decode(payload: &Value) -> Result<Self, EventError> {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| EventError::Envelope(e.to_string()))?;
        let detail_error = |reason: String| EventError::Detail { detail_type: event.detail_type.clone(), reason };
        match (event.source.as_str(), event.detail_type.as_str()) {
            ("aws.events", SCHEDULED) => Ok(Trigger::Schedule),
            ("aws.tag", TAG_CHANGE) => {
                let detail: TagChangeDetail =
                    serde_json::from_value(event.detail.clone()).map_err(|e| detail_error(e.to_string()))?;
                if detail.service != "ec2" || detail.resource_type != "vpc" {
                    return Err(detail_error(format!(
                        "tagpeer reads tags of ec2 vpc resources, not {} {}",
                        detail.service, detail.resource_type
                    )));
                }
                let resources = event.resources.clone().unwrap_or_default();
                let vpc = resources.iter().find_map(|arn| vpc_from_arn(arn)).ok_or(EventError::NoVpc(resources))?;
                let changed: Vec<String> =
                    detail.changed_tag_keys.into_iter().filter(|k| k.starts_with(INTENT_PREFIX)).collect();
                Ok(if changed.is_empty() {
                    Trigger::UnrelatedTagChange { vpc }
                } else {
                    Trigger::TagChange { vpc, changed }
                })
            }
            (SOURCE, PEERING_REQUESTED) => {
                Ok(Trigger::PeeringRequested(peering_detail(&event.detail).map_err(detail_error)?))
            }
            (SOURCE, PEERING_ACCEPTED) => {
                Ok(Trigger::PeeringAccepted(peering_detail(&event.detail).map_err(detail_error)?))
            }
            (SOURCE, LINK_REMOVED) => Ok(Trigger::LinkRemoved(outcome_detail(&event.detail).map_err(detail_error)?)),
            (SOURCE, CONSENT_CHANGED) => {
                let detail: ConsentDetail =
                    serde_json::from_value(event.detail.clone()).map_err(|e| detail_error(e.to_string()))?;
                Ok(Trigger::ConsentChanged(detail))
            }
            (SOURCE, SWEEP_REQUESTED) => {
                let detail: SweepDetail =
                    serde_json::from_value(event.detail.clone()).map_err(|e| detail_error(e.to_string()))?;
                Ok(Trigger::SweepRequested(detail))
            }
            (SOURCE, ROUTES_REMOVED) => {
                Ok(Trigger::RoutesRemoved(outcome_detail(&event.detail).map_err(detail_error)?))
            }
            (SOURCE, LINK_WANTED) => Ok(Trigger::LinkWanted(link_detail(&event.detail).map_err(detail_error)?)),
            ("aws.ec2", API_CALL) => {
                let account: AccountId = event
                    .account
                    .as_deref()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e: crate::error::IdError| detail_error(e.to_string()))?;
                api_call(&event.detail, account).map_err(detail_error)
            }
            (source, detail_type) => {
                Err(EventError::Unexpected { event_source: source.to_owned(), detail_type: detail_type.to_owned() })
            }
        }
    }

    /// What the invocation works on; `None` when there is nothing to look at.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Trigger::TagChange { vpc, .. } => Some(Scope::tags_changed(vec![vpc.clone()])),
            Trigger::UnrelatedTagChange { .. } => None,
            Trigger::ApiCall { scope, .. } => scope.clone(),
            Trigger::Schedule => Some(Scope::sweep()),
            Trigger::PeeringRequested(d) => Some(Scope::link(LinkKey::new(d.requester.clone(), d.accepter.clone()))),
            Trigger::LinkWanted(d) => Some(Scope::link(LinkKey::new(d.requester.clone(), d.accepter.clone()))),
            // An accepted request no longer counts as outstanding, a deleted
            // connection no longer against its VPCs: room a quota kept.
            Trigger::PeeringAccepted(d) => {
                Some(Scope::link(LinkKey::new(d.requester.clone(), d.accepter.clone())).freeing_room())
            }
            Trigger::LinkRemoved(d) => {
                Some(Scope::link(LinkKey::new(d.requester.clone(), d.accepter.clone())).freeing_room())
            }
            Trigger::RoutesRemoved(d) => Some(Scope::link(LinkKey::new(d.requester.clone(), d.accepter.clone()))),
            // A sweep of this region, for the functions it names (the
            // handler asks: see `App::scope_of`).
            Trigger::SweepRequested(_) => Some(Scope::sweep()),
            Trigger::ConsentChanged(d) => Some(Scope::consent_changed(d.vpc.clone())),
        }
    }

    /// A short name for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::TagChange { .. } | Trigger::UnrelatedTagChange { .. } => TAG_CHANGE,
            Trigger::Schedule => SCHEDULED,
            Trigger::PeeringRequested(_) => PEERING_REQUESTED,
            Trigger::PeeringAccepted(_) => PEERING_ACCEPTED,
            Trigger::LinkRemoved(_) => LINK_REMOVED,
            Trigger::RoutesRemoved(_) => ROUTES_REMOVED,
            Trigger::SweepRequested(_) => SWEEP_REQUESTED,
            Trigger::ConsentChanged(_) => CONSENT_CHANGED,
            Trigger::LinkWanted(_) => LINK_WANTED,
            Trigger::ApiCall { .. } => API_CALL,
        }
    }
}

/// The part of a CloudTrail record tagpeer reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiCallDetail {
    event_source: String,
    event_name: String,
    aws_region: Region,
    #[serde(default)]
    request_parameters: Value,
    #[serde(default)]
    response_elements: Value,
    #[serde(default)]
    error_code: Option<String>,
}

/// A field of a CloudTrail record's `responseElements`: EC2 records some
/// answers flat, some wrapped in their `…Response` element.
fn response_field<'v>(elements: &'v Value, key: &str) -> Option<&'v Value> {
    elements.get(key).or_else(|| {
        let object = elements.as_object()?;
        object.iter().find(|(k, _)| k.ends_with("Response")).and_then(|(_, v)| v.get(key))
    })
}

/// `{"items": [...]}`, CloudTrail's lists.
fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> + 'v {
    v[key]["items"].as_array().into_iter().flatten()
}

fn api_call(detail: &Value, account: AccountId) -> Result<Trigger, String> {
    let call: ApiCallDetail = serde_json::from_value(detail.clone()).map_err(|e| e.to_string())?;
    if call.event_source != "ec2.amazonaws.com" || !API_CALLS.contains(&call.event_name.as_str()) {
        return Err(format!("tagpeer takes no {} {} records", call.event_source, call.event_name));
    }
    let params = &call.request_parameters;
    let vpc = |id: &str| -> Option<Endpoint> {
        Some(Endpoint::new(account.clone(), call.aws_region.clone(), id.parse().ok()?))
    };
    // A failed call changed nothing.
    let scope = if call.error_code.is_some() {
        None
    } else {
        match call.event_name.as_str() {
            "CreateTags" | "DeleteTags" => {
                let intent =
                    items(params, "tagSet").any(|t| t["key"].as_str().is_some_and(|k| k.starts_with(INTENT_PREFIX)));
                let vpcs: Vec<Endpoint> =
                    items(params, "resourcesSet").filter_map(|r| vpc(r["resourceId"].as_str()?)).collect();
                (intent && !vpcs.is_empty()).then(|| Scope::tags_changed(vpcs))
            }
            name @ ("AcceptVpcPeeringConnection" | "DeleteVpcPeeringConnection" | "RejectVpcPeeringConnection") => {
                let id = params["vpcPeeringConnectionId"].as_str().unwrap_or_default();
                let id = id.parse().map_err(|e: crate::error::IdError| e.to_string())?;
                Some(Scope::peering(id, name != "AcceptVpcPeeringConnection"))
            }
            // DNS hostnames or resolution turned on or off: the DNS options
            // of the VPC's links may follow (`tagpeer:dns` needs both on).
            "ModifyVpcAttribute" => {
                let dns = params.get("enableDnsHostnames").is_some() || params.get("enableDnsSupport").is_some();
                let id = params["vpcId"].as_str().unwrap_or_default();
                let vpc = vpc(id).ok_or_else(|| format!("{id:?} is not a VPC id"))?;
                dns.then(|| Scope::tags_changed(vec![vpc]))
            }
            // `DisassociateVpcCidrBlock` names only the association; the VPC
            // is in the answer. `AssociateVpcCidrBlock` names it in both.
            _ => {
                let id = params["vpcId"]
                    .as_str()
                    .or_else(|| response_field(&call.response_elements, "vpcId")?.as_str())
                    .unwrap_or_default();
                Some(Scope::ranges_changed(vec![vpc(id).ok_or_else(|| format!("{id:?} is not a VPC id"))?]))
            }
        }
    };
    Ok(Trigger::ApiCall { name: call.event_name, scope })
}

fn link_detail(detail: &Value) -> Result<LinkDetail, String> {
    let detail: LinkDetail = serde_json::from_value(detail.clone()).map_err(|e| e.to_string())?;
    check_link(&detail.link, &detail.requester, &detail.accepter)?;
    Ok(detail)
}

/// A detail's `link` names its own two sides.
fn check_link(link: &str, requester: &Endpoint, accepter: &Endpoint) -> Result<(), String> {
    if LinkKey::new(requester.clone(), accepter.clone()).to_string() != link {
        return Err(format!("link {link:?} does not join {requester} and {accepter}"));
    }
    Ok(())
}

fn outcome_detail(detail: &Value) -> Result<OutcomeDetail, String> {
    let detail: OutcomeDetail = serde_json::from_value(detail.clone()).map_err(|e| e.to_string())?;
    check_link(&detail.link, &detail.requester, &detail.accepter)?;
    Ok(detail)
}

fn peering_detail(detail: &Value) -> Result<PeeringDetail, String> {
    let detail: PeeringDetail = serde_json::from_value(detail.clone()).map_err(|e| e.to_string())?;
    check_link(&detail.link, &detail.requester, &detail.accepter)?;
    Ok(detail)
}

/// `arn:PARTITION:ec2:REGION:ACCOUNT:vpc/vpc-…`
pub fn vpc_from_arn(arn: &str) -> Option<Endpoint> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _partition, "ec2", region, account, resource] = parts.as_slice() else { return None };
    let vpc = resource.strip_prefix("vpc/")?;
    Some(Endpoint {
        account: account.parse::<AccountId>().ok()?,
        region: region.parse::<Region>().ok()?,
        vpc_id: vpc.parse::<VpcId>().ok()?,
    })
}

/// `arn:PARTITION:ec2:REGION:ACCOUNT:vpc/vpc-…`
pub fn vpc_arn(vpc: &Endpoint) -> String {
    format!("arn:{}:ec2:{}:{}:vpc/{}", vpc.region.partition(), vpc.region, vpc.account, vpc.vpc_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Links;
    use serde_json::json;

    fn tag_change(resources: Value, detail: Value) -> Value {
        json!({
            "version": "0", "id": "ffd8a6fe-32f8-ef66-c85c-111111111111",
            "detail-type": "Tag Change on Resource", "source": "aws.tag",
            "account": "123456789012", "time": "2026-11-27T07:00:00Z", "region": "ap-northeast-2",
            "resources": resources, "detail": detail
        })
    }

    #[test]
    fn a_vpc_tag_change_focuses_on_the_vpc() {
        let event = tag_change(
            json!(["arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0123456789abcdef0"]),
            json!({"changed-tag-keys": ["tagpeer:peers", "Name"], "service": "ec2", "resource-type": "vpc", "version": 2, "tags": {"tagpeer:peers": "ap-northeast-3/vpc-1111aaaa"}}),
        );
        let trigger = Trigger::decode(&event).unwrap();
        let Trigger::TagChange { vpc, changed } = &trigger else { panic!("{trigger:?}") };
        assert_eq!(vpc.to_string(), "123456789012/ap-northeast-2/vpc-0123456789abcdef0");
        assert_eq!(changed, &["tagpeer:peers"]);
        assert_eq!(trigger.scope(), Some(Scope::tags_changed(vec![vpc.clone()])));
    }

    #[test]
    fn a_change_to_other_keys_needs_nothing() {
        let event = tag_change(
            json!(["arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0123456789abcdef0"]),
            json!({"changed-tag-keys": ["Name", "tagpeer-status"], "service": "ec2", "resource-type": "vpc", "version": 2, "tags": {}}),
        );
        assert_eq!(Trigger::decode(&event).unwrap().scope(), None);
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        let vpc_arn = json!(["arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0123456789abcdef0"]);
        let ok_detail = json!({"changed-tag-keys": ["tagpeer:peers"], "service": "ec2", "resource-type": "vpc", "version": 1, "tags": {}});
        let cases = [
            (json!("not an object"), "EventBridge's shape"),
            (json!({"source": "aws.tag"}), "EventBridge's shape"),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
                "no rule of tagpeer's",
            ),
            (tag_change(vpc_arn.clone(), json!({"service": "ec2"})), "detail is malformed"),
            (
                tag_change(
                    vpc_arn.clone(),
                    json!({"changed-tag-keys": "tagpeer:peers", "service": "ec2", "resource-type": "vpc"}),
                ),
                "detail is malformed",
            ),
            (
                tag_change(vpc_arn, json!({"changed-tag-keys": [], "service": "ec2", "resource-type": "instance"})),
                "not ec2 instance",
            ),
            (
                tag_change(json!(["arn:aws:ec2:ap-northeast-2:123456789012:instance/i-0123"]), ok_detail.clone()),
                "names no VPC",
            ),
            (tag_change(json!([]), ok_detail), "names no VPC"),
            (
                json!({"source": "tagpeer", "detail-type": "Peering Requested", "detail": {"link": 5}}),
                "detail is malformed",
            ),
        ];
        for (event, expect) in cases {
            let err = Trigger::decode(&event).unwrap_err().to_string();
            assert!(err.contains(expect), "{event}: {err}");
        }
    }

    #[test]
    fn peering_events_round_trip_and_check_their_link() {
        let requester: Endpoint = Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-2".parse().unwrap(),
            "vpc-0123abcd".parse().unwrap(),
        );
        let accepter: Endpoint = Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-3".parse().unwrap(),
            "vpc-4567abcd".parse().unwrap(),
        );
        let detail = PeeringDetail {
            link: LinkKey::new(requester.clone(), accepter.clone()).to_string(),
            peering_connection_id: "pcx-0123abcd".parse().unwrap(),
            requester,
            accepter,
        };
        let event = json!({"version": "0", "id": "1", "detail-type": "Peering Accepted", "source": "tagpeer", "account": "123456789012",
            "time": "2026-11-27T07:00:00Z", "region": "ap-northeast-3", "resources": [], "detail": detail});
        assert_eq!(Trigger::decode(&event).unwrap(), Trigger::PeeringAccepted(detail.clone()));

        let mut wrong = event.clone();
        wrong["detail"]["link"] =
            json!("123456789012/ap-northeast-2/vpc-0123abcd+123456789012/ap-northeast-3/vpc-89abcdef");
        assert!(Trigger::decode(&wrong).unwrap_err().to_string().contains("does not join"));
    }

    #[test]
    fn a_link_removed_elsewhere_names_its_link() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/link-removed.json");
        let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let Trigger::LinkRemoved(detail) = Trigger::decode(&event).unwrap() else { panic!("a Link Removed") };
        let key = LinkKey::new(detail.requester.clone(), detail.accepter.clone());
        assert_eq!(Trigger::decode(&event).unwrap().scope(), Some(Scope::link(key).freeing_room()));
        let mut wrong = event.clone();
        wrong["detail"]["link"] =
            json!("123456789012/ap-northeast-2/vpc-0123abcd+123456789012/ap-northeast-3/vpc-89abcdef");
        assert!(Trigger::decode(&wrong).unwrap_err().to_string().contains("does not join"));
    }

    #[test]
    fn arns_name_vpcs() {
        let vpc = vpc_from_arn("arn:aws:ec2:ap-northeast-3:123456789012:vpc/vpc-0123abcd").unwrap();
        assert_eq!(vpc_arn(&vpc), "arn:aws:ec2:ap-northeast-3:123456789012:vpc/vpc-0123abcd");
        for bad in [
            "",
            "arn:aws:ec2:ap-northeast-3:123456789012:subnet/subnet-0123abcd",
            "arn:aws:s3:::bucket",
            "arn:aws:ec2:xx:123:vpc/vpc-0123abcd",
        ] {
            assert_eq!(vpc_from_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_sample_events_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let payload: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for event in events_of(&payload) {
                let event = event.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let trigger = Trigger::decode(&event).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(trigger.scope().is_some(), "{}", path.display());
                seen.push(trigger.kind());
            }
        }
        seen.sort();
        let batch = [PEERING_REQUESTED, TAG_CHANGE]; // queue-batch.json
        let alone = [API_CALL, API_CALL, LINK_REMOVED, LINK_WANTED, PEERING_ACCEPTED, PEERING_REQUESTED, SCHEDULED];
        let mut expected: Vec<&str> = alone.iter().chain(&batch).chain(&[TAG_CHANGE]).copied().collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_queue_batch_is_its_messages_events_in_order_and_an_event_alone_is_itself() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
        let read =
            |name: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap() };
        let batch = read("queue-batch.json");
        let events: Vec<Value> = events_of(&batch).into_iter().map(Result::unwrap).collect();
        assert_eq!(events, [read("tag-change.json"), read("peering-requested.json")]);
        let alone = read("scheduled.json");
        assert_eq!(events_of(&alone).into_iter().map(Result::unwrap).collect::<Vec<_>>(), [alone]);

        // A message that holds no event is its own error; the others are read.
        let mut broken = batch.clone();
        broken["Records"][0]["body"] = json!("not json");
        let read_back = events_of(&broken);
        assert!(
            matches!(&read_back[0], Err(EventError::Message { message_id, .. }) if message_id == "059f36b4-87a3-44ab-83d2-661975830a7d")
        );
        assert_eq!(read_back[1].as_ref().unwrap(), &read("peering-requested.json"));
        // Records that are not Lambda's SQS batch are not taken for one.
        let mut retyped = batch.clone();
        retyped["Records"][1]["attributes"] = json!(7);
        assert!(matches!(&events_of(&retyped)[..], [Err(EventError::Envelope(_))]));
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(
            Trigger::decode(&events_of(&s3).pop().unwrap().unwrap()).is_err(),
            "an S3 notification is no event of ours"
        );
    }

    fn api_call_event(name: &str, params: Value, error: Option<&str>) -> Value {
        json!({"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
            "account": "123456789012", "time": "2026-11-27T07:00:00Z", "region": "ap-northeast-2", "resources": [],
            "detail": {"eventVersion": "1.09", "eventSource": "ec2.amazonaws.com", "eventName": name,
                "awsRegion": "ap-northeast-2", "requestParameters": params, "errorCode": error}})
    }

    #[test]
    fn cloudtrail_records_say_where_to_look() {
        let vpc = "123456789012/ap-northeast-2/vpc-0123abcd";
        let endpoint = Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-2".parse().unwrap(),
            "vpc-0123abcd".parse().unwrap(),
        );
        let tags = api_call_event(
            "CreateTags",
            json!({"resourcesSet": {"items": [{"resourceId": "vpc-0123abcd"}, {"resourceId": "subnet-0123abcd"}]},
                   "tagSet": {"items": [{"key": "tagpeer:peers", "value": "vpc-4567abcd"}]}}),
            None,
        );
        let Some(Scope { links: Links::Of(vpcs), .. }) = Trigger::decode(&tags).unwrap().scope() else { panic!() };
        assert_eq!(vpcs.iter().map(ToString::to_string).collect::<Vec<_>>(), [vpc]);

        let status_only = api_call_event(
            "CreateTags",
            json!({"resourcesSet": {"items": [{"resourceId": "vpc-0123abcd"}]},
                   "tagSet": {"items": [{"key": "tagpeer-status", "value": "ready"}]}}),
            None,
        );
        assert_eq!(Trigger::decode(&status_only).unwrap().scope(), None, "tagpeer's own writes need nothing");

        let accepted =
            api_call_event("AcceptVpcPeeringConnection", json!({"vpcPeeringConnectionId": "pcx-0123abcd"}), None);
        assert_eq!(
            Trigger::decode(&accepted).unwrap().scope(),
            Some(Scope::peering("pcx-0123abcd".parse().unwrap(), false))
        );

        let range =
            api_call_event("AssociateVpcCidrBlock", json!({"vpcId": "vpc-0123abcd", "cidrBlock": "10.1.0.0/16"}), None);
        assert!(Trigger::decode(&range).unwrap().scope() == Some(Scope::ranges_changed(vec![endpoint.clone()])));

        // A disassociation names only the association: the VPC is in the answer,
        // flat or inside its `…Response` element.
        for response in [
            json!({"requestId": "1", "vpcId": "vpc-0123abcd", "cidrBlockAssociation": {"associationId": "vpc-cidr-assoc-1"}}),
            json!({"DisassociateVpcCidrBlockResponse": {"requestId": "1", "vpcId": "vpc-0123abcd"}}),
        ] {
            let mut gone =
                api_call_event("DisassociateVpcCidrBlock", json!({"associationId": "vpc-cidr-assoc-1"}), None);
            gone["detail"]["responseElements"] = response;
            assert!(
                Trigger::decode(&gone).unwrap().scope() == Some(Scope::ranges_changed(vec![endpoint.clone()])),
                "{gone}"
            );
        }

        let failed = api_call_event(
            "AcceptVpcPeeringConnection",
            json!({"vpcPeeringConnectionId": "pcx-0123abcd"}),
            Some("InvalidStateTransition"),
        );
        assert_eq!(Trigger::decode(&failed).unwrap().scope(), None, "a failed call changed nothing");

        let dns = api_call_event(
            "ModifyVpcAttribute",
            json!({"vpcId": "vpc-0123abcd", "enableDnsHostnames": {"value": true}}),
            None,
        );
        assert!(Trigger::decode(&dns).unwrap().scope() == Some(Scope::tags_changed(vec![endpoint.clone()])));
        let other = api_call_event(
            "ModifyVpcAttribute",
            json!({"vpcId": "vpc-0123abcd", "enableNetworkAddressUsageMetrics": {"value": true}}),
            None,
        );
        assert_eq!(Trigger::decode(&other).unwrap().scope(), None, "only the DNS attributes matter");

        for (event, expect) in [
            (
                api_call_event("RunInstances", json!({}), None),
                "tagpeer takes no ec2.amazonaws.com RunInstances records",
            ),
            (
                api_call_event("AcceptVpcPeeringConnection", json!({"vpcPeeringConnectionId": "vpc-0123abcd"}), None),
                "not a peering connection id",
            ),
            (api_call_event("AssociateVpcCidrBlock", json!({}), None), "is not a VPC id"),
        ] {
            let err = Trigger::decode(&event).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
    }

    fn side(account: &str, region: &str, vpc: &str) -> Endpoint {
        Endpoint::new(account.parse().unwrap(), region.parse().unwrap(), vpc.parse().unwrap())
    }

    #[test]
    fn each_event_goes_to_its_own_region_and_to_the_regions_that_act_on_it() {
        let (a, b) = ("123456789012", "222222222222");
        let (seoul, osaka, tokyo) = ("ap-northeast-2", "ap-northeast-3", "ap-northeast-1");
        let regions = [seoul, osaka, tokyo].map(|r| r.parse().unwrap()).to_vec();
        let deployment = Deployment::new(a.parse().unwrap(), regions);
        let peering = |requester: Endpoint, accepter: Endpoint| {
            Detail::Peering(PeeringDetail {
                link: String::new(),
                peering_connection_id: "pcx-0123abcd".parse().unwrap(),
                requester,
                accepter,
            })
        };
        let outcome = |requester: Endpoint, accepter: Endpoint| {
            Detail::Outcome(OutcomeDetail {
                link: String::new(),
                side: requester.clone(),
                requester,
                accepter,
                peering_connection_id: None,
                step: "CreateRoute".into(),
                error_code: None,
                message: None,
            })
        };
        // Routes removed on the accepter's side.
        let removed = |requester: Endpoint, accepter: Endpoint| match outcome(requester, accepter.clone()) {
            Detail::Outcome(d) => Detail::Outcome(OutcomeDetail { side: accepter, ..d }),
            _ => unreachable!(),
        };
        let (in_seoul, in_osaka) = (side(a, seoul, "vpc-0000000a"), side(a, osaka, "vpc-0000000b"));
        let elsewhere = side(a, "eu-west-1", "vpc-0000000c");
        let other_account = side(b, osaka, "vpc-0000000d");
        let cases = [
            (PEERING_REQUESTED, peering(in_seoul.clone(), in_osaka.clone()), seoul, vec![osaka, seoul]),
            (PEERING_ACCEPTED, peering(in_seoul.clone(), in_osaka.clone()), osaka, vec![osaka, seoul]),
            (PEERING_ACCEPTED, peering(in_seoul.clone(), in_seoul.clone()), seoul, vec![seoul]),
            (LINK_REMOVED, outcome(in_seoul.clone(), in_osaka.clone()), seoul, vec![osaka, seoul]),
            (LINK_READY, outcome(in_seoul.clone(), in_osaka.clone()), seoul, vec![seoul]),
            (LINK_FAILED, outcome(in_seoul.clone(), in_osaka.clone()), osaka, vec![osaka]),
            (
                LINK_WANTED,
                Detail::Link(LinkDetail {
                    link: String::new(),
                    requester: in_seoul.clone(),
                    accepter: in_osaka.clone(),
                }),
                osaka,
                vec![osaka, seoul],
            ),
            // Another account's side in a deployment region: this account's
            // bus there (its forwarding rule sends it on), never the other
            // account's; in the sender's own region, its own bus alone.
            (PEERING_REQUESTED, peering(in_seoul.clone(), other_account.clone()), seoul, vec![osaka, seoul]),
            (PEERING_ACCEPTED, peering(in_seoul.clone(), other_account.clone()), osaka, vec![osaka, seoul]),
            (PEERING_ACCEPTED, peering(other_account.clone(), in_osaka.clone()), osaka, vec![osaka]),
            // "Routes Removed" goes to the side after the one unrouted.
            (ROUTES_REMOVED, outcome(in_seoul.clone(), other_account.clone()), seoul, vec![osaka, seoul]),
            (ROUTES_REMOVED, removed(in_seoul.clone(), other_account.clone()), osaka, vec![osaka, seoul]),
            // A region outside the deployment takes nothing from here.
            (PEERING_ACCEPTED, peering(in_seoul.clone(), elsewhere.clone()), tokyo, vec![tokyo, seoul]),
            (PEERING_REQUESTED, peering(in_seoul, side(b, "eu-west-1", "vpc-0000000e")), seoul, vec![seoul]),
        ];
        for (detail_type, detail, from, expected) in cases {
            let event = Outgoing { detail_type, detail };
            let to: BTreeSet<String> =
                event.destinations(&from.parse().unwrap(), &deployment).iter().map(|r| r.to_string()).collect();
            assert_eq!(to, expected.into_iter().map(String::from).collect(), "{detail_type} from {from}");
        }
    }
}
