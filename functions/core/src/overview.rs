//! The deployment at a glance: every link asked for or still standing, each
//! with one [`Health`] ([`links`]); the figures a region's router publishes as
//! metrics ([`RegionGauges`], [`QuotaUse`]); what `tagpeer graph` draws
//! (`crate::graph`) rests on the same summaries.
//!
//! A link is counted once, in the region of the side that requests it, so
//! that a sum over a deployment's regions counts every link once.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{Endpoint, PeeringId, Region, RouteTableId};
use crate::index::{Lookup, WorldIndex};
use crate::intent::VpcRef;
use crate::model::{LinkKey, World};
use crate::plan::{Assessment, EveryLink, Problem};
use crate::status::{link_state_at, LinkState};

/// How a link stands, both sides taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Active, and every selected route table on both sides routes the peer.
    Ready,
    /// On its way: requesting, pending acceptance, routing, or waiting for
    /// room under the outstanding-requests quota.
    Pending,
    /// Cannot come up as it is asked: a failed or ended request waiting for
    /// its retry, a full route table, overlapping ranges, a quota, a
    /// connection tagpeer did not make, malformed tags, a reference to no VPC.
    Failing,
    /// Active, but a route to the peer's range already goes elsewhere on one
    /// side; tagpeer leaves it alone.
    Conflict,
    /// Across accounts, the accepter's `tagpeer:accept` (or the deployment's
    /// allowed accounts) does not name the requester.
    AwaitingConsent,
    /// The intent is gone; the connection is being taken down.
    Removing,
}

impl Health {
    /// The word a person reads (the graph's labels, `--json`).
    pub fn word(self) -> &'static str {
        match self {
            Health::Ready => "ready",
            Health::Pending => "pending",
            Health::Failing => "failing",
            Health::Conflict => "conflict",
            Health::AwaitingConsent => "waiting for consent",
            Health::Removing => "removing",
        }
    }

    /// Still asked for: everything but a link being removed.
    pub fn is_wanted(self) -> bool {
        self != Health::Removing
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One link as the deployment sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSummary {
    pub key: LinkKey,
    /// The side that requests (or requested) the connection.
    pub requester: Endpoint,
    pub health: Health,
    /// Its connection, when one stands.
    pub peering: Option<PeeringId>,
    /// Why it stands so, in the words of `tagpeer-status`.
    pub detail: String,
    /// When its connection was requested (`tagpeer-requested-at`), when known.
    pub requested_at: Option<u64>,
}

/// Every link asked for or standing, in canonical order, then every
/// reference that makes no link (to a VPC that does not exist, say), as a
/// failing link to what it names.
pub fn links(world: &World, assessment: &Assessment) -> Vec<LinkSummary> {
    let mut out: BTreeMap<LinkKey, LinkSummary> = BTreeMap::new();
    let index = WorldIndex::new(world);
    for (key, desired) in EveryLink::new(&index, assessment).iter() {
        let live = index.live_managed(key);
        let kept = live.first();
        let requester = match (desired, kept) {
            (Some(desired), _) => desired.requester.clone(),
            (None, Some(p)) => p.requester.clone(),
            (None, None) => key.a.clone(),
        };
        let states = [link_state_at(&index, assessment, key, &key.a), link_state_at(&index, assessment, key, &key.b)];
        let worst = states.iter().max_by_key(|s| rank(s)).expect("two sides");
        out.insert(
            key.clone(),
            LinkSummary {
                health: health_of(worst),
                detail: worst.to_string(),
                peering: kept.map(|p| p.id.clone()),
                requested_at: kept.map(|p| p.requested_at()).filter(|at| *at > 0),
                requester,
                key: key.clone(),
            },
        );
    }
    for (vpc, problems) in &assessment.problems {
        for problem in problems {
            let Some((peer, requester, health)) = problem_link(vpc, problem) else { continue };
            let key = LinkKey::new(vpc.clone(), peer);
            out.entry(key.clone()).or_insert_with(|| LinkSummary {
                key,
                requester,
                health,
                peering: None,
                detail: problem.to_string(),
                requested_at: None,
            });
        }
    }
    out.into_values().collect()
}

/// The link a problem of `vpc` stands for: its other side, its requester, its health.
fn problem_link(vpc: &Endpoint, problem: &Problem) -> Option<(Endpoint, Endpoint, Health)> {
    let named = |reference: &VpcRef| {
        Endpoint::new(
            reference.account.clone().unwrap_or_else(|| vpc.account.clone()),
            reference.region.clone().unwrap_or_else(|| vpc.region.clone()),
            reference.vpc_id.clone(),
        )
    };
    let asked = |peer: &Endpoint, health| Some((peer.clone(), vpc.clone(), health));
    match problem {
        Problem::SelfReference { .. } => None,
        Problem::UnknownRegion { reference, .. }
        | Problem::UnknownVpc { reference, .. }
        | Problem::AccountNotAllowed { reference, .. }
        | Problem::Unreadable { reference, .. } => Some((named(reference), vpc.clone(), Health::Failing)),
        Problem::NoConsent { peer, requester, .. } => Some((peer.clone(), requester.clone(), Health::AwaitingConsent)),
        Problem::RequestQuota { peer, .. } => asked(peer, Health::Pending),
        Problem::Overlap { peer, .. }
        | Problem::UnmanagedPeering { peer, .. }
        | Problem::PeeringQuota { peer, .. }
        | Problem::RouteQuota { peer, .. } => asked(peer, Health::Failing),
    }
}

/// Which side's state speaks for the link: the one furthest from ready.
fn rank(state: &LinkState) -> u8 {
    match state {
        LinkState::Ready(_) => 0,
        LinkState::Routing { .. } => 1,
        LinkState::Pending(_) => 2,
        LinkState::Requesting => 3,
        LinkState::Removing(_) => 4,
        LinkState::Conflict { .. } => 5,
        LinkState::TableFull { .. } | LinkState::Waiting { .. } => 6,
        LinkState::Held => 7,
    }
}

fn health_of(state: &LinkState) -> Health {
    match state {
        LinkState::Ready(_) => Health::Ready,
        LinkState::Requesting | LinkState::Pending(_) | LinkState::Routing { .. } => Health::Pending,
        LinkState::Conflict { .. } => Health::Conflict,
        LinkState::Waiting { .. } | LinkState::TableFull { .. } | LinkState::Held => Health::Failing,
        LinkState::Removing(_) => Health::Removing,
    }
}

/// What a region's router publishes on every invocation: the links whose
/// requester side is this deployment's in this region, by health, and the
/// highest quota use among the region's VPCs and route tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionGauges {
    pub wanted: usize,
    pub ready: usize,
    pub pending: usize,
    /// Failing and conflicting links.
    pub failing: usize,
    pub awaiting_consent: usize,
    /// This region's link sides held back by a route that goes elsewhere.
    pub route_conflicts: usize,
    /// The longest a pending or failing link has waited since its
    /// connection was requested; 0 when none has.
    pub oldest_pending_seconds: u64,
    /// Percent of the per-VPC peering quota used, the highest in the region.
    pub peering_quota_use: f64,
    /// Percent of the per-table route quota used, the highest in the region.
    pub route_quota_use: f64,
}

/// One VPC's or one route table's use of its quota.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaUse<Id> {
    pub id: Id,
    pub vpc: Endpoint,
    pub used: usize,
    pub quota: usize,
}

impl<Id> QuotaUse<Id> {
    pub fn percent(&self) -> f64 {
        if self.quota == 0 {
            return 100.0;
        }
        self.used as f64 * 100.0 / self.quota as f64
    }
}

/// The region's gauges, from the deployment's links (see [`links`]).
pub fn region_gauges(
    world: &World,
    assessment: &Assessment,
    summaries: &[LinkSummary],
    region: &Region,
) -> RegionGauges {
    let mut g = RegionGauges::default();
    let counted = |l: &&LinkSummary| &l.requester.region == region && assessment.is_mine(&l.requester);
    for link in summaries.iter().filter(counted).filter(|l| l.health.is_wanted()) {
        g.wanted += 1;
        match link.health {
            Health::Ready => g.ready += 1,
            Health::Pending => g.pending += 1,
            Health::Failing | Health::Conflict => g.failing += 1,
            Health::AwaitingConsent => g.awaiting_consent += 1,
            Health::Removing => {}
        }
        if matches!(link.health, Health::Pending | Health::Failing | Health::Conflict) {
            if let Some(at) = link.requested_at {
                g.oldest_pending_seconds = g.oldest_pending_seconds.max(world.observed_at.saturating_sub(at));
            }
        }
    }
    let conflicts: Vec<&LinkSummary> = summaries.iter().filter(|l| l.health == Health::Conflict).collect();
    // An index only when there is something to look up: the router publishes
    // these gauges on every invocation, and conflicts are rare.
    if !conflicts.is_empty() {
        let index = WorldIndex::new(world);
        for link in conflicts {
            for side in [&link.key.a, &link.key.b] {
                if &side.region == region
                    && assessment.is_mine(side)
                    && matches!(link_state_at(&index, assessment, &link.key, side), LinkState::Conflict { .. })
                {
                    g.route_conflicts += 1;
                }
            }
        }
    }
    let (vpcs, tables) = quota_use(world, assessment, region);
    g.peering_quota_use = vpcs.iter().map(QuotaUse::percent).fold(0.0, f64::max);
    g.route_quota_use = tables.iter().map(QuotaUse::percent).fold(0.0, f64::max);
    g
}

/// Whether `region` has anything of this deployment's to gauge: a side of
/// a link asked for, or of a connection tagpeer manages, in this account.
pub fn has_links_in(world: &World, assessment: &Assessment, region: &Region) -> bool {
    let here = |side: &Endpoint| &side.region == region && assessment.is_mine(side);
    assessment.links.keys().any(|k| here(&k.a) || here(&k.b))
        || world
            .peerings
            .iter()
            .any(|p| p.is_managed() && p.state.is_live() && (here(&p.requester) || here(&p.accepter)))
}

/// Each of this region's VPCs that has a live peering connection (any, not
/// only tagpeer's: AWS's quota counts them all), and each route table of
/// such a VPC or of a VPC with tagpeer intent, with what it uses.
#[allow(clippy::type_complexity)]
pub fn quota_use(
    world: &World,
    assessment: &Assessment,
    region: &Region,
) -> (Vec<QuotaUse<Endpoint>>, Vec<QuotaUse<RouteTableId>>) {
    let mut peerings: BTreeMap<&Endpoint, usize> = BTreeMap::new();
    for p in world.peerings.iter().filter(|p| p.state.is_live()) {
        for side in [&p.requester, &p.accepter] {
            *peerings.entry(side).or_default() += 1;
        }
    }
    let mine = |vpc: &Endpoint| &vpc.region == region && assessment.is_mine(vpc);
    let vpcs: Vec<QuotaUse<Endpoint>> = peerings
        .iter()
        .filter(|(vpc, _)| mine(vpc))
        .map(|(vpc, used)| QuotaUse {
            id: (*vpc).clone(),
            vpc: (*vpc).clone(),
            used: *used,
            quota: assessment.quotas.peerings_per_vpc,
        })
        .collect();
    let watched = |vpc: &Endpoint| peerings.contains_key(vpc) || assessment.intents.contains_key(vpc);
    let tables = world
        .route_tables
        .iter()
        .filter(|t| mine(&t.vpc) && watched(&t.vpc))
        .map(|t| QuotaUse {
            id: t.id.clone(),
            vpc: t.vpc.clone(),
            // As the planner's quota counts them (`plan/admit.rs`): every route.
            used: t.routes.len(),
            quota: assessment.quotas.routes_per_table,
        })
        .collect();
    (vpcs, tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{ACCEPT, MESH, PEERS};
    use crate::model::{Route, Target};
    use crate::plan::{assess, Deployment};
    use crate::testing::{converge, deployment, ep, osaka, region, seoul, WorldBuilder, OSAKA, SEOUL};

    fn seed() -> World {
        WorldBuilder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "ap-northeast-3/vpc-0000000b")])
            .vpc(&osaka(), "172.31.0.0/16", &[])
            .build()
    }

    fn gauges(world: &World, d: &Deployment, r: &str) -> RegionGauges {
        let a = assess(world, d);
        region_gauges(world, &a, &links(world, &a), &region(r))
    }

    #[test]
    fn the_seed_is_pending_then_ready_and_counted_once_in_the_requesters_region() {
        let mut world = seed();
        let d = deployment();
        let before = gauges(&world, &d, SEOUL);
        assert_eq!((before.wanted, before.pending, before.ready), (1, 1, 0));
        assert_eq!(gauges(&world, &d, OSAKA).wanted, 0, "counted in the requester's region only");

        converge(&mut world, &d);
        let a = assess(&world, &d);
        let summaries = links(&world, &a);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].health, Health::Ready);
        assert_eq!(summaries[0].requester, seoul());
        let after = gauges(&world, &d, SEOUL);
        assert_eq!((after.wanted, after.ready, after.pending, after.failing), (1, 1, 0, 0));
        assert_eq!(after.oldest_pending_seconds, 0);
        assert_eq!(after.peering_quota_use, 2.0, "one connection of AWS's 50");
    }

    #[test]
    fn a_conflicting_route_is_a_conflict_and_counts_as_failing() {
        let mut world = seed();
        let d = deployment();
        let igw = Route { destination: "172.31.0.0/16".parse().unwrap(), target: Target::Other("igw-0000000a".into()) };
        world.route_tables[0].routes.push(igw);
        converge(&mut world, &d);
        let a = assess(&world, &d);
        assert_eq!(links(&world, &a)[0].health, Health::Conflict);
        let g = gauges(&world, &d, SEOUL);
        assert_eq!((g.failing, g.route_conflicts), (1, 1));
        assert_eq!(gauges(&world, &d, OSAKA).route_conflicts, 0, "Osaka's side routes fine");
    }

    #[test]
    fn references_that_make_no_link_fail_toward_what_they_name() {
        let world = WorldBuilder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "ap-northeast-3/vpc-0000000b vpc-000000ff")])
            .vpc(&osaka(), "10.0.0.0/16", &[])
            .build();
        let d = deployment();
        let a = assess(&world, &d);
        let summaries = links(&world, &a);
        let health: Vec<(String, Health)> =
            summaries.iter().map(|l| (l.key.other(&seoul()).to_string(), l.health)).collect();
        assert!(health.contains(&(osaka().to_string(), Health::Failing)), "overlap: {health:?}");
        assert!(health.contains(&(ep(SEOUL, "vpc-000000ff").to_string(), Health::Failing)), "no such VPC: {health:?}");
        assert!(summaries.iter().any(|l| l.detail.contains("ranges overlap")));
        let g = gauges(&world, &d, SEOUL);
        assert_eq!((g.wanted, g.failing), (2, 2));
    }

    #[test]
    fn a_link_across_accounts_without_consent_waits_for_it() {
        let theirs = Endpoint::new("222222222222".parse().unwrap(), region(OSAKA), "vpc-0000000c".parse().unwrap());
        let world = WorldBuilder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "222222222222/ap-northeast-3/vpc-0000000c")])
            .vpc(&theirs, "172.31.0.0/16", &[(ACCEPT, "111111111111")])
            .build();
        let mut d = deployment();
        d.allowed_accounts = vec!["222222222222".parse().unwrap()];
        let a = assess(&world, &d);
        assert_eq!(links(&world, &a)[0].health, Health::AwaitingConsent);
        let g = gauges(&world, &d, SEOUL);
        assert_eq!((g.wanted, g.awaiting_consent, g.failing), (1, 1, 0));
    }

    #[test]
    fn quota_use_is_the_fullest_vpc_and_table_of_the_region() {
        let vpcs: Vec<Endpoint> = (1..=3).map(|i| ep(SEOUL, &format!("vpc-0000010{i}"))).collect();
        let mut b = WorldBuilder::default();
        for (i, v) in vpcs.iter().enumerate() {
            b = b.vpc(v, &format!("10.{i}.0.0/16"), &[(MESH, "g")]);
        }
        b = b.vpc(&osaka(), "172.31.0.0/16", &[(MESH, "g")]);
        let mut world = b.build();
        let mut d = deployment();
        d.quotas.peerings_per_vpc = 4;
        d.quotas.routes_per_table = 8;
        converge(&mut world, &d);
        let a = assess(&world, &d);
        let g = gauges(&world, &d, SEOUL);
        assert_eq!(g.ready, 6, "three Seoul VPCs and Osaka, every pair");
        assert_eq!(g.peering_quota_use, 75.0, "each Seoul VPC has 3 of 4");
        // A table's routes: its local route and one to each of 3 peers.
        assert_eq!(g.route_quota_use, 50.0, "4 of 8 routes");
        let (by_vpc, by_table) = quota_use(&world, &a, &region(SEOUL));
        assert_eq!(by_vpc.len(), 3);
        assert_eq!(by_table.len(), 3);
        assert_eq!(gauges(&world, &d, OSAKA).peering_quota_use, 75.0);
    }
}
