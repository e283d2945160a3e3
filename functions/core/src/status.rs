//! Beside the planner: how each link stands seen from each of its VPCs
//! ([`LinkState`]), and the words of `tagpeer-status`, one line a person can
//! read per VPC ([`statuses`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use ipnet::IpNet;

use crate::ids::{Endpoint, PeeringId, Region, RouteTableId};
use crate::index::{Lookup, WorldIndex};
use crate::intent::{self, TAG_VALUE_MAX};
use crate::model::{LinkKey, PeeringState, Target, Vpc, World};
use crate::plan::{
    dns_blocked_by_at, judge_route_at, retry_at, wanted_routes_at, Action, Assessment, EveryLink, Problem, Retry,
    RouteVerdict, Scope, VpcError,
};

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

/// How one link looks from one of its VPCs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Asked for; no connection yet.
    Requesting,
    /// The last request failed, was rejected, expired or was deleted; the next waits.
    Waiting {
        /// `None` when AWS no longer shows it.
        last: Option<(PeeringId, PeeringState)>,
        attempt: u32,
        seconds: u64,
    },
    Pending(PeeringId),
    /// Active, but routes are still missing on either side.
    Routing {
        peering: PeeringId,
        missing: usize,
        wanted: usize,
    },
    /// A selected route table holds as many routes as the quota allows.
    TableFull {
        peering: PeeringId,
        route_table: RouteTableId,
        quota: usize,
    },
    /// A route to the same destination already goes elsewhere; left alone.
    Conflict {
        peering: PeeringId,
        route_table: RouteTableId,
        destination: IpNet,
        target: Target,
    },
    Ready(PeeringId),
    /// The intent is gone; the connection is being taken down.
    Removing(PeeringId),
    /// The other VPC's tags are malformed: nothing changes until they are fixed.
    Held,
}

/// The state of `key` as it stands in `world`, seen from `side`: routes are
/// counted on that side only, so each VPC's status is the work of its own
/// region's functions, and the two routers never race on one status.
pub fn link_state(world: &World, assessment: &Assessment, key: &LinkKey, side: &Endpoint) -> LinkState {
    link_state_at(world, assessment, key, side)
}

/// [`link_state`], looking things up through `lookup` (a pass's index, or the world).
pub(crate) fn link_state_at<'w>(
    lookup: impl Lookup<'w>,
    assessment: &Assessment,
    key: &LinkKey,
    side: &Endpoint,
) -> LinkState {
    let world = lookup.world();
    if assessment.is_held(key) {
        return LinkState::Held;
    }
    let live = lookup.live_managed(key);
    let Some(kept) = live.first() else {
        return match retry_at(lookup, key) {
            Retry::Later { last, attempt, at } if assessment.links.contains_key(key) => {
                LinkState::Waiting { last, attempt, seconds: at.saturating_sub(world.observed_at) }
            }
            _ => LinkState::Requesting,
        };
    };
    if !assessment.links.contains_key(key) {
        return LinkState::Removing(kept.id.clone());
    }
    if kept.state != PeeringState::Active {
        return LinkState::Pending(kept.id.clone());
    }
    let (mut wanted, mut missing) = (0, 0);
    if let Some(peer) = lookup.vpc(key.other(side)) {
        for (table, ranges) in wanted_routes_at(lookup, assessment, side, peer) {
            for destination in ranges {
                wanted += 1;
                match judge_route_at(lookup, key, kept, table.route_to(&destination)) {
                    RouteVerdict::InPlace => {}
                    RouteVerdict::Missing if table.routes.len() >= assessment.quotas.routes_per_table => {
                        return LinkState::TableFull {
                            peering: kept.id.clone(),
                            route_table: table.id.clone(),
                            quota: assessment.quotas.routes_per_table,
                        }
                    }
                    RouteVerdict::Missing | RouteVerdict::Stale => missing += 1,
                    RouteVerdict::Conflict(target) => {
                        return LinkState::Conflict {
                            peering: kept.id.clone(),
                            route_table: table.id.clone(),
                            destination,
                            target: target.clone(),
                        }
                    }
                }
            }
        }
    }
    if missing > 0 {
        LinkState::Routing { peering: kept.id.clone(), missing, wanted }
    } else {
        LinkState::Ready(kept.id.clone())
    }
}

/// The `tagpeer-status` each VPC in focus should carry, where it differs from
/// what it carries; `None` removes a status that describes nothing any more.
/// `failures` are the errors this invocation met, by link.
///
/// Only the VPCs of `region`: each function speaks for its own region's VPCs.
pub fn statuses(
    world: &World,
    assessment: &Assessment,
    region: &Region,
    scope: &Scope,
    failures: &BTreeMap<LinkKey, String>,
) -> Vec<Action> {
    statuses_at(&WorldIndex::new(world), assessment, region, scope, failures)
}

/// [`statuses`], on an index of the world already built.
pub(crate) fn statuses_at(
    index: &WorldIndex,
    assessment: &Assessment,
    region: &Region,
    scope: &Scope,
    failures: &BTreeMap<LinkKey, String>,
) -> Vec<Action> {
    let links = EveryLink::new(index, assessment);
    let speaks_for = |vpc: &Endpoint| &vpc.region == region && assessment.is_mine(vpc);
    let mut touched: BTreeSet<&Endpoint> = BTreeSet::new();
    // Each VPC's links, in canonical order, for the VPCs whose status this
    // function writes: one walk over the links instead of one per VPC.
    let mut links_of: HashMap<&Endpoint, Vec<&LinkKey>> = HashMap::new();
    for key in links.keys() {
        if !scope.rewrites_every_status() && scope.in_view_at(key, index, assessment) {
            touched.extend([&key.a, &key.b]);
        }
        // Once a VPC, even for a connection from a VPC to itself.
        let sides = if key.a == key.b { &[&key.a][..] } else { &[&key.a, &key.b][..] };
        for side in sides.iter().copied().filter(|side| speaks_for(side)) {
            links_of.entry(side).or_default().push(key);
        }
    }
    let named = scope.named_vpcs(index.world());
    touched.extend(&named);
    let mut actions = Vec::new();
    let in_scope =
        |v: &&Vpc| speaks_for(&v.endpoint) && (scope.rewrites_every_status() || touched.contains(&v.endpoint));
    for vpc in index.world().vpcs.iter().filter(in_scope) {
        let links = links_of.get(&vpc.endpoint).into_iter().flatten().copied();
        let wanted = render_at(index, assessment, links, failures, &vpc.endpoint);
        let line = wanted.as_ref().map(|w| w.line.as_str());
        if line != vpc.status() {
            let reports_error = wanted.as_ref().is_some_and(|w| w.reports_error);
            actions.push(Action::SetStatus {
                vpc: vpc.endpoint.clone(),
                status: wanted.map(|w| w.line),
                reports_error,
            });
        }
    }
    actions
}

/// The links in `focus` whose side in `region` is ready in `after` and was
/// not in `before`: the "Link Ready" outcomes of an invocation.
pub fn newly_ready(
    before: &World,
    after: &World,
    assessment: &Assessment,
    region: &Region,
    scope: &Scope,
) -> Vec<(LinkKey, Endpoint, PeeringId)> {
    let mut ready = Vec::new();
    let (in_before, in_after) = (WorldIndex::new(before), WorldIndex::new(after));
    let links = EveryLink::new(&in_after, assessment);
    for key in links.keys().filter(|k| scope.in_view_at(k, &in_after, assessment)) {
        for side in [&key.a, &key.b] {
            if &side.region != region || !assessment.is_mine(side) {
                continue;
            }
            if let LinkState::Ready(peering) = link_state_at(&in_after, assessment, key, side) {
                if link_state_at(&in_before, assessment, key, side) != LinkState::Ready(peering.clone()) {
                    ready.push((key.clone(), side.clone(), peering));
                }
            }
        }
    }
    ready
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Requesting => f.write_str("requesting"),
            LinkState::Waiting { last, attempt, seconds } => {
                match last {
                    Some((id, PeeringState::Deleted)) => write!(f, "{id} was deleted")?,
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

/// A VPC's status line, and whether it reports an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusLine {
    pub line: String,
    pub reports_error: bool,
}

/// What every error in a status line starts with.
const ERROR: &str = "error: ";

/// The status line for `vpc`: its errors first, then each of its links.
/// `None` when the VPC has no intent and no link, so there is nothing to say.
pub fn render(
    world: &World,
    assessment: &Assessment,
    links: &BTreeSet<LinkKey>,
    failures: &BTreeMap<LinkKey, String>,
    vpc: &Endpoint,
) -> Option<StatusLine> {
    render_at(world, assessment, links.iter().filter(|k| k.has(vpc)), failures, vpc)
}

/// [`render`] from `links`, the links of `vpc` in canonical order, looking
/// things up through `lookup` (a pass's index, or the world).
fn render_at<'w, 'k>(
    lookup: impl Lookup<'w>,
    assessment: &Assessment,
    links: impl Iterator<Item = &'k LinkKey>,
    failures: &BTreeMap<LinkKey, String>,
    vpc: &Endpoint,
) -> Option<StatusLine> {
    if let Some(errors) = assessment.held.get(vpc) {
        let parts: Vec<String> = errors.iter().map(|e| format!("{ERROR}{e}")).collect();
        return Some(StatusLine { line: clip(parts.join("; ")), reports_error: true });
    }
    let mut parts: Vec<String> =
        assessment.problems.get(vpc).into_iter().flatten().map(|p| format!("{ERROR}{p}")).collect();
    let reports_error = !parts.is_empty();
    for key in links {
        let peer = key.other(vpc).relative_to(vpc);
        let mut state = link_state_at(lookup, assessment, key, vpc).to_string();
        if assessment.intent_of(vpc).dns {
            if let Some(lacking) = dns_blocked_by_at(lookup, key) {
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
        let has_intent = lookup.vpc(vpc).is_some_and(|v| intent::has_intent_tags(&v.tags));
        return has_intent.then(|| StatusLine { line: "no links".to_owned(), reports_error: false });
    }
    Some(StatusLine { line: clip(parts.join("; ")), reports_error })
}

/// Cuts a line to what a tag value holds, marking the cut.
pub fn clip(line: String) -> String {
    if line.chars().count() <= TAG_VALUE_MAX {
        return line;
    }
    let mut cut: String = line.chars().take(TAG_VALUE_MAX - 3).collect();
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
            prop_assert!(clipped.chars().count() <= TAG_VALUE_MAX);
            if line.chars().count() <= TAG_VALUE_MAX {
                prop_assert_eq!(clipped, line);
            } else {
                prop_assert!(clipped.ends_with("..."));
            }
        }
    }
}
