//! The words of `tagpeer-status`: one line a person can read, per VPC.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ids::Endpoint;
use crate::intent;
use crate::model::World;
use crate::plan::{link_state, Assessment, LinkKey, LinkState, Problem, VpcError};

/// EC2 tag values hold at most 256 characters.
pub const MAX_LEN: usize = 256;

impl fmt::Display for VpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpcError::Tag(e) => write!(f, "{e}"),
            VpcError::UnknownRouteTable(id) => {
                write!(f, "{}: {id} is not a route table of this VPC", intent::ROUTE_TABLES)
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::SelfReference { key, reference } => write!(f, "{key}: {reference} is this VPC itself"),
            Problem::UnknownRegion { key, reference, regions } => {
                let regions: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
                let region = reference.region.as_ref().map(|r| r.as_str()).unwrap_or_default();
                write!(
                    f,
                    "{key}: {reference}: region {region} is not one of this deployment's ({})",
                    regions.join(", ")
                )
            }
            Problem::UnknownVpc { key, reference } => write!(f, "{key}: {reference}: no such VPC"),
            Problem::AccountNotAllowed { key, reference } => write!(
                f,
                "{key}: {reference}: account {} is not one of this deployment's allowed accounts",
                reference.account.as_ref().map(|a| a.as_str()).unwrap_or_default()
            ),
            Problem::Unreadable { key, reference, error } => {
                write!(f, "{key}: {reference}: cannot read the other account ({error})")
            }
            Problem::NoConsent { peer, accepter, requester } => write!(
                f,
                "{}: waiting for consent: {}'s {} does not name account {}",
                peer,
                accepter,
                intent::ACCEPT,
                requester.account
            ),
            Problem::PeeringQuota { peer, vpc, quota } => write!(
                f,
                "{}/{}: over quota: {}/{} already has {quota} peering connections",
                peer.region, peer.vpc_id, vpc.region, vpc.vpc_id
            ),
            Problem::RequestQuota { peer, account, region, quota } => write!(
                f,
                "{}/{}: waiting for room: account {account} has {quota} peering requests awaiting acceptance in {region} (the quota)",
                peer.region, peer.vpc_id
            ),
            Problem::RouteQuota { peer, vpc, route_table, needed, quota } => write!(
                f,
                "{}/{}: over quota: {route_table} of {} has no room for {needed} more routes ({quota} at most)",
                peer.region, peer.vpc_id, vpc.vpc_id
            ),
            Problem::Overlap { peer, mine, theirs } => write!(
                f,
                "{}/{}: ranges overlap ({mine} here, {theirs} there); peered VPCs need disjoint ranges",
                peer.region, peer.vpc_id
            ),
            Problem::UnmanagedPeering { peer, peering } => write!(
                f,
                "{}/{}: already joined by {peering}, which tagpeer did not make; left alone",
                peer.region, peer.vpc_id
            ),
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Requesting => f.write_str("requesting"),
            LinkState::Waiting { last, attempt, seconds } => {
                match last {
                    Some((id, crate::model::PeeringState::Deleted)) => write!(f, "{id} was deleted")?,
                    Some((id, state)) => write!(f, "{id} ended {}", state.code())?,
                    None => write!(f, "request {} ended", attempt - 1)?,
                }
                write!(f, "; request {attempt} in {} min", seconds.div_ceil(60))
            }
            LinkState::Pending(p) => write!(f, "pending acceptance ({p})"),
            LinkState::Routing { peering, missing, wanted } => {
                write!(f, "active ({peering}), routes {}/{wanted} in place", wanted - missing)
            }
            LinkState::Conflict { peering, route_table, destination, target } => {
                write!(f, "conflict: {route_table} already routes {destination} via {target}, left alone ({peering})")
            }
            LinkState::TableFull { peering, route_table, quota } => {
                write!(f, "active ({peering}), but {route_table} is full ({quota} routes, the quota)")
            }
            LinkState::Ready(p) => write!(f, "ready via {p}"),
            LinkState::Removing(p) => write!(f, "removing {p}"),
            LinkState::Held => f.write_str("held: the other VPC's tagpeer tags are malformed"),
        }
    }
}

/// The status line for `vpc`: its errors first, then each of its links.
/// `None` when the VPC has no intent and no link, so there is nothing to say.
pub fn render(
    world: &World,
    assessment: &Assessment,
    links: &BTreeSet<LinkKey>,
    failures: &BTreeMap<LinkKey, String>,
    vpc: &Endpoint,
) -> Option<String> {
    if let Some(errors) = assessment.frozen.get(vpc) {
        let parts: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
        return Some(clip(parts.join("; ")));
    }
    let mut parts: Vec<String> =
        assessment.problems.get(vpc).into_iter().flatten().map(|p| format!("error: {p}")).collect();
    for key in links.iter().filter(|k| k.has(vpc)) {
        let peer = key.other(vpc).relative_to(vpc);
        let mut state = link_state(world, assessment, key, vpc).to_string();
        if assessment.intent(vpc).dns {
            if let Some(lacking) = crate::plan::dns_blocked_by(world, key) {
                state.push_str(&format!(
                    ", but no DNS resolution: {} needs DNS hostnames and DNS resolution on",
                    lacking.relative_to(vpc)
                ));
            }
        }
        match failures.get(key) {
            Some(error) => parts.push(format!("{peer}: {state}, last step failed: {error}")),
            None => parts.push(format!("{peer}: {state}")),
        }
    }
    if parts.is_empty() {
        let has_intent = world.vpc(vpc).is_some_and(|v| intent::has_intent_tags(&v.tags));
        return has_intent.then(|| "no links".to_owned());
    }
    Some(clip(parts.join("; ")))
}

/// Cuts a line to what a tag value holds, marking the cut.
pub fn clip(line: String) -> String {
    if line.chars().count() <= MAX_LEN {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_LEN - 3).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn clipped_lines_fit_a_tag(line in "\\PC{0,600}") {
            let clipped = clip(line.clone());
            prop_assert!(clipped.chars().count() <= MAX_LEN);
            if line.chars().count() <= MAX_LEN {
                prop_assert_eq!(clipped, line);
            } else {
                prop_assert!(clipped.ends_with("..."));
            }
        }
    }
}
