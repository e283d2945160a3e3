//! Phase one: who asks for which links, and what is wrong with what they ask.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::admit;
use super::deployment::{Deployment, Quotas};
use crate::cidr;
use crate::error::TagError;
use crate::ids::{AccountId, Endpoint, PeeringId, Region, RouteTableId, VpcId};
use crate::index::{pair, Lookup, Pair, WorldIndex};
use crate::intent::{self, Acceptance, Intent, RouteTables, VpcRef};
use crate::model::{LinkKey, Vpc, World};

/// A link somebody asks for, with the side that requests it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredLink {
    pub key: LinkKey,
    pub requester: Endpoint,
}

impl DesiredLink {
    pub fn accepter(&self) -> &Endpoint {
        self.key.other(&self.requester)
    }
}

/// Why one reference in a VPC's intent makes no link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    SelfReference {
        key: &'static str,
        reference: VpcRef,
    },
    UnknownRegion {
        key: &'static str,
        reference: VpcRef,
        regions: Vec<Region>,
    },
    UnknownVpc {
        key: &'static str,
        reference: VpcRef,
    },
    /// Another account that the deployment does not work with (`AllowedAccounts`).
    AccountNotAllowed {
        key: &'static str,
        reference: VpcRef,
    },
    /// Another account's VPCs could not be read through its reader role.
    Unreadable {
        key: &'static str,
        reference: VpcRef,
        error: String,
    },
    Overlap {
        peer: Endpoint,
        mine: IpNet,
        theirs: IpNet,
    },
    UnmanagedPeering {
        peer: Endpoint,
        peering: PeeringId,
    },
    /// A link across accounts whose accepter's `tagpeer:accept` does not name the requester.
    NoConsent {
        peer: Endpoint,
        accepter: Endpoint,
        requester: Endpoint,
    },
    /// `vpc` already has as many live peering connections as the quota allows.
    PeeringQuota {
        peer: Endpoint,
        vpc: Endpoint,
        quota: usize,
    },
    /// The requester's account has as many requests awaiting acceptance in
    /// its region as the quota allows; the link is requested once some are accepted.
    RequestQuota {
        peer: Endpoint,
        account: AccountId,
        region: Region,
        quota: usize,
    },
    /// A selected route table of `vpc` has no room for the link's routes.
    RouteQuota {
        peer: Endpoint,
        vpc: Endpoint,
        route_table: RouteTableId,
        needed: usize,
        quota: usize,
    },
}

/// Why a VPC's intent cannot be read at all; tagpeer then changes nothing of its links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VpcError {
    Tag(TagError),
    UnknownRouteTable(RouteTableId),
}

/// The intent of a VPC that has none ([`Intent::default`]), to lend.
static NO_INTENT: Intent = Intent {
    peers: Vec::new(),
    mesh: Vec::new(),
    accept: Acceptance::Nobody,
    route_tables: RouteTables::All,
    dns: false,
    ipv6: false,
};

/// The analysis every role shares: who asks for what, and what is wrong.
#[derive(Clone, Debug)]
pub struct Assessment {
    /// The deployment's account: every role acts only on its own sides.
    pub account: AccountId,
    pub quotas: Quotas,
    pub intents: BTreeMap<Endpoint, Intent>,
    /// VPCs whose tags cannot be acted on, with every reason: their links are
    /// held as they stand until the tags are fixed.
    pub held: BTreeMap<Endpoint, Vec<VpcError>>,
    /// References that make no link, by the VPC that carries them.
    pub problems: BTreeMap<Endpoint, Vec<Problem>>,
    pub links: BTreeMap<LinkKey, DesiredLink>,
}

impl Assessment {
    /// A link that touches a VPC whose tags are malformed is held as it is.
    pub fn is_held(&self, key: &LinkKey) -> bool {
        self.held.contains_key(&key.a) || self.held.contains_key(&key.b)
    }

    pub fn intent(&self, vpc: &Endpoint) -> Intent {
        self.intent_of(vpc).clone()
    }

    /// [`Assessment::intent`], lent rather than copied: the planner asks it
    /// of both sides of every link, several times a pass.
    pub(crate) fn intent_of(&self, vpc: &Endpoint) -> &Intent {
        self.intents.get(vpc).unwrap_or(&NO_INTENT)
    }

    /// A side this deployment acts on (its other regions are checked by the caller).
    pub fn is_mine(&self, vpc: &Endpoint) -> bool {
        vpc.account == self.account
    }
}

/// Phase one of every plan: reads every VPC's intent against what exists.
///
/// 1. [`read_intents`]: each VPC's `tagpeer:` tags, or why they cannot be read;
/// 2. [`asked_links`]: the pairs asked for, by whom (`tagpeer:peers`, mesh groups);
/// 3. [`validate`]: what each pair would break (overlapping ranges, a hand-made
///    connection, no consent);
/// 4. [`admit::within_quotas`]: the links that fit the quotas.
pub fn assess(world: &World, deployment: &Deployment) -> Assessment {
    assess_at(&WorldIndex::new(world), deployment)
}

/// [`assess`], on the world's index.
pub(super) fn assess_at(index: &WorldIndex, deployment: &Deployment) -> Assessment {
    let mut out = read_intents(index, deployment);
    let asked = asked_links(index, deployment, &mut out);
    let candidates = validate(index, deployment, &mut out, asked);
    admit::within_quotas(index, deployment, &mut out, candidates);
    out
}

/// Each VPC's intent; VPCs whose tags cannot be acted on are held.
fn read_intents(index: &WorldIndex, deployment: &Deployment) -> Assessment {
    let mut out = Assessment {
        account: deployment.account.clone(),
        quotas: deployment.quotas,
        intents: BTreeMap::new(),
        held: BTreeMap::new(),
        problems: BTreeMap::new(),
        links: BTreeMap::new(),
    };
    for vpc in &index.world().vpcs {
        if !intent::has_intent_tags(&vpc.tags) {
            continue;
        }
        match Intent::from_tags(&vpc.tags) {
            Ok(intent) => {
                let unknown = unknown_route_tables(index, vpc, &intent.route_tables);
                if !unknown.is_empty() {
                    out.held.insert(vpc.endpoint.clone(), unknown);
                }
                out.intents.insert(vpc.endpoint.clone(), intent);
            }
            Err(errors) => {
                out.held.insert(vpc.endpoint.clone(), errors.into_iter().map(VpcError::Tag).collect());
            }
        }
    }
    out
}

/// Which sides of a pair of VPCs ask for it (a pair is only ever asked for
/// by its own sides). The pairs asked for are every pair of every mesh: they
/// are kept as [`Pair`]s borrowed from the world, and only the links
/// admitted are copied into [`LinkKey`]s.
#[derive(Clone, Copy, Default)]
struct Askers {
    a: bool,
    b: bool,
}

impl Askers {
    fn add(&mut self, (a, _): Pair, asker: &Endpoint) {
        if asker == a {
            self.a = true;
        } else {
            self.b = true;
        }
    }

    /// The sides that ask, in canonical order.
    fn of<'e>(self, (a, b): Pair<'e>) -> impl Iterator<Item = &'e Endpoint> + Clone {
        [(self.a, a), (self.b, b)].into_iter().filter(|(asks, _)| *asks).map(|(_, side)| side)
    }
}

/// Every pair asked for, by whom. Other accounts' VPCs are in the world only
/// as far as this account's links need them: their references count when
/// they name this account's VPCs, and their mesh groups not at all.
fn asked_links<'w>(
    index: &WorldIndex<'w>,
    deployment: &Deployment,
    out: &mut Assessment,
) -> BTreeMap<Pair<'w>, Askers> {
    let home_of = |home: &Endpoint| index.vpc(home).expect("intents come from the world's VPCs");
    let mut asked: BTreeMap<Pair, Askers> = BTreeMap::new();
    for (home, intent) in &out.intents {
        let vpc = home_of(home);
        let mine = out.is_mine(home);
        for reference in &intent.peers {
            if !mine && !out.is_mine(&reference.resolve(home)) {
                continue;
            }
            match check_reference(index, deployment, vpc, reference) {
                Ok(peer) => {
                    let key = pair(&vpc.endpoint, &peer.endpoint);
                    asked.entry(key).or_default().add(key, home);
                }
                Err(problem) => out.problems.entry(home.clone()).or_default().push(problem),
            }
        }
    }
    let mut groups: BTreeMap<&str, Vec<&Endpoint>> = BTreeMap::new();
    for (home, intent) in out.intents.iter().filter(|(home, _)| out.is_mine(home)) {
        for group in &intent.mesh {
            groups.entry(group.as_str()).or_default().push(&home_of(home).endpoint);
        }
    }
    for members in groups.values() {
        for (i, x) in members.iter().enumerate() {
            for y in &members[i + 1..] {
                let key = pair(x, y);
                let askers = asked.entry(key).or_default();
                askers.add(key, x);
                askers.add(key, y);
            }
        }
    }
    asked
}

/// A pair that can be a link, with its requester: what [`admit`] admits.
/// Borrowed from the world, so that every pair a mesh asks for costs no copy
/// of its VPCs until it is admitted.
pub(super) struct Candidate<'w> {
    pub(super) sides: Pair<'w>,
    pub(super) requester: &'w Endpoint,
}

impl Candidate<'_> {
    /// The link as the assessment holds it.
    pub(super) fn desired(&self) -> DesiredLink {
        DesiredLink { key: LinkKey::new(self.sides.0.clone(), self.sides.1.clone()), requester: self.requester.clone() }
    }
}

/// The pairs that can be links, each with its requester; the others are
/// problems of the VPCs that asked for them.
fn validate<'w>(
    index: &WorldIndex<'w>,
    deployment: &Deployment,
    out: &mut Assessment,
    asked: BTreeMap<Pair<'w>, Askers>,
) -> Vec<Candidate<'w>> {
    let mut candidates = Vec::new();
    for (sides, askers) in asked {
        let (a, b) = (index.vpc(sides.0), index.vpc(sides.1));
        let (Some(a), Some(b)) = (a, b) else { continue };
        // The other side, as `LinkKey::other` has it.
        let other = |vpc: &Endpoint| if vpc == sides.0 { sides.1 } else { sides.0 };
        let askers = askers.of(sides);
        // The first asker in canonical order requests: the asker when only one
        // asks, the smaller (account, region, vpc-id) when both do.
        let requester = askers.clone().next().expect("a link is asked for by someone");
        let complain = |out: &mut Assessment, problem: &dyn Fn(&Endpoint) -> Problem| {
            for asker in askers.clone().filter(|a| a.account == out.account) {
                out.problems.entry(asker.clone()).or_default().push(problem(asker));
            }
        };
        if let Some((mine, theirs)) = cidr::first_overlap(&all_ranges(a), &all_ranges(b)) {
            complain(out, &|asker| {
                let (mine, theirs) = if asker == sides.0 { (*mine, *theirs) } else { (*theirs, *mine) };
                Problem::Overlap { peer: other(asker).clone(), mine, theirs }
            });
            continue;
        }
        let hand_made = index.connections_between(sides.0, sides.1).find(|p| p.state.is_live() && !p.is_managed());
        if let Some(hand_made) = hand_made {
            complain(out, &|asker| Problem::UnmanagedPeering {
                peer: other(asker).clone(),
                peering: hand_made.id.clone(),
            });
            continue;
        }
        let accepter = other(requester);
        if !consented(out, deployment, requester, accepter) {
            complain(out, &|asker| Problem::NoConsent {
                peer: other(asker).clone(),
                accepter: accepter.clone(),
                requester: requester.clone(),
            });
            continue;
        }
        candidates.push(Candidate { sides, requester });
    }
    candidates
}

/// Consent, as far as the planner can see it: a link within one account needs
/// none; a link across accounts needs the other account allowed here, and the
/// accepter's `tagpeer:accept` naming the requester's account, its VPC, or `*`.
/// The accepter's deployment checks the same with its own allowed accounts,
/// and accepts nothing else.
fn consented(assessment: &Assessment, deployment: &Deployment, requester: &Endpoint, accepter: &Endpoint) -> bool {
    if requester.account == accepter.account {
        return true;
    }
    let other = if assessment.is_mine(requester) { &accepter.account } else { &requester.account };
    if !deployment.allowed_accounts.contains(other) {
        return false;
    }
    match &assessment.intent_of(accepter).accept {
        Acceptance::Nobody => false,
        Acceptance::Anyone => true,
        Acceptance::Only { accounts, vpcs } => {
            accounts.contains(&requester.account) || vpcs.iter().any(|v| &v.resolve(accepter) == requester)
        }
    }
}

/// The other accounts' VPCs this deployment must read to plan its links, by
/// account and region: those its VPCs name in `tagpeer:peers`, the other
/// sides of the connections its VPCs are in, and those `named` (the VPCs an
/// invocation's trigger names: a request from another account reaches the
/// accepter before the accepter's region lists it). Only allowed accounts,
/// and only the deployment's regions, are ever read.
pub fn remote_reads(
    world: &World,
    deployment: &Deployment,
    named: &[Endpoint],
) -> BTreeMap<(AccountId, Region), BTreeSet<VpcId>> {
    let mut reads: BTreeMap<(AccountId, Region), BTreeSet<VpcId>> = BTreeMap::new();
    let mut want = |vpc: Endpoint| {
        if vpc.account != deployment.account
            && deployment.allowed_accounts.contains(&vpc.account)
            && deployment.regions.contains(&vpc.region)
        {
            reads.entry((vpc.account, vpc.region)).or_default().insert(vpc.vpc_id);
        }
    };
    for vpc in world.vpcs.iter().filter(|v| deployment.is_home(&v.endpoint)) {
        if let Some(peers) = vpc.tags.get(intent::PEERS).and_then(|v| intent::parse_peers(v).ok()) {
            for reference in peers {
                want(reference.resolve(&vpc.endpoint));
            }
        }
    }
    for p in &world.peerings {
        for (side, other) in [(&p.requester, &p.accepter), (&p.accepter, &p.requester)] {
            if deployment.is_home(side) {
                want(other.clone());
            }
        }
    }
    for vpc in named {
        want(vpc.clone());
    }
    reads
}

fn all_ranges(vpc: &Vpc) -> Vec<IpNet> {
    vpc.ipv4.iter().chain(&vpc.ipv6).copied().collect()
}

fn unknown_route_tables(index: &WorldIndex, vpc: &Vpc, selection: &RouteTables) -> Vec<VpcError> {
    let RouteTables::Ids(ids) = selection else { return Vec::new() };
    ids.iter()
        .filter(|id| !index.route_tables_of(&vpc.endpoint).any(|t| &t.id == *id))
        .map(|id| VpcError::UnknownRouteTable(id.clone()))
        .collect()
}

/// The VPC `reference` (in `home`'s `tagpeer:peers`) names, or why it makes no link.
// A Problem names VPCs; it is built once per bad reference, so its size is no matter.
#[allow(clippy::result_large_err)]
fn check_reference<'w>(
    index: &WorldIndex<'w>,
    deployment: &Deployment,
    home: &Vpc,
    reference: &VpcRef,
) -> Result<&'w Vpc, Problem> {
    let key = intent::PEERS;
    let peer = reference.resolve(&home.endpoint);
    if peer == home.endpoint {
        return Err(Problem::SelfReference { key, reference: reference.clone() });
    }
    if !deployment.regions.contains(&peer.region) {
        return Err(Problem::UnknownRegion { key, reference: reference.clone(), regions: deployment.regions.clone() });
    }
    if peer.account != home.endpoint.account {
        let other = if peer.account == deployment.account { &home.endpoint.account } else { &peer.account };
        if !deployment.allowed_accounts.contains(other) {
            return Err(Problem::AccountNotAllowed { key, reference: reference.clone() });
        }
        if let Some(error) = index.world().unreadable(&peer) {
            return Err(Problem::Unreadable { key, reference: reference.clone(), error: error.to_owned() });
        }
    }
    index.vpc(&peer).ok_or_else(|| Problem::UnknownVpc { key, reference: reference.clone() })
}

/// The VPCs whose DNS attributes the planner needs: both sides of every link
/// in which either side asks for DNS resolution (`tagpeer:dns=on`), where
/// this deployment reads them (its own account).
pub fn dns_reads(world: &World, deployment: &Deployment) -> BTreeSet<Endpoint> {
    // Most deployments ask for no DNS at all: then there is nothing to assess.
    if !world.vpcs.iter().any(|v| v.tags.contains_key(intent::DNS)) {
        return BTreeSet::new();
    }
    let assessment = assess(world, deployment);
    let mut reads = BTreeSet::new();
    for key in assessment.links.keys() {
        if assessment.intent_of(&key.a).dns || assessment.intent_of(&key.b).dns {
            reads.extend([&key.a, &key.b].into_iter().filter(|e| deployment.is_home(e)).cloned());
        }
    }
    reads
}
