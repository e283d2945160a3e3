//! Identifiers: validated AWS account ids, regions and resource ids, and the
//! fully qualified VPC endpoint a link joins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// A 12-digit AWS account id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

/// An AWS region name such as `ap-northeast-2`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

macro_rules! resource_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id's prefix, including the dash.
            pub const PREFIX: &'static str = $prefix;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if is_resource_id(s, $prefix) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Resource { kind: $kind, prefix: $prefix, found: s.to_owned() })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

resource_id!(
    /// `vpc-` followed by 8 or 17 lowercase hex digits.
    VpcId, "vpc-", "VPC id"
);
resource_id!(
    /// `pcx-` followed by 8 or 17 lowercase hex digits.
    PeeringId, "pcx-", "peering connection id"
);
resource_id!(
    /// `rtb-` followed by 8 or 17 lowercase hex digits.
    RouteTableId, "rtb-", "route table id"
);

/// EC2 resource ids are a prefix and 8 (older resources) or 17 lowercase hex digits.
fn is_resource_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Account(s.to_owned()))
        }
    }
}

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The AWS partition the region is in, as ARNs name it.
    pub fn partition(&self) -> &'static str {
        match self.0.as_str() {
            r if r.starts_with("cn-") => "aws-cn",
            r if r.starts_with("us-gov-") => "aws-us-gov",
            _ => "aws",
        }
    }
}

/// Region names are lowercase words joined by dashes, ending in a number:
/// `us-east-1`, `ap-northeast-3`, `us-gov-west-1`, `eu-central-2`.
impl FromStr for Region {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let parts: Vec<&str> = s.split('-').collect();
        let well_formed = parts.len() >= 3
            && parts.len() <= 4
            && parts[0].len() == 2
            && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].len() <= 2
            && !parts[parts.len() - 1].is_empty()
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Region(s.to_owned()))
        }
    }
}

macro_rules! string_conversions {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_conversions!(AccountId, Region);

/// One side of a link: a VPC, fully qualified.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Endpoint {
    pub account: AccountId,
    pub region: Region,
    pub vpc_id: VpcId,
}

impl Endpoint {
    pub fn new(account: AccountId, region: Region, vpc_id: VpcId) -> Self {
        Self { account, region, vpc_id }
    }

    /// How a person standing at `from` names this VPC: `REGION/vpc-…`, with the
    /// account in front when it is another account's.
    pub fn relative_to(&self, from: &Endpoint) -> String {
        if self.account == from.account {
            format!("{}/{}", self.region, self.vpc_id)
        } else {
            self.to_string()
        }
    }
}

/// `ACCOUNT/REGION/vpc-…`, the canonical form.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account, self.region, self.vpc_id)
    }
}

/// A list of identifiers, separated as every list tagpeer reads is
/// ([`crate::intent::items`]), each kept once, in the order given.
pub fn parse_list<T: FromStr + PartialEq>(list: &str) -> Result<Vec<T>, T::Err> {
    let mut out = Vec::new();
    for item in crate::intent::items(list) {
        let id: T = item.parse()?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_take_8_or_17_lowercase_hex_digits() {
        assert!("vpc-0123abcd".parse::<VpcId>().is_ok());
        assert!("vpc-0123456789abcdef0".parse::<VpcId>().is_ok());
        for bad in ["vpc-", "vpc-0123abc", "vpc-0123ABCD", "vpc-0123abcg", "pcx-0123abcd", "0123abcd", " vpc-0123abcd"]
        {
            let err = bad.parse::<VpcId>().unwrap_err();
            assert!(err.to_string().contains("VPC id"), "{bad}: {err}");
        }
        assert!("pcx-0123abcd".parse::<PeeringId>().is_ok());
        assert!("rtb-0123456789abcdef0".parse::<RouteTableId>().is_ok());
    }

    #[test]
    fn accounts_are_twelve_digits() {
        assert!("123456789012".parse::<AccountId>().is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_are_checked_for_shape() {
        for good in ["ap-northeast-2", "us-east-1", "us-gov-west-1", "eu-central-2", "ap-northeast-9"] {
            assert!(good.parse::<Region>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "ap",
            "ap-northeast",
            "AP-NORTHEAST-2",
            "ap-northeast-x",
            "ap--2",
            "apx-northeast-2",
            "ap-northeast-123",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_name_themselves_relative_to_a_viewer() {
        let a = Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-2".parse().unwrap(),
            "vpc-0123abcd".parse().unwrap(),
        );
        let b = Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-3".parse().unwrap(),
            "vpc-4567abcd".parse().unwrap(),
        );
        let c = Endpoint::new(
            "222222222222".parse().unwrap(),
            "ap-northeast-3".parse().unwrap(),
            "vpc-89abcdef".parse().unwrap(),
        );
        assert_eq!(b.relative_to(&a), "ap-northeast-3/vpc-4567abcd");
        assert_eq!(c.relative_to(&a), "222222222222/ap-northeast-3/vpc-89abcdef");
        assert_eq!(a.to_string(), "123456789012/ap-northeast-2/vpc-0123abcd");
    }
}
