//! The accepter's step: accept what passes consent, nothing else.

use super::{Action, Context, LinkView};
use crate::model::PeeringState;

pub(super) fn plan(at: &Context, link: &LinkView, actions: &mut Vec<Action>) {
    let Context { assessment, region, .. } = *at;
    let (key, desired, live) = (link.key, link.desired, &link.live);
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
