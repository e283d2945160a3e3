//! The provisioner: a `tagpeer` "Network Requested" event in, the network the
//! seed builds by hand out. Pure: the request's grammar, the choice of a free
//! range, the subnet layout and the plan; [`crate::aws::provision`] observes and
//! applies.
//!
//! The network is a VPC with its own range, subnets, an internet gateway
//! attached to it, a route table associated with every subnet and a default
//! route `0.0.0.0/0` to the gateway; then the VPC is tagged `tagpeer:peers`,
//! which starts the link (the tag change triggers the requester).
//!
//! Every resource the provisioner creates carries `tagpeer-network` = the
//! network's name (and a `Name`). Each run observes what already carries it and
//! plans only what is missing, so a request delivered twice builds one network
//! and a request that failed halfway resumes on the next delivery.
//!
//! ## The detail (kebab-case JSON)
//!
//! ```json
//! {"region": "ap-northeast-2", "name": "seoul", "cidr": "10.0.0.0/16", "prefix-length": 16,
//!  "subnets": 2, "availability-zones": ["ap-northeast-2a"], "peers": ["ap-northeast-3/vpc-…"]}
//! ```
//!
//! `region` and `name` are required; `cidr` or `prefix-length` (default /16);
//! `subnets` or `availability-zones`, not both (default: 1 subnet); `peers`
//! (default: none, and no intent tag).
//!
//! ## The range
//!
//! A given `cidr` is used as it is (it must not overlap a peer). Otherwise the
//! lowest free aligned block of the asked size is taken from the pool
//! (`TAGPEER_CIDR_POOL`, default `10.0.0.0/8,172.16.0.0/12,192.168.0.0/16`, in
//! that order): free means overlapping no VPC range in the deployment's regions
//! and none of the peers' ranges. Once the VPC exists its range is kept.
//!
//! ## The subnets
//!
//! `n` subnets of equal size, from the bottom of the VPC's range up, without a
//! gap: /24s when `n` of them fit, otherwise the largest size of which `n` fit
//! (never smaller than a /28, AWS's smallest subnet; never larger than the VPC).
//! Subnet `i` goes to zone `i` of the given zones, or of the region's zones in
//! order, round-robin.
//!
//! A 10.0.0.0/16 with 2 subnets: 10.0.0.0/24 and 10.0.1.0/24. A 10.0.0.0/24
//! with 3: 10.0.0.0/26, 10.0.0.64/26, 10.0.0.128/26. A 10.0.0.0/28 with 1: itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::cidr;
use crate::error::{IdError, TagError};
use crate::ids::{Region, RouteTableId, VpcId};
use crate::intent::{self, VpcRef};

/// The detail-type of the event that asks for a network (source `tagpeer`).
pub const NETWORK_REQUESTED: &str = "Network Requested";
/// Written by tagpeer on every resource the provisioner creates: the network's name.
pub const NETWORK: &str = "tagpeer-network";
/// The configuration variable that holds the pool of ranges to choose from.
pub const POOL_VAR: &str = "TAGPEER_CIDR_POOL";
/// The pool when [`POOL_VAR`] is unset: the private ranges of RFC 1918, in this order.
pub const DEFAULT_POOL: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
/// The size of the range chosen when the request names none.
pub const DEFAULT_PREFIX: u8 = 16;
/// The sizes AWS allows for a VPC's range.
pub const VPC_PREFIXES: RangeInclusive<u8> = 16..=28;
/// Subnets are /24s when they fit...
pub const SUBNET_PREFIX: u8 = 24;
/// ...and never smaller than AWS's smallest subnet.
pub const SMALLEST_SUBNET: u8 = 28;
/// The name becomes the `Name` of every resource (with a suffix) and a tag value.
pub const MAX_NAME_LEN: usize = 128;

/// Why a network request cannot be taken or planned. The texts are the words a
/// person reads in the log and the Lambda's answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProvisionError {
    #[error("the {NETWORK_REQUESTED:?} detail is malformed: {0}")]
    Shape(String),
    #[error("{0}: missing")]
    Missing(&'static str),
    #[error("{field}: {found} is not {expected}")]
    NotA { field: &'static str, expected: &'static str, found: String },
    #[error("region: {0}")]
    Region(IdError),
    #[error("region: {region} is not one of this deployment's ({})", list(.regions))]
    RegionNotInDeployment { region: Region, regions: Vec<Region> },
    #[error("name: empty: give the network a name")]
    EmptyName,
    #[error("name: {0} characters is too long (at most {MAX_NAME_LEN}): it becomes the Name of every resource")]
    LongName(usize),
    #[error("name: {0:?} has a character tags do not take (letters, digits, spaces and _ . : / = + - @)")]
    NameCharacter(String),
    #[error("cidr: {0}")]
    Cidr(String),
    #[error("cidr: {0} is not IPv4; a VPC's primary range is IPv4")]
    CidrNotIpv4(IpNet),
    #[error("cidr: {0} is a /{prefix}; a VPC's range is a /16 to a /28", prefix = .0.prefix_len())]
    CidrSize(Ipv4Net),
    #[error("prefix-length: {0} is not 16 to 28, the sizes of a VPC's range")]
    PrefixLength(u64),
    #[error("prefix-length: {given} disagrees with cidr {cidr}")]
    PrefixDisagrees { given: u8, cidr: Ipv4Net },
    #[error("give subnets or availability-zones, not both")]
    SubnetsAndZones,
    #[error("subnets: 0: a network needs at least one subnet")]
    NoSubnets,
    #[error("availability-zones: empty: name at least one zone, or give subnets instead")]
    EmptyZones,
    #[error("availability-zones: {zone:?} is not an availability zone of {region}")]
    Zone { zone: String, region: Region },
    #[error("availability-zones: {zone} is not one of {region}'s zones ({})", .zones.join(", "))]
    UnknownZone { zone: String, region: Region, zones: Vec<String> },
    #[error("{region} shows no availability zone to put subnets in")]
    NoZonesInRegion { region: Region },
    #[error(
        "subnets: {count} do not fit in a /{prefix} (at most {max}, each at least a /{SMALLEST_SUBNET})",
        max = max_subnets(*.prefix)
    )]
    TooManySubnets { count: usize, prefix: u8 },
    #[error("peers: {}", .0.reason)]
    Peer(TagError),
    #[error("peers: {0:?} is not one VPC reference")]
    PeerItem(String),
    #[error("peers: {0} characters as a tag value; {key} holds at most {max}", key = intent::PEERS, max = intent::TAG_VALUE_MAX)]
    PeersTooLong(usize),
    #[error("peers: {peer}: region {region} is not one of this deployment's ({})", list(.regions))]
    PeerRegion { peer: VpcRef, region: Region, regions: Vec<Region> },
    #[error("peers: {0}: no such VPC")]
    UnknownPeer(VpcRef),
    #[error("peers: {0} is this network's own VPC")]
    SelfPeer(VpcRef),
    #[error("cidr: {mine} overlaps {peer}'s {theirs}; peered VPCs need disjoint ranges")]
    PeerOverlap { mine: Ipv4Net, peer: VpcRef, theirs: IpNet },
    #[error(
        "no free /{prefix} left in the pool ({}): every block overlaps a VPC of the deployment's regions or a peer; \
         give a cidr, or widen {POOL_VAR}",
        list(.pool)
    )]
    PoolExhausted { prefix: u8, pool: Vec<Ipv4Net> },
    #[error("{POOL_VAR}: {0}")]
    Pool(String),
    #[error("{} VPCs carry {NETWORK}={name} ({}); take the tag off all but one", .vpcs.len(), list(.vpcs))]
    DuplicateVpcs { name: String, vpcs: Vec<VpcId> },
    #[error("cidr: {name} is built as {vpc} with {built}, not the asked {asked}")]
    CidrMismatch { name: String, vpc: VpcId, built: Ipv4Net, asked: Ipv4Net },
    #[error("{subnet} ({cidr}) in {vpc} is in the way of the subnet {wanted}")]
    SubnetInTheWay { subnet: String, cidr: Ipv4Net, vpc: VpcId, wanted: Ipv4Net },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Where the subnets go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subnets {
    /// This many, over the region's zones in order, round-robin.
    Count(usize),
    /// One in each of these zones, in this order.
    Zones(Vec<String>),
}

impl Subnets {
    pub fn count(&self) -> usize {
        match self {
            Subnets::Count(n) => *n,
            Subnets::Zones(zones) => zones.len(),
        }
    }
}

/// A "Network Requested" event's detail, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRequest {
    pub region: Region,
    pub name: String,
    /// The range asked for, if any.
    pub cidr: Option<Ipv4Net>,
    /// The size of the range: the given range's, or the one to choose.
    pub prefix_len: u8,
    pub subnets: Subnets,
    /// The peers to link with, as written (relative to the new VPC), each once.
    pub peers: Vec<VpcRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDetail {
    region: Option<Value>,
    name: Option<Value>,
    cidr: Option<Value>,
    prefix_length: Option<Value>,
    subnets: Option<Value>,
    availability_zones: Option<Value>,
    peers: Option<Value>,
}

fn text<'a>(field: &'static str, value: &'a Value) -> Result<&'a str, ProvisionError> {
    value.as_str().ok_or_else(|| ProvisionError::NotA { field, expected: "a string", found: value.to_string() })
}

fn whole(field: &'static str, value: &Value) -> Result<u64, ProvisionError> {
    value.as_u64().ok_or_else(|| ProvisionError::NotA { field, expected: "a whole number", found: value.to_string() })
}

fn strings<'a>(field: &'static str, value: &'a Value) -> Result<Vec<&'a str>, ProvisionError> {
    let not_a = || ProvisionError::NotA { field, expected: "a list of strings", found: value.to_string() };
    value.as_array().ok_or_else(not_a)?.iter().map(|v| v.as_str().ok_or_else(not_a)).collect()
}

impl NetworkRequest {
    /// Reads the detail of a "Network Requested" event; the first malformed field is the error.
    pub fn from_detail(detail: &Value) -> Result<Self, ProvisionError> {
        if !detail.is_object() {
            return Err(ProvisionError::Shape(format!("{detail} is not a JSON object")));
        }
        let raw: RawDetail =
            serde_json::from_value(detail.clone()).map_err(|e| ProvisionError::Shape(e.to_string()))?;

        let region: Region = text("region", raw.region.as_ref().ok_or(ProvisionError::Missing("region"))?)?
            .parse()
            .map_err(ProvisionError::Region)?;
        let name = parse_name(text("name", raw.name.as_ref().ok_or(ProvisionError::Missing("name"))?)?)?;

        let cidr = match &raw.cidr {
            None => None,
            Some(v) => Some(parse_vpc_cidr(text("cidr", v)?)?),
        };
        let prefix_len = match (&raw.prefix_length, cidr) {
            (None, Some(c)) => c.prefix_len(),
            (None, None) => DEFAULT_PREFIX,
            (Some(v), cidr) => {
                let given = whole("prefix-length", v)?;
                let given = u8::try_from(given)
                    .ok()
                    .filter(|p| VPC_PREFIXES.contains(p))
                    .ok_or(ProvisionError::PrefixLength(given))?;
                match cidr {
                    Some(c) if c.prefix_len() != given => {
                        return Err(ProvisionError::PrefixDisagrees { given, cidr: c })
                    }
                    _ => given,
                }
            }
        };

        let subnets = match (&raw.subnets, &raw.availability_zones) {
            (Some(_), Some(_)) => return Err(ProvisionError::SubnetsAndZones),
            (None, None) => Subnets::Count(1),
            (Some(v), None) => match whole("subnets", v)? {
                0 => return Err(ProvisionError::NoSubnets),
                n => Subnets::Count(usize::try_from(n).unwrap_or(usize::MAX)),
            },
            (None, Some(v)) => {
                let zones = strings("availability-zones", v)?;
                if zones.is_empty() {
                    return Err(ProvisionError::EmptyZones);
                }
                for zone in &zones {
                    if !is_zone_of(zone, &region) {
                        return Err(ProvisionError::Zone { zone: (*zone).to_owned(), region });
                    }
                }
                Subnets::Zones(zones.into_iter().map(str::to_owned).collect())
            }
        };
        if subnet_prefix(prefix_len, subnets.count()).is_none() {
            return Err(ProvisionError::TooManySubnets { count: subnets.count(), prefix: prefix_len });
        }

        let mut peers: Vec<VpcRef> = Vec::new();
        if let Some(v) = &raw.peers {
            for item in strings("peers", v)? {
                match intent::parse_peers(item).map_err(ProvisionError::Peer)?.as_slice() {
                    [one] => {
                        if !peers.contains(one) {
                            peers.push(one.clone());
                        }
                    }
                    _ => return Err(ProvisionError::PeerItem(item.to_owned())),
                }
            }
        }
        let tag_len = peers_tag(&peers).chars().count();
        if tag_len > intent::TAG_VALUE_MAX {
            return Err(ProvisionError::PeersTooLong(tag_len));
        }

        Ok(Self { region, name, cidr, prefix_len, subnets, peers })
    }

    /// The request's region and its peers' are all the deployment's.
    pub fn check_regions(&self, regions: &[Region]) -> Result<(), ProvisionError> {
        if !regions.contains(&self.region) {
            return Err(ProvisionError::RegionNotInDeployment {
                region: self.region.clone(),
                regions: regions.to_vec(),
            });
        }
        for peer in &self.peers {
            let region = self.peer_region(peer);
            if !regions.contains(region) {
                return Err(ProvisionError::PeerRegion {
                    peer: peer.clone(),
                    region: region.clone(),
                    regions: regions.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// The region a peer reference names: its own, or the network's.
    pub fn peer_region<'a>(&'a self, peer: &'a VpcRef) -> &'a Region {
        peer.region.as_ref().unwrap_or(&self.region)
    }
}

/// Letters, digits, spaces and `_ . : / = + - @`, at most [`MAX_NAME_LEN`]; trimmed.
fn parse_name(name: &str) -> Result<String, ProvisionError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ProvisionError::EmptyName);
    }
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(ProvisionError::LongName(len));
    }
    if !name.chars().all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)) {
        return Err(ProvisionError::NameCharacter(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// A canonical IPv4 block of a size a VPC may have.
fn parse_vpc_cidr(s: &str) -> Result<Ipv4Net, ProvisionError> {
    match cidr::parse_canonical(s).map_err(ProvisionError::Cidr)? {
        IpNet::V4(net) if VPC_PREFIXES.contains(&net.prefix_len()) => Ok(net),
        IpNet::V4(net) => Err(ProvisionError::CidrSize(net)),
        v6 => Err(ProvisionError::CidrNotIpv4(v6)),
    }
}

/// `ap-northeast-2a`, or a local zone such as `us-west-2-lax-1a`: the region's
/// name, then lowercase letters, digits and dashes.
fn is_zone_of(zone: &str, region: &Region) -> bool {
    zone.strip_prefix(region.as_str()).is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// The value of `tagpeer:peers`: the references joined by ",".
fn peers_tag(peers: &[VpcRef]) -> String {
    peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The pool as configured: the default when `value` is unset or blank.
pub fn pool_from(value: Option<&str>) -> Result<Vec<Ipv4Net>, ProvisionError> {
    match value {
        Some(v) if !v.trim().is_empty() => parse_pool(v),
        _ => Ok(default_pool()),
    }
}

/// `10.0.0.0/8,172.16.0.0/12,192.168.0.0/16`.
pub fn default_pool() -> Vec<Ipv4Net> {
    DEFAULT_POOL.iter().map(|b| b.parse().expect("the default pool is well formed")).collect()
}

/// `TAGPEER_CIDR_POOL`: canonical IPv4 blocks separated by commas (spaces are
/// forgiven), chosen from in the order given.
pub fn parse_pool(list: &str) -> Result<Vec<Ipv4Net>, ProvisionError> {
    let mut pool = Vec::new();
    for item in intent::items(list) {
        match cidr::parse_canonical(item).map_err(ProvisionError::Pool)? {
            IpNet::V4(block) => {
                if !pool.contains(&block) {
                    pool.push(block);
                }
            }
            v6 => return Err(ProvisionError::Pool(format!("{v6} is not IPv4"))),
        }
    }
    if pool.is_empty() {
        return Err(ProvisionError::Pool("no block: give IPv4 blocks separated by commas, such as 10.0.0.0/8".into()));
    }
    Ok(pool)
}

/// The first free aligned block of size `/prefix`: the pool's blocks in order,
/// each from its lowest address up; free means overlapping none of `taken`.
/// Blocks of the pool smaller than the size asked are skipped.
pub fn choose_cidr(pool: &[Ipv4Net], prefix: u8, taken: &[IpNet]) -> Option<Ipv4Net> {
    let prefix = prefix.min(32);
    let size = 1u64 << (32 - prefix);
    let taken: Vec<(u64, u64)> = taken
        .iter()
        .filter_map(|t| match t {
            IpNet::V4(t) => Some((u64::from(u32::from(t.network())), u64::from(u32::from(t.broadcast())))),
            IpNet::V6(_) => None,
        })
        .collect();
    for block in pool.iter().filter(|b| b.prefix_len() <= prefix) {
        let end = u64::from(u32::from(block.broadcast()));
        // The pool's block is aligned to its own size, so to every smaller one.
        let mut candidate = u64::from(u32::from(block.network()));
        while candidate + size - 1 <= end {
            let last = candidate + size - 1;
            // Past every range in the way, to the next aligned block.
            match taken.iter().filter(|(a, b)| *a <= last && candidate <= *b).map(|(_, b)| *b).max() {
                None => {
                    let addr = Ipv4Addr::from(u32::try_from(candidate).expect("inside the pool's block"));
                    return Some(Ipv4Net::new(addr, prefix).expect("a prefix of at most 32"));
                }
                Some(b) => candidate = (b.max(last) + 1).div_ceil(size) * size,
            }
        }
    }
    None
}

/// How many subnets fit in a VPC of size `/prefix`: each at least a /28.
pub fn max_subnets(prefix: u8) -> usize {
    1usize << SMALLEST_SUBNET.saturating_sub(prefix)
}

/// The size of `count` subnets in a VPC of size `/prefix`: /24 when they fit,
/// otherwise the largest of which `count` fit; `None` when they need less than a /28.
pub fn subnet_prefix(prefix: u8, count: usize) -> Option<u8> {
    (SUBNET_PREFIX.max(prefix)..=SMALLEST_SUBNET).find(|q| count <= 1usize << (q - prefix))
}

/// The subnets of a VPC's range: `count` equal blocks from the bottom up (see
/// the module's documentation).
pub fn subnet_layout(vpc: Ipv4Net, count: usize) -> Result<Vec<Ipv4Net>, ProvisionError> {
    let q = subnet_prefix(vpc.prefix_len(), count)
        .ok_or(ProvisionError::TooManySubnets { count, prefix: vpc.prefix_len() })?;
    Ok(vpc.subnets(q).expect("a subnet prefix no shorter than the VPC's").take(count).collect())
}

/// A VPC carrying the network's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: VpcId,
    /// The primary range.
    pub cidr: Ipv4Net,
    pub tags: BTreeMap<String, String>,
    /// `enableDnsHostnames`: off in a new VPC, and needed (with DNS resolution,
    /// on by default) for `tagpeer:dns` to resolve names across a link.
    pub dns_hostnames: bool,
}

/// A subnet of one of the network's VPCs (tagged or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// `subnet-…`
    pub id: String,
    pub vpc: VpcId,
    pub cidr: Ipv4Net,
    pub zone: String,
    /// The route table it is explicitly associated with, if any.
    pub route_table: Option<RouteTableId>,
}

/// An internet gateway carrying the network's tag, or attached to one of its VPCs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// `igw-…`
    pub id: String,
    /// The VPC it is attached (or attaching) to.
    pub attached_to: Option<VpcId>,
}

/// A route table carrying the network's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: RouteTableId,
    pub vpc: VpcId,
    /// The target of its route to `0.0.0.0/0`, if it has one.
    pub default_route: Option<String>,
}

/// What the provisioner reads before it plans, in plain types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The deployment's regions.
    pub regions: Vec<Region>,
    /// The VPCs of the request's region carrying `tagpeer-network` = the name.
    pub vpcs: Vec<Vpc>,
    /// The subnets of those VPCs.
    pub subnets: Vec<Subnet>,
    /// The internet gateways of the request's region carrying the tag or attached to one of those VPCs.
    pub gateways: Vec<Gateway>,
    /// The route tables of those VPCs carrying the tag.
    pub route_tables: Vec<RouteTable>,
    /// The region's availability zones, in order.
    pub zones: Vec<String>,
    /// Every VPC range (IPv4, primary and secondary) in the deployment's regions.
    pub taken: Vec<IpNet>,
    /// The IPv4 ranges of each requested peer that exists, by the reference the request gives.
    pub peers: BTreeMap<VpcRef, Vec<IpNet>>,
}

/// A resource an action works on: one that exists, or one that an earlier
/// action of the same run creates (by that action's index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    Existing(String),
    Created(usize),
}

impl Ref {
    /// The id, once the actions up to the creating one have run.
    pub fn resolve<'a>(&'a self, created: &'a [Option<String>]) -> Option<&'a str> {
        match self {
            Ref::Existing(id) => Some(id),
            Ref::Created(i) => created.get(*i)?.as_deref(),
        }
    }
}

/// The id, or `#N` for what step N (counted from 1) creates.
impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Existing(id) => f.write_str(id),
            Ref::Created(i) => write!(f, "#{}", i + 1),
        }
    }
}

/// One step of building a network. Creations carry the network's name (the
/// `tagpeer-network` tag) and the resource's `Name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProvisionAction {
    CreateVpc {
        network: String,
        name: String,
        cidr: Ipv4Net,
    },
    CreateSubnet {
        network: String,
        name: String,
        vpc: Ref,
        cidr: Ipv4Net,
        zone: String,
    },
    CreateInternetGateway {
        network: String,
        name: String,
    },
    AttachInternetGateway {
        gateway: Ref,
        vpc: Ref,
    },
    /// `enableDnsHostnames` on, as `tagpeer:dns` needs.
    EnableDnsHostnames {
        vpc: Ref,
    },
    CreateRouteTable {
        network: String,
        name: String,
        vpc: Ref,
    },
    AssociateRouteTable {
        route_table: Ref,
        subnet: Ref,
    },
    /// `0.0.0.0/0` to the internet gateway.
    CreateDefaultRoute {
        route_table: Ref,
        gateway: Ref,
    },
    /// `tagpeer:peers` = the peers joined by ",".
    TagIntent {
        vpc: Ref,
        peers: Vec<VpcRef>,
    },
}

impl ProvisionAction {
    /// The EC2 call that makes it.
    pub fn api_name(&self) -> &'static str {
        match self {
            Self::CreateVpc { .. } => "CreateVpc",
            Self::CreateSubnet { .. } => "CreateSubnet",
            Self::CreateInternetGateway { .. } => "CreateInternetGateway",
            Self::AttachInternetGateway { .. } => "AttachInternetGateway",
            Self::EnableDnsHostnames { .. } => "ModifyVpcAttribute",
            Self::CreateRouteTable { .. } => "CreateRouteTable",
            Self::AssociateRouteTable { .. } => "AssociateRouteTable",
            Self::CreateDefaultRoute { .. } => "CreateRoute",
            Self::TagIntent { .. } => "CreateTags",
        }
    }

    /// The value of `tagpeer:peers` a [`ProvisionAction::TagIntent`] writes.
    pub fn intent_value(peers: &[VpcRef]) -> String {
        peers_tag(peers)
    }
}

impl fmt::Display for ProvisionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateVpc { name, cidr, .. } => write!(f, "create VPC {name} {cidr}"),
            Self::CreateSubnet { name, vpc, cidr, zone, .. } => {
                write!(f, "create subnet {name} {cidr} in {zone} of VPC {vpc}")
            }
            Self::CreateInternetGateway { name, .. } => write!(f, "create internet gateway {name}"),
            Self::AttachInternetGateway { gateway, vpc } => write!(f, "attach internet gateway {gateway} to VPC {vpc}"),
            Self::EnableDnsHostnames { vpc } => write!(f, "turn DNS hostnames on in VPC {vpc}"),
            Self::CreateRouteTable { name, vpc, .. } => write!(f, "create route table {name} in VPC {vpc}"),
            Self::AssociateRouteTable { route_table, subnet } => {
                write!(f, "associate route table {route_table} with subnet {subnet}")
            }
            Self::CreateDefaultRoute { route_table, gateway } => {
                write!(f, "route 0.0.0.0/0 in route table {route_table} to internet gateway {gateway}")
            }
            Self::TagIntent { vpc, peers } => write!(f, "tag VPC {vpc} {}={}", intent::PEERS, peers_tag(peers)),
        }
    }
}

/// The network a request comes to, with the steps still missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Design {
    pub name: String,
    pub cidr: Ipv4Net,
    pub vpc: Ref,
    pub subnets: Vec<Ref>,
    pub gateway: Ref,
    pub route_table: Ref,
    pub peers: Vec<VpcRef>,
    /// In order; later steps refer to what earlier ones create by [`Ref::Created`].
    pub actions: Vec<ProvisionAction>,
}

/// The steps still missing to build the network the request asks for.
pub fn missing_steps(
    request: &NetworkRequest,
    observed: &Observed,
    pool: &[Ipv4Net],
) -> Result<Vec<ProvisionAction>, ProvisionError> {
    design(request, observed, pool).map(|d| d.actions)
}

/// [`missing_steps`], with where every part of the network is or will be.
pub fn design(request: &NetworkRequest, observed: &Observed, pool: &[Ipv4Net]) -> Result<Design, ProvisionError> {
    request.check_regions(&observed.regions)?;
    let name = &request.name;
    let built = match observed.vpcs.as_slice() {
        [] => None,
        [vpc] => Some(vpc),
        many => {
            let mut vpcs: Vec<VpcId> = many.iter().map(|v| v.id.clone()).collect();
            vpcs.sort();
            return Err(ProvisionError::DuplicateVpcs { name: name.clone(), vpcs });
        }
    };

    // The peers, and the ranges the link needs kept apart.
    let mut peer_ranges: Vec<(&VpcRef, &[IpNet])> = Vec::new();
    for peer in &request.peers {
        if let Some(vpc) = built {
            if peer.vpc_id == vpc.id && request.peer_region(peer) == &request.region {
                return Err(ProvisionError::SelfPeer(peer.clone()));
            }
        }
        let ranges = observed.peers.get(peer).ok_or_else(|| ProvisionError::UnknownPeer(peer.clone()))?;
        peer_ranges.push((peer, ranges));
    }

    let cidr = match (built, request.cidr) {
        (Some(vpc), Some(asked)) if vpc.cidr != asked => {
            return Err(ProvisionError::CidrMismatch {
                name: name.clone(),
                vpc: vpc.id.clone(),
                built: vpc.cidr,
                asked,
            })
        }
        (Some(vpc), _) => vpc.cidr,
        (None, Some(asked)) => asked,
        (None, None) => {
            let taken: Vec<IpNet> =
                observed.taken.iter().chain(peer_ranges.iter().flat_map(|(_, r)| r.iter())).copied().collect();
            choose_cidr(pool, request.prefix_len, &taken)
                .ok_or_else(|| ProvisionError::PoolExhausted { prefix: request.prefix_len, pool: pool.to_vec() })?
        }
    };
    for (peer, ranges) in &peer_ranges {
        if let Some(theirs) = ranges.iter().find(|r| cidr::overlaps(&IpNet::V4(cidr), r)) {
            return Err(ProvisionError::PeerOverlap { mine: cidr, peer: (*peer).clone(), theirs: *theirs });
        }
    }

    let layout = subnet_layout(cidr, request.subnets.count())?;
    let zones = zones_for(request, observed)?;

    let mut actions = Vec::new();
    let mut push = |action: ProvisionAction| {
        actions.push(action);
        Ref::Created(actions.len() - 1)
    };

    let vpc = match built {
        Some(v) => Ref::Existing(v.id.to_string()),
        None => push(ProvisionAction::CreateVpc { network: name.clone(), name: name.clone(), cidr }),
    };
    let mine = |id: &VpcId| built.is_some_and(|v| &v.id == id);

    let existing_subnets: Vec<&Subnet> = observed.subnets.iter().filter(|s| mine(&s.vpc)).collect();
    let mut subnets = Vec::new();
    for (wanted, (zone, label)) in layout.iter().zip(&zones) {
        if let Some(s) = existing_subnets.iter().find(|s| &s.cidr == wanted) {
            subnets.push(Ref::Existing(s.id.clone()));
            continue;
        }
        if let Some(s) = existing_subnets.iter().find(|s| cidr::overlaps(&IpNet::V4(s.cidr), &IpNet::V4(*wanted))) {
            return Err(ProvisionError::SubnetInTheWay {
                subnet: s.id.clone(),
                cidr: s.cidr,
                vpc: s.vpc.clone(),
                wanted: *wanted,
            });
        }
        subnets.push(push(ProvisionAction::CreateSubnet {
            network: name.clone(),
            name: format!("{name}-{label}"),
            vpc: vpc.clone(),
            cidr: *wanted,
            zone: zone.clone(),
        }));
    }

    // The gateway attached to the VPC, whoever made it; else a tagged one left unattached; else a new one.
    let attached = observed.gateways.iter().find(|g| g.attached_to.as_ref().is_some_and(mine));
    let gateway = match attached {
        Some(g) => Ref::Existing(g.id.clone()),
        None => {
            let gateway = match observed.gateways.iter().find(|g| g.attached_to.is_none()) {
                Some(g) => Ref::Existing(g.id.clone()),
                None => push(ProvisionAction::CreateInternetGateway { network: name.clone(), name: name.clone() }),
            };
            push(ProvisionAction::AttachInternetGateway { gateway: gateway.clone(), vpc: vpc.clone() });
            gateway
        }
    };

    let table = observed.route_tables.iter().find(|t| mine(&t.vpc));
    let route_table = match table {
        Some(t) => Ref::Existing(t.id.to_string()),
        None => push(ProvisionAction::CreateRouteTable {
            network: name.clone(),
            name: format!("{name}-public"),
            vpc: vpc.clone(),
        }),
    };

    // A subnet keeps a route table it is already associated with (ours, or one a person chose).
    for subnet in &subnets {
        let associated = match subnet {
            Ref::Existing(id) => existing_subnets.iter().any(|s| &s.id == id && s.route_table.is_some()),
            Ref::Created(_) => false,
        };
        if !associated {
            push(ProvisionAction::AssociateRouteTable { route_table: route_table.clone(), subnet: subnet.clone() });
        }
    }

    // A default route through anything else is left as it is.
    if table.is_none_or(|t| t.default_route.is_none()) {
        push(ProvisionAction::CreateDefaultRoute { route_table: route_table.clone(), gateway: gateway.clone() });
    }

    // DNS hostnames before the intent, so that `tagpeer:dns` works on the link.
    if !built.is_some_and(|v| v.dns_hostnames) {
        push(ProvisionAction::EnableDnsHostnames { vpc: vpc.clone() });
    }

    if !request.peers.is_empty() {
        let tagged: Option<BTreeSet<VpcRef>> = built
            .and_then(|v| v.tags.get(intent::PEERS))
            .and_then(|value| intent::parse_peers(value).ok())
            .map(|peers| peers.into_iter().collect());
        if tagged != Some(request.peers.iter().cloned().collect()) {
            push(ProvisionAction::TagIntent { vpc: vpc.clone(), peers: request.peers.clone() });
        }
    }

    Ok(Design { name: name.clone(), cidr, vpc, subnets, gateway, route_table, peers: request.peers.clone(), actions })
}

/// The zone of each subnet, with the label its `Name` ends in (`a`, then `a-2`
/// for a second subnet in the same zone).
fn zones_for(request: &NetworkRequest, observed: &Observed) -> Result<Vec<(String, String)>, ProvisionError> {
    let region = &request.region;
    let zones: Vec<String> = match &request.subnets {
        Subnets::Zones(zones) => {
            if !observed.zones.is_empty() {
                if let Some(zone) = zones.iter().find(|z| !observed.zones.contains(z)) {
                    return Err(ProvisionError::UnknownZone {
                        zone: zone.clone(),
                        region: region.clone(),
                        zones: observed.zones.clone(),
                    });
                }
            }
            zones.clone()
        }
        Subnets::Count(n) => {
            if observed.zones.is_empty() {
                return Err(ProvisionError::NoZonesInRegion { region: region.clone() });
            }
            observed.zones.iter().cycle().take(*n).cloned().collect()
        }
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    Ok(zones
        .iter()
        .map(|zone| {
            let nth = seen.entry(zone).or_default();
            *nth += 1;
            let short = zone.strip_prefix(region.as_str()).filter(|s| !s.is_empty()).unwrap_or(zone);
            let label = if *nth == 1 { short.to_owned() } else { format!("{short}-{nth}") };
            (zone.clone(), label)
        })
        .collect())
}

/// What a run did, in one line a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    /// How many steps ran.
    pub steps: usize,
    /// Whether the run created the VPC.
    pub fresh: bool,
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub subnets: usize,
    pub gateway: String,
    pub route_table: String,
    /// The peers the run asked for (by writing the intent tag).
    pub asked: Vec<VpcRef>,
}

/// The summary of a run of `design`'s actions, given what each created (in order).
pub fn summary(design: &Design, created: &[Option<String>]) -> Summary {
    let id = |r: &Ref| r.resolve(created).map(str::to_owned).unwrap_or_else(|| r.to_string());
    Summary {
        name: design.name.clone(),
        steps: design.actions.len(),
        fresh: matches!(design.actions.first(), Some(ProvisionAction::CreateVpc { .. })),
        vpc: id(&design.vpc),
        cidr: design.cidr,
        subnets: design.subnets.len(),
        gateway: id(&design.gateway),
        route_table: id(&design.route_table),
        asked: design
            .actions
            .iter()
            .find_map(|a| match a {
                ProvisionAction::TagIntent { peers, .. } => Some(peers.clone()),
                _ => None,
            })
            .unwrap_or_default(),
    }
}

/// `built vpc-… 10.0.0.0/16 with 2 subnets, igw-…, rtb-…; asked for ap-northeast-3/vpc-…`,
/// `completed …` when an earlier run had begun it, or `nothing to do: seoul is built`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps == 0 {
            return write!(f, "nothing to do: {} is built", self.name);
        }
        let verb = if self.fresh { "built" } else { "completed" };
        let plural = if self.subnets == 1 { "" } else { "s" };
        write!(
            f,
            "{verb} {} {} with {} subnet{plural}, {}, {}",
            self.vpc, self.cidr, self.subnets, self.gateway, self.route_table
        )?;
        if !self.asked.is_empty() {
            write!(f, "; asked for {}", list(&self.asked))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SEOUL: &str = "ap-northeast-2";
    const OSAKA: &str = "ap-northeast-3";
    const OSAKA_VPC: &str = "ap-northeast-3/vpc-0123456789abcdef0";

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn range(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn peer(s: &str) -> VpcRef {
        VpcRef::parse(s, intent::PEERS).unwrap()
    }

    fn request(detail: Value) -> NetworkRequest {
        NetworkRequest::from_detail(&detail).unwrap()
    }

    fn refused(detail: Value) -> String {
        NetworkRequest::from_detail(&detail).unwrap_err().to_string()
    }

    /// The seed's request: Seoul, two subnets, peered with Osaka's default VPC.
    fn seed_request() -> NetworkRequest {
        request(json!({"region": SEOUL, "name": "seoul", "subnets": 2, "peers": [OSAKA_VPC]}))
    }

    /// Two regions with their default VPCs (172.31.0.0/16) and nothing else.
    fn empty() -> Observed {
        Observed {
            regions: vec![SEOUL.parse().unwrap(), OSAKA.parse().unwrap()],
            zones: ["a", "b", "c", "d"].iter().map(|z| format!("{SEOUL}{z}")).collect(),
            taken: vec![range("172.31.0.0/16"), range("172.31.0.0/16")],
            peers: [(peer(OSAKA_VPC), vec![range("172.31.0.0/16")])].into(),
            ..Observed::default()
        }
    }

    /// What AWS would hold after `actions` ran, with made-up ids; and what each created.
    fn run(observed: &Observed, actions: &[ProvisionAction]) -> (Observed, Vec<Option<String>>) {
        let mut o = observed.clone();
        let mut created: Vec<Option<String>> = Vec::new();
        let serial = o.vpcs.len() + o.subnets.len() + o.gateways.len() + o.route_tables.len();
        for (i, action) in actions.iter().enumerate() {
            let fresh = |prefix: &str| format!("{prefix}-{:08x}", 0x1000 + serial + i);
            let id = |r: &Ref| r.resolve(&created).expect("refers to an earlier step").to_owned();
            let made = match action {
                ProvisionAction::CreateVpc { network, name, cidr } => {
                    let vpc = fresh("vpc");
                    let tags = [(NETWORK.to_owned(), network.clone()), ("Name".to_owned(), name.clone())].into();
                    o.vpcs.push(Vpc { id: vpc.parse().unwrap(), cidr: *cidr, tags, dns_hostnames: false });
                    o.taken.push(IpNet::V4(*cidr));
                    Some(vpc)
                }
                ProvisionAction::CreateSubnet { vpc, cidr, zone, .. } => {
                    let subnet = fresh("subnet");
                    o.subnets.push(Subnet {
                        id: subnet.clone(),
                        vpc: id(vpc).parse().unwrap(),
                        cidr: *cidr,
                        zone: zone.clone(),
                        route_table: None,
                    });
                    Some(subnet)
                }
                ProvisionAction::CreateInternetGateway { .. } => {
                    let igw = fresh("igw");
                    o.gateways.push(Gateway { id: igw.clone(), attached_to: None });
                    Some(igw)
                }
                ProvisionAction::AttachInternetGateway { gateway, vpc } => {
                    let g = o.gateways.iter_mut().find(|g| g.id == id(gateway)).unwrap();
                    assert_eq!(g.attached_to, None, "attaching an attached gateway");
                    g.attached_to = Some(id(vpc).parse().unwrap());
                    None
                }
                ProvisionAction::EnableDnsHostnames { vpc } => {
                    o.vpcs.iter_mut().find(|v| v.id.as_str() == id(vpc)).unwrap().dns_hostnames = true;
                    None
                }
                ProvisionAction::CreateRouteTable { vpc, .. } => {
                    let rtb = fresh("rtb");
                    o.route_tables.push(RouteTable {
                        id: rtb.parse().unwrap(),
                        vpc: id(vpc).parse().unwrap(),
                        default_route: None,
                    });
                    Some(rtb)
                }
                ProvisionAction::AssociateRouteTable { route_table, subnet } => {
                    let s = o.subnets.iter_mut().find(|s| s.id == id(subnet)).unwrap();
                    assert_eq!(s.route_table, None, "associating an associated subnet");
                    s.route_table = Some(id(route_table).parse().unwrap());
                    None
                }
                ProvisionAction::CreateDefaultRoute { route_table, gateway } => {
                    let t = o.route_tables.iter_mut().find(|t| t.id.as_str() == id(route_table)).unwrap();
                    assert_eq!(t.default_route, None, "a second default route");
                    t.default_route = Some(id(gateway));
                    None
                }
                ProvisionAction::TagIntent { vpc, peers } => {
                    let v = o.vpcs.iter_mut().find(|v| v.id.as_str() == id(vpc)).unwrap();
                    v.tags.insert(intent::PEERS.to_owned(), ProvisionAction::intent_value(peers));
                    None
                }
            };
            created.push(made);
        }
        (o, created)
    }

    /// The network as the seed builds it: one of each, every subnet associated, the default route, the intent.
    fn assert_complete(o: &Observed, request: &NetworkRequest) {
        assert_eq!(o.vpcs.len(), 1, "{o:?}");
        let vpc = &o.vpcs[0];
        assert_eq!(o.subnets.len(), request.subnets.count(), "{o:?}");
        assert_eq!(o.gateways.len(), 1, "{o:?}");
        assert_eq!(o.gateways[0].attached_to.as_ref(), Some(&vpc.id));
        assert_eq!(o.route_tables.len(), 1, "{o:?}");
        let table = &o.route_tables[0];
        assert_eq!(table.default_route.as_deref(), Some(o.gateways[0].id.as_str()));
        assert!(o.subnets.iter().all(|s| s.vpc == vpc.id && s.route_table.as_ref() == Some(&table.id)), "{o:?}");
        let layout = subnet_layout(vpc.cidr, request.subnets.count()).unwrap();
        assert_eq!(o.subnets.iter().map(|s| s.cidr).collect::<Vec<_>>(), layout);
        if !request.peers.is_empty() {
            assert_eq!(vpc.tags.get(intent::PEERS), Some(&ProvisionAction::intent_value(&request.peers)));
        }
    }

    #[test]
    fn the_seed_request_parses() {
        let r = seed_request();
        assert_eq!(r.region.as_str(), SEOUL);
        assert_eq!(r.name, "seoul");
        assert_eq!((r.cidr, r.prefix_len), (None, 16));
        assert_eq!(r.subnets, Subnets::Count(2));
        assert_eq!(r.peers, [peer(OSAKA_VPC)]);
    }

    #[test]
    fn defaults_and_every_field() {
        let r = request(json!({"region": SEOUL, "name": "  seoul  "}));
        assert_eq!((r.name.as_str(), r.cidr, r.prefix_len), ("seoul", None, DEFAULT_PREFIX));
        assert_eq!((r.subnets, r.peers), (Subnets::Count(1), vec![]));

        let r = request(json!({
            "region": SEOUL, "name": "seoul", "cidr": "10.20.0.0/20", "prefix-length": 20,
            "availability-zones": ["ap-northeast-2a", "ap-northeast-2c"],
            "peers": [OSAKA_VPC, "vpc-1111aaaa", OSAKA_VPC], "subnets": null
        }));
        assert_eq!((r.cidr, r.prefix_len), (Some(net("10.20.0.0/20")), 20));
        assert_eq!(r.subnets, Subnets::Zones(vec!["ap-northeast-2a".into(), "ap-northeast-2c".into()]));
        assert_eq!(r.peers, [peer(OSAKA_VPC), peer("vpc-1111aaaa")], "repeats count once");

        let r = request(json!({"region": SEOUL, "name": "s", "prefix-length": 24}));
        assert_eq!((r.cidr, r.prefix_len), (None, 24));
    }

    #[test]
    fn each_malformed_field_says_what_is_wrong() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let many_peers: Vec<String> = (0..20).map(|i| format!("{OSAKA}/vpc-{i:017x}")).collect();
        let cases = [
            (json!("seoul"), "is not a JSON object"),
            (json!({"region": SEOUL, "name": "s", "color": "red"}), "unknown field `color`"),
            (json!({"name": "s"}), "region: missing"),
            (json!({"region": SEOUL}), "name: missing"),
            (json!({"region": "Seoul", "name": "s"}), "region: \"Seoul\" is not a region name"),
            (json!({"region": 2, "name": "s"}), "region: 2 is not a string"),
            (json!({"region": SEOUL, "name": " "}), "name: empty"),
            (json!({"region": SEOUL, "name": long}), "name: 129 characters is too long (at most 128)"),
            (json!({"region": SEOUL, "name": "a\nb"}), "has a character tags do not take"),
            (
                json!({"region": SEOUL, "name": "s", "cidr": "10.0.0.1/16"}),
                "is not canonical: the block is 10.0.0.0/16",
            ),
            (json!({"region": SEOUL, "name": "s", "cidr": "ten"}), "cidr: \"ten\" is not a CIDR block"),
            (
                json!({"region": SEOUL, "name": "s", "cidr": "10.0.0.0/8"}),
                "cidr: 10.0.0.0/8 is a /8; a VPC's range is a /16 to a /28",
            ),
            (json!({"region": SEOUL, "name": "s", "cidr": "fd00::/56"}), "cidr: fd00::/56 is not IPv4"),
            (json!({"region": SEOUL, "name": "s", "prefix-length": 15}), "prefix-length: 15 is not 16 to 28"),
            (json!({"region": SEOUL, "name": "s", "prefix-length": 300}), "prefix-length: 300 is not 16 to 28"),
            (
                json!({"region": SEOUL, "name": "s", "prefix-length": "16"}),
                "prefix-length: \"16\" is not a whole number",
            ),
            (
                json!({"region": SEOUL, "name": "s", "cidr": "10.0.0.0/16", "prefix-length": 20}),
                "prefix-length: 20 disagrees with cidr 10.0.0.0/16",
            ),
            (
                json!({"region": SEOUL, "name": "s", "subnets": 2, "availability-zones": ["ap-northeast-2a"]}),
                "not both",
            ),
            (json!({"region": SEOUL, "name": "s", "subnets": 0}), "subnets: 0: a network needs at least one subnet"),
            (json!({"region": SEOUL, "name": "s", "subnets": -1}), "subnets: -1 is not a whole number"),
            (json!({"region": SEOUL, "name": "s", "subnets": 1.5}), "subnets: 1.5 is not a whole number"),
            (json!({"region": SEOUL, "name": "s", "subnets": 4097}), "subnets: 4097 do not fit in a /16 (at most 4096"),
            (
                json!({"region": SEOUL, "name": "s", "cidr": "10.0.0.0/26", "subnets": 5}),
                "subnets: 5 do not fit in a /26 (at most 4, each at least a /28)",
            ),
            (json!({"region": SEOUL, "name": "s", "availability-zones": []}), "availability-zones: empty"),
            (
                json!({"region": SEOUL, "name": "s", "availability-zones": "ap-northeast-2a"}),
                "is not a list of strings",
            ),
            (
                json!({"region": SEOUL, "name": "s", "availability-zones": ["ap-northeast-3a"]}),
                "\"ap-northeast-3a\" is not an availability zone of ap-northeast-2",
            ),
            (
                json!({"region": SEOUL, "name": "s", "peers": ["vpc-nope"]}),
                "peers: \"vpc-nope\" is not a VPC reference",
            ),
            (json!({"region": SEOUL, "name": "s", "peers": ["vpc-1111aaaa vpc-2222bbbb"]}), "is not one VPC reference"),
            (json!({"region": SEOUL, "name": "s", "peers": ["  "]}), "is not one VPC reference"),
            (
                json!({"region": SEOUL, "name": "s", "peers": OSAKA_VPC}),
                "peers: \"ap-northeast-3/vpc-0123456789abcdef0\" is not a list of strings",
            ),
            (json!({"region": SEOUL, "name": "s", "peers": many_peers}), "tagpeer:peers holds at most 256"),
        ];
        for (detail, expect) in cases {
            let msg = refused(detail.clone());
            assert!(msg.contains(expect), "{detail}: {msg}");
        }
    }

    #[test]
    fn the_pool_is_configurable() {
        assert_eq!(pool_from(None).unwrap(), [net("10.0.0.0/8"), net("172.16.0.0/12"), net("192.168.0.0/16")]);
        assert_eq!(pool_from(Some("  ")).unwrap(), default_pool());
        assert_eq!(
            pool_from(Some("100.64.0.0/10, 10.0.0.0/8,10.0.0.0/8")).unwrap(),
            [net("100.64.0.0/10"), net("10.0.0.0/8")]
        );
        for (bad, expect) in [
            ("10.0.0.1/8", "TAGPEER_CIDR_POOL: \"10.0.0.1/8\" is not canonical"),
            ("10/8", "is not a CIDR block"),
            ("fd00::/8", "fd00::/8 is not IPv4"),
            (",", "no block"),
        ] {
            let msg = parse_pool(bad).unwrap_err().to_string();
            assert!(msg.contains(expect), "{bad}: {msg}");
        }
    }

    #[test]
    fn the_lowest_free_block_is_chosen() {
        let pool = default_pool();
        let taken = |ranges: &[&str]| ranges.iter().map(|r| range(r)).collect::<Vec<_>>();
        assert_eq!(choose_cidr(&pool, 16, &taken(&["172.31.0.0/16"])), Some(net("10.0.0.0/16")));
        assert_eq!(choose_cidr(&pool, 16, &taken(&["10.0.0.0/16", "172.31.0.0/16"])), Some(net("10.1.0.0/16")));
        assert_eq!(choose_cidr(&pool, 16, &taken(&["10.0.200.0/24", "10.1.0.0/17"])), Some(net("10.2.0.0/16")));
        assert_eq!(choose_cidr(&pool, 24, &taken(&["10.0.0.0/24", "10.0.2.0/24"])), Some(net("10.0.1.0/24")));
        assert_eq!(choose_cidr(&pool, 16, &taken(&["10.0.0.0/8"])), Some(net("172.16.0.0/16")));
        assert_eq!(choose_cidr(&pool, 16, &taken(&["10.0.0.0/8", "172.16.0.0/12"])), Some(net("192.168.0.0/16")));
        assert_eq!(choose_cidr(&pool, 16, &taken(&["0.0.0.0/0"])), None);
        assert_eq!(choose_cidr(&pool, 16, &taken(&["fd00::/8"])), Some(net("10.0.0.0/16")), "IPv6 takes nothing");
        // A pool block smaller than the size asked is passed over.
        assert_eq!(choose_cidr(&[net("10.0.0.0/20"), net("10.1.0.0/16")], 16, &[]), Some(net("10.1.0.0/16")));
        assert_eq!(
            choose_cidr(&[net("255.255.0.0/16")], 28, &taken(&["255.255.0.0/17"])),
            Some(net("255.255.128.0/28"))
        );
        assert_eq!(choose_cidr(&[net("255.255.255.240/28")], 28, &taken(&["255.255.255.240/28"])), None);
    }

    #[test]
    fn subnets_are_slash_24s_when_they_fit_from_the_bottom_up() {
        let layout =
            |vpc: &str, n| subnet_layout(net(vpc), n).unwrap().iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(layout("10.0.0.0/16", 2), ["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(layout("10.0.0.0/16", 1), ["10.0.0.0/24"]);
        assert_eq!(layout("10.0.0.0/16", 256).last().unwrap(), "10.0.255.0/24");
        assert_eq!(layout("10.0.0.0/16", 257)[..2], ["10.0.0.0/25", "10.0.0.128/25"]);
        assert_eq!(layout("10.0.0.0/24", 3), ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26"]);
        assert_eq!(layout("10.0.0.0/28", 1), ["10.0.0.0/28"]);
        assert_eq!(layout("10.0.0.0/26", 1), ["10.0.0.0/26"]);
        assert!(subnet_layout(net("10.0.0.0/28"), 2)
            .unwrap_err()
            .to_string()
            .contains("do not fit in a /28 (at most 1"));
        assert_eq!(max_subnets(16), 4096);
    }

    #[test]
    fn the_seed_network_is_planned_in_order() {
        let actions = missing_steps(&seed_request(), &empty(), &default_pool()).unwrap();
        let text: Vec<String> = actions.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "create VPC seoul 10.0.0.0/16",
                "create subnet seoul-a 10.0.0.0/24 in ap-northeast-2a of VPC #1",
                "create subnet seoul-b 10.0.1.0/24 in ap-northeast-2b of VPC #1",
                "create internet gateway seoul",
                "attach internet gateway #4 to VPC #1",
                "create route table seoul-public in VPC #1",
                "associate route table #6 with subnet #2",
                "associate route table #6 with subnet #3",
                "route 0.0.0.0/0 in route table #6 to internet gateway #4",
                "turn DNS hostnames on in VPC #1",
                "tag VPC #1 tagpeer:peers=ap-northeast-3/vpc-0123456789abcdef0",
            ]
        );
        let apis: Vec<&str> = actions.iter().map(ProvisionAction::api_name).collect();
        assert_eq!(apis[0], "CreateVpc");
        assert_eq!(apis[8], "CreateRoute");
        assert_eq!(apis[9], "ModifyVpcAttribute");
        assert_eq!(apis[10], "CreateTags");
    }

    #[test]
    fn a_built_network_needs_nothing_and_says_so() {
        let request = seed_request();
        let d = design(&request, &empty(), &default_pool()).unwrap();
        let (built, created) = run(&empty(), &d.actions);
        assert_complete(&built, &request);
        let s = summary(&d, &created).to_string();
        assert_eq!(
            s,
            "built vpc-00001000 10.0.0.0/16 with 2 subnets, igw-00001003, rtb-00001005; \
             asked for ap-northeast-3/vpc-0123456789abcdef0"
        );

        let again = design(&request, &built, &default_pool()).unwrap();
        assert_eq!(again.actions, vec![]);
        assert_eq!(summary(&again, &[]).to_string(), "nothing to do: seoul is built");
        // The VPC's range is kept, whatever the pool now says.
        assert_eq!(missing_steps(&request, &built, &[net("192.168.0.0/16")]).unwrap(), vec![]);
    }

    #[test]
    fn a_run_cut_short_at_any_step_is_completed_by_the_next() {
        let request = seed_request();
        let full = missing_steps(&request, &empty(), &default_pool()).unwrap();
        for k in 0..=full.len() {
            let (halfway, _) = run(&empty(), &full[..k]);
            let d = design(&request, &halfway, &default_pool()).unwrap();
            assert_eq!(d.actions.len(), full.len() - k, "after {k} steps: {:?}", d.actions);
            let (done, created) = run(&halfway, &d.actions);
            assert_complete(&done, &request);
            assert_eq!(done.vpcs[0].cidr, net("10.0.0.0/16"));
            let s = summary(&d, &created).to_string();
            match k {
                0 => assert!(s.starts_with("built vpc-"), "{s}"),
                k if k == full.len() => assert_eq!(s, "nothing to do: seoul is built"),
                _ => assert!(s.starts_with("completed vpc-00001000 10.0.0.0/16 with 2 subnets"), "{k}: {s}"),
            }
            assert_eq!(missing_steps(&request, &done, &default_pool()).unwrap(), vec![]);
        }
    }

    #[test]
    fn what_others_made_is_used_and_left_alone() {
        let request = seed_request();
        let full = missing_steps(&request, &empty(), &default_pool()).unwrap();
        // VPC and subnets only; then a person attaches their own gateway and
        // gives the first subnet a route table of their own.
        let (mut o, _) = run(&empty(), &full[..3]);
        let vpc = o.vpcs[0].id.clone();
        o.gateways.push(Gateway { id: "igw-0000beef".into(), attached_to: Some(vpc.clone()) });
        o.gateways.push(Gateway { id: "igw-0000f00d".into(), attached_to: Some("vpc-0000cafe".parse().unwrap()) });
        o.subnets[0].route_table = Some("rtb-0000beef".parse().unwrap());
        let text: Vec<String> =
            missing_steps(&request, &o, &default_pool()).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                format!("create route table seoul-public in VPC {vpc}"),
                "associate route table #1 with subnet subnet-00001002".to_owned(),
                "route 0.0.0.0/0 in route table #1 to internet gateway igw-0000beef".to_owned(),
                format!("turn DNS hostnames on in VPC {vpc}"),
                format!("tag VPC {vpc} tagpeer:peers=ap-northeast-3/vpc-0123456789abcdef0"),
            ]
        );

        // A tagged gateway left unattached is attached, not made again.
        let (mut o, _) = run(&empty(), &full[..4]);
        o.route_tables.push(RouteTable {
            id: "rtb-0000aaaa".parse().unwrap(),
            vpc: o.vpcs[0].id.clone(),
            default_route: Some("nat-0000aaaa".into()),
        });
        let text: Vec<String> =
            missing_steps(&request, &o, &default_pool()).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(text[0], format!("attach internet gateway igw-00001003 to VPC {}", o.vpcs[0].id));
        assert!(!text.iter().any(|t| t.starts_with("route 0.0.0.0/0")), "a default route elsewhere stays: {text:?}");
    }

    #[test]
    fn the_intent_tag_is_written_when_it_says_something_else() {
        let request =
            request(json!({"region": SEOUL, "name": "seoul", "peers": [OSAKA_VPC, "ap-northeast-2/vpc-1111aaaa"]}));
        let mut o = empty();
        o.peers.insert(peer("ap-northeast-2/vpc-1111aaaa"), vec![range("192.168.0.0/16")]);
        let (mut built, _) = run(&o, &missing_steps(&request, &o, &default_pool()).unwrap());
        assert_complete(&built, &request);
        let tags = &mut built.vpcs[0].tags;
        tags.insert(intent::PEERS.into(), format!("ap-northeast-2/vpc-1111aaaa  {OSAKA_VPC}"));
        assert_eq!(
            missing_steps(&request, &built, &default_pool()).unwrap(),
            vec![],
            "the same peers, otherwise written"
        );
        built.vpcs[0].tags.insert(intent::PEERS.into(), OSAKA_VPC.into());
        let actions = missing_steps(&request, &built, &default_pool()).unwrap();
        assert!(matches!(actions.as_slice(), [ProvisionAction::TagIntent { .. }]), "{actions:?}");

        // No peers: no intent tag.
        let lone = NetworkRequest { peers: vec![], ..request };
        let actions = missing_steps(&lone, &o, &default_pool()).unwrap();
        assert!(!actions.iter().any(|a| matches!(a, ProvisionAction::TagIntent { .. })));
    }

    #[test]
    fn zones_are_given_or_the_regions_in_turn() {
        let r = request(json!({"region": SEOUL, "name": "s", "subnets": 5}));
        let actions = missing_steps(&r, &empty(), &default_pool()).unwrap();
        let subnets: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                ProvisionAction::CreateSubnet { name, zone, .. } => Some(format!("{name} {zone}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            subnets,
            [
                "s-a ap-northeast-2a",
                "s-b ap-northeast-2b",
                "s-c ap-northeast-2c",
                "s-d ap-northeast-2d",
                "s-a-2 ap-northeast-2a"
            ]
        );

        let r = request(
            json!({"region": SEOUL, "name": "s", "availability-zones": ["ap-northeast-2c", "ap-northeast-2c"]}),
        );
        let actions = missing_steps(&r, &empty(), &default_pool()).unwrap();
        assert!(actions[1].to_string().contains("s-c 10.0.0.0/24 in ap-northeast-2c"), "{}", actions[1]);
        assert!(actions[2].to_string().contains("s-c-2 10.0.1.0/24 in ap-northeast-2c"), "{}", actions[2]);

        let r = request(json!({"region": SEOUL, "name": "s", "availability-zones": ["ap-northeast-2z"]}));
        let err = missing_steps(&r, &empty(), &default_pool()).unwrap_err().to_string();
        assert_eq!(
            err,
            "availability-zones: ap-northeast-2z is not one of ap-northeast-2's zones \
             (ap-northeast-2a, ap-northeast-2b, ap-northeast-2c, ap-northeast-2d)"
        );
        let err = missing_steps(&seed_request(), &Observed { zones: vec![], ..empty() }, &default_pool()).unwrap_err();
        assert_eq!(err.to_string(), "ap-northeast-2 shows no availability zone to put subnets in");
    }

    #[test]
    fn what_cannot_be_built_is_refused_with_the_reason() {
        let pool = default_pool();
        let seed = seed_request();

        let given = |cidr: &str| NetworkRequest { cidr: Some(net(cidr)), ..seed.clone() };
        assert_eq!(
            missing_steps(&given("172.31.128.0/20"), &empty(), &pool).unwrap_err().to_string(),
            "cidr: 172.31.128.0/20 overlaps ap-northeast-3/vpc-0123456789abcdef0's 172.31.0.0/16; \
             peered VPCs need disjoint ranges"
        );
        // Another VPC of the deployment may share a given range; only peers may not.
        let mut o = empty();
        o.taken.push(range("10.9.0.0/16"));
        assert_eq!(
            missing_steps(&given("10.9.0.0/16"), &o, &pool).unwrap()[0].to_string(),
            "create VPC seoul 10.9.0.0/16"
        );

        let stranger = NetworkRequest { peers: vec![peer("ap-northeast-3/vpc-2222bbbb")], ..seed.clone() };
        assert_eq!(
            missing_steps(&stranger, &empty(), &pool).unwrap_err().to_string(),
            "peers: ap-northeast-3/vpc-2222bbbb: no such VPC"
        );
        let far = NetworkRequest { peers: vec![peer("us-east-1/vpc-2222bbbb")], ..seed.clone() };
        assert_eq!(
            missing_steps(&far, &empty(), &pool).unwrap_err().to_string(),
            "peers: us-east-1/vpc-2222bbbb: region us-east-1 is not one of this deployment's \
             (ap-northeast-2, ap-northeast-3)"
        );
        let elsewhere = NetworkRequest { region: "eu-west-1".parse().unwrap(), ..seed.clone() };
        assert_eq!(
            missing_steps(&elsewhere, &empty(), &pool).unwrap_err().to_string(),
            "region: eu-west-1 is not one of this deployment's (ap-northeast-2, ap-northeast-3)"
        );

        let mut full = empty();
        full.taken.push(range("10.0.0.0/8"));
        assert_eq!(
            missing_steps(&seed, &full, &[net("10.0.0.0/8")]).unwrap_err().to_string(),
            "no free /16 left in the pool (10.0.0.0/8): every block overlaps a VPC of the deployment's regions \
             or a peer; give a cidr, or widen TAGPEER_CIDR_POOL"
        );

        let (built, _) = run(&empty(), &missing_steps(&seed, &empty(), &pool).unwrap());
        let vpc = built.vpcs[0].id.clone();
        assert_eq!(
            missing_steps(&given("10.1.0.0/16"), &built, &pool).unwrap_err().to_string(),
            format!("cidr: seoul is built as {vpc} with 10.0.0.0/16, not the asked 10.1.0.0/16")
        );
        assert_eq!(missing_steps(&given("10.0.0.0/16"), &built, &pool).unwrap(), vec![]);

        let mut twice = built.clone();
        twice.vpcs.push(Vpc { id: "vpc-00000001".parse().unwrap(), ..built.vpcs[0].clone() });
        assert_eq!(
            missing_steps(&seed, &twice, &pool).unwrap_err().to_string(),
            format!("2 VPCs carry tagpeer-network=seoul (vpc-00000001, {vpc}); take the tag off all but one")
        );

        let mut blocked = built.clone();
        blocked.subnets[1].cidr = net("10.0.1.0/25");
        let three = NetworkRequest { subnets: Subnets::Count(3), ..seed.clone() };
        assert_eq!(
            missing_steps(&three, &blocked, &pool).unwrap_err().to_string(),
            format!("subnet-00001002 (10.0.1.0/25) in {vpc} is in the way of the subnet 10.0.1.0/24")
        );

        let myself = NetworkRequest { peers: vec![peer(&vpc.to_string())], ..seed.clone() };
        assert_eq!(
            missing_steps(&myself, &built, &pool).unwrap_err().to_string(),
            format!("peers: {vpc} is this network's own VPC")
        );
    }

    #[test]
    fn a_bigger_network_later_gets_more_subnets_and_keeps_the_first() {
        let seed = seed_request();
        let (built, _) = run(&empty(), &missing_steps(&seed, &empty(), &default_pool()).unwrap());
        let three = NetworkRequest { subnets: Subnets::Count(3), ..seed };
        let text: Vec<String> =
            missing_steps(&three, &built, &default_pool()).unwrap().iter().map(ToString::to_string).collect();
        let vpc = &built.vpcs[0].id;
        assert_eq!(
            text,
            [
                format!("create subnet seoul-c 10.0.2.0/24 in ap-northeast-2c of VPC {vpc}"),
                "associate route table rtb-00001005 with subnet #1".to_owned(),
            ]
        );
    }

    fn v4(prefix: std::ops::RangeInclusive<u8>) -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), prefix).prop_map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())
    }

    /// Pools and taken ranges that crowd each other: ranges drawn around the pool's blocks.
    fn crowded() -> impl Strategy<Value = (u8, Vec<Ipv4Net>, Vec<IpNet>)> {
        (16u8..=28).prop_flat_map(|prefix| {
            let low = prefix.saturating_sub(10).max(8);
            let pool = proptest::collection::vec(v4(low..=prefix), 1..4);
            (Just(prefix), pool).prop_flat_map(move |(prefix, pool)| {
                let near = pool.clone();
                let around = (0..near.len(), any::<u32>(), 0u8..=30).prop_map(move |(i, offset, p)| {
                    let block = near[i];
                    let span = u32::MAX >> block.prefix_len();
                    let addr = u32::from(block.network()) | (offset & span);
                    IpNet::V4(
                        Ipv4Net::new(Ipv4Addr::from(addr), p.max(block.prefix_len().saturating_sub(2)))
                            .unwrap()
                            .trunc(),
                    )
                });
                let anywhere = v4(0..=32).prop_map(IpNet::V4);
                let taken = proptest::collection::vec(prop_oneof![4 => around, 1 => anywhere], 0..24);
                (Just(prefix), Just(pool), taken)
            })
        })
    }

    /// The definition, by brute force: every aligned block, the pool's blocks in order, lowest first.
    fn first_free(pool: &[Ipv4Net], prefix: u8, taken: &[IpNet]) -> Option<Ipv4Net> {
        pool.iter()
            .filter(|b| b.prefix_len() <= prefix)
            .flat_map(|b| b.subnets(prefix).unwrap())
            .find(|c| !taken.iter().any(|t| cidr::overlaps(&IpNet::V4(*c), t)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn the_chosen_block_is_the_lowest_free_one((prefix, pool, taken) in crowded()) {
            let chosen = choose_cidr(&pool, prefix, &taken);
            if let Some(c) = chosen {
                prop_assert_eq!(c.prefix_len(), prefix);
                prop_assert_eq!(c.trunc(), c, "aligned");
                prop_assert!(pool.iter().any(|b| b.contains(&c)), "inside the pool");
                prop_assert!(!taken.iter().any(|t| cidr::overlaps(&IpNet::V4(c), t)), "overlaps nothing taken");
            }
            // No lower free aligned block: the brute force finds the same one (or none).
            prop_assert_eq!(chosen, first_free(&pool, prefix, &taken));
        }

        #[test]
        fn subnets_are_equal_disjoint_and_inside(vpc in v4(16..=28), count in 1usize..64) {
            match subnet_layout(vpc, count) {
                Ok(layout) => {
                    prop_assert_eq!(layout.len(), count);
                    let size = layout[0].prefix_len();
                    prop_assert!((SUBNET_PREFIX.max(vpc.prefix_len())..=SMALLEST_SUBNET).contains(&size));
                    // The largest size that fits: one size up would not hold them all.
                    prop_assert!(size == SUBNET_PREFIX.max(vpc.prefix_len()) || count > 1usize << (size - 1 - vpc.prefix_len()));
                    prop_assert_eq!(layout[0].network(), vpc.network(), "from the bottom");
                    for (i, s) in layout.iter().enumerate() {
                        prop_assert_eq!(s.prefix_len(), size);
                        prop_assert!(vpc.contains(s));
                        for t in &layout[i + 1..] {
                            prop_assert!(!cidr::overlaps(&IpNet::V4(*s), &IpNet::V4(*t)));
                            prop_assert!(s.network() < t.network(), "in order, without a gap");
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(count > max_subnets(vpc.prefix_len()));
                    prop_assert!(e.to_string().contains("do not fit"));
                }
            }
        }

        #[test]
        fn any_cut_resumes_to_one_network(count in 1usize..6, peers in any::<bool>(), cut in any::<prop::sample::Index>(), second in any::<prop::sample::Index>()) {
            let request = NetworkRequest {
                subnets: Subnets::Count(count),
                peers: if peers { vec![peer(OSAKA_VPC)] } else { vec![] },
                ..seed_request()
            };
            let full = missing_steps(&request, &empty(), &default_pool()).unwrap();
            let k = cut.index(full.len() + 1);
            let (o, _) = run(&empty(), &full[..k]);
            // Cut short twice.
            let next = missing_steps(&request, &o, &default_pool()).unwrap();
            let j = second.index(next.len() + 1);
            let (o, _) = run(&o, &next[..j]);
            let last = missing_steps(&request, &o, &default_pool()).unwrap();
            prop_assert_eq!(last.len(), full.len() - k - j);
            let (done, _) = run(&o, &last);
            assert_complete(&done, &request);
            prop_assert_eq!(missing_steps(&request, &done, &default_pool()).unwrap(), vec![]);
        }

        #[test]
        fn any_detail_parses_or_errs_without_panicking(detail in "\\PC{0,200}") {
            let value: Value = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
            if let Err(e) = NetworkRequest::from_detail(&value) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
