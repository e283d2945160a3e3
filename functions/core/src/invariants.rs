//! The invariants of `docs/DESIGN.md`, checked on a converged [`World`]
//! ([`violations`]: 1, 2, 5 and 6, and the DNS options) and on what changed
//! since a world before ([`violations_since`]: 3 and 4). Pure, so the unit
//! tests of the planner and the end-to-end tests use the same checker.

use crate::ids::PeeringId;
use crate::index::{Lookup, WorldIndex};
use crate::model::{LinkKey, PeeringState, Target, World};
use crate::plan::{self, Assessment, Deployment};
use crate::status::{self, LinkState};

/// Every way the world breaks an invariant, in words; empty when it holds.
pub fn violations(world: &World, deployment: &Deployment) -> Vec<String> {
    let assessment = plan::assess(world, deployment);
    let index = WorldIndex::new(world);
    let mut found = Vec::new();
    links_have_one_connection(&index, &assessment, &mut found);
    routes_are_in_place(&index, &assessment, &mut found);
    routes_point_at_live_connections(&index, &mut found);
    dns_options_follow_intent(&index, &assessment, &mut found);
    bad_input_is_reported(world, &assessment, deployment, &mut found);
    found
}

/// Every way the change from `before` to `after` breaks invariant 3 (routes
/// tagpeer does not manage are never created, replaced or deleted) or 4
/// (nothing is accepted without consent), and every violation of `after`.
/// `before` is a world from before tagpeer acted (a test's starting point):
/// what the test itself changed in between must be tagpeer-made, or these
/// checks would blame tagpeer for it.
pub fn violations_since(before: &World, after: &World, deployment: &Deployment) -> Vec<String> {
    let mut found = violations(after, deployment);
    found.extend(changes_violating(before, after, deployment));
    found
}

/// Invariants 3 and 4 alone, for a test whose end is not converged by design
/// (a link that waits for consent, a network built with no workflow run).
pub fn changes_violating(before: &World, after: &World, deployment: &Deployment) -> Vec<String> {
    let mut found = Vec::new();
    other_routes_untouched(before, after, &mut found);
    only_consented_acceptances(before, after, deployment, &mut found);
    found
}

/// Invariant 3: every route of `before` whose target is not a peering
/// connection tagpeer manages is in `after` as it was.
fn other_routes_untouched(before: &World, after: &World, found: &mut Vec<String>) {
    let (in_before, in_after) = (WorldIndex::new(before), WorldIndex::new(after));
    let managed = |id: &PeeringId| in_before.peering(id).or(in_after.peering(id)).is_some_and(|p| p.is_managed());
    for table in &before.route_tables {
        let Some(now) = in_after.route_tables_of(&table.vpc).find(|t| t.id == table.id) else { continue };
        for route in &table.routes {
            if matches!(&route.target, Target::Peering(id) if managed(id)) {
                continue;
            }
            if now.route_to(&route.destination) != Some(route) {
                let became = now.route_to(&route.destination).map(|r| r.target.to_string());
                found.push(format!(
                    "{} routed {} via {}, which tagpeer does not manage; now {}",
                    table.id,
                    route.destination,
                    route.target,
                    became.as_deref().unwrap_or("no route")
                ));
            }
        }
    }
}

/// Invariant 4: a connection to one of this deployment's VPCs that was
/// accepted since `before` belongs to a link the deployment consents to.
fn only_consented_acceptances(before: &World, after: &World, deployment: &Deployment, found: &mut Vec<String>) {
    let assessment = plan::assess(after, deployment);
    let in_before = WorldIndex::new(before);
    let accepted = |s: &PeeringState| matches!(s, PeeringState::Provisioning | PeeringState::Active);
    for p in after.peerings.iter().filter(|p| deployment.is_home(&p.accepter) && accepted(&p.state)) {
        let was_accepted = in_before.peering(&p.id).is_some_and(|q| accepted(&q.state));
        if !was_accepted && !assessment.links.contains_key(&LinkKey::of(p)) {
            found.push(format!("{} was accepted for {}, which nobody consented to", p.id, LinkKey::of(p)));
        }
    }
}

/// Invariant 6: every VPC of the deployment whose tags are malformed, or whose
/// references make no link, says so in its `tagpeer-status`, its first error first.
fn bad_input_is_reported(world: &World, assessment: &Assessment, deployment: &Deployment, found: &mut Vec<String>) {
    for vpc in world.vpcs.iter().filter(|v| deployment.is_home(&v.endpoint)) {
        let first = match (assessment.held.get(&vpc.endpoint), assessment.problems.get(&vpc.endpoint)) {
            (Some(errors), _) => errors.first().map(ToString::to_string),
            (None, Some(problems)) => problems.first().map(ToString::to_string),
            (None, None) => None,
        };
        let Some(first) = first else { continue };
        let expected = status::clip(format!("error: {first}"));
        // A line cut to fit the tag ends in "...": compare what fits.
        let fits: String = expected.trim_end_matches("...").to_owned();
        if !vpc.status().is_some_and(|s| s.starts_with(&fits)) {
            found.push(format!(
                "{}'s status does not report its error {expected:?}: {:?}",
                vpc.endpoint,
                vpc.status().unwrap_or("(none)")
            ));
        }
    }
}

/// Each side of an active link lets the other resolve its names exactly when
/// the other asks for it (`tagpeer:dns=on`).
fn dns_options_follow_intent(index: &WorldIndex, assessment: &Assessment, found: &mut Vec<String>) {
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        let kept = index.connections_of(key).find(|p| p.state == PeeringState::Active && p.is_managed());
        let Some(p) = kept else { continue };
        for (side, now) in [(&p.requester, p.dns.requester), (&p.accepter, p.dns.accepter)] {
            let wanted =
                assessment.intent_of(key.other(side)).dns && crate::plan::dns_blocked_by_at(index, key).is_none();
            if wanted != now {
                found.push(format!("{key}: DNS resolution from {side}'s peer is {now}, asked {wanted}"));
            }
        }
    }
}

/// Invariant 1: each link asked for has exactly one live connection; a link nobody asks
/// for has none.
fn links_have_one_connection(index: &WorldIndex, assessment: &Assessment, found: &mut Vec<String>) {
    for peering in index.live_managed_all() {
        let key = LinkKey::of(peering);
        if !assessment.links.contains_key(&key) && !assessment.is_held(&key) {
            found.push(format!("{} stands for {key}, which nobody asks for", peering.id));
        }
    }
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        let live = index.live_managed(key);
        if live.len() != 1 {
            let ids: Vec<&str> = live.iter().map(|p| p.id.as_str()).collect();
            found.push(format!("{key} has {} live connections: {ids:?}", live.len()));
        }
        if let Some(p) = live.first() {
            if p.state != PeeringState::Active {
                found.push(format!("{key}: {} is {}, not active", p.id, p.state.code()));
            }
        }
    }
}

/// Invariant 2: each selected route table of each side of an active link routes each of
/// the peer's ranges through the link's connection (a conflict is reported
/// instead, and is not a violation of tagpeer's).
fn routes_are_in_place(index: &WorldIndex, assessment: &Assessment, found: &mut Vec<String>) {
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        for side in [&key.a, &key.b] {
            match status::link_state_at(index, assessment, key, side) {
                LinkState::Ready(_) | LinkState::Conflict { .. } => {}
                other => found.push(format!("{key} is not ready on {side}'s side: {other}")),
            }
        }
    }
}

/// Invariant 5: no route points at a connection tagpeer manages that no longer stands.
fn routes_point_at_live_connections(index: &WorldIndex, found: &mut Vec<String>) {
    for table in &index.world().route_tables {
        for route in &table.routes {
            let Target::Peering(id) = &route.target else { continue };
            if let Some(p) = index.peering(id) {
                if p.is_managed() && !p.state.is_live() {
                    found.push(format!(
                        "{} routes {} via {id}, which is {}",
                        table.id,
                        route.destination,
                        p.state.code()
                    ));
                }
            }
        }
    }
}
