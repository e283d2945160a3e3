//! The router's steps: every selected route table of each side in reach
//! routes the peer's ranges through the link's kept connection; tagpeer's
//! routes whose link, connection, range or table is gone are removed; each
//! side's DNS option follows the other side's `tagpeer:dns`.

use std::collections::{BTreeMap, HashMap, HashSet};

use ipnet::IpNet;

use super::{Action, Assessment, Context, LinkView, Reach};
use crate::ids::{Endpoint, PeeringId, RouteTableId};
use crate::index::Lookup;
use crate::intent::RouteTables;
use crate::model::{LinkKey, Peering, PeeringState, Route, RouteTable, Target, Vpc, World};

/// The ranges `side` routes to its peer through the link, by route table.
pub fn wanted_routes<'w>(
    world: &'w World,
    assessment: &Assessment,
    side: &'w Endpoint,
    peer: &Vpc,
) -> Vec<(&'w RouteTable, Vec<IpNet>)> {
    wanted_routes_at(world, assessment, side, peer)
}

/// [`wanted_routes`], looking things up through `lookup` (a pass's index, or the world).
pub(crate) fn wanted_routes_at<'w>(
    lookup: impl Lookup<'w>,
    assessment: &Assessment,
    side: &Endpoint,
    peer: &Vpc,
) -> Vec<(&'w RouteTable, Vec<IpNet>)> {
    let intent = assessment.intent_of(side);
    let mut ranges = peer.ipv4.clone();
    if intent.ipv6 {
        ranges.extend(&peer.ipv6);
    }
    lookup
        .route_tables_of(side)
        .filter(|t| match &intent.route_tables {
            RouteTables::All => true,
            RouteTables::Main => t.main,
            RouteTables::Ids(ids) => ids.contains(&t.id),
        })
        .map(|t| (t, ranges.clone()))
        .collect()
}

/// The VPC of `key` known to lack DNS hostnames or DNS resolution, which
/// resolving names across the link needs in both (AWS refuses the option).
pub fn dns_blocked_by<'w>(world: &'w World, key: &LinkKey) -> Option<&'w Endpoint> {
    dns_blocked_by_at(world, key)
}

/// [`dns_blocked_by`], looking things up through `lookup` (a pass's index, or the world).
pub(crate) fn dns_blocked_by_at<'w>(lookup: impl Lookup<'w>, key: &LinkKey) -> Option<&'w Endpoint> {
    [&key.a, &key.b].into_iter().find_map(|e| lookup.vpc(e).filter(|v| v.lacks_dns()).map(|v| &v.endpoint))
}

/// What the route a table has for one of the link's destinations means.
pub enum RouteVerdict<'w> {
    /// Through the link's kept connection.
    InPlace,
    /// No route to the destination.
    Missing,
    /// tagpeer's own route through a connection of this link that is not kept,
    /// or through a managed connection that no longer stands: replaced.
    Stale,
    /// Anything else's route: never touched (invariant 3).
    Conflict(&'w Target),
}

pub fn judge_route<'w>(world: &World, key: &LinkKey, kept: &Peering, route: Option<&'w Route>) -> RouteVerdict<'w> {
    judge_route_at(world, key, kept, route)
}

/// [`judge_route`], looking things up through `lookup` (a pass's index, or the world).
pub(crate) fn judge_route_at<'r, 'w>(
    lookup: impl Lookup<'w>,
    key: &LinkKey,
    kept: &Peering,
    route: Option<&'r Route>,
) -> RouteVerdict<'r> {
    let Some(route) = route else { return RouteVerdict::Missing };
    let Target::Peering(id) = &route.target else { return RouteVerdict::Conflict(&route.target) };
    if id == &kept.id {
        return RouteVerdict::InPlace;
    }
    match lookup.peering(id) {
        Some(p) if p.is_managed() && (p.is_of(key) || !p.state.is_live()) => RouteVerdict::Stale,
        _ => RouteVerdict::Conflict(&route.target),
    }
}

/// The route changes the router has planned so far in one pass, which later
/// links' steps depend on: counted as they are planned, so that each step
/// asks a count rather than every action planned before it (which made a
/// first sweep's routing grow with the square of the links).
#[derive(Default)]
pub(super) struct Planned<'w> {
    /// How many `CreateRoute`s each route table (by id) is to get.
    created: HashMap<&'w RouteTableId, usize>,
    /// The `ReplaceRoute`s planned, by route table id and destination.
    replaced: HashSet<(&'w RouteTableId, IpNet)>,
}

pub(super) fn plan<'a>(at: &Context<'a>, link: &LinkView, actions: &mut Vec<Action>, planned: &mut Planned<'a>) {
    let Context { index, assessment, region, scope } = *at;
    let (key, desired, live) = (link.key, link.desired, &link.live);
    // This account's sides the scope reaches: in this region, or in every one.
    let sides = |reach: Reach| -> Vec<&Endpoint> {
        [&key.a, &key.b]
            .into_iter()
            .filter(|s| assessment.is_mine(s) && (reach == Reach::Account || &s.region == region))
            .collect()
    };
    let (route_sides, option_sides) = (sides(scope.routes), sides(scope.options));
    let kept = live.first().filter(|p| desired.is_some() && p.state == PeeringState::Active);
    for &side in &option_sides {
        let region = &side.region;
        // This side lets the other resolve its names when the other asks for it
        // (`tagpeer:dns=on` there).
        if let Some(kept) = kept {
            let requester_side = &kept.requester == side;
            let on = assessment.intent_of(key.other(side)).dns && dns_blocked_by_at(index, key).is_none();
            let now = if requester_side { kept.dns.requester } else { kept.dns.accepter };
            if on != now {
                actions.push(Action::SetDns {
                    link: key.clone(),
                    region: region.clone(),
                    peering: kept.id.clone(),
                    requester_side,
                    on,
                });
            }
        }
    }
    for &side in &route_sides {
        let region = &side.region;
        // Routes this side should have, by table.
        let mut wanted: BTreeMap<&RouteTableId, Vec<IpNet>> = BTreeMap::new();
        if let (Some(kept), Some(peer)) = (kept, index.vpc(key.other(side))) {
            for (table, ranges) in wanted_routes_at(index, assessment, side, peer) {
                for destination in &ranges {
                    let (link, region, route_table, destination, peering) =
                        (key.clone(), region.clone(), table.id.clone(), *destination, kept.id.clone());
                    match judge_route_at(index, key, kept, table.route_to(&destination)) {
                        RouteVerdict::InPlace | RouteVerdict::Conflict(_) => {} // a conflict is reported, left as it is
                        RouteVerdict::Missing => {
                            // A full table gets no more (the status says so).
                            let created = planned.created.entry(&table.id).or_default();
                            if table.routes.len() + *created < assessment.quotas.routes_per_table {
                                *created += 1;
                                actions.push(Action::CreateRoute { link, region, route_table, destination, peering })
                            }
                        }
                        RouteVerdict::Stale => {
                            planned.replaced.insert((&table.id, destination));
                            actions.push(Action::ReplaceRoute { link, region, route_table, destination, peering })
                        }
                    }
                }
                wanted.insert(&table.id, ranges);
            }
        }
        // tagpeer's routes on this side through any of this link's connections
        // that are not wanted: the link is gone, the connection is not the one
        // kept, or the range or the table is no longer selected. A route whose
        // target is none of the link's connections' ids cannot be one of them
        // (the first connection with its id is not of this link), so only
        // those are looked up: a table holds up to 50 routes, most to other links.
        let ours: Vec<&PeeringId> = index.connections_of(key).map(|p| &p.id).collect();
        for table in index.route_tables_of(side) {
            for route in &table.routes {
                let Target::Peering(id) = &route.target else { continue };
                if !ours.contains(&id) {
                    continue;
                }
                let Some(peering) = index.peering(id) else { continue };
                if !peering.is_of(key) || !peering.is_managed() {
                    continue;
                }
                let keep = kept.is_some_and(|k| &k.id == id)
                    && wanted.get(&table.id).is_some_and(|r| r.contains(&route.destination));
                let replaced = planned.replaced.contains(&(&table.id, route.destination));
                if !keep && !replaced {
                    actions.push(Action::DeleteRoute {
                        link: key.clone(),
                        region: region.clone(),
                        route_table: table.id.clone(),
                        destination: route.destination,
                    });
                }
            }
        }
    }
}
