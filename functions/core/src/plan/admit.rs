//! Phase two: the links that fit AWS's quotas. Links that stand keep their
//! place (a quota never takes a working link down); new ones take what room
//! is left, in canonical order, so every function reaches the same verdict.

use std::collections::BTreeMap;

use super::assess::{Assessment, DesiredLink, Problem};
use super::deployment::{Deployment, Quotas};
use super::router::wanted_routes;
use crate::ids::{AccountId, Endpoint, Region, RouteTableId};
use crate::model::{PeeringState, World};

/// Admits `candidates` into `out.links` as far as the quotas allow; each one
/// refused is a problem of the deployment's VPCs on either side.
pub(super) fn within_quotas(
    world: &World,
    deployment: &Deployment,
    out: &mut Assessment,
    mut candidates: Vec<DesiredLink>,
) {
    let mut budget = Budget::new(world, deployment.quotas);
    candidates.sort_by_key(|l| (world.live_managed(&l.key).is_empty(), l.key.clone()));
    for link in candidates {
        let key = link.key.clone();
        let stands = !world.live_managed(&key).is_empty();
        match budget.admit(world, out, &link, stands) {
            Ok(()) => {
                out.links.insert(key, link);
            }
            Err(over) => {
                for asker in [&key.a, &key.b].into_iter().filter(|a| a.account == deployment.account) {
                    out.problems.entry(asker.clone()).or_default().push(over.problem(key.other(asker)));
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
/// acceptance per requesting account and region, routes per table.
struct Budget {
    quotas: Quotas,
    peerings: BTreeMap<Endpoint, usize>,
    outstanding: BTreeMap<(AccountId, Region), usize>,
    routes: BTreeMap<RouteTableId, usize>,
}

impl Budget {
    fn new(world: &World, quotas: Quotas) -> Self {
        let mut peerings: BTreeMap<Endpoint, usize> = BTreeMap::new();
        let mut outstanding: BTreeMap<(AccountId, Region), usize> = BTreeMap::new();
        for p in world.peerings.iter().filter(|p| p.state.is_live()) {
            *peerings.entry(p.requester.clone()).or_default() += 1;
            *peerings.entry(p.accepter.clone()).or_default() += 1;
            if matches!(p.state, PeeringState::InitiatingRequest | PeeringState::PendingAcceptance) {
                *outstanding.entry((p.requester.account.clone(), p.requester.region.clone())).or_default() += 1;
            }
        }
        let routes = world.route_tables.iter().map(|t| (t.id.clone(), t.routes.len())).collect();
        Self { quotas, peerings, outstanding, routes }
    }

    /// Takes the link's room, or says what is full. A link that stands is
    /// never refused (a quota must not take a working link down): it holds its
    /// connection already, and the router adds what routes fit.
    fn admit(
        &mut self,
        world: &World,
        assessment: &Assessment,
        link: &DesiredLink,
        stands: bool,
    ) -> Result<(), OverQuota> {
        let key = &link.key;
        let sides = [(&key.a, &key.b), (&key.b, &key.a)];
        let requests = (link.requester.account.clone(), link.requester.region.clone());
        if !stands {
            for (side, _) in sides {
                if self.peerings.get(side).copied().unwrap_or(0) >= self.quotas.peerings_per_vpc {
                    return Err(OverQuota::Peerings { vpc: side.clone(), quota: self.quotas.peerings_per_vpc });
                }
            }
            if self.outstanding.get(&requests).copied().unwrap_or(0) >= self.quotas.outstanding_requests {
                let (account, region) = requests;
                return Err(OverQuota::Requests { account, region, quota: self.quotas.outstanding_requests });
            }
        }
        let mut needs: Vec<(&RouteTableId, usize)> = Vec::new();
        for (side, other) in sides {
            let Some(peer) = world.vpc(other) else { continue };
            for (table, ranges) in wanted_routes(world, assessment, side, peer) {
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
                *self.peerings.entry(side.clone()).or_default() += 1;
            }
            *self.outstanding.entry(requests).or_default() += 1;
        }
        for (table, needed) in needs {
            *self.routes.entry(table.clone()).or_default() += needed;
        }
        Ok(())
    }
}
