//! DESIGN.md's invariants, checked on a converged [`World`]. Pure, so the unit
//! tests of the planner and the end-to-end tests on moto use the same checker.

use crate::model::{PeeringState, Target, World};
use crate::plan::{self, Assessment, Deployment, LinkKey, LinkState};

/// Every way the world breaks an invariant, in words; empty when it holds.
pub fn violations(world: &World, deployment: &Deployment) -> Vec<String> {
    let assessment = plan::assess(world, deployment);
    let mut found = Vec::new();
    links_have_one_connection(world, &assessment, &mut found);
    routes_are_in_place(world, &assessment, &mut found);
    routes_point_at_live_connections(world, &mut found);
    dns_options_follow_intent(world, &assessment, &mut found);
    found
}

/// Each side of an active link lets the other resolve its names exactly when
/// the other asks for it (`tagpeer:dns=on`).
fn dns_options_follow_intent(world: &World, assessment: &Assessment, found: &mut Vec<String>) {
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        let kept =
            world.peerings.iter().find(|p| p.is_managed() && p.state == PeeringState::Active && &LinkKey::of(p) == key);
        let Some(p) = kept else { continue };
        for (side, now) in [(&p.requester, p.dns.requester), (&p.accepter, p.dns.accepter)] {
            let wanted = assessment.intent(key.other(side)).dns && crate::plan::dns_blocked_by(world, key).is_none();
            if wanted != now {
                found.push(format!("{key}: DNS resolution from {side}'s peer is {now}, asked {wanted}"));
            }
        }
    }
}

/// Invariant 1: each link asked for has exactly one live connection; a link nobody asks
/// for has none.
fn links_have_one_connection(world: &World, assessment: &Assessment, found: &mut Vec<String>) {
    for peering in world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live()) {
        let key = LinkKey::of(peering);
        if !assessment.links.contains_key(&key) && !assessment.is_held(&key) {
            found.push(format!("{} stands for {key}, which nobody asks for", peering.id));
        }
    }
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        let live = plan::live_managed(world, key);
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
fn routes_are_in_place(world: &World, assessment: &Assessment, found: &mut Vec<String>) {
    for key in assessment.links.keys().filter(|k| !assessment.is_held(k)) {
        for side in [&key.a, &key.b] {
            match plan::link_state(world, assessment, key, side) {
                LinkState::Ready(_) | LinkState::Conflict { .. } => {}
                other => found.push(format!("{key} is not ready on {side}'s side: {other}")),
            }
        }
    }
}

/// Invariant 5: no route points at a connection tagpeer manages that no longer stands.
fn routes_point_at_live_connections(world: &World, found: &mut Vec<String>) {
    for table in &world.route_tables {
        for route in &table.routes {
            let Target::Peering(id) = &route.target else { continue };
            if let Some(p) = world.peering(id) {
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
