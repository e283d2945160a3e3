//! The planner: intent and observed state in, actions out. Pure; the one place
//! to read what tagpeer decides.
//!
//! Every function runs the same analysis of the same [`World`] and takes the
//! actions of its own [`Role`] in its own region:
//!
//! - requester: request the peering connection for a link that has none; remove
//!   duplicates; tear down links whose intent is gone (routes on both sides
//!   first, then the connection).
//! - accepter: accept a pending request tagpeer made, for a link that still exists.
//! - router: give every selected route table of this region's side of an active
//!   link a route to each of the peer's ranges; remove tagpeer's routes whose
//!   link or range is gone.
//!
//! Each function then writes the `tagpeer-status` that [`statuses`] computes from
//! the state its actions leave behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::IpNet;

use crate::cidr;
use crate::error::TagError;
use crate::ids::{AccountId, Endpoint, PeeringId, Region, RouteTableId, VpcId};
use crate::intent::{self, Acceptance, Intent, RouteTables, VpcRef};
use crate::model::{Peering, PeeringState, Route, Target, Vpc, World};

/// One deployment of tagpeer: the account it acts in, its regions, the other
/// accounts it works with, and the quotas it plans within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub account: AccountId,
    pub regions: Vec<Region>,
    /// Accounts whose VPCs may peer with this account's (`AllowedAccounts`):
    /// this deployment requests links to them and accepts requests from them.
    pub allowed_accounts: Vec<AccountId>,
    pub quotas: Quotas,
}

impl Deployment {
    /// A deployment that works with no other account, within AWS's default quotas.
    pub fn new(account: AccountId, regions: Vec<Region>) -> Self {
        Self { account, regions, allowed_accounts: Vec::new(), quotas: Quotas::default() }
    }

    /// This deployment's own: in its account and one of its regions.
    pub fn is_home(&self, vpc: &Endpoint) -> bool {
        vpc.account == self.account && self.regions.contains(&vpc.region)
    }
}

/// The EC2 quotas tagpeer checks before it acts, rather than meeting them as
/// failures. Both are adjustable per account and region, so both are settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Active VPC peering connections per VPC (AWS's default: 50).
    pub peerings_per_vpc: usize,
    /// Routes per route table (AWS's default: 50).
    pub routes_per_table: usize,
    /// Outstanding peering requests (not yet accepted) an account has made in
    /// a region (AWS's default: 25).
    pub outstanding_requests: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { peerings_per_vpc: 50, routes_per_table: 50, outstanding_requests: 25 }
    }
}

/// Which function is planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Requester,
    Accepter,
    Router,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Accepter => "accepter",
            Role::Router => "router",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = crate::error::ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "requester" => Ok(Role::Requester),
            "accepter" => Ok(Role::Accepter),
            "router" => Ok(Role::Router),
            other => Err(crate::error::ConfigError::Role(other.to_owned())),
        }
    }
}

/// What an invocation looks at: everything (a sweep), or what an event names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Focus {
    All,
    /// The links of these VPCs (their tags changed).
    Vpcs(Vec<Endpoint>),
    /// The links of these VPCs, whose ranges changed.
    Ranges(Vec<Endpoint>),
    /// One link (tagpeer's own events name it).
    Link(LinkKey),
    /// The link of this peering connection (CloudTrail names only the connection).
    Peering(PeeringId),
}

/// A link: an unordered pair of VPCs, stored in canonical order (`a < b`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    pub a: Endpoint,
    pub b: Endpoint,
}

impl LinkKey {
    pub fn new(x: Endpoint, y: Endpoint) -> Self {
        if x <= y {
            Self { a: x, b: y }
        } else {
            Self { a: y, b: x }
        }
    }

    pub fn of(peering: &Peering) -> Self {
        Self::new(peering.requester.clone(), peering.accepter.clone())
    }

    pub fn has(&self, vpc: &Endpoint) -> bool {
        &self.a == vpc || &self.b == vpc
    }

    /// The side that is not `vpc`.
    pub fn other(&self, vpc: &Endpoint) -> &Endpoint {
        if &self.a == vpc {
            &self.b
        } else {
            &self.a
        }
    }
}

/// `ACCOUNT/REGION/vpc-…+ACCOUNT/REGION/vpc-…`: the value of `tagpeer-link`.
impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.a, self.b)
    }
}

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

/// The analysis every role shares: who asks for what, and what is wrong.
#[derive(Clone, Debug)]
pub struct Assessment {
    /// The deployment's account: every role acts only on its own sides.
    pub account: AccountId,
    pub quotas: Quotas,
    pub intents: BTreeMap<Endpoint, Intent>,
    /// VPCs whose tags cannot be acted on, with every reason.
    pub frozen: BTreeMap<Endpoint, Vec<VpcError>>,
    /// References that make no link, by the VPC that carries them.
    pub problems: BTreeMap<Endpoint, Vec<Problem>>,
    pub links: BTreeMap<LinkKey, DesiredLink>,
}

impl Assessment {
    /// A link that touches a VPC whose tags are malformed is held as it is.
    pub fn is_held(&self, key: &LinkKey) -> bool {
        self.frozen.contains_key(&key.a) || self.frozen.contains_key(&key.b)
    }

    pub fn intent(&self, vpc: &Endpoint) -> Intent {
        self.intents.get(vpc).cloned().unwrap_or_default()
    }

    /// A side this deployment acts on (its other regions are checked by the caller).
    pub fn is_mine(&self, vpc: &Endpoint) -> bool {
        vpc.account == self.account
    }
}

/// Reads every VPC's intent against what exists.
pub fn assess(world: &World, deployment: &Deployment) -> Assessment {
    let mut out = Assessment {
        account: deployment.account.clone(),
        quotas: deployment.quotas,
        intents: BTreeMap::new(),
        frozen: BTreeMap::new(),
        problems: BTreeMap::new(),
        links: BTreeMap::new(),
    };
    for vpc in &world.vpcs {
        if !intent::has_intent_tags(&vpc.tags) {
            continue;
        }
        match Intent::from_tags(&vpc.tags) {
            Ok(intent) => {
                let unknown = unknown_route_tables(world, vpc, &intent.route_tables);
                if !unknown.is_empty() {
                    out.frozen.insert(vpc.endpoint.clone(), unknown);
                }
                out.intents.insert(vpc.endpoint.clone(), intent);
            }
            Err(errors) => {
                out.frozen.insert(vpc.endpoint.clone(), errors.into_iter().map(VpcError::Tag).collect());
            }
        }
    }

    // Every pair asked for, by whom. Other accounts' VPCs are in the world
    // only as far as this account's links need them: their references count
    // when they name this account's VPCs, and their mesh groups not at all.
    let mut asked: BTreeMap<LinkKey, BTreeSet<Endpoint>> = BTreeMap::new();
    for (home, intent) in &out.intents {
        let vpc = world.vpc(home).expect("intents come from the world's VPCs");
        let mine = out.is_mine(home);
        for reference in &intent.peers {
            if !mine && !out.is_mine(&reference.resolve(home)) {
                continue;
            }
            match check_reference(world, deployment, vpc, reference) {
                Ok(peer) => {
                    asked.entry(LinkKey::new(home.clone(), peer)).or_default().insert(home.clone());
                }
                Err(problem) => out.problems.entry(home.clone()).or_default().push(problem),
            }
        }
    }
    let mut groups: BTreeMap<&str, Vec<&Endpoint>> = BTreeMap::new();
    for (home, intent) in out.intents.iter().filter(|(home, _)| out.is_mine(home)) {
        for group in &intent.mesh {
            groups.entry(group.as_str()).or_default().push(home);
        }
    }
    for members in groups.values() {
        for (i, x) in members.iter().enumerate() {
            for y in &members[i + 1..] {
                let key = LinkKey::new((*x).clone(), (*y).clone());
                asked.entry(key).or_default().extend([(*x).clone(), (*y).clone()]);
            }
        }
    }

    let mut room = Room::new(world, deployment.quotas);
    let mut admitted = Vec::new();
    for (key, askers) in asked {
        let (a, b) = (world.vpc(&key.a), world.vpc(&key.b));
        let (Some(a), Some(b)) = (a, b) else { continue };
        // The first asker in canonical order requests: the asker when only one
        // asks, the smaller (account, region, vpc-id) when both do.
        let requester = askers.first().expect("a link is asked for by someone").clone();
        let complain = |out: &mut Assessment, problem: &dyn Fn(&Endpoint) -> Problem| {
            for asker in askers.iter().filter(|a| a.account == out.account) {
                out.problems.entry(asker.clone()).or_default().push(problem(asker));
            }
        };
        if let Some((mine, theirs)) = cidr::first_overlap(&all_ranges(a), &all_ranges(b)) {
            complain(&mut out, &|asker| {
                let (mine, theirs) = if asker == &key.a { (*mine, *theirs) } else { (*theirs, *mine) };
                Problem::Overlap { peer: key.other(asker).clone(), mine, theirs }
            });
            continue;
        }
        if let Some(hand_made) =
            world.peerings.iter().find(|p| !p.is_managed() && p.state.is_live() && LinkKey::of(p) == key)
        {
            complain(&mut out, &|asker| Problem::UnmanagedPeering {
                peer: key.other(asker).clone(),
                peering: hand_made.id.clone(),
            });
            continue;
        }
        let link = DesiredLink { key: key.clone(), requester };
        if !consented(&out, deployment, &link) {
            let (accepter, requester) = (link.accepter().clone(), link.requester.clone());
            complain(&mut out, &|asker| Problem::NoConsent {
                peer: key.other(asker).clone(),
                accepter: accepter.clone(),
                requester: requester.clone(),
            });
            continue;
        }
        admitted.push(link);
    }
    // Quotas: links that stand keep their place; new ones take what room is
    // left, in canonical order, so every function reaches the same verdict.
    admitted.sort_by_key(|l| (live_managed(world, &l.key).is_empty(), l.key.clone()));
    for link in admitted {
        let key = link.key.clone();
        let stands = !live_managed(world, &key).is_empty();
        match room.admit(world, &out, &link, stands) {
            Ok(()) => {
                out.links.insert(key.clone(), link);
            }
            Err(full) => {
                for asker in [&key.a, &key.b].into_iter().filter(|a| a.account == deployment.account) {
                    out.problems.entry(asker.clone()).or_default().push(full.problem(key.other(asker)));
                }
            }
        }
    }
    out
}

/// Consent, as far as the planner can see it: a link within one account needs
/// none; a link across accounts needs the other account allowed here, and the
/// accepter's `tagpeer:accept` naming the requester's account, its VPC, or `*`.
/// The accepter's deployment checks the same with its own allowed accounts,
/// and accepts nothing else.
fn consented(assessment: &Assessment, deployment: &Deployment, link: &DesiredLink) -> bool {
    let (requester, accepter) = (&link.requester, link.accepter());
    if requester.account == accepter.account {
        return true;
    }
    let other = if assessment.is_mine(requester) { &accepter.account } else { &requester.account };
    if !deployment.allowed_accounts.contains(other) {
        return false;
    }
    match &assessment.intent(accepter).accept {
        Acceptance::Nobody => false,
        Acceptance::Anyone => true,
        Acceptance::Only { accounts, vpcs } => {
            accounts.contains(&requester.account) || vpcs.iter().any(|v| &v.resolve(accepter) == requester)
        }
    }
}

/// What a link would take that a quota has no room for.
enum Full {
    Peerings { vpc: Endpoint, quota: usize },
    Requests { account: AccountId, region: Region, quota: usize },
    Routes { vpc: Endpoint, route_table: RouteTableId, needed: usize, quota: usize },
}

impl Full {
    fn problem(&self, peer: &Endpoint) -> Problem {
        let peer = peer.clone();
        match self {
            Full::Peerings { vpc, quota } => Problem::PeeringQuota { peer, vpc: vpc.clone(), quota: *quota },
            Full::Requests { account, region, quota } => {
                Problem::RequestQuota { peer, account: account.clone(), region: region.clone(), quota: *quota }
            }
            Full::Routes { vpc, route_table, needed, quota } => Problem::RouteQuota {
                peer,
                vpc: vpc.clone(),
                route_table: route_table.clone(),
                needed: *needed,
                quota: *quota,
            },
        }
    }
}

/// The room the quotas leave: live connections per VPC, requests awaiting
/// acceptance per requesting account and region, routes per table.
struct Room {
    quotas: Quotas,
    peerings: BTreeMap<Endpoint, usize>,
    outstanding: BTreeMap<(AccountId, Region), usize>,
    routes: BTreeMap<RouteTableId, usize>,
}

impl Room {
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
    fn admit(&mut self, world: &World, assessment: &Assessment, link: &DesiredLink, stands: bool) -> Result<(), Full> {
        let key = &link.key;
        let sides = [(&key.a, &key.b), (&key.b, &key.a)];
        let requests = (link.requester.account.clone(), link.requester.region.clone());
        if !stands {
            for (side, _) in sides {
                if self.peerings.get(side).copied().unwrap_or(0) >= self.quotas.peerings_per_vpc {
                    return Err(Full::Peerings { vpc: side.clone(), quota: self.quotas.peerings_per_vpc });
                }
            }
            if self.outstanding.get(&requests).copied().unwrap_or(0) >= self.quotas.outstanding_requests {
                let (account, region) = requests;
                return Err(Full::Requests { account, region, quota: self.quotas.outstanding_requests });
            }
        }
        let mut needs: Vec<(&RouteTableId, usize)> = Vec::new();
        for (side, other) in sides {
            let Some(peer) = world.vpc(other) else { continue };
            for (table, ranges) in wanted_routes(world, assessment, side, peer) {
                let needed = ranges.iter().filter(|r| table.route_to(r).is_none()).count();
                let now = self.routes.get(&table.id).copied().unwrap_or(0);
                if !stands && needed > 0 && now + needed > self.quotas.routes_per_table {
                    return Err(Full::Routes {
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

/// The other accounts' VPCs this deployment must read to plan its links, by
/// account and region: those its VPCs name in `tagpeer:peers`, and the other
/// sides of the connections its VPCs are in. Only allowed accounts, and only
/// the deployment's regions, are ever read.
pub fn remote_reads(world: &World, deployment: &Deployment) -> BTreeMap<(AccountId, Region), BTreeSet<VpcId>> {
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
    reads
}

fn all_ranges(vpc: &Vpc) -> Vec<IpNet> {
    vpc.ipv4.iter().chain(&vpc.ipv6).copied().collect()
}

fn unknown_route_tables(world: &World, vpc: &Vpc, selection: &RouteTables) -> Vec<VpcError> {
    let RouteTables::Ids(ids) = selection else { return Vec::new() };
    ids.iter()
        .filter(|id| !world.route_tables_of(&vpc.endpoint).any(|t| &t.id == *id))
        .map(|id| VpcError::UnknownRouteTable(id.clone()))
        .collect()
}

// A Problem names VPCs; it is built once per bad reference, so its size is no matter.
#[allow(clippy::result_large_err)]
fn check_reference(
    world: &World,
    deployment: &Deployment,
    home: &Vpc,
    reference: &VpcRef,
) -> Result<Endpoint, Problem> {
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
        if let Some(error) = world.unreadable(&peer) {
            return Err(Problem::Unreadable { key, reference: reference.clone(), error: error.to_owned() });
        }
    }
    if world.vpc(&peer).is_none() {
        return Err(Problem::UnknownVpc { key, reference: reference.clone() });
    }
    Ok(peer)
}

/// One change tagpeer makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    RequestPeering {
        link: LinkKey,
        requester: Endpoint,
        accepter: Endpoint,
        /// Which request for the link this is, from 1.
        attempt: u32,
    },
    AcceptPeering {
        link: LinkKey,
        region: Region,
        peering: PeeringId,
    },
    CreateRoute {
        link: LinkKey,
        region: Region,
        route_table: RouteTableId,
        destination: IpNet,
        peering: PeeringId,
    },
    /// Only ever replaces a route whose target is a peering connection tagpeer manages.
    ReplaceRoute {
        link: LinkKey,
        region: Region,
        route_table: RouteTableId,
        destination: IpNet,
        peering: PeeringId,
    },
    /// Only ever deletes a route whose target is a peering connection tagpeer manages.
    DeleteRoute {
        link: LinkKey,
        region: Region,
        route_table: RouteTableId,
        destination: IpNet,
    },
    DeletePeering {
        link: LinkKey,
        region: Region,
        peering: PeeringId,
    },
    /// One side's `AllowDnsResolutionFromRemoteVpc`, set in that side's region.
    SetDns {
        link: LinkKey,
        region: Region,
        peering: PeeringId,
        requester_side: bool,
        on: bool,
    },
    /// `None` removes the tag.
    SetStatus {
        vpc: Endpoint,
        status: Option<String>,
    },
    /// The link's last request (its number and time), remembered on the
    /// requester VPC's `tagpeer-retry/PEER` tag; `None` forgets it.
    SetRetry {
        link: LinkKey,
        vpc: Endpoint,
        last: Option<(u32, u64)>,
    },
}

impl Action {
    /// The link the action works for; status writes serve no single link.
    pub fn link(&self) -> Option<&LinkKey> {
        match self {
            Action::RequestPeering { link, .. }
            | Action::AcceptPeering { link, .. }
            | Action::CreateRoute { link, .. }
            | Action::ReplaceRoute { link, .. }
            | Action::DeleteRoute { link, .. }
            | Action::DeletePeering { link, .. }
            | Action::SetDns { link, .. }
            | Action::SetRetry { link, .. } => Some(link),
            Action::SetStatus { .. } => None,
        }
    }

    /// The EC2 API action it calls.
    pub fn api_name(&self) -> &'static str {
        match self {
            Action::RequestPeering { .. } => "CreateVpcPeeringConnection",
            Action::AcceptPeering { .. } => "AcceptVpcPeeringConnection",
            Action::CreateRoute { .. } => "CreateRoute",
            Action::ReplaceRoute { .. } => "ReplaceRoute",
            Action::DeleteRoute { .. } => "DeleteRoute",
            Action::DeletePeering { .. } => "DeleteVpcPeeringConnection",
            Action::SetDns { .. } => "ModifyVpcPeeringConnectionOptions",
            Action::SetStatus { status: Some(_), .. } => "CreateTags",
            Action::SetStatus { status: None, .. } => "DeleteTags",
            Action::SetRetry { last: Some(_), .. } => "CreateTags",
            Action::SetRetry { last: None, .. } => "DeleteTags",
        }
    }
}

/// One line a person reads: the call and what it acts on.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.api_name();
        match self {
            Action::RequestPeering { requester, accepter, .. } => {
                write!(f, "{name} in {}: {} to {}", requester.region, requester.vpc_id, accepter.relative_to(requester))
            }
            Action::AcceptPeering { region, peering, .. } | Action::DeletePeering { region, peering, .. } => {
                write!(f, "{name} in {region}: {peering}")
            }
            Action::CreateRoute { region, route_table, destination, peering, .. }
            | Action::ReplaceRoute { region, route_table, destination, peering, .. } => {
                write!(f, "{name} in {region}: {route_table} {destination} -> {peering}")
            }
            Action::DeleteRoute { region, route_table, destination, .. } => {
                write!(f, "{name} in {region}: {route_table} {destination}")
            }
            Action::SetDns { region, peering, requester_side, on, .. } => {
                let side = if *requester_side { "requester" } else { "accepter" };
                write!(f, "{name} in {region}: {peering} {side} AllowDnsResolutionFromRemoteVpc = {on}")
            }
            Action::SetStatus { vpc, status: Some(status) } => {
                write!(f, "{name} in {}: {} tagpeer-status = {status}", vpc.region, vpc.vpc_id)
            }
            Action::SetStatus { vpc, status: None } => {
                write!(f, "{name} in {}: {} tagpeer-status", vpc.region, vpc.vpc_id)
            }
            Action::SetRetry { link, vpc, last } => {
                write!(f, "{name} in {}: {} {}", vpc.region, vpc.vpc_id, retry_key(link.other(vpc)))?;
                match last {
                    Some((attempt, at)) => write!(f, " = {}", retry_value(*attempt, *at)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What the next sweep would do: every role's actions in every region, and
/// the status writes, as each function would plan them now. Changes nothing.
pub fn sweep_plan(world: &World, deployment: &Deployment) -> Vec<(Role, Region, Action)> {
    let assessment = assess(world, deployment);
    let mut out = Vec::new();
    for role in [Role::Requester, Role::Accepter, Role::Router] {
        for region in &deployment.regions {
            for action in plan(world, &assessment, role, region, &Focus::All) {
                out.push((role, region.clone(), action));
            }
        }
    }
    // Each region's requester writes its VPCs' statuses first in a sweep.
    for region in &deployment.regions {
        for action in statuses(world, &assessment, region, &Focus::All, &BTreeMap::new()) {
            out.push((Role::Requester, region.clone(), action));
        }
    }
    out
}

/// The peering connections tagpeer made for `key` that still stand, the one
/// to keep first: active before pending, then the smallest id.
pub fn live_managed<'w>(world: &'w World, key: &LinkKey) -> Vec<&'w Peering> {
    let mut live: Vec<&Peering> =
        world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live() && &LinkKey::of(p) == key).collect();
    live.sort_by(|x, y| {
        (x.state != PeeringState::Active, x.id.as_str()).cmp(&(y.state != PeeringState::Active, y.id.as_str()))
    });
    live
}

/// Every link that exists or is asked for, in canonical order.
pub fn all_links(world: &World, assessment: &Assessment) -> BTreeSet<LinkKey> {
    let mut keys: BTreeSet<LinkKey> = assessment.links.keys().cloned().collect();
    keys.extend(world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live()).map(LinkKey::of));
    keys
}

fn in_focus(focus: &Focus, key: &LinkKey, world: &World) -> bool {
    match focus {
        Focus::All => true,
        Focus::Vpcs(vpcs) | Focus::Ranges(vpcs) => vpcs.iter().any(|v| key.has(v)),
        Focus::Link(link) => link == key,
        Focus::Peering(id) => world.peering(id).is_some_and(|p| &LinkKey::of(p) == key),
    }
}

/// A connection that a role's next step for a link waits on: AWS still has it
/// in an intermediate state, `initiating-request` (or not yet listed in the
/// accepter's region) before it can be accepted, `provisioning` before it can
/// be routed. The handler waits for it within the
/// invocation instead of leaving the step to the sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awaited {
    pub link: LinkKey,
    pub peering: PeeringId,
    pub state: PeeringState,
}

/// What the actions of `role` in `region` for the links in `focus` wait on.
pub fn awaiting(world: &World, assessment: &Assessment, role: Role, region: &Region, focus: &Focus) -> Vec<Awaited> {
    let mut out = Vec::new();
    for key in all_links(world, assessment) {
        if !in_focus(focus, &key, world) || assessment.is_held(&key) || !assessment.links.contains_key(&key) {
            continue;
        }
        let live = live_managed(world, &key);
        let Some(kept) = live.first() else { continue };
        let here = |vpc: &Endpoint| &vpc.region == region && assessment.is_mine(vpc);
        let waits = match role {
            Role::Requester => false,
            Role::Accepter => {
                here(&kept.accepter)
                    && (kept.state == PeeringState::InitiatingRequest
                        || (kept.state == PeeringState::PendingAcceptance && kept.hidden_from_accepter))
            }
            Role::Router => kept.state == PeeringState::Provisioning && (here(&key.a) || here(&key.b)),
        };
        if waits {
            out.push(Awaited { link: key.clone(), peering: kept.id.clone(), state: kept.state.clone() });
        }
    }
    out
}

/// The actions of `role` in `region` for the links in `focus`.
pub fn plan(world: &World, assessment: &Assessment, role: Role, region: &Region, focus: &Focus) -> Vec<Action> {
    let mut actions = Vec::new();
    for key in all_links(world, assessment) {
        if !in_focus(focus, &key, world) || assessment.is_held(&key) {
            continue;
        }
        let desired = assessment.links.get(&key);
        let live = live_managed(world, &key);
        match role {
            Role::Requester => plan_requester(world, assessment, &key, desired, &live, region, focus, &mut actions),
            Role::Accepter => plan_accepter(assessment, &key, desired, &live, region, &mut actions),
            Role::Router => {
                // A range changed, or a connection died: the other side's
                // router hears of neither, so this one routes both sides. A
                // tag changed: this side's routes, and both sides' DNS options
                // (`tagpeer:dns` here sets the other side's).
                let (both_routes, both_options) = match focus {
                    Focus::Ranges(_) => (true, true),
                    Focus::Peering(id) => {
                        let dead = world.peering(id).is_some_and(|p| !p.state.is_live());
                        (dead, dead)
                    }
                    Focus::Vpcs(_) => (false, true),
                    Focus::All | Focus::Link(_) => (false, false),
                };
                let here = |both: bool| -> Vec<&Endpoint> {
                    [&key.a, &key.b]
                        .into_iter()
                        .filter(|s| assessment.is_mine(s) && (both || &s.region == region))
                        .collect()
                };
                let sides = Sides { routes: here(both_routes), options: here(both_options) };
                plan_router(world, assessment, &key, desired, &live, &sides, &mut actions)
            }
        }
    }
    actions
}

#[allow(clippy::too_many_arguments)]
fn plan_requester(
    world: &World,
    assessment: &Assessment,
    key: &LinkKey,
    desired: Option<&DesiredLink>,
    live: &[&Peering],
    region: &Region,
    focus: &Focus,
    actions: &mut Vec<Action>,
) {
    let here = |vpc: &Endpoint| &vpc.region == region && assessment.is_mine(vpc);
    // A sweep requests for its own region's VPCs: every region sweeps, and
    // each request is made once. A focused change requests wherever in this
    // account the link's requester is: the change may reach only the other
    // side's region (a tag there, or a reject or delete made there, which
    // CloudTrail records only in the region of the call), and every region's
    // client is at hand.
    let requests_for = |vpc: &Endpoint| here(vpc) || (assessment.is_mine(vpc) && !matches!(focus, Focus::All));
    // Connections to remove: all of them when the intent is gone, else every
    // duplicate beside the one kept. Each goes by the side that requested it.
    let doomed: &[&Peering] = match desired {
        Some(_) => live.get(1..).unwrap_or_default(),
        None => live,
    };
    // Either side's requester may take a connection down: the intent may go
    // on the accepter's side (a mesh member leaving), and whichever runs
    // first does it; the other finds it gone. A request from another account
    // that this side does not consent to is left to expire, not deleted.
    for peering in doomed.iter().filter(|p| here(&p.requester) || here(&p.accepter)) {
        let unconsented = desired.is_none()
            && matches!(peering.state, PeeringState::InitiatingRequest | PeeringState::PendingAcceptance)
            && !assessment.is_mine(&peering.requester);
        if !unconsented {
            teardown(world, assessment, key, peering, actions);
        }
    }
    if let Some(link) = desired {
        if live.is_empty() && requests_for(&link.requester) {
            if let Retry::Now { attempt } = retry(world, key) {
                actions.push(Action::RequestPeering {
                    link: key.clone(),
                    requester: link.requester.clone(),
                    accepter: link.accepter().clone(),
                    attempt,
                });
                // A request whose end the next one would wait longer for
                // than AWS keeps ended connections is remembered where it
                // outlasts them.
                if wait_after(attempt) >= ENDED_KEPT_FOR {
                    let last = Some((attempt, world.observed_at));
                    actions.push(Action::SetRetry { link: key.clone(), vpc: link.requester.clone(), last });
                }
            }
        }
    }
    // Forgotten once the link is active, or gone for good.
    let done = match desired {
        Some(_) => live.first().is_some_and(|p| p.state == PeeringState::Active),
        None => live.is_empty(),
    };
    if done {
        for vpc in [&key.a, &key.b] {
            let remembers = world.vpc(vpc).is_some_and(|v| v.tags.contains_key(&retry_key(key.other(vpc))));
            if remembers && here(vpc) {
                actions.push(Action::SetRetry { link: key.clone(), vpc: vpc.clone(), last: None });
            }
        }
    }
}

/// `tagpeer-retry/ACCOUNT/REGION/vpc-…`: where a VPC remembers its link to `peer`'s last request.
pub fn retry_key(peer: &Endpoint) -> String {
    format!("{}{peer}", intent::RETRY_PREFIX)
}

fn retry_value(attempt: u32, at: u64) -> String {
    format!("{attempt}@{at}")
}

/// What `vpc` remembers of its link to `peer`: the last request's number and time.
fn remembered(world: &World, vpc: &Endpoint, peer: &Endpoint) -> Option<(u32, u64)> {
    let value = world.vpc(vpc)?.tags.get(&retry_key(peer))?;
    let (attempt, at) = value.split_once('@')?;
    Some((attempt.parse().ok()?, at.parse().ok()?))
}

/// The first retry of a link whose connection failed, was rejected, expired
/// or was deleted waits this long; each later one twice as long as the one
/// before, up to [`RETRY_CAP`].
pub const RETRY_BASE: u64 = 5 * 60;
pub const RETRY_CAP: u64 = 24 * 60 * 60;
/// How long AWS surely keeps showing an ended connection: a `failed` one, and
/// within one account a `rejected` or `deleted` one, for 2 hours (longer, 2
/// days, for some sides across accounts; VPC Peering Guide, "VPC peering
/// connection lifecycle").
pub const ENDED_KEPT_FOR: u64 = 2 * 60 * 60;

/// How long after request `attempt` was made the next one waits, once it ended.
fn wait_after(attempt: u32) -> u64 {
    match attempt {
        0 | 1 => 0,
        n => RETRY_BASE.saturating_mul(1u64 << (n - 2).min(20)).min(RETRY_CAP),
    }
}

/// When a link that has no live connection may be requested (again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    Now {
        attempt: u32,
    },
    /// The last request ended as `last` (`None`: so long ago that AWS has
    /// forgotten it); the next one waits until `at`.
    Later {
        last: Option<(PeeringId, PeeringState)>,
        attempt: u32,
        at: u64,
    },
}

/// A link's first request goes at once, and so does the first retry (a
/// connection deleted by hand comes back); the second retry waits
/// [`RETRY_BASE`], and each one after twice as long. The attempts are
/// remembered on the ended connections' tags while AWS keeps them, and on the
/// requester VPC's `tagpeer-retry/PEER` tag, which outlasts them.
pub fn retry(world: &World, key: &LinkKey) -> Retry {
    let ended = world
        .peerings
        .iter()
        .filter(|p| p.is_managed() && !p.state.is_live() && &LinkKey::of(p) == key)
        .max_by_key(|p| (p.attempt(), p.requested_at()));
    let from_connection = ended.map(|p| (p.attempt(), p.requested_at()));
    let from_vpcs = [&key.a, &key.b].into_iter().filter_map(|v| remembered(world, v, key.other(v))).max();
    let Some((last_attempt, requested_at)) = from_connection.max(from_vpcs) else {
        return Retry::Now { attempt: 1 };
    };
    let attempt = last_attempt + 1;
    let at = requested_at.saturating_add(wait_after(last_attempt));
    if world.observed_at >= at {
        Retry::Now { attempt }
    } else {
        let last = ended.filter(|p| p.attempt() == last_attempt).map(|p| (p.id.clone(), p.state.clone()));
        Retry::Later { last, attempt, at }
    }
}

/// Routes through the connection on both sides first, then the connection.
/// Another account's routes are its own deployment's to remove: while they
/// can be seen, the connection waits for them. Only the requester's account
/// deletes the connection: it alone sees the connection's tags (each account
/// sees only its own), which the delete is authorised by, and AWS lets only
/// the requester's owner delete a request not yet accepted. The accepter's
/// account removes its routes and leaves the connection to the requester's.
fn teardown(world: &World, assessment: &Assessment, key: &LinkKey, peering: &Peering, actions: &mut Vec<Action>) {
    let mut theirs = 0;
    for table in &world.route_tables {
        if !peering.joins(&table.vpc) {
            continue;
        }
        for route in table.routes.iter().filter(|r| r.target == Target::Peering(peering.id.clone())) {
            if !assessment.is_mine(&table.vpc) {
                theirs += 1;
                continue;
            }
            actions.push(Action::DeleteRoute {
                link: key.clone(),
                region: table.vpc.region.clone(),
                route_table: table.id.clone(),
                destination: route.destination,
            });
        }
    }
    if theirs == 0 && assessment.is_mine(&peering.requester) {
        actions.push(Action::DeletePeering {
            link: key.clone(),
            region: peering.requester.region.clone(),
            peering: peering.id.clone(),
        });
    }
}

fn plan_accepter(
    assessment: &Assessment,
    key: &LinkKey,
    desired: Option<&DesiredLink>,
    live: &[&Peering],
    region: &Region,
    actions: &mut Vec<Action>,
) {
    // Consent: only a request tagpeer made (its requester's view carries the
    // link's tag), for a link that is still asked for and, across accounts,
    // consented to (see `consented`), and only the connection kept for it.
    let (Some(_), Some(kept)) = (desired, live.first()) else { return };
    if kept.state == PeeringState::PendingAcceptance
        && !kept.hidden_from_accepter
        && &kept.accepter.region == region
        && assessment.is_mine(&kept.accepter)
        && kept.link_tag() == Some(key.to_string().as_str())
    {
        actions.push(Action::AcceptPeering { link: key.clone(), region: region.clone(), peering: kept.id.clone() });
    }
}

/// The ranges `side` routes to its peer through the link, by route table.
fn wanted_routes<'w>(
    world: &'w World,
    assessment: &Assessment,
    side: &'w Endpoint,
    peer: &Vpc,
) -> Vec<(&'w crate::model::RouteTable, Vec<IpNet>)> {
    let intent = assessment.intent(side);
    let mut ranges = peer.ipv4.clone();
    if intent.ipv6 {
        ranges.extend(&peer.ipv6);
    }
    world
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
    [&key.a, &key.b].into_iter().find_map(|e| world.vpc(e).filter(|v| v.lacks_dns()).map(|v| &v.endpoint))
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
        if assessment.intent(&key.a).dns || assessment.intent(&key.b).dns {
            reads.extend([&key.a, &key.b].into_iter().filter(|e| deployment.is_home(e)).cloned());
        }
    }
    reads
}

/// The sides of a link a router works on: for its routes, and for its options.
struct Sides<'k> {
    routes: Vec<&'k Endpoint>,
    options: Vec<&'k Endpoint>,
}

/// What the route a table has for one of the link's destinations means.
enum RouteVerdict<'w> {
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

fn judge_route<'w>(
    world: &World,
    key: &LinkKey,
    kept: &Peering,
    route: Option<&'w crate::model::Route>,
) -> RouteVerdict<'w> {
    let Some(route) = route else { return RouteVerdict::Missing };
    let Target::Peering(id) = &route.target else { return RouteVerdict::Conflict(&route.target) };
    if id == &kept.id {
        return RouteVerdict::InPlace;
    }
    match world.peering(id) {
        Some(p) if p.is_managed() && (&LinkKey::of(p) == key || !p.state.is_live()) => RouteVerdict::Stale,
        _ => RouteVerdict::Conflict(&route.target),
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_router(
    world: &World,
    assessment: &Assessment,
    key: &LinkKey,
    desired: Option<&DesiredLink>,
    live: &[&Peering],
    sides: &Sides,
    actions: &mut Vec<Action>,
) {
    let kept = live.first().filter(|p| desired.is_some() && p.state == PeeringState::Active);
    for &side in &sides.options {
        let region = &side.region;
        // This side lets the other resolve its names when the other asks for it
        // (`tagpeer:dns=on` there).
        if let Some(kept) = kept {
            let requester_side = &kept.requester == side;
            let on = assessment.intent(key.other(side)).dns && dns_blocked_by(world, key).is_none();
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
    for &side in &sides.routes {
        let region = &side.region;
        // Routes this side should have, by table.
        let mut wanted: BTreeMap<&RouteTableId, Vec<IpNet>> = BTreeMap::new();
        if let (Some(kept), Some(peer)) = (kept, world.vpc(key.other(side))) {
            for (table, ranges) in wanted_routes(world, assessment, side, peer) {
                for destination in &ranges {
                    let (link, region, route_table, destination, peering) =
                        (key.clone(), region.clone(), table.id.clone(), *destination, kept.id.clone());
                    match judge_route(world, key, kept, table.route_to(&destination)) {
                        RouteVerdict::InPlace | RouteVerdict::Conflict(_) => {} // a conflict is reported, left as it is
                        RouteVerdict::Missing => {
                            // A full table gets no more (the status says so).
                            let planned = actions
                                .iter()
                                .filter(|a| matches!(a, Action::CreateRoute { route_table: t, .. } if t == &table.id))
                                .count();
                            if table.routes.len() + planned < assessment.quotas.routes_per_table {
                                actions.push(Action::CreateRoute { link, region, route_table, destination, peering })
                            }
                        }
                        RouteVerdict::Stale => {
                            actions.push(Action::ReplaceRoute { link, region, route_table, destination, peering })
                        }
                    }
                }
                wanted.insert(&table.id, ranges);
            }
        }
        // tagpeer's routes on this side through any of this link's connections
        // that are not wanted: the link is gone, the connection is not the one
        // kept, or the range or the table is no longer selected.
        for table in world.route_tables_of(side) {
            for route in &table.routes {
                let Target::Peering(id) = &route.target else { continue };
                let Some(peering) = world.peering(id) else { continue };
                if !peering.is_managed() || LinkKey::of(peering) != *key {
                    continue;
                }
                let keep = kept.is_some_and(|k| &k.id == id)
                    && wanted.get(&table.id).is_some_and(|r| r.contains(&route.destination));
                let replaced = actions.iter().any(|a| {
                    matches!(a, Action::ReplaceRoute { route_table, destination, .. }
                        if route_table == &table.id && destination == &route.destination)
                });
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
    if assessment.is_held(key) {
        return LinkState::Held;
    }
    let live = live_managed(world, key);
    let Some(kept) = live.first() else {
        return match retry(world, key) {
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
    if let Some(peer) = world.vpc(key.other(side)) {
        for (table, ranges) in wanted_routes(world, assessment, side, peer) {
            for destination in ranges {
                wanted += 1;
                match judge_route(world, key, kept, table.route_to(&destination)) {
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
    focus: &Focus,
    failures: &BTreeMap<LinkKey, String>,
) -> Vec<Action> {
    let links = all_links(world, assessment);
    let mut touched: BTreeSet<&Endpoint> = BTreeSet::new();
    for key in links.iter().filter(|k| in_focus(focus, k, world)) {
        touched.extend([&key.a, &key.b]);
    }
    if let Focus::Vpcs(vpcs) | Focus::Ranges(vpcs) = focus {
        touched.extend(vpcs);
    }
    let mut actions = Vec::new();
    let in_scope = |v: &&Vpc| {
        &v.endpoint.region == region
            && assessment.is_mine(&v.endpoint)
            && (matches!(focus, Focus::All) || touched.contains(&v.endpoint))
    };
    for vpc in world.vpcs.iter().filter(in_scope) {
        let wanted = crate::status::render(world, assessment, &links, failures, &vpc.endpoint);
        if wanted.as_deref() != vpc.status() {
            actions.push(Action::SetStatus { vpc: vpc.endpoint.clone(), status: wanted });
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
    focus: &Focus,
) -> Vec<(LinkKey, Endpoint, PeeringId)> {
    let mut ready = Vec::new();
    for key in all_links(after, assessment).into_iter().filter(|k| in_focus(focus, k, after)) {
        for side in [&key.a, &key.b] {
            if &side.region != region || !assessment.is_mine(side) {
                continue;
            }
            if let LinkState::Ready(peering) = link_state(after, assessment, &key, side) {
                if link_state(before, assessment, &key, side) != LinkState::Ready(peering.clone()) {
                    ready.push((key.clone(), side.clone(), peering));
                }
            }
        }
    }
    ready
}

/// The side of `key` an action works on: the VPC whose table it routes, the
/// requester for requests and deletions, the accepter for acceptances.
pub fn side_of<'k>(action: &Action, key: &'k LinkKey, world: &World) -> &'k Endpoint {
    let named = |vpc: &Endpoint| if &key.a == vpc { &key.a } else { &key.b };
    let by_region = |region: &Region| if &key.a.region == region { &key.a } else { &key.b };
    match action {
        Action::RequestPeering { requester, .. } => named(requester),
        Action::AcceptPeering { peering, region, .. } => {
            world.peering(peering).map(|p| named(&p.accepter)).unwrap_or_else(|| by_region(region))
        }
        Action::DeletePeering { peering, region, .. } => world
            .peering(peering)
            .map(|p| named(if &p.requester.region == region { &p.requester } else { &p.accepter }))
            .unwrap_or_else(|| by_region(region)),
        Action::SetDns { peering, region, requester_side, .. } => world
            .peering(peering)
            .map(|p| named(if *requester_side { &p.requester } else { &p.accepter }))
            .unwrap_or_else(|| by_region(region)),
        Action::CreateRoute { region, route_table, .. }
        | Action::ReplaceRoute { region, route_table, .. }
        | Action::DeleteRoute { region, route_table, .. } => world
            .route_tables
            .iter()
            .find(|t| &t.id == route_table && &t.vpc.region == region)
            .map(|t| named(&t.vpc))
            .unwrap_or_else(|| by_region(region)),
        Action::SetStatus { vpc, .. } | Action::SetRetry { vpc, .. } => named(vpc),
    }
}

/// The world as it stands after `action` succeeded (`created`: the id of a
/// connection it requested). Lets a function describe the state it leaves
/// behind without reading it again.
pub fn apply(world: &mut World, action: &Action, created: Option<&PeeringId>) {
    match action {
        Action::RequestPeering { link, requester, accepter, attempt } => {
            if let Some(id) = created {
                world.peerings.push(Peering {
                    id: id.clone(),
                    requester: requester.clone(),
                    accepter: accepter.clone(),
                    // AWS answers a request with `initiating-request`.
                    state: PeeringState::InitiatingRequest,
                    tags: [
                        (intent::MANAGED.to_owned(), "true".to_owned()),
                        (intent::LINK.to_owned(), link.to_string()),
                        (intent::ATTEMPT.to_owned(), attempt.to_string()),
                        (intent::REQUESTED_AT.to_owned(), world.observed_at.to_string()),
                    ]
                    .into(),
                    dns: Default::default(),
                    hidden_from_accepter: false,
                });
            }
        }
        // AWS answers an accept with `provisioning`; `active` comes later.
        Action::AcceptPeering { peering, .. } => set_state(world, peering, PeeringState::Provisioning),
        Action::SetDns { peering, requester_side, on, .. } => {
            if let Some(p) = world.peerings.iter_mut().find(|p| &p.id == peering) {
                if *requester_side {
                    p.dns.requester = *on;
                } else {
                    p.dns.accepter = *on;
                }
            }
        }
        Action::DeletePeering { peering, .. } => set_state(world, peering, PeeringState::Deleted),
        Action::CreateRoute { region, route_table, destination, peering, .. }
        | Action::ReplaceRoute { region, route_table, destination, peering, .. } => {
            if let Some(table) = world.route_table_mut(region, route_table) {
                table.routes.retain(|r| &r.destination != destination);
                table.routes.push(Route { destination: *destination, target: Target::Peering(peering.clone()) });
            }
        }
        Action::DeleteRoute { region, route_table, destination, .. } => {
            if let Some(table) = world.route_table_mut(region, route_table) {
                table.routes.retain(|r| &r.destination != destination);
            }
        }
        Action::SetRetry { link, vpc, last } => {
            if let Some(v) = world.vpc_mut(vpc) {
                let key = retry_key(link.other(vpc));
                match last {
                    Some((attempt, at)) => v.tags.insert(key, retry_value(*attempt, *at)),
                    None => v.tags.remove(&key),
                };
            }
        }
        Action::SetStatus { vpc, status } => {
            if let Some(v) = world.vpc_mut(vpc) {
                match status {
                    Some(s) => v.tags.insert(intent::STATUS.to_owned(), s.clone()),
                    None => v.tags.remove(intent::STATUS),
                };
            }
        }
    }
}

/// The world once AWS has finished what it was doing: a connection
/// `initiating-request` is `pending-acceptance`, one `provisioning` is
/// `active`. Returns whether anything moved.
pub fn settle(world: &mut World) -> bool {
    let mut moved = false;
    for p in &mut world.peerings {
        let next = match p.state {
            PeeringState::InitiatingRequest => PeeringState::PendingAcceptance,
            PeeringState::Provisioning => PeeringState::Active,
            _ => continue,
        };
        p.state = next;
        moved = true;
    }
    moved
}

fn set_state(world: &mut World, id: &PeeringId, state: PeeringState) {
    if let Some(p) = world.peerings.iter_mut().find(|p| &p.id == id) {
        p.state = state;
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
