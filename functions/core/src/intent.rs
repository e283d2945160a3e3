//! The tag grammar: what people write on a VPC, parsed into intent.
//!
//! | key | value |
//! | --- | --- |
//! | `tagpeer:peers` | VPC references separated by commas or spaces |
//! | `tagpeer:mesh` | group names separated by spaces |
//! | `tagpeer:accept` | `*`, or account ids and VPC references |
//! | `tagpeer:route-tables` | `all` (default), `main`, or route table ids |
//! | `tagpeer:dns` | `on` or `off` (default) |
//! | `tagpeer:ipv6` | `on` or `off` (default) |
//!
//! A VPC reference is `vpc-…`, `REGION/vpc-…` or `ACCOUNT/REGION/vpc-…`.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{TagError, TagReason};
use crate::ids::{AccountId, Endpoint, Region, RouteTableId, VpcId};

pub const PEERS: &str = "tagpeer:peers";
pub const MESH: &str = "tagpeer:mesh";
pub const ACCEPT: &str = "tagpeer:accept";
pub const ROUTE_TABLES: &str = "tagpeer:route-tables";
pub const DNS: &str = "tagpeer:dns";
pub const IPV6: &str = "tagpeer:ipv6";
/// Written by tagpeer on VPCs: the state of the VPC's links, or the error.
pub const STATUS: &str = "tagpeer-status";
/// Written by tagpeer on the peering connections it makes: the link's canonical id.
pub const LINK: &str = "tagpeer-link";
/// Written by tagpeer on the peering connections it makes: `true`.
pub const MANAGED: &str = "tagpeer-managed";
/// Written by tagpeer on the peering connections it makes: which request for the link, from 1.
pub const ATTEMPT: &str = "tagpeer-attempt";
/// Written by tagpeer on the peering connections it makes: when, in Unix seconds.
pub const REQUESTED_AT: &str = "tagpeer-requested-at";

/// Written by tagpeer on a link's requester VPC while the link's requests keep
/// ending: `tagpeer-retry/ACCOUNT/REGION/vpc-…` (the peer) = `ATTEMPT@UNIX`, the
/// last request's number and time. AWS forgets ended connections after a few
/// hours, their tags with them; the back-off must outlast them.
pub const RETRY_PREFIX: &str = "tagpeer-retry/";

/// Keys people write start with this; tagpeer's own keys start with `tagpeer-`.
pub const INTENT_PREFIX: &str = "tagpeer:";

/// EC2 tag values hold at most 256 characters.
pub const TAG_VALUE_MAX: usize = 256;

/// A VPC as a person names it, relative to the VPC whose tag names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VpcRef {
    pub account: Option<AccountId>,
    pub region: Option<Region>,
    pub vpc_id: VpcId,
}

impl VpcRef {
    /// Parses `vpc-…`, `REGION/vpc-…` or `ACCOUNT/REGION/vpc-…`.
    pub fn parse(s: &str, key: &'static str) -> Result<Self, TagError> {
        let err = |reason| TagError { key, reason };
        let parts: Vec<&str> = s.split('/').collect();
        let (account, region, vpc) = match parts.as_slice() {
            [vpc] => (None, None, *vpc),
            [region, vpc] => (None, Some(*region), *vpc),
            [account, region, vpc] => (Some(*account), Some(*region), *vpc),
            _ => return Err(err(TagReason::VpcRefShape(s.to_owned()))),
        };
        let bad = |e| err(TagReason::VpcRef(s.to_owned(), e));
        Ok(Self {
            account: account.map(str::parse).transpose().map_err(bad)?,
            region: region.map(str::parse).transpose().map_err(bad)?,
            vpc_id: vpc.parse().map_err(bad)?,
        })
    }

    /// The VPC this reference names, seen from the VPC `home` that carries it.
    pub fn resolve(&self, home: &Endpoint) -> Endpoint {
        Endpoint {
            account: self.account.clone().unwrap_or_else(|| home.account.clone()),
            region: self.region.clone().unwrap_or_else(|| home.region.clone()),
            vpc_id: self.vpc_id.clone(),
        }
    }
}

impl fmt::Display for VpcRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(account) = &self.account {
            write!(f, "{account}/")?;
        }
        if let Some(region) = &self.region {
            write!(f, "{region}/")?;
        }
        write!(f, "{}", self.vpc_id)
    }
}

/// Who may peer with a VPC across accounts (`tagpeer:accept`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Acceptance {
    /// No tag: nobody from another account.
    #[default]
    Nobody,
    /// `*`: any account the deployment allows.
    Anyone,
    /// These accounts, and these VPCs.
    Only { accounts: Vec<AccountId>, vpcs: Vec<VpcRef> },
}

/// Which of a VPC's route tables get routes to its peers (`tagpeer:route-tables`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RouteTables {
    #[default]
    All,
    Main,
    Ids(Vec<RouteTableId>),
}

/// Everything the `tagpeer:` tags of one VPC ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    pub peers: Vec<VpcRef>,
    pub mesh: Vec<String>,
    pub accept: Acceptance,
    pub route_tables: RouteTables,
    pub dns: bool,
    pub ipv6: bool,
}

impl Intent {
    /// Reads the intent from a VPC's tags. Every malformed value is reported;
    /// a VPC with any of them has no intent tagpeer acts on.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Result<Self, Vec<TagError>> {
        let mut errors = Vec::new();
        let mut intent = Intent::default();
        let take = |key: &str| tags.get(key).map(|v| v.trim());
        if let Some(v) = take(PEERS) {
            collect(parse_peers(v), &mut intent.peers, &mut errors);
        }
        if let Some(v) = take(MESH) {
            collect(parse_mesh(v), &mut intent.mesh, &mut errors);
        }
        if let Some(v) = take(ACCEPT) {
            collect(parse_accept(v), &mut intent.accept, &mut errors);
        }
        if let Some(v) = take(ROUTE_TABLES) {
            collect(parse_route_tables(v), &mut intent.route_tables, &mut errors);
        }
        if let Some(v) = take(DNS) {
            collect(parse_toggle(DNS, v), &mut intent.dns, &mut errors);
        }
        if let Some(v) = take(IPV6) {
            collect(parse_toggle(IPV6, v), &mut intent.ipv6, &mut errors);
        }
        if errors.is_empty() {
            Ok(intent)
        } else {
            Err(errors)
        }
    }

    /// Whether the VPC carries any intent at all.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.mesh.is_empty()
    }
}

/// Whether any tag key is one people write for tagpeer.
pub fn has_intent_tags(tags: &BTreeMap<String, String>) -> bool {
    tags.keys().any(|k| k.starts_with(INTENT_PREFIX))
}

fn collect<T>(parsed: Result<T, TagError>, slot: &mut T, errors: &mut Vec<TagError>) {
    match parsed {
        Ok(v) => *slot = v,
        Err(e) => errors.push(e),
    }
}

/// Items separated by commas, spaces or both: the one list syntax of every
/// tag and setting tagpeer reads.
pub fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty())
}

/// `tagpeer:peers`: VPC references separated by commas or spaces; repeats count once.
pub fn parse_peers(value: &str) -> Result<Vec<VpcRef>, TagError> {
    let mut peers = Vec::new();
    for item in items(value) {
        let r = VpcRef::parse(item, PEERS)?;
        if !peers.contains(&r) {
            peers.push(r);
        }
    }
    Ok(peers)
}

/// `tagpeer:mesh`: group names separated by spaces (commas are forgiven).
pub fn parse_mesh(value: &str) -> Result<Vec<String>, TagError> {
    let mut groups: Vec<String> = Vec::new();
    for item in items(value) {
        let ok = item.len() <= 64 && item.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(TagError { key: MESH, reason: TagReason::Group(item.to_owned()) });
        }
        if !groups.iter().any(|g| g == item) {
            groups.push(item.to_owned());
        }
    }
    Ok(groups)
}

/// `tagpeer:accept`: `*`, or account ids and VPC references.
pub fn parse_accept(value: &str) -> Result<Acceptance, TagError> {
    let all: Vec<&str> = items(value).collect();
    if all.is_empty() {
        return Ok(Acceptance::Nobody);
    }
    if all.contains(&"*") {
        return if all.len() == 1 {
            Ok(Acceptance::Anyone)
        } else {
            Err(TagError { key: ACCEPT, reason: TagReason::StarNotAlone })
        };
    }
    let (mut accounts, mut vpcs) = (Vec::new(), Vec::new());
    for item in all {
        if let Ok(account) = item.parse::<AccountId>() {
            accounts.push(account);
        } else if let Ok(vpc) = VpcRef::parse(item, ACCEPT) {
            vpcs.push(vpc);
        } else {
            return Err(TagError { key: ACCEPT, reason: TagReason::Principal(item.to_owned()) });
        }
    }
    Ok(Acceptance::Only { accounts, vpcs })
}

/// `tagpeer:route-tables`: `all`, `main`, or route table ids.
pub fn parse_route_tables(value: &str) -> Result<RouteTables, TagError> {
    let all: Vec<&str> = items(value).collect();
    match all.as_slice() {
        [] => Err(TagError { key: ROUTE_TABLES, reason: TagReason::Empty("all, main or route table ids") }),
        ["all"] => Ok(RouteTables::All),
        ["main"] => Ok(RouteTables::Main),
        many if many.iter().any(|s| *s == "all" || *s == "main") => {
            Err(TagError { key: ROUTE_TABLES, reason: TagReason::RouteTablesMixed })
        }
        many => {
            let mut ids = Vec::new();
            for s in many {
                let id = s
                    .parse::<RouteTableId>()
                    .map_err(|e| TagError { key: ROUTE_TABLES, reason: TagReason::RouteTable((*s).to_owned(), e) })?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Ok(RouteTables::Ids(ids))
        }
    }
}

/// `on` or `off`.
pub fn parse_toggle(key: &'static str, value: &str) -> Result<bool, TagError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(TagError { key, reason: TagReason::Toggle(other.to_owned()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn home() -> Endpoint {
        Endpoint::new(
            "123456789012".parse().unwrap(),
            "ap-northeast-2".parse().unwrap(),
            "vpc-0000aaaa".parse().unwrap(),
        )
    }

    #[test]
    fn the_seed_tag_names_the_osaka_vpc() {
        let intent = Intent::from_tags(&tags(&[(PEERS, "ap-northeast-3/vpc-0123456789abcdef0")])).unwrap();
        assert_eq!(intent.peers.len(), 1);
        let peer = intent.peers[0].resolve(&home());
        assert_eq!(peer.to_string(), "123456789012/ap-northeast-3/vpc-0123456789abcdef0");
    }

    #[test]
    fn references_of_every_form_resolve_against_the_home_vpc() {
        let peers =
            parse_peers("vpc-1111aaaa, ap-northeast-3/vpc-2222bbbb 222222222222/us-east-1/vpc-3333cccc").unwrap();
        let resolved: Vec<String> = peers.iter().map(|p| p.resolve(&home()).to_string()).collect();
        assert_eq!(
            resolved,
            [
                "123456789012/ap-northeast-2/vpc-1111aaaa",
                "123456789012/ap-northeast-3/vpc-2222bbbb",
                "222222222222/us-east-1/vpc-3333cccc"
            ]
        );
    }

    #[test]
    fn separators_may_be_commas_spaces_or_both_and_repeats_count_once() {
        let a = parse_peers("vpc-1111aaaa,vpc-2222bbbb").unwrap();
        let b = parse_peers("  vpc-1111aaaa ,  vpc-2222bbbb,,vpc-1111aaaa ").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_peers("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        let cases = [
            ("vpc-xyz", "not a VPC id"),
            ("ap-northeast-3/vpc-12", "not a VPC id"),
            ("Seoul/vpc-1111aaaa", "not a region name"),
            ("12345/ap-northeast-3/vpc-1111aaaa", "not an account id"),
            ("a/b/c/d", "not a VPC reference"),
            ("ap-northeast-3/", "not a VPC id"),
            ("subnet-1111aaaa", "not a VPC id"),
        ];
        for (value, expect) in cases {
            let err = parse_peers(value).unwrap_err();
            assert_eq!(err.key, PEERS);
            let msg = err.to_string();
            assert!(msg.starts_with("tagpeer:peers: "), "{msg}");
            assert!(msg.contains(expect), "{value}: {msg}");
            assert!(msg.contains(value.trim_end_matches('/')), "{value}: {msg}");
        }
    }

    #[test]
    fn every_tag_is_checked_and_every_error_reported() {
        let errs = Intent::from_tags(&tags(&[
            (PEERS, "vpc-nope"),
            (MESH, "ok bad!group"),
            (ACCEPT, "* 123456789012"),
            (ROUTE_TABLES, "main rtb-1111aaaa"),
            (DNS, "yes"),
            (IPV6, "ON"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key).collect();
        assert_eq!(keys, [PEERS, MESH, ACCEPT, ROUTE_TABLES, DNS, IPV6]);
    }

    #[test]
    fn options_parse() {
        let intent = Intent::from_tags(&tags(&[
            (MESH, "prod  shared-services"),
            (ACCEPT, "222222222222 ap-northeast-3/vpc-2222bbbb"),
            (ROUTE_TABLES, "rtb-1111aaaa,rtb-2222bbbb"),
            (DNS, "on"),
            (IPV6, " off "),
            ("Name", "seoul"),
        ]))
        .unwrap();
        assert_eq!(intent.mesh, ["prod", "shared-services"]);
        assert!(
            matches!(&intent.accept, Acceptance::Only { accounts, vpcs } if accounts.len() == 1 && vpcs.len() == 1)
        );
        assert_eq!(
            intent.route_tables,
            RouteTables::Ids(vec!["rtb-1111aaaa".parse().unwrap(), "rtb-2222bbbb".parse().unwrap()])
        );
        assert!(intent.dns);
        assert!(!intent.ipv6);
        assert_eq!(parse_accept("*").unwrap(), Acceptance::Anyone);
        assert_eq!(parse_route_tables("main").unwrap(), RouteTables::Main);
        assert_eq!(Intent::from_tags(&BTreeMap::new()).unwrap(), Intent::default());
    }

    fn vpc_id() -> impl Strategy<Value = String> {
        prop_oneof!["[0-9a-f]{8}", "[0-9a-f]{17}"].prop_map(|h| format!("vpc-{h}"))
    }

    fn vpc_ref() -> impl Strategy<Value = String> {
        let region = "(ap|us|eu)-(north|south|east|west|central|northeast)-[1-9]";
        (proptest::option::of("[0-9]{12}"), proptest::option::of(region), vpc_id()).prop_map(|(a, r, v)| match (a, r) {
            (Some(a), Some(r)) => format!("{a}/{r}/{v}"),
            (None, Some(r)) => format!("{r}/{v}"),
            (_, None) => v,
        })
    }

    proptest! {
        #[test]
        fn well_formed_lists_round_trip(refs in proptest::collection::vec(vpc_ref(), 0..6), seps in proptest::collection::vec(prop_oneof![Just(","), Just(" "), Just(", "), Just("  ,")], 6)) {
            let mut value = String::new();
            for (i, r) in refs.iter().enumerate() {
                value.push_str(r);
                value.push_str(seps[i]);
            }
            let parsed = parse_peers(&value).unwrap();
            let printed: Vec<String> = parsed.iter().map(ToString::to_string).collect();
            let mut expected: Vec<String> = Vec::new();
            for r in refs {
                if !expected.contains(&r) { expected.push(r); }
            }
            prop_assert_eq!(printed, expected);
        }

        #[test]
        fn any_value_parses_or_errs_without_panicking(value in "\\PC{0,300}") {
            let t = tags(&[(PEERS, &value), (MESH, &value), (ACCEPT, &value), (ROUTE_TABLES, &value), (DNS, &value), (IPV6, &value)]);
            match Intent::from_tags(&t) {
                Ok(_) => {}
                Err(errs) => for e in errs { prop_assert!(!e.to_string().is_empty()); }
            }
        }

        #[test]
        fn a_list_with_one_bad_item_is_rejected(refs in proptest::collection::vec(vpc_ref(), 0..4), bad in "[a-z]{1,6}-[0-9a-z]{0,20}") {
            prop_assume!(bad.parse::<VpcId>().is_err());
            let value = refs.iter().cloned().chain([bad.clone()]).collect::<Vec<_>>().join(",");
            let err = parse_peers(&value).unwrap_err();
            prop_assert!(err.to_string().contains(&bad));
        }
    }
}
