//! What an invocation tells: its report (the Lambda's answer), one JSON log
//! line per change and per outcome, and the `tagpeer` events it sends.

use serde::Serialize;

use crate::error::AwsError;
use crate::events::{
    Detail, LinkDetail, OutcomeDetail, Outgoing, PeeringDetail, LINK_READY, LINK_WANTED, PEERING_ACCEPTED,
    PEERING_REQUESTED, ROUTES_REMOVED,
};
use crate::ids::{Endpoint, PeeringId};
use crate::model::{LinkKey, World};
use crate::plan::{Action, Assessment};

/// One change an invocation made, or tried to.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub action: &'static str,
    pub region: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `ok`, or the error.
    pub outcome: String,
    /// A status that reports an error: logged as a warning.
    #[serde(skip)]
    pub reports_error: bool,
}

impl Change {
    /// `action` and how it went (`created`: the connection a request made).
    pub fn of(action: &Action, result: &Result<Option<PeeringId>, AwsError>) -> Self {
        let subject = action.subject();
        let detail = match (result, subject.detail) {
            (Ok(Some(created)), Some(d)) => Some(format!("{d} as {created}")),
            (_, d) => d,
        };
        Change {
            action: action.api_name(),
            region: subject.region.to_string(),
            resource: subject.resource,
            link: action.link().map(ToString::to_string),
            detail,
            outcome: match result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
            reports_error: matches!(action, Action::SetStatus { reports_error: true, .. }),
        }
    }

    /// One JSON line: an error when the call failed, a warning when it wrote
    /// a status that reports an error, else information.
    pub fn log(&self, function: &'static str) {
        let c = self;
        if c.outcome != "ok" {
            tracing::error!(function, action = c.action, region = %c.region, resource = %c.resource, link = c.link.as_deref(), detail = c.detail.as_deref(), outcome = %c.outcome, "change failed");
        } else if c.reports_error {
            tracing::warn!(function, action = c.action, region = %c.region, resource = %c.resource, detail = c.detail.as_deref(), outcome = %c.outcome, "status");
        } else {
            tracing::info!(function, action = c.action, region = %c.region, resource = %c.resource, link = c.link.as_deref(), detail = c.detail.as_deref(), outcome = %c.outcome, "change");
        }
    }
}

/// What an invocation did: the Lambda's response, and the summary it logs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub trigger: &'static str,
    /// Why nothing was looked at, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub changes: Vec<Change>,
    pub events: Vec<Outgoing>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.changes.iter().filter(|c| c.outcome != "ok").count()
    }

    /// One JSON line an outcome ("Link Ready", "Link Failed", "Link Removed").
    pub fn log_outcomes(&self) {
        for e in &self.events {
            let Detail::Outcome(d) = &e.detail else { continue };
            tracing::info!(
                function = self.function,
                outcome = e.detail_type,
                link = %d.link,
                side = %d.side,
                peering = d.peering_connection_id.as_ref().map(|p| p.as_str()),
                step = %d.step,
                error_code = d.error_code.as_deref(),
                message = d.message.as_deref(),
                "outcome"
            );
        }
    }
}

/// The event that tells the next function its turn has come.
pub fn handoff(world: &World, action: &Action, created: Option<&PeeringId>) -> Option<Outgoing> {
    let (detail_type, id) = match action {
        Action::RequestPeering { .. } => (PEERING_REQUESTED, created?),
        Action::AcceptPeering { peering, .. } => (PEERING_ACCEPTED, peering),
        _ => return None,
    };
    let peering = world.peering(id)?;
    Some(Outgoing {
        detail_type,
        detail: Detail::Peering(PeeringDetail {
            link: LinkKey::of(peering).to_string(),
            peering_connection_id: id.clone(),
            requester: peering.requester.clone(),
            accepter: peering.accepter.clone(),
        }),
    })
}

/// "Link Wanted": the requester's region requests the link.
pub fn hand_over(action: &Action) -> Option<Outgoing> {
    let Action::HandOver { link, requester, accepter } = action else { return None };
    Some(Outgoing {
        detail_type: LINK_WANTED,
        detail: Detail::Link(LinkDetail {
            link: link.to_string(),
            requester: requester.clone(),
            accepter: accepter.clone(),
        }),
    })
}

/// The requester and accepter of a link: its connection's, else the planned ones.
fn ends(world: &World, assessment: &Assessment, key: &LinkKey) -> (Endpoint, Endpoint) {
    if let Some(p) = world.peerings.iter().filter(|p| p.is_of(key)).max_by_key(|p| p.state.is_live()) {
        return (p.requester.clone(), p.accepter.clone());
    }
    match assessment.links.get(key) {
        Some(link) => (link.requester.clone(), link.accepter().clone()),
        None => (key.a.clone(), key.b.clone()),
    }
}

/// "Link Ready" for `side` of `key`, ready through `peering`.
pub fn ready(world: &World, assessment: &Assessment, key: &LinkKey, side: Endpoint, peering: PeeringId) -> Outgoing {
    let (requester, accepter) = ends(world, assessment, key);
    Outgoing {
        detail_type: LINK_READY,
        detail: Detail::Outcome(OutcomeDetail {
            link: key.to_string(),
            requester,
            accepter,
            side,
            peering_connection_id: Some(peering),
            step: "ready".to_owned(),
            error_code: None,
            message: None,
        }),
    }
}

/// A "Link Removed" or "Link Failed" outcome of one step.
pub fn of_step(
    world: &World,
    assessment: &Assessment,
    action: &Action,
    detail_type: &'static str,
    peering: Option<&PeeringId>,
    error: Option<&AwsError>,
) -> Outgoing {
    let key = action.link().expect("link steps name their link");
    let (requester, accepter) = ends(world, assessment, key);
    Outgoing {
        detail_type,
        detail: Detail::Outcome(OutcomeDetail {
            link: key.to_string(),
            requester,
            accepter,
            side: action.side_of(key, world).clone(),
            peering_connection_id: peering.cloned(),
            step: action.api_name().to_owned(),
            error_code: error.map(|e| e.code.clone()),
            message: error.map(|e| e.message.clone()),
        }),
    }
}

/// "Routes Removed": `side` of `key` no longer routes through the link's
/// connection and the link's intent is gone, while the connection, across
/// accounts, still stands: the other account's side goes next. `None` when
/// the link is wanted, or within one account (its requester unroutes both
/// sides and deletes the connection itself).
pub fn routes_removed(world: &World, assessment: &Assessment, key: &LinkKey, side: &Endpoint) -> Option<Outgoing> {
    if assessment.links.contains_key(key) {
        return None;
    }
    let peering = world.live_managed(key).into_iter().next()?;
    if peering.requester.account == peering.accepter.account {
        return None;
    }
    Some(Outgoing {
        detail_type: ROUTES_REMOVED,
        detail: Detail::Outcome(OutcomeDetail {
            link: key.to_string(),
            requester: peering.requester.clone(),
            accepter: peering.accepter.clone(),
            side: side.clone(),
            peering_connection_id: Some(peering.id.clone()),
            step: "DeleteRoute".to_owned(),
            error_code: None,
            message: None,
        }),
    })
}
