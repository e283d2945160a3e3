//! Phase two: the links that fit AWS's quotas. Links that stand keep their
//! place (a quota never takes a working link down); new ones take what room
//! is left, those within one region first, each kind in canonical order, so
//! every function reaches the same verdict.

use std::collections::HashMap;

use super::assess::{Assessment, Candidate, Problem};
use super::deployment::{Deployment, Quotas};
use super::router::wanted_routes_at;
use crate::ids::{AccountId, Endpoint, Region, RouteTableId};
use crate::index::{Lookup, WorldIndex};
use crate::model::{PeeringState, World};

/// Admits `candidates` into `out.links` as far as the quotas allow; each one
/// refused is a problem of the deployment's VPCs on either side.
pub(super) fn within_quotas<'w>(
    index: &WorldIndex<'w>,
    deployment: &Deployment,
    out: &mut Assessment,
    candidates: Vec<Candidate<'w>>,
) {
    let mut budget = Budget::new(index.world(), deployment.quotas);
    // Whether each stands (has a live connection tagpeer made), asked once:
    // standing links first; then the links within one region, whose request
    // AWS lists to its accepter at once (another region's lists it seconds
    // later), so that they are accepted, and free their room in the
    // requester's quota of outstanding requests, soonest; each kind in
    // canonical order.
    let mut candidates: Vec<(Candidate, bool)> = candidates
        .into_iter()
        .map(|c| {
            let stands = !index.live_managed_between(c.sides.0, c.sides.1).is_empty();
            (c, stands)
        })
        .collect();
    let across_regions = |c: &Candidate| c.sides.0.region != c.sides.1.region;
    candidates.sort_by(|(x, x_stands), (y, y_stands)| {
        (!x_stands, across_regions(x), x.sides).cmp(&(!y_stands, across_regions(y), y.sides))
    });
    for (candidate, stands) in candidates {
        match budget.admit(index, out, &candidate, stands) {
            Ok(()) => {
                let link = candidate.desired();
                out.links.insert(link.key.clone(), link);
            }
            Err(over) => {
                let (a, b) = candidate.sides;
                for (asker, peer) in [(a, b), (b, a)].into_iter().filter(|(a, _)| a.account == deployment.account) {
                    out.problems.entry(asker.clone()).or_default().push(over.problem(peer));
                }
            }
        }
    }
}

/// What a link would take that a quota has no room for.
enum OverQuota {
    Peerings { vpc: Endpoint, quota: usize },
    Requests { account: AccountId, region: Region, quota: usize },
    Routes { vpc: Endpoint, route_table: RouteTableId, needed: usize, quota: usize },
}

impl OverQuota {
    fn problem(&self, peer: &Endpoint) -> Problem {
        let peer = peer.clone();
        match self {
            OverQuota::Peerings { vpc, quota } => Problem::PeeringQuota { peer, vpc: vpc.clone(), quota: *quota },
            OverQuota::Requests { account, region, quota } => {
                Problem::RequestQuota { peer, account: account.clone(), region: region.clone(), quota: *quota }
            }
            OverQuota::Routes { vpc, route_table, needed, quota } => Problem::RouteQuota {
                peer,
                vpc: vpc.clone(),
                route_table: route_table.clone(),
                needed: *needed,
                quota: *quota,
            },
        }
    }
}

/// What the quotas leave room for: live connections per VPC, requests awaiting
/// acceptance per requesting account and region, routes per table. Keyed by
/// what the world holds, borrowed (only looked up, never walked in order):
/// counting every live connection's two sides would otherwise copy both.
struct Budget<'w> {
    quotas: Quotas,
    peerings: HashMap<&'w Endpoint, usize>,
    outstanding: HashMap<(&'w AccountId, &'w Region), usize>,
    routes: HashMap<&'w RouteTableId, usize>,
}

impl<'w> Budget<'w> {
    fn new(world: &'w World, quotas: Quotas) -> Self {
        let mut peerings: HashMap<&Endpoint, usize> = HashMap::new();
        let mut outstanding: HashMap<(&AccountId, &Region), usize> = HashMap::new();
        for p in world.peerings.iter().filter(|p| p.state.is_live()) {
            *peerings.entry(&p.requester).or_default() += 1;
            *peerings.entry(&p.accepter).or_default() += 1;
            if matches!(p.state, PeeringState::InitiatingRequest | PeeringState::PendingAcceptance) {
                *outstanding.entry((&p.requester.account, &p.requester.region)).or_default() += 1;
            }
        }
        let routes = world.route_tables.iter().map(|t| (&t.id, t.routes.len())).collect();
        Self { quotas, peerings, outstanding, routes }
    }

    /// Takes the link's room, or says what is full. A link that stands is
    /// never refused (a quota must not take a working link down): it holds its
    /// connection already, and the router adds what routes fit.
    fn admit(
        &mut self,
        index: &WorldIndex<'w>,
        assessment: &Assessment,
        link: &Candidate<'w>,
        stands: bool,
    ) -> Result<(), OverQuota> {
        let (a, b) = link.sides;
        let sides = [(a, b), (b, a)];
        let requests = (&link.requester.account, &link.requester.region);
        if !stands {
            for (side, _) in sides {
                if self.peerings.get(side).copied().unwrap_or(0) >= self.quotas.peerings_per_vpc {
                    return Err(OverQuota::Peerings { vpc: side.clone(), quota: self.quotas.peerings_per_vpc });
                }
            }
            if self.outstanding.get(&requests).copied().unwrap_or(0) >= self.quotas.outstanding_requests {
                let (account, region) = (requests.0.clone(), requests.1.clone());
                return Err(OverQuota::Requests { account, region, quota: self.quotas.outstanding_requests });
            }
        }
        let mut needs: Vec<(&RouteTableId, usize)> = Vec::new();
        for (side, other) in sides {
            let Some(peer) = index.vpc(other) else { continue };
            for (table, ranges) in wanted_routes_at(index, assessment, side, peer) {
                let needed = ranges.iter().filter(|r| table.route_to(r).is_none()).count();
                let now = self.routes.get(&table.id).copied().unwrap_or(0);
                if !stands && needed > 0 && now + needed > self.quotas.routes_per_table {
                    return Err(OverQuota::Routes {
                        vpc: side.clone(),
                        route_table: table.id.clone(),
                        needed,
                        quota: self.quotas.routes_per_table,
                    });
                }
                needs.push((&table.id, needed));
            }
        }
        if !stands {
            for (side, _) in sides {
                *self.peerings.entry(side).or_default() += 1;
            }
            *self.outstanding.entry(requests).or_default() += 1;
        }
        for (table, needed) in needs {
            *self.routes.entry(table).or_default() += needed;
        }
        Ok(())
    }
}
