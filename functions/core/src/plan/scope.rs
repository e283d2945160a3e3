//! What one invocation works on. The trigger decides it (the handler turns
//! each event into a [`Scope`]); the planner only reads it, and never asks
//! what kind of event arrived.

use crate::ids::{Endpoint, PeeringId};
use crate::model::{LinkKey, World};

/// Which links an invocation looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Links {
    /// Every link (a sweep).
    All,
    /// The links of these VPCs.
    Of(Vec<Endpoint>),
    /// One link.
    Link(LinkKey),
    /// The link of this peering connection.
    Peering(PeeringId),
}

/// How far a role's steps reach: the sides in the function's own region, or
/// this account's sides in every region. A change that the other region's
/// function never hears of (CloudTrail records a call only in the region it
/// was made in) is done from here, through the clients every function holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Region,
    Account,
}

/// The links in view, and how far each role's steps reach for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub links: Links,
    /// Where the requester requests a link (its requester side's region).
    pub requests: Reach,
    /// Whose route tables the router routes.
    pub routes: Reach,
    /// Whose DNS option the router sets.
    pub options: Reach,
}

impl Scope {
    /// A sweep: every link, each region doing its own sides; every region sweeps.
    pub fn sweep() -> Self {
        Self { links: Links::All, requests: Reach::Region, routes: Reach::Region, options: Reach::Region }
    }

    /// These VPCs' tags changed: their links are requested wherever their
    /// requester is, and both sides' DNS options follow (`tagpeer:dns` on one
    /// side sets the other side's option).
    pub fn tags_changed(vpcs: Vec<Endpoint>) -> Self {
        Self { links: Links::Of(vpcs), requests: Reach::Account, routes: Reach::Region, options: Reach::Account }
    }

    /// These VPCs' ranges changed: only this region hears of it, so both
    /// sides' routes are redone from here.
    pub fn ranges_changed(vpcs: Vec<Endpoint>) -> Self {
        Self { links: Links::Of(vpcs), requests: Reach::Account, routes: Reach::Account, options: Reach::Account }
    }

    /// tagpeer's own event for one link, sent to every region that acts on it.
    pub fn link(key: LinkKey) -> Self {
        Self { links: Links::Link(key), requests: Reach::Account, routes: Reach::Region, options: Reach::Region }
    }

    /// A call on a peering connection, recorded in the caller's region only.
    /// One that ended it (a delete or a reject) reaches both sides' routes and
    /// options from here; one that moved it on (an accept) reaches this
    /// region's, and tagpeer's own events tell the other.
    pub fn peering(id: PeeringId, ended: bool) -> Self {
        let sides = if ended { Reach::Account } else { Reach::Region };
        Self { links: Links::Peering(id), requests: Reach::Account, routes: sides, options: sides }
    }

    pub fn is_sweep(&self) -> bool {
        self.links == Links::All
    }

    /// Whether `key` is in view.
    pub fn covers(&self, key: &LinkKey, world: &World) -> bool {
        match &self.links {
            Links::All => true,
            Links::Of(vpcs) => vpcs.iter().any(|v| key.has(v)),
            Links::Link(link) => link == key,
            Links::Peering(id) => world.peering(id).is_some_and(|p| &LinkKey::of(p) == key),
        }
    }

    /// The VPCs the trigger named, whose statuses are rewritten even when
    /// they have no link left.
    pub fn named_vpcs(&self) -> &[Endpoint] {
        match &self.links {
            Links::Of(vpcs) => vpcs,
            _ => &[],
        }
    }
}
