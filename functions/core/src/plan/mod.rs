//! The planner: intent and observed state in, actions out. Pure; the one place
//! to read what tagpeer decides.
//!
//! Every function plans the same way, from the same [`World`], in phases:
//!
//! 1. **assess** ([`assess`]): read each VPC's intent, the links it asks for,
//!    and what is wrong with them (bad references, overlapping ranges,
//!    hand-made connections, missing consent);
//! 2. **admit** (`admit.rs`): keep the links AWS's quotas leave room for;
//! 3. **act** ([`for_role`]): the steps of the function's own [`Role`] in its
//!    own region, for the links in the invocation's [`Scope`]:
//!    - requester (`requester.rs`): request the connection of a link that has
//!      none, remove duplicates, tear down links whose intent is gone (routes
//!      on both sides first, then the connection), retry ended ones (`retry.rs`);
//!    - accepter (`accepter.rs`): accept a pending request tagpeer made, for a
//!      link that still exists and is consented to;
//!    - router (`router.rs`): give every selected route table of its side of
//!      an active link a route to each of the peer's ranges, remove tagpeer's
//!      routes whose link or range is gone, set the DNS options;
//!    - and what each step still waits on AWS for (`waits.rs`);
//! 4. **report** ([`crate::status::statuses`]): the `tagpeer-status` each VPC
//!    should carry, from the state the actions leave behind.
//!
//! The trigger decides the [`Scope`]; the planner never asks what kind of
//! event arrived.

mod accepter;
mod action;
mod admit;
mod assess;
mod deployment;
mod requester;
mod retry;
mod router;
mod scope;
mod waits;

use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use action::Action;
pub use assess::{assess, dns_reads, remote_reads, Assessment, DesiredLink, Problem, VpcError};
pub use deployment::{Deployment, Quotas, Role, UnknownRole};
pub use retry::{retry, retry_key, Retry, ENDED_KEPT_FOR, RETRY_BASE, RETRY_CAP};
pub use router::{dns_blocked_by, judge_route, wanted_routes, RouteVerdict};
pub use scope::{Links, Reach, Scope};
pub(crate) use waits::awaiting_at;
pub use waits::{awaiting, Awaited};

pub(crate) use retry::retry_at;
pub(crate) use router::{dns_blocked_by_at, judge_route_at, wanted_routes_at};

use crate::ids::Region;
use crate::index::{pair, Lookup, Pair, WorldIndex};
use crate::model::{LinkKey, World};

/// One role's plan for one invocation: the analysis it rests on, and the
/// steps to take. What later steps wait on is asked of the world the steps
/// leave ([`awaiting`]).
#[derive(Clone, Debug)]
pub struct Plan {
    pub assessment: Assessment,
    pub actions: Vec<Action>,
}

/// The planner's entry: what `role` does in `region` for the links in `scope`.
/// Both phases look the world up through one index (`crate::index`), built here.
pub fn for_role(world: &World, deployment: &Deployment, role: Role, region: &Region, scope: &Scope) -> Plan {
    let index = WorldIndex::new(world);
    let assessment = assess::assess_at(&index, deployment);
    let actions = actions_at(&index, &assessment, role, region, scope);
    Plan { assessment, actions }
}

/// Phase three alone, on an assessment already made.
pub fn actions(world: &World, assessment: &Assessment, role: Role, region: &Region, scope: &Scope) -> Vec<Action> {
    actions_at(&WorldIndex::new(world), assessment, role, region, scope)
}

pub(crate) fn actions_at(
    index: &WorldIndex,
    assessment: &Assessment,
    role: Role,
    region: &Region,
    scope: &Scope,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut routed = router::Planned::default();
    let links = EveryLink::new(index, assessment);
    for (key, desired) in links.iter() {
        if !scope.in_view_at(key, index, assessment) || assessment.is_held(key) {
            continue;
        }
        let link = LinkView { key, desired, live: index.live_managed(key) };
        let at = Context { index, assessment, region, scope };
        match role {
            Role::Requester => requester::plan(&at, &link, &mut actions),
            Role::Accepter => accepter::plan(&at, &link, &mut actions),
            Role::Router => router::plan(&at, &link, &mut actions, &mut routed),
        }
    }
    actions
}

/// Every link that exists or is asked for, in canonical order.
pub fn all_links(world: &World, assessment: &Assessment) -> BTreeSet<LinkKey> {
    let mut keys: BTreeSet<LinkKey> = assessment.links.keys().cloned().collect();
    keys.extend(world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live()).map(LinkKey::of));
    keys
}

/// [`all_links`] with no key copied: the assessment's own keys, merged in
/// canonical order with those of the links that stand unasked (being taken
/// down, or held). A pass walks every link once per role and once for the
/// statuses, and a copy of every key each time cost as much heap again as
/// the assessment holds.
pub(crate) struct EveryLink<'a> {
    asked: &'a BTreeMap<LinkKey, DesiredLink>,
    /// The keys of live managed connections that the assessment does not ask for.
    unasked: BTreeSet<LinkKey>,
}

impl<'a> EveryLink<'a> {
    pub(crate) fn new(index: &WorldIndex, assessment: &'a Assessment) -> Self {
        // The asked keys as they are held, so that a connection's canonical
        // key is unasked exactly when `all_links` would add it.
        let asked: HashSet<Pair> = assessment.links.keys().map(|k| (&k.a, &k.b)).collect();
        let unasked = index
            .live_managed_all()
            .filter(|p| !asked.contains(&pair(&p.requester, &p.accepter)))
            .map(LinkKey::of)
            .collect();
        Self { asked: &assessment.links, unasked }
    }

    /// Each link, with what the assessment asks of it (`None`: nothing).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&LinkKey, Option<&DesiredLink>)> {
        let mut asked = self.asked.iter().peekable();
        let mut unasked = self.unasked.iter().peekable();
        // Never equal: `unasked` holds none of the asked keys.
        std::iter::from_fn(move || match (asked.peek(), unasked.peek()) {
            (Some((x, _)), Some(y)) if x > y => unasked.next().map(|k| (k, None)),
            (Some(_), _) => asked.next().map(|(k, desired)| (k, Some(desired))),
            (None, _) => unasked.next().map(|k| (k, None)),
        })
    }

    /// Each link's key alone.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &LinkKey> {
        self.iter().map(|(key, _)| key)
    }
}

/// What every role's planner plans from: the world (through its index), its
/// assessment, and the function's region and scope.
#[derive(Clone, Copy)]
struct Context<'a> {
    index: &'a WorldIndex<'a>,
    assessment: &'a Assessment,
    region: &'a Region,
    scope: &'a Scope,
}

/// One link as a role's planner sees it: asked for or not, and the
/// connections tagpeer made for it that still stand, the one kept first.
struct LinkView<'a> {
    key: &'a LinkKey,
    desired: Option<&'a DesiredLink>,
    live: Vec<&'a crate::model::Peering>,
}

#[cfg(test)]
mod tests;
