//! What a role's next step waits on AWS for: the handler waits for it within
//! the invocation instead of leaving the step to the sweep.

use super::{Assessment, EveryLink, Role, Scope};
use crate::ids::{Endpoint, PeeringId, Region};
use crate::index::{Lookup, WorldIndex};
use crate::model::{LinkKey, PeeringState, World};

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

/// What the steps of `role` in `region` for the links in `scope` wait on.
pub fn awaiting(world: &World, assessment: &Assessment, role: Role, region: &Region, scope: &Scope) -> Vec<Awaited> {
    awaiting_at(&WorldIndex::new(world), assessment, role, region, scope)
}

/// [`awaiting`], on an index of the world already built.
pub(crate) fn awaiting_at(
    index: &WorldIndex,
    assessment: &Assessment,
    role: Role,
    region: &Region,
    scope: &Scope,
) -> Vec<Awaited> {
    let mut out = Vec::new();
    for (key, _) in EveryLink::new(index, assessment).iter() {
        if !scope.in_view_at(key, index, assessment) || assessment.is_held(key) || !assessment.links.contains_key(key) {
            continue;
        }
        let live = index.live_managed(key);
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
