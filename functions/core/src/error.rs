//! The core's errors: malformed identifiers and malformed `tagpeer:` tags.
//! Their `Display` texts are the words a person reads in `tagpeer-status` and
//! in the log. The shell's errors (events, configuration, AWS calls, the
//! handler) are in the `tagpeer` crate's `error` module.

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
