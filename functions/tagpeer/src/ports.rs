//! The handler's two ports: the cloud it observes and changes, and where its
//! own events go. The AWS adapter ([`crate::aws`]) implements both for AWS;
//! the handler's unit tests put an in-memory world and a list behind them.

use std::collections::BTreeSet;
use std::future::Future;

use crate::error::AwsError;
use crate::events::Outgoing;
use crate::ids::{Endpoint, PeeringId, Region};
use crate::model::World;
use crate::plan::{Action, Deployment};

/// What a function observes and changes.
pub trait Cloud: Send + Sync {
    /// Everything the deployment's planning reads, as it stands now, and,
    /// of other accounts, also the VPCs among `named` (those the trigger names).
    fn observe(
        &self,
        deployment: &Deployment,
        named: &[Endpoint],
    ) -> impl Future<Output = Result<World, AwsError>> + Send;

    /// `world` with the connections `ids` read again, for a step that waits
    /// on AWS (a connection's state, whether its accepter's region lists it
    /// yet). The default reads everything again; an adapter may read less.
    fn refresh_peerings(
        &self,
        deployment: &Deployment,
        world: &World,
        ids: &BTreeSet<PeeringId>,
    ) -> impl Future<Output = Result<World, AwsError>> + Send {
        let _ = (world, ids);
        self.observe(deployment, &[])
    }

    /// Makes one change; answers the id of a connection it requested.
    fn perform(&self, action: &Action) -> impl Future<Output = Result<Option<PeeringId>, AwsError>> + Send;

    /// The API calls sent so far, by this cloud's count: the handler
    /// publishes each invocation's difference as metrics.
    fn calls(&self) -> Calls {
        Calls::default()
    }
}

/// API calls sent, retries included, and how many of them were throttled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub sent: u64,
    pub throttled: u64,
}

impl Calls {
    /// What was sent since `earlier`.
    pub fn since(self, earlier: Calls) -> Calls {
        Calls {
            sent: self.sent.saturating_sub(earlier.sent),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

/// Where a function's `tagpeer` events go.
pub trait EventSink: Send + Sync {
    /// Puts `events` on the bus of `region`: the function's own, or another
    /// of the deployment's that must act on them ([`Outgoing::destinations`]).
    ///
    /// [`Outgoing::destinations`]: crate::events::Outgoing::destinations
    fn send(&self, region: &Region, events: &[Outgoing]) -> impl Future<Output = Result<(), AwsError>> + Send;
}
