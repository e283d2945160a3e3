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

use std::collections::BTreeSet;

pub use action::Action;
pub use assess::{assess, dns_reads, remote_reads, Assessment, DesiredLink, Problem, VpcError};
pub use deployment::{Deployment, Quotas, Role, UnknownRole};
pub use retry::{retry, retry_key, Retry, ENDED_KEPT_FOR, RETRY_BASE, RETRY_CAP};
pub use router::{dns_blocked_by, judge_route, wanted_routes, RouteVerdict};
pub use scope::{Links, Reach, Scope};
pub use waits::{awaiting, Awaited};

use crate::ids::Region;
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
pub fn for_role(world: &World, deployment: &Deployment, role: Role, region: &Region, scope: &Scope) -> Plan {
    let assessment = assess(world, deployment);
    let actions = actions(world, &assessment, role, region, scope);
    Plan { assessment, actions }
}

/// Phase three alone, on an assessment already made.
pub fn actions(world: &World, assessment: &Assessment, role: Role, region: &Region, scope: &Scope) -> Vec<Action> {
    let mut actions = Vec::new();
    for key in all_links(world, assessment) {
        if !scope.in_view(&key, world, assessment) || assessment.is_held(&key) {
            continue;
        }
        let link = LinkView { key: &key, desired: assessment.links.get(&key), live: world.live_managed(&key) };
        let at = Context { world, assessment, region, scope };
        match role {
            Role::Requester => requester::plan(&at, &link, &mut actions),
            Role::Accepter => accepter::plan(&at, &link, &mut actions),
            Role::Router => router::plan(&at, &link, &mut actions),
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

/// What every role's planner plans from: the world, its assessment, and the
/// function's region and scope.
#[derive(Clone, Copy)]
struct Context<'a> {
    world: &'a World,
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
