//! The shell's errors, one small enum per layer (the core's are in
//! `tagpeer_core::error`, re-exported here). The `Display` texts
//! are the words a person reads in `tagpeer-status` and in the log.

use thiserror::Error;

pub use tagpeer_core::error::{quoted, IdError, TagError, TagReason, QUOTED_MAX};

/// Why an event could not be taken.
#[derive(Debug, Error)]
pub enum EventError {
    #[error("the event is not JSON of EventBridge's shape: {0}")]
    Envelope(String),
    #[error("no rule of tagpeer's sends {event_source:?} {detail_type:?} events")]
    Unexpected { event_source: String, detail_type: String },
    #[error("the {detail_type:?} event's detail is malformed: {reason}")]
    Detail { detail_type: String, reason: String },
    #[error("the tag change names no VPC: resources are {0:?}")]
    NoVpc(Vec<String>),
    #[error("the queue's message {message_id} holds no event: {reason}")]
    Message { message_id: String, reason: String },
}

/// A call to AWS that failed.
#[derive(Clone, Debug, Error)]
#[error("{action} in {region} failed: {code}: {message}")]
pub struct AwsError {
    pub action: &'static str,
    pub region: String,
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// Error codes compared as AWS's documentation spells them, ignoring case
    /// (moto and AWS disagree on `InvalidVpcPeeringConnectionID.NotFound`).
    pub fn is(&self, code: &str) -> bool {
        self.code.eq_ignore_ascii_case(code)
    }
}

/// Configuration a function reads at start.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing { var: &'static str, hint: &'static str },
    #[error("{var}: {source}")]
    Invalid { var: &'static str, source: IdError },
    #[error("{0} is not one of the function's roles: requester, accepter or router")]
    Role(String),
    #[error("{var}: {value:?} is not a positive whole number")]
    Quota { var: &'static str, value: String },
    #[error("{var}: {value:?} is not a number of seconds from 0 to 600")]
    Seconds { var: &'static str, value: String },
}

/// Why an invocation did not finish its work.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("observing the deployment failed: {0}")]
    Observe(AwsError),
    #[error("{failed} of {attempted} changes failed; the first: {first}")]
    Apply { failed: usize, attempted: usize, first: AwsError },
    /// A step still waited on AWS when the invocation stopped waiting.
    #[error("still waiting for AWS: {0}")]
    StillWaiting(String),
}
