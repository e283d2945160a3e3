//! The requester's steps: request each link that has no connection, remove
//! duplicates, and take down links whose intent is gone.

use super::retry::{retry_at, retry_key, wait_after, Retry, ENDED_KEPT_FOR};
use super::{Action, Assessment, Context, LinkView, Reach};
use crate::ids::Endpoint;
use crate::index::{Lookup, WorldIndex};
use crate::model::{LinkKey, Peering, PeeringState, Target};

pub(super) fn plan(at: &Context, link: &LinkView, actions: &mut Vec<Action>) {
    let Context { index, assessment, region, scope } = *at;
    let (key, desired, live) = (link.key, link.desired, &link.live);
    let here = |vpc: &Endpoint| &vpc.region == region && assessment.is_mine(vpc);
    // Only the requester of the link's requester region requests, so two
    // regions never both request a link (within a region, see "One requester
    // a region" in docs/DESIGN.md). A change that reached only another
    // region of this account (a tag there, or a reject or delete made there,
    // which CloudTrail records only in the region of the call) is handed
    // over to the requester's region ("Link Wanted").
    let hands_over = |vpc: &Endpoint| {
        scope.requests == Reach::Account && assessment.is_mine(vpc) && !here(vpc) && scope.covers_at(key, index)
    };
    // Connections to remove: all of them when the intent is gone, else every
    // duplicate beside the one kept. Each goes by the side that requested it.
    let doomed: &[&Peering] = match desired {
        Some(_) => live.get(1..).unwrap_or_default(),
        None => live.as_slice(),
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
            teardown(index, assessment, key, peering, actions);
        }
    }
    if let Some(wanted) = desired {
        if live.is_empty() && hands_over(&wanted.requester) && matches!(retry_at(index, key), Retry::Now { .. }) {
            actions.push(Action::HandOver {
                link: key.clone(),
                requester: wanted.requester.clone(),
                accepter: wanted.accepter().clone(),
            });
        }
        if live.is_empty() && here(&wanted.requester) {
            if let Retry::Now { attempt } = retry_at(index, key) {
                actions.push(Action::RequestPeering {
                    link: key.clone(),
                    requester: wanted.requester.clone(),
                    accepter: wanted.accepter().clone(),
                    attempt,
                });
                // A request whose end the next one would wait longer for
                // than AWS keeps ended connections is remembered where it
                // outlasts them.
                if wait_after(attempt) >= ENDED_KEPT_FOR {
                    let last = Some((attempt, index.world().observed_at));
                    actions.push(Action::SetRetry { link: key.clone(), vpc: wanted.requester.clone(), last });
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
        // This region's sides only: asking what a side remembers names its peer's key.
        for vpc in [&key.a, &key.b].into_iter().filter(|vpc| here(vpc)) {
            let remembers = index.vpc(vpc).is_some_and(|v| v.tags.contains_key(&retry_key(key.other(vpc))));
            if remembers {
                actions.push(Action::SetRetry { link: key.clone(), vpc: vpc.clone(), last: None });
            }
        }
    }
}

/// Routes through the connection on both sides first, then the connection.
/// Another account's routes are its own deployment's to remove: while they
/// can be seen, the connection waits for them. Only the requester's account
/// deletes the connection: it alone sees the connection's tags (each account
/// sees only its own), which the delete is authorised by, and AWS lets only
/// the requester's owner delete a request not yet accepted. The accepter's
/// account removes its routes and leaves the connection to the requester's.
fn teardown(index: &WorldIndex, assessment: &Assessment, key: &LinkKey, peering: &Peering, actions: &mut Vec<Action>) {
    let mut theirs = 0;
    for table in index.route_tables_joined_by(peering) {
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
