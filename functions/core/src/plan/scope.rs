//! What one invocation works on. The trigger decides it (the handler turns
//! each event into a [`Scope`]); the planner only reads it, and never asks
//! what kind of event arrived.

use super::Assessment;
use crate::ids::{Endpoint, PeeringId};
use crate::index::Lookup;
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
    /// The links any of these name: a batch of changes handled at once
    /// ([`Scope::union`]). Never nested, never `All`.
    Union(Vec<Links>),
}

impl Links {
    /// The links named by either; `All` takes in everything.
    fn union(self, other: Links) -> Links {
        let parts = |links: Links| match links {
            Links::Union(parts) => parts,
            one => vec![one],
        };
        match (self, other) {
            (Links::All, _) | (_, Links::All) => Links::All,
            (a, b) => {
                let mut all = parts(a);
                for part in parts(b) {
                    if !all.contains(&part) {
                        all.push(part);
                    }
                }
                if all.len() == 1 {
                    all.remove(0)
                } else {
                    Links::Union(all)
                }
            }
        }
    }
}

/// How far a role's steps reach: the sides in the function's own region, or
/// this account's sides in every region. A change that the other region's
/// function never hears of (CloudTrail records a call only in the region it
/// was made in) is done from here, through the clients every function holds
/// (routes and DNS options), or handed over to that region (requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    Region,
    Account,
}

/// The links in view, and how far each role's steps reach for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub links: Links,
    /// Which links' requests this invocation sees to: those of its own
    /// region's VPCs (`Region`, a sweep: every region sweeps), or also those
    /// of the account's other regions (`Account`, a change the other region
    /// may not hear of), which it hands over to the requester there ("Link
    /// Wanted"): only a link's requester region requests it.
    pub requests: Reach,
    /// Whose route tables the router routes.
    pub routes: Reach,
    /// Whose DNS option the router sets.
    pub options: Reach,
    /// The change may have freed room a quota kept (an accepted request no
    /// longer counts as outstanding; a deleted connection no longer counts
    /// against its VPCs): every link asked for that has no connection yet is
    /// in view too, and every status of the region is rewritten where it
    /// differs, so that links waiting for room are requested now.
    pub frees_room: bool,
}

impl Scope {
    /// A sweep: every link, each region doing its own sides; every region sweeps.
    pub fn sweep() -> Self {
        Self {
            links: Links::All,
            requests: Reach::Region,
            routes: Reach::Region,
            options: Reach::Region,
            frees_room: false,
        }
    }

    /// These VPCs' tags changed: their links are seen to wherever their
    /// requester is, and both sides' DNS options follow (`tagpeer:dns` on one
    /// side sets the other side's option). A link taken down frees room.
    pub fn tags_changed(vpcs: Vec<Endpoint>) -> Self {
        Self {
            links: Links::Of(vpcs),
            requests: Reach::Account,
            routes: Reach::Region,
            options: Reach::Account,
            frees_room: true,
        }
    }

    /// Another account's VPC changed whom it consents to: this region's
    /// requests of it, which may have waited for that consent.
    pub fn consent_changed(vpc: Endpoint) -> Self {
        Self {
            links: Links::Of(vec![vpc]),
            requests: Reach::Region,
            routes: Reach::Region,
            options: Reach::Region,
            frees_room: false,
        }
    }

    /// These VPCs' ranges changed: only this region hears of it, so both
    /// sides' routes are redone from here.
    pub fn ranges_changed(vpcs: Vec<Endpoint>) -> Self {
        Self {
            links: Links::Of(vpcs),
            requests: Reach::Account,
            routes: Reach::Account,
            options: Reach::Account,
            frees_room: false,
        }
    }

    /// tagpeer's own event for one link, sent to every region that acts on it.
    pub fn link(key: LinkKey) -> Self {
        Self {
            links: Links::Link(key),
            requests: Reach::Account,
            routes: Reach::Region,
            options: Reach::Region,
            frees_room: false,
        }
    }

    /// The same scope, for a change that may have freed room a quota kept.
    pub fn freeing_room(self) -> Self {
        Self { frees_room: true, ..self }
    }

    /// A call on a peering connection, recorded in the caller's region only.
    /// One that ended it (a delete or a reject) reaches both sides' routes and
    /// options from here; one that moved it on (an accept) reaches this
    /// region's, and tagpeer's own events tell the other.
    pub fn peering(id: PeeringId, ended: bool) -> Self {
        let sides = if ended { Reach::Account } else { Reach::Region };
        Self { links: Links::Peering(id), requests: Reach::Account, routes: sides, options: sides, frees_room: true }
    }

    /// One scope for a batch of changes handled in one invocation: the
    /// links any of them names, each role reaching as far as the farthest of
    /// them asks, and room freed if any freed it. Reaching farther than a
    /// link's own change asked is safe: every step is idempotent and checks
    /// the world first, so at worst it does another region's share of the
    /// change a moment early, and that region's function finds it done.
    /// `None` for no scope at all.
    pub fn union(scopes: impl IntoIterator<Item = Scope>) -> Option<Scope> {
        scopes.into_iter().reduce(|a, b| Scope {
            links: a.links.union(b.links),
            requests: a.requests.max(b.requests),
            routes: a.routes.max(b.routes),
            options: a.options.max(b.options),
            frees_room: a.frees_room || b.frees_room,
        })
    }

    pub fn is_sweep(&self) -> bool {
        self.links == Links::All
    }

    /// Every VPC of the function's region gets its status rewritten where it
    /// differs: in a sweep, and after a change that may have freed room.
    pub fn rewrites_every_status(&self) -> bool {
        self.is_sweep() || self.frees_room
    }

    /// Whether `key` is in view: named by the trigger, or, when the change
    /// may have freed room, asked for and still without a connection.
    pub fn in_view(&self, key: &LinkKey, world: &World, assessment: &Assessment) -> bool {
        self.in_view_at(key, world, assessment)
    }

    /// [`Scope::in_view`], looking things up through `lookup` (a pass's index, or the world).
    pub(crate) fn in_view_at<'w>(&self, key: &LinkKey, lookup: impl Lookup<'w>, assessment: &Assessment) -> bool {
        self.covers_at(key, lookup)
            || (self.frees_room && assessment.links.contains_key(key) && lookup.live_managed(key).is_empty())
    }

    /// Whether the trigger named `key`.
    pub fn covers(&self, key: &LinkKey, world: &World) -> bool {
        self.covers_at(key, world)
    }

    /// [`Scope::covers`], looking things up through `lookup` (a pass's index, or the world).
    pub(crate) fn covers_at<'w>(&self, key: &LinkKey, lookup: impl Lookup<'w>) -> bool {
        Self::names(&self.links, key, lookup)
    }

    fn names<'w>(links: &Links, key: &LinkKey, lookup: impl Lookup<'w>) -> bool {
        match links {
            Links::All => true,
            Links::Of(vpcs) => vpcs.iter().any(|v| key.has(v)),
            Links::Link(link) => link == key,
            Links::Peering(id) => lookup.peering(id).is_some_and(|p| p.is_of(key)),
            Links::Union(parts) => parts.iter().any(|links| Self::names(links, key, lookup)),
        }
    }

    /// The VPCs the trigger named, as it named them: a link's two ends, or
    /// the VPCs whose tags changed (a connection's ends are known only once
    /// it is read). Another account's among them is read too (see
    /// [`super::remote_reads`]).
    pub fn vpcs_named(&self) -> Vec<Endpoint> {
        self.ends(None)
    }

    /// The VPCs the trigger named, whose statuses are rewritten even when
    /// they have no link left: a VPC whose tags changed, the two ends of a
    /// link or of a connection (a link taken down has none left).
    pub fn named_vpcs(&self, world: &World) -> Vec<Endpoint> {
        self.ends(Some(world))
    }

    /// The VPCs the trigger's links name, each once, in the order named; a
    /// connection's two ends only when `world` is given to look it up in.
    fn ends(&self, world: Option<&World>) -> Vec<Endpoint> {
        fn walk(links: &Links, world: Option<&World>, into: &mut Vec<Endpoint>) {
            match links {
                Links::All => {}
                Links::Of(vpcs) => into.extend(vpcs.iter().cloned()),
                Links::Link(key) => into.extend([key.a.clone(), key.b.clone()]),
                Links::Peering(id) => into.extend(
                    world
                        .and_then(|w| w.peering(id))
                        .into_iter()
                        .flat_map(|p| [p.requester.clone(), p.accepter.clone()]),
                ),
                Links::Union(parts) => parts.iter().for_each(|part| walk(part, world, into)),
            }
        }
        let mut vpcs = Vec::new();
        walk(&self.links, world, &mut vpcs);
        let mut seen = std::collections::BTreeSet::new();
        vpcs.retain(|v| seen.insert(v.clone()));
        vpcs
    }
}
