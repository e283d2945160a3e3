//! The changes tagpeer makes, one [`Action`] each, and what each one does to
//! the world once it succeeded.

use std::fmt;

use ipnet::IpNet;

use super::retry::{retry_key, retry_value};
use crate::ids::{Endpoint, PeeringId, Region, RouteTableId};
use crate::intent;
use crate::model::{LinkKey, Peering, PeeringState, Route, Target, World};

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
    /// Tells the requester of the link's requester region (another region of
    /// this account) to request it: only that region's requester requests.
    HandOver {
        link: LinkKey,
        requester: Endpoint,
        accepter: Endpoint,
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
        /// The line reports an error (a malformed tag, a refused link): the
        /// write is logged as a warning.
        reports_error: bool,
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
            | Action::HandOver { link, .. }
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
            Action::HandOver { .. } => "PutEvents",
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

    /// What the action acts on, as a person reads it: the region, the
    /// resource, and what changes there. [`Display`](fmt::Display) and the
    /// handler's report of each change both say it in these words.
    pub fn subject(&self) -> Subject {
        let (region, resource, detail) = match self {
            Action::RequestPeering { requester, accepter, .. } => (
                requester.region.clone(),
                requester.vpc_id.to_string(),
                Some(format!("to {}", accepter.relative_to(requester))),
            ),
            Action::HandOver { requester, accepter, .. } => (
                requester.region.clone(),
                requester.vpc_id.to_string(),
                Some(format!("Link Wanted: request the link to {}", accepter.relative_to(requester))),
            ),
            Action::AcceptPeering { region, peering, .. } | Action::DeletePeering { region, peering, .. } => {
                (region.clone(), peering.to_string(), None)
            }
            Action::CreateRoute { region, route_table, destination, peering, .. }
            | Action::ReplaceRoute { region, route_table, destination, peering, .. } => {
                (region.clone(), route_table.to_string(), Some(format!("{destination} -> {peering}")))
            }
            Action::DeleteRoute { region, route_table, destination, .. } => {
                (region.clone(), route_table.to_string(), Some(destination.to_string()))
            }
            Action::SetDns { region, peering, requester_side, on, .. } => {
                let side = if *requester_side { "requester" } else { "accepter" };
                (region.clone(), peering.to_string(), Some(format!("{side} AllowDnsResolutionFromRemoteVpc = {on}")))
            }
            Action::SetStatus { vpc, status, .. } => (
                vpc.region.clone(),
                vpc.vpc_id.to_string(),
                Some(match status {
                    Some(status) => format!("{} = {status}", intent::STATUS),
                    None => intent::STATUS.to_owned(),
                }),
            ),
            Action::SetRetry { link, vpc, last } => {
                let key = retry_key(link.other(vpc));
                (
                    vpc.region.clone(),
                    vpc.vpc_id.to_string(),
                    Some(match last {
                        Some((attempt, at)) => format!("{key} = {}", retry_value(*attempt, *at)),
                        None => key,
                    }),
                )
            }
        };
        Subject { region, resource, detail }
    }

    /// The side of `key` an action works on: the VPC whose table it routes, the
    /// requester for requests and deletions, the accepter for acceptances.
    pub fn side_of<'k>(&self, key: &'k LinkKey, world: &World) -> &'k Endpoint {
        let named = |vpc: &Endpoint| if &key.a == vpc { &key.a } else { &key.b };
        let by_region = |region: &Region| if &key.a.region == region { &key.a } else { &key.b };
        match self {
            Action::RequestPeering { requester, .. } | Action::HandOver { requester, .. } => named(requester),
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
}

/// What an action acts on: see [`Action::subject`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub region: Region,
    pub resource: String,
    pub detail: Option<String>,
}

/// One line a person reads: the call and what it acts on.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Subject { region, resource, detail } = self.subject();
        write!(f, "{} in {region}: {resource}", self.api_name())?;
        match detail {
            Some(detail) => write!(f, " {detail}"),
            None => Ok(()),
        }
    }
}

impl Action {
    /// The world as it stands after the action succeeded (`created`: the id
    /// of a connection it requested), as far as tagpeer can tell without
    /// reading it again: a function describes the state it leaves behind with
    /// it, and the in-memory cloud of the tests changes by it.
    pub fn take_effect(&self, world: &mut World, created: Option<&PeeringId>) {
        match self {
            // An event: the world is as it was.
            Action::HandOver { .. } => {}
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
            Action::SetStatus { vpc, status, .. } => {
                if let Some(v) = world.vpc_mut(vpc) {
                    match status {
                        Some(s) => v.tags.insert(intent::STATUS.to_owned(), s.clone()),
                        None => v.tags.remove(intent::STATUS),
                    };
                }
            }
        }
    }
}

fn set_state(world: &mut World, id: &PeeringId, state: PeeringState) {
    if let Some(p) = world.peerings.iter_mut().find(|p| &p.id == id) {
        p.state = state;
    }
}
