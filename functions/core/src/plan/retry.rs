//! When a link whose connection ended is requested again: at once the first
//! time, then with a doubling wait, remembered where AWS's records outlast it.

use crate::ids::{Endpoint, PeeringId};
use crate::index::Lookup;
use crate::intent;
use crate::model::{LinkKey, PeeringState, World};

/// `tagpeer-retry/ACCOUNT/REGION/vpc-…`: where a VPC remembers its link to `peer`'s last request.
pub fn retry_key(peer: &Endpoint) -> String {
    format!("{}{peer}", intent::RETRY_PREFIX)
}

pub(super) fn retry_value(attempt: u32, at: u64) -> String {
    format!("{attempt}@{at}")
}

/// What `vpc` remembers of its link to `peer`: the last request's number and time.
fn remembered<'w>(lookup: impl Lookup<'w>, vpc: &Endpoint, peer: &Endpoint) -> Option<(u32, u64)> {
    let value = lookup.vpc(vpc)?.tags.get(&retry_key(peer))?;
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
pub(super) fn wait_after(attempt: u32) -> u64 {
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
    retry_at(world, key)
}

/// [`retry`], looking things up through `lookup` (a pass's index, or the world).
pub(crate) fn retry_at<'w>(lookup: impl Lookup<'w>, key: &LinkKey) -> Retry {
    let world = lookup.world();
    let ended = lookup
        .connections_of(key)
        .filter(|p| !p.state.is_live() && p.is_managed())
        .max_by_key(|p| (p.attempt(), p.requested_at()));
    let from_connection = ended.map(|p| (p.attempt(), p.requested_at()));
    let from_vpcs = [&key.a, &key.b].into_iter().filter_map(|v| remembered(lookup, v, key.other(v))).max();
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
