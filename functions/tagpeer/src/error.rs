//! Every error tagpeer reports, one small enum per layer. The `Display` texts
//! are the words a person reads in `tagpeer-status` and in the log.

use thiserror::Error;

/// The longest piece of a person's value an error repeats: a status line holds
/// 256 characters, and the reason must fit after it.
pub const QUOTED_MAX: usize = 48;

/// `value` quoted as Rust quotes strings, cut to [`QUOTED_MAX`] characters
/// with a `…` where it was cut.
pub fn quoted(value: &str) -> String {
    if value.chars().count() <= QUOTED_MAX {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(QUOTED_MAX).collect();
    format!("{head:?}…")
}

/// A malformed identifier.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{} is not a {kind} ({prefix} followed by 8 or 17 lowercase hex digits)", quoted(found))]
    Resource { kind: &'static str, prefix: &'static str, found: String },
    #[error("{} is not an account id (12 digits)", quoted(.0))]
    Account(String),
    #[error("{} is not a region name (such as ap-northeast-2)", quoted(.0))]
    Region(String),
}

/// A malformed value of one of the `tagpeer:` tags.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{key}: {reason}")]
pub struct TagError {
    pub key: &'static str,
    pub reason: TagReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TagReason {
    #[error("{} is not a VPC reference (vpc-…, REGION/vpc-… or ACCOUNT/REGION/vpc-…): {}", quoted(.0), .1)]
    VpcRef(String, IdError),
    #[error("{} is not a VPC reference (vpc-…, REGION/vpc-… or ACCOUNT/REGION/vpc-…)", quoted(.0))]
    VpcRefShape(String),
    #[error("{} is not a group name (letters, digits, '.', '_' and '-', at most 64)", quoted(.0))]
    Group(String),
    #[error("{} is neither an account id nor a VPC reference", quoted(.0))]
    Principal(String),
    #[error("'*' must stand alone")]
    StarNotAlone,
    #[error("{} is not 'all', 'main' or route table ids: {}", quoted(.0), .1)]
    RouteTable(String, IdError),
    #[error("'all' and 'main' must stand alone")]
    RouteTablesMixed,
    #[error("{} is neither 'on' nor 'off'", quoted(.0))]
    Toggle(String),
    #[error("no value: give {0}")]
    Empty(&'static str),
}

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
