//! `tagpeer check`: does a packet from one network interface reach another as
//! AWS forwards it, and its reply come back? When it does not, the first hop that
//! drops it, and why.
//!
//! A pure function over a snapshot of the network ([`Network`]) in plain types;
//! the AWS adapter fills the snapshot, nothing here calls AWS.
//!
//! The hops, in the order AWS applies them to the request (source to destination):
//!
//! 1. the source interface's security groups, outbound;
//! 2. the source subnet's network ACL, outbound;
//! 3. the source subnet's route table: `local` within the VPC, a peering connection
//!    to the peer VPC, anything else leaves the VPC's private network;
//! 4. the destination subnet's network ACL, inbound;
//! 5. the destination interface's security groups, inbound;
//!
//! then to the reply: security groups are stateful and let it pass, network ACLs
//! are not, so
//!
//! 6. the destination subnet's network ACL, outbound, to the source's ephemeral ports;
//! 7. the destination subnet's route table, back to the source;
//! 8. the source subnet's network ACL, inbound.
//!
//! Choices where AWS's behaviour needs one:
//! - A network ACL filters what crosses its subnet's boundary: between two
//!   interfaces of one subnet no ACL is consulted.
//! - A subnet with no known network ACL (neither one listing it nor a default one
//!   for its VPC) allows everything: moto sometimes omits them, AWS never does.
//! - The reply must pass for every port of [`Packet::reply_ports`] (by default
//!   [`EPHEMERAL_PORTS`], 1024-65535, AWS's advice for network ACLs), since the
//!   client's source port is not known.
//! - ICMP is an echo request (type 8) answered by an echo reply (type 0), as `ping`
//!   does; for ICMP rules, `ports` holds the range of ICMP types.
//! - A security group rule that names a group matches a peer interface in that
//!   group in the same VPC, or in a VPC of the same region joined by an active
//!   peering connection. Across regions AWS has no group references: no match.
//! - Routes are chosen by longest prefix; among equal prefixes, the first listed.
//!   Only one VPC's CIDRs are reachable over a peering: the peer's own.
//!
//! IPv4 only: [`find_interface`] refuses IPv6 addresses, and the peer ranges a
//! peering forwards to are the VPCs' IPv4 ranges.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use thiserror::Error;

use crate::ids::{Endpoint, PeeringId, Region, RouteTableId};
use crate::model::{Peering, PeeringState, Target};

/// The client ports a reply goes back to, when nothing else is known: AWS's advice
/// for network ACLs, covering Linux (32768-60999), Windows (49152-65535), NAT
/// gateways and load balancers (1024-65535).
pub const EPHEMERAL_PORTS: (u16, u16) = (1024, 65535);

/// ICMP type of the echo request `ping` sends.
pub const ICMP_ECHO_REQUEST: u16 = 8;
/// ICMP type of the echo reply that answers it.
pub const ICMP_ECHO_REPLY: u16 = 0;

/// The rule number of a network ACL's `*` entry, the deny every ACL ends with.
pub const NACL_DEFAULT_RULE: u16 = 32767;

/// Everything `check` reads, for the regions in question.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub peerings: Vec<Peering>,
    pub security_groups: Vec<SecurityGroup>,
    pub nacls: Vec<Nacl>,
    pub interfaces: Vec<Interface>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub endpoint: Endpoint,
    /// Associated IPv4 ranges, primary first.
    pub ipv4: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub vpc: Endpoint,
    pub cidr: IpNet,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: RouteTableId,
    pub vpc: Endpoint,
    /// The VPC's main table: it serves every subnet no table is associated with.
    pub main: bool,
    /// Subnets explicitly associated with this table.
    pub subnets: Vec<String>,
    pub routes: Vec<Route>,
}

/// A route, as the planner sees it too.
pub use crate::model::Route;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc: Endpoint,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

/// One rule of a security group: it allows; security groups never deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    pub protocol: Protocol,
    /// Destination ports (for ICMP, ICMP types), inclusive; `None` for all.
    /// Ignored when the protocol is [`Protocol::All`].
    pub ports: Option<(u16, u16)>,
    /// Where the traffic goes to (egress) or comes from (ingress).
    pub peers: Vec<SgPeer>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer {
    Cidr(IpNet),
    /// A security group id: the interfaces that are its members.
    Group(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nacl {
    pub id: String,
    pub vpc: Endpoint,
    /// The VPC's default ACL: it serves every subnet no other ACL lists.
    pub default: bool,
    pub subnets: Vec<String>,
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclEntry {
    /// Entries are evaluated from the lowest number up; the first that matches
    /// decides. [`NACL_DEFAULT_RULE`] is the `*` deny.
    pub rule_number: u16,
    /// Outbound (`true`) or inbound.
    pub egress: bool,
    pub protocol: Protocol,
    /// Destination ports (for ICMP, ICMP types), inclusive; `None` for all.
    /// Ignored when the protocol is [`Protocol::All`].
    pub ports: Option<(u16, u16)>,
    /// The other end: the destination outbound, the source inbound.
    pub cidr: IpNet,
    pub allow: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// `eni-…`
    pub id: String,
    pub subnet: String,
    pub vpc: Endpoint,
    pub private_ip: IpAddr,
    pub security_groups: Vec<String>,
    /// The instance it is attached to, `i-…`.
    pub instance: Option<String>,
}

/// An IP protocol as security groups and network ACLs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Every protocol (EC2's `-1`).
    All,
    Tcp,
    Udp,
    Icmp,
    /// Any other protocol, by number (ESP, GRE, ICMPv6…): rules for it never
    /// match a TCP, UDP or ICMP packet.
    Other(u8),
}

impl Protocol {
    /// From EC2's `IpProtocol` of a security group rule or `Protocol` of a
    /// network ACL entry: `-1`, a name or a number.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Self::All),
            "tcp" | "6" => Some(Self::Tcp),
            "udp" | "17" => Some(Self::Udp),
            "icmp" | "1" => Some(Self::Icmp),
            number => number.parse().ok().map(Self::Other),
        }
    }

    fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp)
    }
}

impl FromStr for Protocol {
    type Err = PacketError;
    fn from_str(s: &str) -> Result<Self, PacketError> {
        Self::from_code(s).ok_or_else(|| PacketError::Protocol(s.to_owned()))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Tcp => f.write_str("tcp"),
            Self::Udp => f.write_str("udp"),
            Self::Icmp => f.write_str("icmp"),
            Self::Other(n) => write!(f, "protocol {n}"),
        }
    }
}

/// What is sent: an ICMP echo request, or a TCP or UDP packet to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub protocol: Protocol,
    /// The destination port: required for TCP and UDP, absent for ICMP.
    pub port: Option<u16>,
    /// The client ports the reply must be let back to (TCP and UDP).
    pub reply_ports: (u16, u16),
}

impl Packet {
    /// Checks the pair the way a person gives it: `--protocol` and `--port`.
    pub fn new(protocol: Protocol, port: Option<u16>) -> Result<Self, PacketError> {
        match (protocol, port) {
            (Protocol::Tcp | Protocol::Udp, None) => Err(PacketError::NoPort(protocol)),
            (Protocol::Tcp | Protocol::Udp, Some(0)) => Err(PacketError::PortZero),
            (Protocol::Tcp | Protocol::Udp, Some(_)) | (Protocol::Icmp, None) => {
                Ok(Self { protocol, port, reply_ports: EPHEMERAL_PORTS })
            }
            (Protocol::Icmp, Some(_)) => Err(PacketError::IcmpPort),
            (Protocol::All | Protocol::Other(_), _) => Err(PacketError::Protocol(protocol.to_string())),
        }
    }

    pub fn tcp(port: u16) -> Self {
        Self { protocol: Protocol::Tcp, port: Some(port), reply_ports: EPHEMERAL_PORTS }
    }

    pub fn udp(port: u16) -> Self {
        Self { protocol: Protocol::Udp, port: Some(port), reply_ports: EPHEMERAL_PORTS }
    }

    pub fn icmp() -> Self {
        Self { protocol: Protocol::Icmp, port: None, reply_ports: EPHEMERAL_PORTS }
    }

    fn request(&self) -> Traffic {
        let port = match self.protocol {
            Protocol::Icmp => ICMP_ECHO_REQUEST,
            _ => self.port.unwrap_or(0),
        };
        Traffic { protocol: self.protocol, ports: (port, port) }
    }

    fn reply(&self) -> Traffic {
        let ports = match self.protocol {
            Protocol::Icmp => (ICMP_ECHO_REPLY, ICMP_ECHO_REPLY),
            _ => self.reply_ports,
        };
        Traffic { protocol: self.protocol, ports }
    }
}

/// `tcp/22`, `udp/53`, `icmp`.
impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) if self.protocol.has_ports() => write!(f, "{}/{port}", self.protocol),
            _ => write!(f, "{}", self.protocol),
        }
    }
}

/// One direction of the exchange as rules see it: a protocol and a range of
/// destination ports (for ICMP, of ICMP types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    pub protocol: Protocol,
    pub ports: (u16, u16),
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = self.ports;
        match self.protocol {
            Protocol::Icmp if lo == hi && lo == ICMP_ECHO_REQUEST => f.write_str("icmp echo request"),
            Protocol::Icmp if lo == hi && lo == ICMP_ECHO_REPLY => f.write_str("icmp echo reply"),
            Protocol::Icmp if lo == hi => write!(f, "icmp type {lo}"),
            Protocol::Icmp => write!(f, "icmp types {lo}-{hi}"),
            p if p.has_ports() && lo == hi => write!(f, "{p}/{lo}"),
            p if p.has_ports() => write!(f, "{p}/{lo}-{hi}"),
            p => write!(f, "{p}"),
        }
    }
}

/// Which way a hop's packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the source to the destination.
    Request,
    /// Back from the destination to the source.
    Reply,
}

/// A place on the path where AWS may drop the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub direction: Direction,
    pub at: Checkpoint,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// An interface's security groups, outbound or inbound.
    SecurityGroups { outbound: bool, interface: String, groups: Vec<String> },
    /// A subnet's network ACL (`None`: none is known, so everything passes).
    NetworkAcl { outbound: bool, acl: Option<String>, subnet: String, vpc: Endpoint },
    /// A subnet's route table (`None`: it has none), and the route it chose.
    RouteTable { table: Option<RouteTableId>, subnet: String, vpc: Endpoint, route: Option<Route> },
}

/// Why a hop drops the packet. Each reads as the end of a sentence that starts
/// with the hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drop {
    /// No rule of any of the interface's groups allows it.
    SecurityGroups {
        outbound: bool,
        peer: IpAddr,
        traffic: Traffic,
    },
    /// The ACL's first matching entry denies it (`rule: None`: no entry matches).
    /// `traffic` holds the ports denied, the first run of them.
    NetworkAcl {
        outbound: bool,
        peer: IpAddr,
        traffic: Traffic,
        rule: Option<u16>,
    },
    /// The subnet has no table associated and its VPC no main table.
    NoRouteTable,
    /// No route matches; `range` is the destination VPC's range that holds `to`.
    NoRoute {
        to: IpAddr,
        vpc: Endpoint,
        range: Option<IpNet>,
    },
    /// The matching route goes somewhere other than the VPC itself or a peering.
    Leaves {
        to: IpAddr,
        route: IpNet,
        target: String,
        vpc: Endpoint,
        range: Option<IpNet>,
    },
    /// The local route matches, but the destination is in another VPC.
    LocalElsewhere {
        to: IpAddr,
        route: IpNet,
        vpc: Endpoint,
    },
    /// The route's peering connection is not known (AWS marks it a blackhole).
    PeeringMissing {
        to: IpAddr,
        peering: PeeringId,
    },
    PeeringNotActive {
        to: IpAddr,
        peering: PeeringId,
        state: PeeringState,
    },
    /// The peering joins this VPC with `joins` (or does not join this VPC at all,
    /// `None`), not with the destination's VPC.
    PeeringElsewhere {
        to: IpAddr,
        peering: PeeringId,
        joins: Option<Endpoint>,
        vpc: Endpoint,
    },
    /// The destination is not in the peer VPC's ranges.
    OutsidePeer {
        to: IpAddr,
        peering: PeeringId,
        vpc: Endpoint,
        ranges: Vec<IpNet>,
    },
}

/// The answer of [`check`].
// One per check, never held in bulk: its size does not matter, easy matching does.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The request arrives and its reply comes back; `hops` in the order passed.
    Reachable { from: IpAddr, to: IpAddr, packet: Packet, hops: Vec<Hop> },
    /// `hop` drops the request or the reply (see `hop.direction`).
    Unreachable { hop: Hop, reason: Drop },
}

impl Verdict {
    pub fn is_reachable(&self) -> bool {
        matches!(self, Self::Reachable { .. })
    }

    /// `tagpeer check --json`: whether it is reachable, the verdict in words,
    /// and the hops passed (reachable) or the hop that drops it and why.
    pub fn to_json(&self) -> serde_json::Value {
        let hop = |h: &Hop| {
            serde_json::json!({
                "direction": match h.direction { Direction::Request => "request", Direction::Reply => "reply" },
                "at": h.at.to_string(),
            })
        };
        match self {
            Self::Reachable { from, to, packet, hops } => serde_json::json!({
                "reachable": true,
                "verdict": self.to_string(),
                "from": from.to_string(),
                "to": to.to_string(),
                "packet": packet.to_string(),
                "hops": hops.iter().map(hop).collect::<Vec<_>>(),
            }),
            Self::Unreachable { hop: dropped, reason } => serde_json::json!({
                "reachable": false,
                "verdict": self.to_string(),
                "dropped": hop(dropped),
                "reason": reason.to_string(),
            }),
        }
    }
}

/// Why a packet could not be described.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("{0} needs a port")]
    NoPort(Protocol),
    #[error("port 0 is not a port a packet is sent to")]
    PortZero,
    #[error("icmp has no port")]
    IcmpPort,
    #[error("{0:?} is not a protocol a packet is sent with: give icmp, tcp or udp")]
    Protocol(String),
}

/// Why no single interface answers a query.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FindError {
    #[error("{0:?} is neither an instance id (i-…), a network interface id (eni-…) nor a private IPv4 address")]
    Query(String),
    #[error("{0} is an IPv6 address: only IPv4 is checked; give the private IPv4 address or an id")]
    Ipv6(String),
    #[error("no network interface found for {what} {query}{}", in_region(.region.as_ref()))]
    NotFound { what: &'static str, query: String, region: Option<Region> },
    #[error("{ip} is a private address in more than one region ({}): give the region", join(.regions))]
    AmbiguousRegion { ip: IpAddr, regions: Vec<Region> },
    #[error("{query} matches {} network interfaces ({}): name one by its eni- id", .interfaces.len(), .interfaces.join(", "))]
    Ambiguous { query: String, interfaces: Vec<String> },
}

fn in_region(region: Option<&Region>) -> String {
    region.map(|r| format!(" in {r}")).unwrap_or_default()
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `REGION/vpc-…`, as the line a person reads names a VPC.
struct Short<'a>(&'a Endpoint);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.region, self.0.vpc_id)
    }
}

impl Network {
    pub fn vpc(&self, endpoint: &Endpoint) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| &v.endpoint == endpoint)
    }

    pub fn interface(&self, id: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.id == id)
    }

    pub fn peering(&self, id: &PeeringId) -> Option<&Peering> {
        self.peerings.iter().find(|p| &p.id == id)
    }

    /// The VPC's IPv4 ranges; its subnets' ranges when the VPC itself is not known.
    pub fn ranges(&self, vpc: &Endpoint) -> Vec<IpNet> {
        match self.vpc(vpc) {
            Some(v) => v.ipv4.clone(),
            None => self.subnets.iter().filter(|s| &s.vpc == vpc).map(|s| s.cidr).collect(),
        }
    }

    /// The table explicitly associated with the subnet, else the VPC's main table.
    pub fn route_table_of(&self, subnet: &str, vpc: &Endpoint) -> Option<&RouteTable> {
        let tables = || self.route_tables.iter().filter(move |t| &t.vpc == vpc);
        tables().find(|t| t.subnets.iter().any(|s| s == subnet)).or_else(|| tables().find(|t| t.main))
    }

    /// The ACL that lists the subnet, else the VPC's default ACL.
    pub fn nacl_of(&self, subnet: &str, vpc: &Endpoint) -> Option<&Nacl> {
        let acls = || self.nacls.iter().filter(move |n| &n.vpc == vpc);
        acls().find(|n| n.subnets.iter().any(|s| s == subnet)).or_else(|| acls().find(|n| n.default))
    }

    /// Two VPCs of one region joined by an active peering connection, across
    /// which security group references work.
    fn peered_in_region(&self, a: &Endpoint, b: &Endpoint) -> bool {
        a.region == b.region
            && self.peerings.iter().any(|p| p.state == PeeringState::Active && p.joins(a) && p.joins(b))
    }
}

/// Whether a rule for `protocol` and `ports` covers `port` of `traffic_protocol`.
fn covers(protocol: Protocol, ports: Option<(u16, u16)>, traffic_protocol: Protocol, port: u16) -> bool {
    match protocol {
        Protocol::All => true,
        p => p == traffic_protocol && ports.is_none_or(|(lo, hi)| lo <= port && port <= hi),
    }
}

impl SgRule {
    /// Allows `traffic` between `me` (whose group holds the rule) and `peer`.
    fn allows(&self, net: &Network, traffic: &Traffic, me: &Interface, peer: &Interface) -> bool {
        covers(self.protocol, self.ports, traffic.protocol, traffic.ports.0)
            && self.peers.iter().any(|p| match p {
                SgPeer::Cidr(cidr) => cidr.contains(&peer.private_ip),
                SgPeer::Group(group) => {
                    peer.security_groups.contains(group)
                        && (peer.vpc == me.vpc || net.peered_in_region(&me.vpc, &peer.vpc))
                }
            })
    }
}

impl NaclEntry {
    fn matches(&self, peer: IpAddr, protocol: Protocol, port: u16) -> bool {
        covers(self.protocol, self.ports, protocol, port) && self.cidr.contains(&peer)
    }
}

/// What `entries` (one direction's, in rule order) decide for every port of
/// `traffic` to or from `peer`: `None` when all are allowed, else the first run of
/// denied ports and the entry that denies them (`None`: no entry matches).
fn nacl_denies(entries: &[&NaclEntry], peer: IpAddr, traffic: &Traffic) -> Option<(Traffic, Option<u16>)> {
    let (lo, hi) = (u32::from(traffic.ports.0), u32::from(traffic.ports.1));
    // Between consecutive cuts every entry matches all ports or none.
    let mut cuts = BTreeSet::from([lo, hi + 1]);
    for (a, b) in entries.iter().filter_map(|e| e.ports) {
        cuts.extend([u32::from(a), u32::from(b) + 1].into_iter().filter(|c| lo < *c && *c <= hi));
    }
    let cuts: Vec<u32> = cuts.into_iter().collect();
    let mut denied: Option<(u32, u32, Option<u16>)> = None;
    for run in cuts.windows(2) {
        let (start, end) = (run[0], run[1] - 1);
        let decided = entries.iter().find(|e| e.matches(peer, traffic.protocol, start as u16));
        match (decided, &mut denied) {
            (Some(e), None) if e.allow => {}
            (Some(e), Some(_)) if e.allow => break,
            (e, None) => denied = Some((start, end, e.map(|e| e.rule_number))),
            (e, Some(run)) if run.2 == e.map(|e| e.rule_number) => run.1 = end,
            (_, Some(_)) => break,
        }
    }
    denied.map(|(start, end, rule)| (Traffic { protocol: traffic.protocol, ports: (start as u16, end as u16) }, rule))
}

/// The route AWS chooses for `ip`: the longest prefix that holds it, the first
/// listed among equals.
fn longest_match(routes: &[Route], ip: IpAddr) -> Option<&Route> {
    routes.iter().filter(|r| r.destination.contains(&ip)).min_by_key(|r| std::cmp::Reverse(r.destination.prefix_len()))
}

type Outcome = (Hop, Option<Drop>);

fn security_groups(
    net: &Network,
    me: &Interface,
    peer: &Interface,
    outbound: bool,
    traffic: &Traffic,
    direction: Direction,
) -> Outcome {
    let allowed = me
        .security_groups
        .iter()
        .filter_map(|id| net.security_groups.iter().find(|g| &g.id == id))
        .flat_map(|g| if outbound { &g.egress } else { &g.ingress })
        .any(|rule| rule.allows(net, traffic, me, peer));
    let at = Checkpoint::SecurityGroups { outbound, interface: me.id.clone(), groups: me.security_groups.clone() };
    let reason = (!allowed).then_some(Drop::SecurityGroups { outbound, peer: peer.private_ip, traffic: *traffic });
    (Hop { direction, at }, reason)
}

fn network_acl(
    net: &Network,
    at: &Interface,
    outbound: bool,
    peer: IpAddr,
    traffic: &Traffic,
    direction: Direction,
) -> Outcome {
    let acl = net.nacl_of(&at.subnet, &at.vpc);
    let hop = Hop {
        direction,
        at: Checkpoint::NetworkAcl {
            outbound,
            acl: acl.map(|a| a.id.clone()),
            subnet: at.subnet.clone(),
            vpc: at.vpc.clone(),
        },
    };
    let Some(acl) = acl else { return (hop, None) };
    let mut entries: Vec<&NaclEntry> = acl.entries.iter().filter(|e| e.egress == outbound).collect();
    entries.sort_by_key(|e| e.rule_number);
    let reason =
        nacl_denies(&entries, peer, traffic).map(|(traffic, rule)| Drop::NetworkAcl { outbound, peer, traffic, rule });
    (hop, reason)
}

fn route(net: &Network, from: &Interface, to: &Interface, direction: Direction) -> Outcome {
    let table = net.route_table_of(&from.subnet, &from.vpc);
    let chosen = table.and_then(|t| longest_match(&t.routes, to.private_ip));
    let hop = Hop {
        direction,
        at: Checkpoint::RouteTable {
            table: table.map(|t| t.id.clone()),
            subnet: from.subnet.clone(),
            vpc: from.vpc.clone(),
            route: chosen.cloned(),
        },
    };
    if table.is_none() {
        return (hop, Some(Drop::NoRouteTable));
    }
    let ip = to.private_ip;
    let range = || net.ranges(&to.vpc).into_iter().find(|r| r.contains(&ip));
    let reason = match chosen {
        None => Some(Drop::NoRoute { to: ip, vpc: to.vpc.clone(), range: range() }),
        Some(Route { destination, target: Target::Local }) => {
            (to.vpc != from.vpc).then(|| Drop::LocalElsewhere { to: ip, route: *destination, vpc: to.vpc.clone() })
        }
        Some(Route { target: Target::Peering(id), .. }) => over_peering(net, id, from, to),
        Some(Route { destination, target: Target::Other(target) }) => Some(Drop::Leaves {
            to: ip,
            route: *destination,
            target: target.clone(),
            vpc: to.vpc.clone(),
            range: range(),
        }),
    };
    (hop, reason)
}

/// Why `id` does not carry a packet from `from`'s VPC to `to`, if it does not.
fn over_peering(net: &Network, id: &PeeringId, from: &Interface, to: &Interface) -> Option<Drop> {
    let ip = to.private_ip;
    let peering = id.clone();
    let Some(p) = net.peering(id) else { return Some(Drop::PeeringMissing { to: ip, peering }) };
    if p.state != PeeringState::Active {
        return Some(Drop::PeeringNotActive { to: ip, peering, state: p.state.clone() });
    }
    let other = if p.requester == from.vpc {
        &p.accepter
    } else if p.accepter == from.vpc {
        &p.requester
    } else {
        return Some(Drop::PeeringElsewhere { to: ip, peering, joins: None, vpc: to.vpc.clone() });
    };
    if other != &to.vpc {
        return Some(Drop::PeeringElsewhere { to: ip, peering, joins: Some(other.clone()), vpc: to.vpc.clone() });
    }
    let ranges = net.ranges(other);
    (!ranges.iter().any(|r| r.contains(&ip))).then(|| Drop::OutsidePeer { to: ip, peering, vpc: other.clone(), ranges })
}

/// Whether `packet` from `src` reaches `dst` and its reply comes back, as AWS
/// forwards them; when not, the first hop that drops one and why. See the module
/// documentation for the hops and the choices made.
pub fn check(net: &Network, src: &Interface, dst: &Interface, packet: &Packet) -> Verdict {
    use Direction::{Reply, Request};
    let (request, reply) = (packet.request(), packet.reply());
    let (src_ip, dst_ip) = (src.private_ip, dst.private_ip);
    // Network ACLs filter what crosses a subnet's boundary.
    let crosses = src.subnet != dst.subnet || src.vpc != dst.vpc;
    let mut hops = Vec::new();
    macro_rules! pass {
        ($outcome:expr) => {
            match $outcome {
                (hop, None) => hops.push(hop),
                (hop, Some(reason)) => return Verdict::Unreachable { hop, reason },
            }
        };
    }
    pass!(security_groups(net, src, dst, true, &request, Request));
    if crosses {
        pass!(network_acl(net, src, true, dst_ip, &request, Request));
    }
    pass!(route(net, src, dst, Request));
    if crosses {
        pass!(network_acl(net, dst, false, src_ip, &request, Request));
    }
    pass!(security_groups(net, dst, src, false, &request, Request));
    if crosses {
        pass!(network_acl(net, dst, true, src_ip, &reply, Reply));
    }
    pass!(route(net, dst, src, Reply));
    if crosses {
        pass!(network_acl(net, src, false, dst_ip, &reply, Reply));
    }
    Verdict::Reachable { from: src_ip, to: dst_ip, packet: *packet, hops }
}

const ADDRESS: &str = "private address";

/// The interface a person means by `query`: an instance id (`i-…`, which must
/// have one interface), an interface id (`eni-…`) or a private IPv4 address. With
/// `region`, only that region's interfaces are considered; an address found in
/// more than one region needs it.
pub fn find_interface<'a>(net: &'a Network, query: &str, region: Option<&Region>) -> Result<&'a Interface, FindError> {
    let query = query.trim();
    let in_scope = |i: &&Interface| region.is_none_or(|r| &i.vpc.region == r);
    let (what, found): (&'static str, Vec<&Interface>) = if query.starts_with("i-") {
        ("instance", net.interfaces.iter().filter(|i| i.instance.as_deref() == Some(query)).filter(in_scope).collect())
    } else if query.starts_with("eni-") {
        ("network interface", net.interfaces.iter().filter(|i| i.id == query).filter(in_scope).collect())
    } else {
        match query.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => return Err(FindError::Ipv6(query.to_owned())),
            Ok(ip) => (ADDRESS, net.interfaces.iter().filter(|i| i.private_ip == ip).filter(in_scope).collect()),
            Err(_) => return Err(FindError::Query(query.to_owned())),
        }
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(FindError::NotFound { what, query: query.to_owned(), region: region.cloned() }),
        many => {
            let by_address = what == ADDRESS;
            let regions: BTreeSet<&Region> = many.iter().map(|i| &i.vpc.region).collect();
            if by_address && regions.len() > 1 {
                let regions = regions.into_iter().cloned().collect();
                Err(FindError::AmbiguousRegion { ip: many[0].private_ip, regions })
            } else {
                let interfaces = many.iter().map(|i| i.id.clone()).collect();
                Err(FindError::Ambiguous { query: query.to_owned(), interfaces })
            }
        }
    }
}

// The words a person reads.

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecurityGroups { interface, groups, .. } if groups.is_empty() => {
                write!(f, "security groups of {interface} (none)")
            }
            Self::SecurityGroups { interface, groups, .. } => {
                write!(f, "security groups of {interface} ({})", groups.join(", "))
            }
            Self::NetworkAcl { acl: Some(acl), subnet, vpc, .. } => {
                write!(f, "network ACL {acl} of subnet {subnet} ({})", Short(vpc))
            }
            Self::NetworkAcl { acl: None, subnet, vpc, .. } => {
                write!(f, "subnet {subnet} ({}) (no network ACL known: all allowed)", Short(vpc))
            }
            Self::RouteTable { table: Some(table), subnet, vpc, .. } => {
                write!(f, "route table {table} of subnet {subnet} ({})", Short(vpc))
            }
            Self::RouteTable { table: None, subnet, vpc, .. } => write!(f, "subnet {subnet} ({})", Short(vpc)),
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Request => write!(f, "{}", self.at),
            Direction::Reply => write!(f, "{} (reply)", self.at),
        }
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let way = |outbound: bool| if outbound { "out to" } else { "in from" };
        let place = |f: &mut fmt::Formatter<'_>, vpc: &Endpoint, range: &Option<IpNet>| match range {
            Some(range) => write!(f, "{range} of {}", Short(vpc)),
            None => write!(f, "in {}", Short(vpc)),
        };
        match self {
            Self::SecurityGroups { outbound, peer, traffic } => {
                write!(f, "allow no {traffic} {} {peer}", way(*outbound))
            }
            Self::NetworkAcl { outbound, peer, traffic, rule } => {
                write!(f, "denies {traffic} {} {peer} ", way(*outbound))?;
                match rule {
                    Some(n) if *n < NACL_DEFAULT_RULE => write!(f, "(rule {n})"),
                    _ => f.write_str("(rule *: no rule allows it)"),
                }
            }
            Self::NoRouteTable => {
                f.write_str("has no route table: none is associated with it and its VPC has no main table")
            }
            Self::NoRoute { to, vpc, range } => {
                write!(f, "has no route to {to} (")?;
                place(f, vpc, range)?;
                f.write_str(")")
            }
            Self::Leaves { to, route, target, vpc, range } if route.prefix_len() == 0 => {
                write!(f, "has no route to {to} (")?;
                place(f, vpc, range)?;
                write!(f, "): its default route leaves through {target}, which does not lead to {}", Short(vpc))
            }
            Self::Leaves { to, route, target, vpc, .. } => {
                write!(f, "routes {to} by {route}: it leaves through {target}, which does not lead to {}", Short(vpc))
            }
            Self::LocalElsewhere { to, route, vpc } => {
                write!(f, "keeps {to} in its own VPC (local route {route}), but {to} is in {}", Short(vpc))
            }
            Self::PeeringMissing { to, peering } => {
                write!(f, "sends {to} through {peering}, which does not exist (a blackhole route)")
            }
            Self::PeeringNotActive { to, peering, state } => {
                write!(f, "sends {to} through {peering}, and {peering} is {}", state.code())
            }
            Self::PeeringElsewhere { to, peering, joins: Some(joins), vpc } => {
                write!(f, "sends {to} through {peering}, which leads to {}, not to {}", Short(joins), Short(vpc))
            }
            Self::PeeringElsewhere { to, peering, joins: None, .. } => {
                write!(f, "sends {to} through {peering}, which does not join this VPC")
            }
            Self::OutsidePeer { to, peering, vpc, ranges } => write!(
                f,
                "sends {to} through {peering}, but {to} is outside {}'s ranges ({}), the only ones it leads to",
                Short(vpc),
                join(ranges)
            ),
        }
    }
}

/// One line: `reachable: 10.0.6.38 -> 172.31.39.92 tcp/22 via pcx-…, and back`,
/// or `unreachable: ` and the hop that drops the packet, and why.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reachable { from, to, packet, hops } => {
                write!(f, "reachable: {from} -> {to} {packet} ")?;
                let taken = hops.iter().find_map(|h| match &h.at {
                    Checkpoint::RouteTable { vpc, route: Some(route), .. } if h.direction == Direction::Request => {
                        Some((vpc, &route.target))
                    }
                    _ => None,
                });
                match taken {
                    Some((_, Target::Peering(pcx))) => write!(f, "via {pcx}")?,
                    Some((vpc, _)) => write!(f, "within {}", Short(vpc))?,
                    None => f.write_str("directly")?,
                }
                f.write_str(", and back")
            }
            Self::Unreachable { hop, reason } => match hop.direction {
                Direction::Request => write!(f, "unreachable: {} {reason}", hop.at),
                Direction::Reply => {
                    write!(f, "unreachable: the request arrives, but the reply does not: {} {reason}", hop.at)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const ACCOUNT: &str = "123456789012";
    const SEOUL: &str = "ap-northeast-2";
    const OSAKA: &str = "ap-northeast-3";
    const TOKYO: &str = "ap-northeast-1";
    const PCX: &str = "pcx-0000c001";

    fn ep(region: &str, vpc: &str) -> Endpoint {
        Endpoint::new(ACCOUNT.parse().unwrap(), region.parse().unwrap(), vpc.parse().unwrap())
    }

    fn seoul() -> Endpoint {
        ep(SEOUL, "vpc-0000a001")
    }

    fn osaka() -> Endpoint {
        ep(OSAKA, "vpc-0000b001")
    }

    fn tokyo() -> Endpoint {
        ep(TOKYO, "vpc-0000d001")
    }

    fn cidr(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn pcx(id: &str) -> Target {
        Target::Peering(id.parse().unwrap())
    }

    fn gateway(id: &str) -> Target {
        Target::Other(id.to_owned())
    }

    fn sg_rule(protocol: Protocol, ports: Option<(u16, u16)>, from: &str) -> SgRule {
        SgRule { protocol, ports, peers: vec![SgPeer::Cidr(cidr(from))] }
    }

    fn sg_group(protocol: Protocol, ports: Option<(u16, u16)>, group: &str) -> SgRule {
        SgRule { protocol, ports, peers: vec![SgPeer::Group(group.to_owned())] }
    }

    fn allow_all() -> SgRule {
        sg_rule(Protocol::All, None, "0.0.0.0/0")
    }

    fn entry(
        rule_number: u16,
        egress: bool,
        protocol: Protocol,
        ports: Option<(u16, u16)>,
        to: &str,
        allow: bool,
    ) -> NaclEntry {
        NaclEntry { rule_number, egress, protocol, ports, cidr: cidr(to), allow }
    }

    /// What a new ACL holds: rule 100 allows everything, `*` denies, both ways.
    fn open_entries() -> Vec<NaclEntry> {
        [true, false]
            .into_iter()
            .flat_map(|egress| {
                [
                    entry(100, egress, Protocol::All, None, "0.0.0.0/0", true),
                    entry(NACL_DEFAULT_RULE, egress, Protocol::All, None, "0.0.0.0/0", false),
                ]
            })
            .collect()
    }

    /// A network under construction. Each VPC comes with a main route table
    /// (`rtb-` and the VPC id's digits) holding the local route, and an open
    /// default network ACL (`acl-` and the digits).
    #[derive(Default)]
    struct Builder {
        net: Network,
    }

    impl Builder {
        fn vpc(mut self, at: &Endpoint, range: &str) -> Self {
            let digits = &at.vpc_id.as_str()["vpc-".len()..];
            self.net.vpcs.push(Vpc { endpoint: at.clone(), ipv4: vec![cidr(range)] });
            self.net.nacls.push(Nacl {
                id: format!("acl-{digits}"),
                vpc: at.clone(),
                default: true,
                subnets: vec![],
                entries: open_entries(),
            });
            self.table_of(&format!("rtb-{digits}"), at, true, &[])
        }

        fn table_of(mut self, id: &str, vpc: &Endpoint, main: bool, subnets: &[&str]) -> Self {
            let local = self.net.vpc(vpc).unwrap().ipv4.clone();
            self.net.route_tables.push(RouteTable {
                id: id.parse().unwrap(),
                vpc: vpc.clone(),
                main,
                subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
                routes: local.into_iter().map(|d| Route { destination: d, target: Target::Local }).collect(),
            });
            self
        }

        /// A table explicitly associated with `subnets`.
        fn table(self, id: &str, vpc: &Endpoint, subnets: &[&str]) -> Self {
            self.table_of(id, vpc, false, subnets)
        }

        fn route(mut self, table: &str, destination: &str, target: Target) -> Self {
            let t = self.net.route_tables.iter_mut().find(|t| t.id.as_str() == table).unwrap();
            t.routes.push(Route { destination: cidr(destination), target });
            self
        }

        fn unroute(mut self, table: &str, destination: &str) -> Self {
            let t = self.net.route_tables.iter_mut().find(|t| t.id.as_str() == table).unwrap();
            t.routes.retain(|r| r.destination != cidr(destination));
            self
        }

        fn subnet(mut self, id: &str, vpc: &Endpoint, range: &str) -> Self {
            self.net.subnets.push(Subnet { id: id.to_owned(), vpc: vpc.clone(), cidr: cidr(range) });
            self
        }

        fn sg(mut self, id: &str, vpc: &Endpoint, ingress: Vec<SgRule>, egress: Vec<SgRule>) -> Self {
            self.net.security_groups.retain(|g| g.id != id);
            self.net.security_groups.push(SecurityGroup { id: id.to_owned(), vpc: vpc.clone(), ingress, egress });
            self
        }

        /// An ACL of its own for `subnets`.
        fn nacl(mut self, id: &str, vpc: &Endpoint, subnets: &[&str], entries: Vec<NaclEntry>) -> Self {
            self.net.nacls.push(Nacl {
                id: id.to_owned(),
                vpc: vpc.clone(),
                default: false,
                subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
                entries,
            });
            self
        }

        fn eni(mut self, id: &str, subnet: &str, ip: &str, groups: &[&str], instance: Option<&str>) -> Self {
            let vpc = self.net.subnets.iter().find(|s| s.id == subnet).unwrap().vpc.clone();
            self.net.interfaces.push(Interface {
                id: id.to_owned(),
                subnet: subnet.to_owned(),
                vpc,
                private_ip: ip.parse().unwrap(),
                security_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                instance: instance.map(str::to_owned),
            });
            self
        }

        fn peering(mut self, id: &str, requester: &Endpoint, accepter: &Endpoint, state: PeeringState) -> Self {
            self.net.peerings.push(Peering {
                id: id.parse().unwrap(),
                requester: requester.clone(),
                accepter: accepter.clone(),
                state,
                tags: BTreeMap::new(),
                dns: Default::default(),
                hidden_from_accepter: false,
            });
            self
        }

        fn build(self) -> Network {
            self.net
        }
    }

    /// The seed scenario before tagpeer: a Seoul server in 10.0.0.0/16 behind the
    /// provisioner's route table (local, default route to the internet gateway),
    /// an Osaka server in the default VPC. The security groups let the other side in.
    fn seed_before() -> Builder {
        Builder::default()
            .vpc(&seoul(), "10.0.0.0/16")
            .subnet("subnet-0000a001", &seoul(), "10.0.6.0/24")
            .table("rtb-0000a101", &seoul(), &["subnet-0000a001"])
            .route("rtb-0000a101", "0.0.0.0/0", gateway("igw-0000a001"))
            .sg(
                "sg-0000a001",
                &seoul(),
                vec![
                    sg_rule(Protocol::All, None, "172.31.0.0/16"),
                    sg_rule(Protocol::Tcp, Some((22, 22)), "0.0.0.0/0"),
                ],
                vec![allow_all()],
            )
            .eni("eni-0000a001", "subnet-0000a001", "10.0.6.38", &["sg-0000a001"], Some("i-0000a001"))
            .vpc(&osaka(), "172.31.0.0/16")
            .subnet("subnet-0000b001", &osaka(), "172.31.32.0/20")
            .route("rtb-0000b001", "0.0.0.0/0", gateway("igw-0000b001"))
            .sg("sg-0000b001", &osaka(), vec![sg_rule(Protocol::All, None, "10.0.0.0/16")], vec![allow_all()])
            .eni("eni-0000b001", "subnet-0000b001", "172.31.39.92", &["sg-0000b001"], Some("i-0000b001"))
    }

    /// After tagpeer: an active peering and a route to the peer on each side.
    fn seed_after() -> Builder {
        seed_before()
            .peering(PCX, &seoul(), &osaka(), PeeringState::Active)
            .route("rtb-0000a101", "172.31.0.0/16", pcx(PCX))
            .route("rtb-0000b001", "10.0.0.0/16", pcx(PCX))
    }

    fn verdict(net: &Network, src: &str, dst: &str, packet: Packet) -> Verdict {
        check(net, net.interface(src).unwrap(), net.interface(dst).unwrap(), &packet)
    }

    fn ssh(net: &Network) -> Verdict {
        verdict(net, "eni-0000a001", "eni-0000b001", Packet::tcp(22))
    }

    /// The hop and reason of an unreachable verdict.
    fn dropped(v: &Verdict) -> (&Hop, &Drop) {
        match v {
            Verdict::Unreachable { hop, reason } => (hop, reason),
            Verdict::Reachable { .. } => panic!("expected unreachable, got {v}"),
        }
    }

    #[test]
    fn the_seed_before_peering_has_no_route() {
        let net = seed_before().build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        assert_eq!(hop.direction, Direction::Request);
        assert!(matches!(&hop.at, Checkpoint::RouteTable { table: Some(t), .. } if t.as_str() == "rtb-0000a101"));
        assert!(matches!(reason, Drop::Leaves { target, .. } if target == "igw-0000a001"));
        assert_eq!(
            v.to_string(),
            "unreachable: route table rtb-0000a101 of subnet subnet-0000a001 (ap-northeast-2/vpc-0000a001) \
             has no route to 172.31.39.92 (172.31.0.0/16 of ap-northeast-3/vpc-0000b001): its default route \
             leaves through igw-0000a001, which does not lead to ap-northeast-3/vpc-0000b001"
        );
    }

    #[test]
    fn a_table_without_a_default_route_has_no_route() {
        let net = seed_before().unroute("rtb-0000a101", "0.0.0.0/0").build();
        let v = ssh(&net);
        assert!(matches!(dropped(&v).1, Drop::NoRoute { .. }));
        assert_eq!(
            v.to_string(),
            "unreachable: route table rtb-0000a101 of subnet subnet-0000a001 (ap-northeast-2/vpc-0000a001) \
             has no route to 172.31.39.92 (172.31.0.0/16 of ap-northeast-3/vpc-0000b001)"
        );
    }

    #[test]
    fn the_seed_after_peering_is_reachable_both_ways_via_the_peering() {
        let net = seed_after().build();
        let there = ssh(&net);
        assert!(there.is_reachable(), "{there}");
        assert_eq!(there.to_string(), "reachable: 10.0.6.38 -> 172.31.39.92 tcp/22 via pcx-0000c001, and back");
        let Verdict::Reachable { hops, .. } = &there else { unreachable!() };
        let directions: Vec<Direction> = hops.iter().map(|h| h.direction).collect();
        use Direction::{Reply, Request};
        assert_eq!(directions, [Request, Request, Request, Request, Request, Reply, Reply, Reply]);
        let routes: Vec<&Target> = hops
            .iter()
            .filter_map(|h| match &h.at {
                Checkpoint::RouteTable { route: Some(r), .. } => Some(&r.target),
                _ => None,
            })
            .collect();
        assert_eq!(routes, [&pcx(PCX), &pcx(PCX)]);

        let back = verdict(&net, "eni-0000b001", "eni-0000a001", Packet::tcp(22));
        assert_eq!(back.to_string(), "reachable: 172.31.39.92 -> 10.0.6.38 tcp/22 via pcx-0000c001, and back");
        let ping = verdict(&net, "eni-0000a001", "eni-0000b001", Packet::icmp());
        assert_eq!(ping.to_string(), "reachable: 10.0.6.38 -> 172.31.39.92 icmp via pcx-0000c001, and back");
        let dns = verdict(&net, "eni-0000b001", "eni-0000a001", Packet::udp(53));
        assert!(dns.is_reachable(), "{dns}");
    }

    #[test]
    fn security_group_egress_can_deny() {
        let net = seed_after()
            .sg("sg-0000a001", &seoul(), vec![], vec![sg_rule(Protocol::Tcp, Some((443, 443)), "0.0.0.0/0")])
            .build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        assert!(matches!(hop.at, Checkpoint::SecurityGroups { outbound: true, .. }));
        assert!(matches!(reason, Drop::SecurityGroups { outbound: true, .. }));
        assert_eq!(
            v.to_string(),
            "unreachable: security groups of eni-0000a001 (sg-0000a001) allow no tcp/22 out to 172.31.39.92"
        );
        assert!(verdict(&net, "eni-0000a001", "eni-0000b001", Packet::tcp(443)).is_reachable());
    }

    #[test]
    fn security_group_ingress_can_deny() {
        let net = seed_after()
            .sg("sg-0000b001", &osaka(), vec![sg_rule(Protocol::All, None, "192.168.0.0/16")], vec![allow_all()])
            .build();
        let v = ssh(&net);
        assert!(matches!(dropped(&v).0.at, Checkpoint::SecurityGroups { outbound: false, .. }));
        assert_eq!(
            v.to_string(),
            "unreachable: security groups of eni-0000b001 (sg-0000b001) allow no tcp/22 in from 10.0.6.38"
        );
    }

    #[test]
    fn an_unknown_security_group_allows_nothing() {
        let mut net = seed_after().build();
        net.interfaces[0].security_groups = vec!["sg-0000ffff".to_owned()];
        assert!(matches!(dropped(&ssh(&net)).1, Drop::SecurityGroups { outbound: true, .. }));
    }

    /// Seoul with a database in a second subnet, its group letting in members of
    /// `sg-0000a001`, and a third interface that is not a member.
    fn with_database() -> Builder {
        seed_after()
            .subnet("subnet-0000a002", &seoul(), "10.0.7.0/24")
            .sg(
                "sg-0000a002",
                &seoul(),
                vec![sg_group(Protocol::Tcp, Some((5432, 5432)), "sg-0000a001")],
                vec![allow_all()],
            )
            .eni("eni-0000a002", "subnet-0000a002", "10.0.7.10", &["sg-0000a002"], Some("i-0000a002"))
            .sg("sg-0000a003", &seoul(), vec![], vec![allow_all()])
            .eni("eni-0000a003", "subnet-0000a001", "10.0.6.99", &["sg-0000a003"], None)
    }

    #[test]
    fn security_groups_match_group_references_in_the_same_vpc() {
        let net = with_database().build();
        let member = verdict(&net, "eni-0000a001", "eni-0000a002", Packet::tcp(5432));
        assert_eq!(
            member.to_string(),
            "reachable: 10.0.6.38 -> 10.0.7.10 tcp/5432 within ap-northeast-2/vpc-0000a001, and back"
        );
        let stranger = verdict(&net, "eni-0000a003", "eni-0000a002", Packet::tcp(5432));
        assert_eq!(
            stranger.to_string(),
            "unreachable: security groups of eni-0000a002 (sg-0000a002) allow no tcp/5432 in from 10.0.6.99"
        );
    }

    #[test]
    fn group_references_do_not_cross_regions() {
        let net = seed_after()
            .sg("sg-0000b001", &osaka(), vec![sg_group(Protocol::All, None, "sg-0000a001")], vec![allow_all()])
            .build();
        assert!(matches!(dropped(&ssh(&net)).1, Drop::SecurityGroups { outbound: false, .. }));
    }

    #[test]
    fn group_references_work_across_an_active_peering_in_one_region() {
        let incheon = ep(SEOUL, "vpc-0000e001");
        let build = |state| {
            seed_after()
                .vpc(&incheon, "10.1.0.0/16")
                .subnet("subnet-0000e001", &incheon, "10.1.1.0/24")
                .sg("sg-0000e001", &incheon, vec![sg_group(Protocol::Tcp, Some((22, 22)), "sg-0000a001")], vec![])
                .eni("eni-0000e001", "subnet-0000e001", "10.1.1.5", &["sg-0000e001"], None)
                .peering("pcx-0000c00e", &seoul(), &incheon, state)
                .route("rtb-0000a101", "10.1.0.0/16", pcx("pcx-0000c00e"))
                .route("rtb-0000e001", "10.0.0.0/16", pcx("pcx-0000c00e"))
                .build()
        };
        let net = build(PeeringState::Active);
        let v = verdict(&net, "eni-0000a001", "eni-0000e001", Packet::tcp(22));
        assert_eq!(v.to_string(), "reachable: 10.0.6.38 -> 10.1.1.5 tcp/22 via pcx-0000c00e, and back");
        let net = build(PeeringState::PendingAcceptance);
        let v = verdict(&net, "eni-0000a001", "eni-0000e001", Packet::tcp(22));
        assert!(matches!(dropped(&v).1, Drop::PeeringNotActive { .. }), "{v}");
    }

    #[test]
    fn the_source_network_acl_can_deny_outbound() {
        let mut entries = open_entries();
        entries.push(entry(90, true, Protocol::Tcp, Some((22, 22)), "172.31.0.0/16", false));
        let net = seed_after().nacl("acl-0000a101", &seoul(), &["subnet-0000a001"], entries).build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        assert!(matches!(&hop.at, Checkpoint::NetworkAcl { outbound: true, acl: Some(a), .. } if a == "acl-0000a101"));
        assert!(matches!(reason, Drop::NetworkAcl { outbound: true, rule: Some(90), .. }));
        assert_eq!(
            v.to_string(),
            "unreachable: network ACL acl-0000a101 of subnet subnet-0000a001 (ap-northeast-2/vpc-0000a001) \
             denies tcp/22 out to 172.31.39.92 (rule 90)"
        );
    }

    #[test]
    fn the_destination_network_acl_can_deny_inbound() {
        let entries = vec![
            entry(100, false, Protocol::Tcp, Some((443, 443)), "0.0.0.0/0", true),
            entry(NACL_DEFAULT_RULE, false, Protocol::All, None, "0.0.0.0/0", false),
            entry(100, true, Protocol::All, None, "0.0.0.0/0", true),
        ];
        let net = seed_after().nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], entries).build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        assert!(matches!(hop.at, Checkpoint::NetworkAcl { outbound: false, .. }));
        assert!(matches!(reason, Drop::NetworkAcl { outbound: false, rule: Some(NACL_DEFAULT_RULE), .. }));
        assert_eq!(
            v.to_string(),
            "unreachable: network ACL acl-0000b101 of subnet subnet-0000b001 (ap-northeast-3/vpc-0000b001) \
             denies tcp/22 in from 10.0.6.38 (rule *: no rule allows it)"
        );
        assert!(verdict(&net, "eni-0000a001", "eni-0000b001", Packet::tcp(443)).is_reachable());
    }

    #[test]
    fn the_default_network_acl_serves_subnets_no_acl_lists() {
        let mut net = seed_after().build();
        let default = net.nacls.iter_mut().find(|n| n.id == "acl-0000b001").unwrap();
        default.entries.retain(|e| e.egress);
        let v = ssh(&net);
        assert!(matches!(&dropped(&v).0.at, Checkpoint::NetworkAcl { acl: Some(a), .. } if a == "acl-0000b001"));
        assert!(matches!(dropped(&v).1, Drop::NetworkAcl { rule: None, .. }));
    }

    #[test]
    fn network_acl_entries_are_evaluated_lowest_number_first() {
        let deny_ssh = |n| entry(n, false, Protocol::Tcp, Some((22, 22)), "10.0.0.0/16", false);
        let allow_all = |n| entry(n, false, Protocol::All, None, "0.0.0.0/0", true);
        let egress = entry(100, true, Protocol::All, None, "0.0.0.0/0", true);
        // Listed out of order on purpose: the numbers decide.
        for (entries, reachable) in [
            (vec![allow_all(200), deny_ssh(100), egress.clone()], false),
            (vec![deny_ssh(200), allow_all(100), egress.clone()], true),
        ] {
            let net = seed_after().nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], entries).build();
            let v = ssh(&net);
            assert_eq!(v.is_reachable(), reachable, "{v}");
            if !reachable {
                assert!(v.to_string().ends_with("denies tcp/22 in from 10.0.6.38 (rule 100)"), "{v}");
            }
        }
    }

    #[test]
    fn the_reply_needs_the_ephemeral_ports_open_at_the_destination() {
        // A common mistake: outbound only "from port 22", written as ports 0-1023.
        let entries = vec![
            entry(100, false, Protocol::All, None, "0.0.0.0/0", true),
            entry(100, true, Protocol::Tcp, Some((0, 1023)), "0.0.0.0/0", true),
        ];
        let net = seed_after().nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], entries).build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        assert_eq!(hop.direction, Direction::Reply);
        assert!(matches!(hop.at, Checkpoint::NetworkAcl { outbound: true, .. }));
        assert!(
            matches!(reason, Drop::NetworkAcl { traffic: Traffic { ports: (1024, 65535), .. }, rule: None, .. }),
            "{reason:?}"
        );
        assert_eq!(
            v.to_string(),
            "unreachable: the request arrives, but the reply does not: network ACL acl-0000b101 of subnet \
             subnet-0000b001 (ap-northeast-3/vpc-0000b001) denies tcp/1024-65535 out to 10.0.6.38 (rule *: no rule \
             allows it)"
        );
    }

    #[test]
    fn a_partly_open_ephemeral_range_names_the_closed_ports() {
        let entries = vec![
            entry(100, false, Protocol::All, None, "0.0.0.0/0", true),
            entry(100, true, Protocol::Tcp, Some((32768, 65535)), "10.0.0.0/16", true),
            entry(110, true, Protocol::Tcp, Some((2000, 2999)), "10.0.0.0/16", false),
        ];
        let net = seed_after().nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], entries).build();
        let v = ssh(&net);
        assert!(v.to_string().ends_with("denies tcp/1024-1999 out to 10.0.6.38 (rule *: no rule allows it)"), "{v}");
        // Told the client is Linux, the reply passes.
        let linux = Packet { reply_ports: (32768, 60999), ..Packet::tcp(22) };
        assert!(verdict(&net, "eni-0000a001", "eni-0000b001", linux).is_reachable());
    }

    #[test]
    fn the_reply_needs_the_ephemeral_ports_open_at_the_source() {
        let entries = vec![
            entry(100, true, Protocol::All, None, "0.0.0.0/0", true),
            entry(100, false, Protocol::Tcp, Some((22, 22)), "0.0.0.0/0", true),
        ];
        let net = seed_after().nacl("acl-0000a101", &seoul(), &["subnet-0000a001"], entries).build();
        let v = ssh(&net);
        let (hop, _) = dropped(&v);
        assert_eq!(hop.direction, Direction::Reply);
        assert!(matches!(&hop.at, Checkpoint::NetworkAcl { outbound: false, acl: Some(a), .. } if a == "acl-0000a101"));
        assert!(v.to_string().ends_with("denies tcp/1024-65535 in from 172.31.39.92 (rule *: no rule allows it)"));
    }

    #[test]
    fn icmp_is_an_echo_request_answered_by_an_echo_reply() {
        let entries = vec![
            entry(100, false, Protocol::Icmp, Some((ICMP_ECHO_REQUEST, ICMP_ECHO_REQUEST)), "0.0.0.0/0", true),
            entry(100, true, Protocol::Icmp, Some((ICMP_ECHO_REQUEST, ICMP_ECHO_REQUEST)), "0.0.0.0/0", true),
        ];
        let net = seed_after().nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], entries).build();
        let v = verdict(&net, "eni-0000a001", "eni-0000b001", Packet::icmp());
        assert_eq!(dropped(&v).0.direction, Direction::Reply);
        assert!(v.to_string().ends_with("denies icmp echo reply out to 10.0.6.38 (rule *: no rule allows it)"), "{v}");
    }

    #[test]
    fn a_subnet_without_a_known_network_acl_allows_everything() {
        let mut net = seed_after().build();
        net.nacls.clear();
        let v = ssh(&net);
        let Verdict::Reachable { hops, .. } = &v else { panic!("{v}") };
        assert!(hops.iter().any(|h| matches!(h.at, Checkpoint::NetworkAcl { acl: None, .. })));
    }

    #[test]
    fn the_main_table_serves_subnets_without_an_association() {
        let second = |b: Builder| {
            b.subnet("subnet-0000a002", &seoul(), "10.0.7.0/24").eni(
                "eni-0000a002",
                "subnet-0000a002",
                "10.0.7.10",
                &["sg-0000a001"],
                None,
            )
        };
        let net = second(seed_after()).build();
        let v = verdict(&net, "eni-0000a002", "eni-0000b001", Packet::tcp(22));
        let (hop, reason) = dropped(&v);
        assert!(matches!(&hop.at, Checkpoint::RouteTable { table: Some(t), .. } if t.as_str() == "rtb-0000a001"));
        assert!(matches!(reason, Drop::NoRoute { .. }));

        let net = second(seed_after().route("rtb-0000a001", "172.31.0.0/16", pcx(PCX))).build();
        assert!(verdict(&net, "eni-0000a002", "eni-0000b001", Packet::tcp(22)).is_reachable());
    }

    #[test]
    fn an_explicit_association_beats_the_main_table() {
        let net = seed_before()
            .peering(PCX, &seoul(), &osaka(), PeeringState::Active)
            .route("rtb-0000a001", "172.31.0.0/16", pcx(PCX))
            .route("rtb-0000b001", "10.0.0.0/16", pcx(PCX))
            .build();
        let v = ssh(&net);
        assert!(
            matches!(&dropped(&v).0.at, Checkpoint::RouteTable { table: Some(t), .. } if t.as_str() == "rtb-0000a101")
        );
    }

    #[test]
    fn a_subnet_may_have_no_route_table_at_all() {
        let mut net = seed_after().build();
        net.route_tables.retain(|t| t.vpc != seoul());
        let v = ssh(&net);
        assert_eq!(dropped(&v).1, &Drop::NoRouteTable);
        assert!(v
            .to_string()
            .starts_with("unreachable: subnet subnet-0000a001 (ap-northeast-2/vpc-0000a001) has no route table"));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let net = seed_after().route("rtb-0000a101", "172.31.39.0/24", gateway("igw-0000a001")).build();
        let v = ssh(&net);
        let (hop, reason) = dropped(&v);
        let Checkpoint::RouteTable { route: Some(route), .. } = &hop.at else { panic!("{hop:?}") };
        assert_eq!(route.destination, cidr("172.31.39.0/24"));
        assert!(matches!(reason, Drop::Leaves { target, .. } if target == "igw-0000a001"));
        assert_eq!(
            v.to_string(),
            "unreachable: route table rtb-0000a101 of subnet subnet-0000a001 (ap-northeast-2/vpc-0000a001) \
             routes 172.31.39.92 by 172.31.39.0/24: it leaves through igw-0000a001, which does not lead to \
             ap-northeast-3/vpc-0000b001"
        );
        // The other way round: a /24 via the peering beats a /16 via a gateway.
        let net = seed_before()
            .peering(PCX, &seoul(), &osaka(), PeeringState::Active)
            .route("rtb-0000a101", "172.31.0.0/16", gateway("tgw-0000a001"))
            .route("rtb-0000a101", "172.31.39.0/24", pcx(PCX))
            .route("rtb-0000b001", "10.0.0.0/16", pcx(PCX))
            .build();
        assert!(ssh(&net).is_reachable());
    }

    #[test]
    fn a_peering_that_is_not_active_carries_nothing() {
        for (state, code) in [
            (PeeringState::PendingAcceptance, "pending-acceptance"),
            (PeeringState::Deleted, "deleted"),
            (PeeringState::Provisioning, "provisioning"),
        ] {
            let net = seed_before()
                .peering(PCX, &seoul(), &osaka(), state.clone())
                .route("rtb-0000a101", "172.31.0.0/16", pcx(PCX))
                .route("rtb-0000b001", "10.0.0.0/16", pcx(PCX))
                .build();
            let v = ssh(&net);
            assert_eq!(
                dropped(&v).1,
                &Drop::PeeringNotActive { to: "172.31.39.92".parse().unwrap(), peering: PCX.parse().unwrap(), state }
            );
            assert!(v.to_string().ends_with(&format!("sends 172.31.39.92 through {PCX}, and {PCX} is {code}")), "{v}");
        }
    }

    #[test]
    fn a_route_through_an_unknown_peering_is_a_blackhole() {
        let net = seed_before().route("rtb-0000a101", "172.31.0.0/16", pcx(PCX)).build();
        let v = ssh(&net);
        assert!(matches!(dropped(&v).1, Drop::PeeringMissing { .. }));
        assert!(v.to_string().ends_with("which does not exist (a blackhole route)"), "{v}");
    }

    #[test]
    fn a_peering_must_join_the_destination_vpc() {
        let wrong = "pcx-0000c002";
        let net = seed_after()
            .vpc(&tokyo(), "192.168.0.0/16")
            .peering(wrong, &seoul(), &tokyo(), PeeringState::Active)
            .unroute("rtb-0000a101", "172.31.0.0/16")
            .route("rtb-0000a101", "172.31.0.0/16", pcx(wrong))
            .build();
        let v = ssh(&net);
        assert!(matches!(dropped(&v).1, Drop::PeeringElsewhere { joins: Some(j), .. } if j == &tokyo()));
        assert!(
            v.to_string().ends_with(
                "sends 172.31.39.92 through pcx-0000c002, which leads to ap-northeast-1/vpc-0000d001, not to \
                 ap-northeast-3/vpc-0000b001"
            ),
            "{v}"
        );

        // A connection between two other VPCs does not join this one at all.
        let net = seed_after()
            .vpc(&tokyo(), "192.168.0.0/16")
            .peering(wrong, &osaka(), &tokyo(), PeeringState::Active)
            .unroute("rtb-0000a101", "172.31.0.0/16")
            .route("rtb-0000a101", "172.31.0.0/16", pcx(wrong))
            .build();
        let v = ssh(&net);
        assert!(matches!(dropped(&v).1, Drop::PeeringElsewhere { joins: None, .. }), "{v}");
    }

    #[test]
    fn a_peering_leads_only_to_the_peer_vpc_ranges() {
        // The Osaka server's range is no longer associated with its VPC.
        let mut net = seed_after().build();
        net.vpcs.iter_mut().find(|v| v.endpoint == osaka()).unwrap().ipv4 = vec![cidr("172.16.0.0/16")];
        let v = ssh(&net);
        assert!(matches!(dropped(&v).1, Drop::OutsidePeer { .. }), "{v}");
        assert!(v.to_string().contains("172.31.39.92 is outside ap-northeast-3/vpc-0000b001's ranges (172.16.0.0/16)"));
    }

    #[test]
    fn one_sided_routes_lose_the_reply() {
        let net = seed_after().unroute("rtb-0000b001", "10.0.0.0/16").build();
        let v = ssh(&net);
        let (hop, _) = dropped(&v);
        assert_eq!(hop.direction, Direction::Reply);
        assert!(matches!(&hop.at, Checkpoint::RouteTable { table: Some(t), .. } if t.as_str() == "rtb-0000b001"));
        assert_eq!(
            v.to_string(),
            "unreachable: the request arrives, but the reply does not: route table rtb-0000b001 of subnet \
             subnet-0000b001 (ap-northeast-3/vpc-0000b001) has no route to 10.0.6.38 (10.0.0.0/16 of \
             ap-northeast-2/vpc-0000a001): its default route leaves through igw-0000b001, which does not lead to \
             ap-northeast-2/vpc-0000a001"
        );
        // From the other side, it is the request that has no route.
        let back = verdict(&net, "eni-0000b001", "eni-0000a001", Packet::tcp(22));
        assert_eq!(dropped(&back).0.direction, Direction::Request);
    }

    #[test]
    fn removing_either_route_to_the_peer_breaks_the_link() {
        for (table, destination) in [("rtb-0000a101", "172.31.0.0/16"), ("rtb-0000b001", "10.0.0.0/16")] {
            let net = seed_after().unroute(table, destination).build();
            for (src, dst) in [("eni-0000a001", "eni-0000b001"), ("eni-0000b001", "eni-0000a001")] {
                assert!(!verdict(&net, src, dst, Packet::icmp()).is_reachable(), "{table} {src}");
            }
        }
    }

    #[test]
    fn within_a_vpc_the_local_route_carries_it() {
        let net = with_database().build();
        let v = verdict(&net, "eni-0000a002", "eni-0000a001", Packet::tcp(22));
        assert_eq!(
            v.to_string(),
            "reachable: 10.0.7.10 -> 10.0.6.38 tcp/22 within ap-northeast-2/vpc-0000a001, and back"
        );
    }

    #[test]
    fn within_a_subnet_no_network_acl_is_consulted() {
        let deny_all = vec![
            entry(NACL_DEFAULT_RULE, true, Protocol::All, None, "0.0.0.0/0", false),
            entry(NACL_DEFAULT_RULE, false, Protocol::All, None, "0.0.0.0/0", false),
        ];
        let net = with_database().nacl("acl-0000a101", &seoul(), &["subnet-0000a001"], deny_all).build();
        let v = verdict(&net, "eni-0000a003", "eni-0000a001", Packet::tcp(22));
        let Verdict::Reachable { hops, .. } = &v else { panic!("{v}") };
        assert!(hops.iter().all(|h| !matches!(h.at, Checkpoint::NetworkAcl { .. })));
        // Across subnets it is.
        assert!(matches!(
            dropped(&verdict(&net, "eni-0000a002", "eni-0000a001", Packet::tcp(22))).1,
            Drop::NetworkAcl { .. }
        ));
    }

    #[test]
    fn the_local_route_does_not_reach_an_overlapping_vpc() {
        let twin = ep(TOKYO, "vpc-0000f001");
        let net = seed_after()
            .vpc(&twin, "10.0.0.0/16")
            .subnet("subnet-0000f001", &twin, "10.0.9.0/24")
            .eni("eni-0000f001", "subnet-0000f001", "10.0.9.9", &[], None)
            .build();
        let v = verdict(&net, "eni-0000a001", "eni-0000f001", Packet::tcp(22));
        assert!(matches!(dropped(&v).1, Drop::LocalElsewhere { .. }), "{v}");
        assert!(v.to_string().ends_with(
            "keeps 10.0.9.9 in its own VPC (local route 10.0.0.0/16), but 10.0.9.9 is in ap-northeast-1/vpc-0000f001"
        ));
    }

    /// Seed after, plus a second Osaka VPC whose server shares the Seoul
    /// server's address, and a Seoul instance with two interfaces.
    fn crowded() -> Network {
        let other = ep(OSAKA, "vpc-0000b002");
        seed_after()
            .vpc(&other, "10.0.0.0/16")
            .subnet("subnet-0000b002", &other, "10.0.6.0/24")
            .eni("eni-0000b002", "subnet-0000b002", "10.0.6.38", &[], Some("i-0000b002"))
            .eni("eni-0000a005", "subnet-0000a001", "10.0.6.50", &[], Some("i-0000a005"))
            .eni("eni-0000a006", "subnet-0000a001", "10.0.6.51", &[], Some("i-0000a005"))
            .build()
    }

    #[test]
    fn interfaces_are_found_by_instance_interface_or_address() {
        let net = crowded();
        let osaka_region: Region = OSAKA.parse().unwrap();
        assert_eq!(find_interface(&net, "i-0000a001", None).unwrap().id, "eni-0000a001");
        assert_eq!(find_interface(&net, "eni-0000b001", None).unwrap().id, "eni-0000b001");
        assert_eq!(find_interface(&net, " 172.31.39.92 ", None).unwrap().id, "eni-0000b001");
        assert_eq!(find_interface(&net, "172.31.39.92", Some(&osaka_region)).unwrap().id, "eni-0000b001");
        assert_eq!(find_interface(&net, "10.0.6.38", Some(&osaka_region)).unwrap().id, "eni-0000b002");
        assert_eq!(find_interface(&net, "10.0.6.38", Some(&SEOUL.parse().unwrap())).unwrap().id, "eni-0000a001");
    }

    #[test]
    fn an_address_in_two_regions_needs_a_region() {
        let err = find_interface(&crowded(), "10.0.6.38", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.0.6.38 is a private address in more than one region (ap-northeast-2, ap-northeast-3): give the region"
        );
    }

    #[test]
    fn unknown_ambiguous_and_malformed_queries_are_errors() {
        let net = crowded();
        let osaka_region: Region = OSAKA.parse().unwrap();
        let err = |q: &str, r: Option<&Region>| find_interface(&net, q, r).unwrap_err().to_string();
        assert_eq!(err("i-0000ffff", None), "no network interface found for instance i-0000ffff");
        assert_eq!(
            err("eni-0000a001", Some(&osaka_region)),
            "no network interface found for network interface eni-0000a001 in ap-northeast-3"
        );
        assert_eq!(err("10.9.9.9", None), "no network interface found for private address 10.9.9.9");
        assert_eq!(
            err("i-0000a005", None),
            "i-0000a005 matches 2 network interfaces (eni-0000a005, eni-0000a006): name one by its eni- id"
        );
        assert!(err("web-1", None).contains("neither an instance id"));
        assert!(err("fd00::1", None).contains("only IPv4"));
    }

    #[test]
    fn packets_are_checked_as_a_person_gives_them() {
        assert_eq!(Packet::new(Protocol::Tcp, Some(22)), Ok(Packet::tcp(22)));
        assert_eq!(Packet::new(Protocol::Icmp, None), Ok(Packet::icmp()));
        assert_eq!(Packet::new(Protocol::Udp, None).unwrap_err().to_string(), "udp needs a port");
        assert_eq!(Packet::new(Protocol::Icmp, Some(7)).unwrap_err().to_string(), "icmp has no port");
        assert!(Packet::new(Protocol::Tcp, Some(0)).is_err());
        assert!(Packet::new(Protocol::All, None).unwrap_err().to_string().contains("give icmp, tcp or udp"));
        assert_eq!("TCP".parse::<Protocol>(), Ok(Protocol::Tcp));
        assert!("sctp".parse::<Protocol>().is_err());
        for (code, protocol) in [
            ("-1", Protocol::All),
            ("6", Protocol::Tcp),
            ("17", Protocol::Udp),
            ("1", Protocol::Icmp),
            ("50", Protocol::Other(50)),
        ] {
            assert_eq!(Protocol::from_code(code), Some(protocol), "{code}");
        }
        assert_eq!(Packet::udp(53).to_string(), "udp/53");
        assert_eq!(Packet::icmp().to_string(), "icmp");
    }

    #[test]
    fn rules_for_other_protocols_match_nothing_sent() {
        let net = seed_after()
            .sg("sg-0000a001", &seoul(), vec![], vec![sg_rule(Protocol::Other(50), None, "0.0.0.0/0")])
            .build();
        assert!(!ssh(&net).is_reachable());
    }

    // Properties.

    const CIDRS: [&str; 6] =
        ["0.0.0.0/0", "10.0.0.0/16", "10.0.6.0/24", "172.31.0.0/16", "172.31.39.92/32", "192.168.0.0/16"];

    fn protocol() -> impl Strategy<Value = Protocol> {
        prop::sample::select(vec![Protocol::All, Protocol::Tcp, Protocol::Udp, Protocol::Icmp])
    }

    fn ports() -> impl Strategy<Value = Option<(u16, u16)>> {
        prop_oneof![
            Just(None),
            Just(Some((22, 22))),
            Just(Some((0, 1023))),
            Just(Some((1024, 65535))),
            Just(Some((ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST))),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Some((a.min(b), a.max(b)))),
        ]
    }

    fn nacl_entry() -> impl Strategy<Value = NaclEntry> {
        (1u16..400, any::<bool>(), protocol(), ports(), prop::sample::select(CIDRS.to_vec()), any::<bool>())
            .prop_map(|(n, egress, protocol, ports, to, allow)| entry(n, egress, protocol, ports, to, allow))
    }

    fn sg_rules() -> impl Strategy<Value = Vec<SgRule>> {
        prop::collection::vec(
            (protocol(), ports(), prop::sample::select(CIDRS.to_vec())).prop_map(|(p, ports, c)| sg_rule(p, ports, c)),
            0..4,
        )
    }

    fn packet() -> impl Strategy<Value = Packet> {
        prop_oneof![
            Just(Packet::icmp()),
            Just(Packet::tcp(22)),
            Just(Packet::udp(53)),
            (1u16..=65535).prop_map(Packet::tcp)
        ]
    }

    /// The seed after peering, with random ACLs and security groups on both sides.
    fn random_network() -> impl Strategy<Value = Network> {
        (
            prop::collection::vec(nacl_entry(), 0..8),
            prop::collection::vec(nacl_entry(), 0..8),
            sg_rules(),
            sg_rules(),
            sg_rules(),
            sg_rules(),
        )
            .prop_map(|(acl_a, acl_b, in_a, out_a, in_b, out_b)| {
                seed_after()
                    .nacl("acl-0000a101", &seoul(), &["subnet-0000a001"], acl_a)
                    .nacl("acl-0000b101", &osaka(), &["subnet-0000b001"], acl_b)
                    .sg("sg-0000a001", &seoul(), in_a, out_a)
                    .sg("sg-0000b001", &osaka(), in_b, out_b)
                    .build()
            })
    }

    fn both_ways(net: &Network, packet: Packet) -> [Verdict; 2] {
        [verdict(net, "eni-0000a001", "eni-0000b001", packet), verdict(net, "eni-0000b001", "eni-0000a001", packet)]
    }

    proptest! {
        #[test]
        fn acl_ranges_agree_with_port_by_port(
            entries in prop::collection::vec(nacl_entry(), 0..6),
            start in 0u16..600,
            len in 0u16..600,
            to in prop::sample::select(CIDRS.to_vec()),
        ) {
            let mut entries: Vec<NaclEntry> = entries.into_iter().map(|mut e| {
                e.ports = e.ports.map(|(a, b)| (a % 1200, (a % 1200).max(b % 1200)));
                e
            }).collect();
            entries.sort_by_key(|e| e.rule_number);
            let entries: Vec<&NaclEntry> = entries.iter().collect();
            let peer = cidr(to).network();
            let traffic = Traffic { protocol: Protocol::Tcp, ports: (start, start + len) };
            let decide = |port: u16| {
                entries.iter().find(|e| e.matches(peer, Protocol::Tcp, port)).map_or((false, None), |e| (e.allow, Some(e.rule_number)))
            };
            let first_denied = (start..=start + len).find(|p| !decide(*p).0);
            match nacl_denies(&entries, peer, &traffic) {
                None => prop_assert_eq!(first_denied, None),
                Some((denied, rule)) => {
                    let (lo, hi) = denied.ports;
                    prop_assert_eq!(Some(lo), first_denied);
                    for port in lo..=hi {
                        prop_assert_eq!(decide(port), (false, rule));
                    }
                    if hi < start + len {
                        prop_assert_ne!(decide(hi + 1), (false, rule));
                    }
                }
            }
        }

        #[test]
        fn an_allow_all_acl_entry_never_breaks_a_path(
            net in random_network(),
            packet in packet(),
            rule_number in 1u16..NACL_DEFAULT_RULE,
            which in 0usize..3,
        ) {
            let before = both_ways(&net, packet);
            let mut opened = net.clone();
            for (i, acl) in opened.nacls.iter_mut().filter(|n| !n.default).enumerate() {
                if which == 2 || which == i {
                    for egress in [true, false] {
                        acl.entries.push(entry(rule_number, egress, Protocol::All, None, "0.0.0.0/0", true));
                    }
                }
            }
            for (b, a) in before.iter().zip(both_ways(&opened, packet)) {
                prop_assert!(!b.is_reachable() || a.is_reachable(), "{} became {}", b, a);
            }
        }

        #[test]
        fn an_allow_all_security_group_rule_never_breaks_a_path(
            net in random_network(),
            packet in packet(),
            group in 0usize..2,
            egress in any::<bool>(),
        ) {
            let before = both_ways(&net, packet);
            let mut opened = net.clone();
            let sg = &mut opened.security_groups[group];
            if egress { sg.egress.push(allow_all()) } else { sg.ingress.push(allow_all()) }
            for (b, a) in before.iter().zip(both_ways(&opened, packet)) {
                prop_assert!(!b.is_reachable() || a.is_reachable(), "{} became {}", b, a);
            }
        }

        #[test]
        fn every_verdict_is_one_line(net in random_network(), packet in packet()) {
            for v in both_ways(&net, packet) {
                let line = v.to_string();
                prop_assert!(!line.contains('\n'));
                prop_assert!(line.starts_with("reachable: ") || line.starts_with("unreachable: "), "{}", line);
                prop_assert_eq!(line.starts_with("reachable: "), v.is_reachable());
            }
        }

        #[test]
        fn opening_everything_makes_the_peered_seed_reachable(net in random_network(), packet in packet()) {
            let mut opened = net;
            opened.nacls.clear();
            for sg in &mut opened.security_groups {
                sg.ingress.push(allow_all());
                sg.egress.push(allow_all());
            }
            for v in both_ways(&opened, packet) {
                prop_assert!(v.is_reachable(), "{}", v);
            }
        }
    }
}
