//! What tagpeer observes: the VPCs, route tables and peering connections of the
//! deployment's regions, in plain types that name no SDK type.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;

use crate::ids::{AccountId, Endpoint, PeeringId, Region, RouteTableId};
use crate::intent;

/// A link: an unordered pair of VPCs, stored in canonical order (`a < b`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    pub a: Endpoint,
    pub b: Endpoint,
}

impl LinkKey {
    pub fn new(x: Endpoint, y: Endpoint) -> Self {
        if x <= y {
            Self { a: x, b: y }
        } else {
            Self { a: y, b: x }
        }
    }

    pub fn of(peering: &Peering) -> Self {
        Self::new(peering.requester.clone(), peering.accepter.clone())
    }

    pub fn has(&self, vpc: &Endpoint) -> bool {
        &self.a == vpc || &self.b == vpc
    }

    /// The side that is not `vpc`.
    pub fn other(&self, vpc: &Endpoint) -> &Endpoint {
        if &self.a == vpc {
            &self.b
        } else {
            &self.a
        }
    }
}

/// Whether `value` is what `shown` displays as, compared piece by piece as
/// it is formatted, with nothing allocated.
fn written_as(shown: &impl fmt::Display, value: &str) -> bool {
    struct Rest<'a>(Option<&'a str>);
    impl fmt::Write for Rest<'_> {
        fn write_str(&mut self, piece: &str) -> fmt::Result {
            self.0 = self.0.and_then(|rest| rest.strip_prefix(piece));
            Ok(())
        }
    }
    let mut rest = Rest(Some(value));
    fmt::write(&mut rest, format_args!("{shown}")).is_ok() && rest.0 == Some("")
}

/// `ACCOUNT/REGION/vpc-…+ACCOUNT/REGION/vpc-…`: the value of `tagpeer-link`.
impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.a, self.b)
    }
}

/// Two VPCs shown as the [`LinkKey`] they make ([`LinkKey::new`]'s order),
/// without copying them into one: `is_managed` compares a connection's tag
/// with it for every connection a planning pass looks at.
struct AsKey<'a>(&'a Endpoint, &'a Endpoint);

impl fmt::Display for AsKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = if self.0 <= self.1 { (self.0, self.1) } else { (self.1, self.0) };
        write!(f, "{a}+{b}")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub endpoint: Endpoint,
    /// Associated IPv4 ranges, primary first.
    pub ipv4: Vec<IpNet>,
    /// Associated IPv6 ranges.
    pub ipv6: Vec<IpNet>,
    pub tags: BTreeMap<String, String>,
    /// Its DNS attributes, where they were read: only for the VPCs of links
    /// that want DNS resolution (reading them costs a call each).
    pub dns: Option<VpcDns>,
}

/// A VPC's DNS attributes. Resolving a peer's private DNS names across a
/// peering needs both on, in both VPCs (VPC Peering Guide, "Enable DNS
/// resolution for a VPC peering connection").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpcDns {
    /// `enableDnsHostnames`.
    pub hostnames: bool,
    /// `enableDnsSupport`.
    pub support: bool,
}

impl Vpc {
    /// Known not to meet DNS resolution's prerequisites (unknown counts as met:
    /// AWS then says so itself).
    pub fn lacks_dns(&self) -> bool {
        self.dns.is_some_and(|d| !(d.hostnames && d.support))
    }

    pub fn status(&self) -> Option<&str> {
        self.tags.get(intent::STATUS).map(String::as_str)
    }

    pub fn name(&self) -> Option<&str> {
        self.tags.get("Name").map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: RouteTableId,
    /// The VPC it belongs to (same account and region as the table).
    pub vpc: Endpoint,
    pub main: bool,
    pub routes: Vec<Route>,
}

impl RouteTable {
    pub fn route_to(&self, destination: &IpNet) -> Option<&Route> {
        self.routes.iter().find(|r| &r.destination == destination)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    pub target: Target,
}

/// Where a route sends traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The VPC's own range.
    Local,
    Peering(PeeringId),
    /// Anything else: a gateway, an instance, an interface, an endpoint…, by its id.
    Other(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local => f.write_str("local"),
            Target::Peering(id) => write!(f, "{id}"),
            Target::Other(id) => f.write_str(id),
        }
    }
}

/// A peering connection's status code, as EC2 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeeringState {
    InitiatingRequest,
    PendingAcceptance,
    Provisioning,
    Active,
    Deleting,
    Deleted,
    Rejected,
    Failed,
    Expired,
    Other(String),
}

impl PeeringState {
    pub fn from_code(code: &str) -> Self {
        match code {
            "initiating-request" => Self::InitiatingRequest,
            "pending-acceptance" => Self::PendingAcceptance,
            "provisioning" => Self::Provisioning,
            "active" => Self::Active,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::InitiatingRequest => "initiating-request",
            Self::PendingAcceptance => "pending-acceptance",
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Other(code) => code,
        }
    }

    /// Still standing for its link: not deleted, rejected, failed or expired
    /// (nor on its way there).
    pub fn is_live(&self) -> bool {
        matches!(self, Self::InitiatingRequest | Self::PendingAcceptance | Self::Provisioning | Self::Active)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peering {
    pub id: PeeringId,
    pub requester: Endpoint,
    pub accepter: Endpoint,
    pub state: PeeringState,
    /// The tags as the requester's region shows them: cross-region and
    /// cross-account, AWS does not copy a connection's tags to the other side.
    pub tags: BTreeMap<String, String>,
    /// Each side's `AllowDnsResolutionFromRemoteVpc`: whether the other VPC
    /// resolves this side's private DNS names.
    pub dns: PeeringDns,
    /// Not yet listed in the accepter's region, as AWS does for a moment after
    /// a request is made (an accept there would find no such connection).
    pub hidden_from_accepter: bool,
}

/// The DNS options of a peering connection's two sides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeeringDns {
    pub requester: bool,
    pub accepter: bool,
}

impl Peering {
    /// Made by tagpeer: it carries `tagpeer-managed=true` and a `tagpeer-link`
    /// that names its own two VPCs. A request made by hand with tagpeer's tags
    /// copied onto it is hand-made, and reported as such.
    pub fn is_managed(&self) -> bool {
        self.tags.get(intent::MANAGED).is_some_and(|v| v == "true")
            && self.link_tag().is_some_and(|tag| written_as(&AsKey(&self.requester, &self.accepter), tag))
    }

    /// A connection between the two VPCs of `key`, either way round (a
    /// comparison, no copy: the planner asks it of every connection).
    pub fn is_of(&self, key: &LinkKey) -> bool {
        (self.requester == key.a && self.accepter == key.b) || (self.requester == key.b && self.accepter == key.a)
    }

    /// Which request for its link this was (`tagpeer-attempt`, 1 when absent).
    pub fn attempt(&self) -> u32 {
        self.tags.get(intent::ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(1)
    }

    /// When tagpeer requested it (`tagpeer-requested-at`, Unix seconds; 0 when absent).
    pub fn requested_at(&self) -> u64 {
        self.tags.get(intent::REQUESTED_AT).and_then(|a| a.parse().ok()).unwrap_or(0)
    }

    pub fn link_tag(&self) -> Option<&str> {
        self.tags.get(intent::LINK).map(String::as_str)
    }

    pub fn joins(&self, vpc: &Endpoint) -> bool {
        &self.requester == vpc || &self.accepter == vpc
    }
}

/// One snapshot of everything in the deployment's regions that tagpeer reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    pub vpcs: Vec<Vpc>,
    pub route_tables: Vec<RouteTable>,
    pub peerings: Vec<Peering>,
    /// When the snapshot was taken, in seconds since the Unix epoch.
    pub observed_at: u64,
    /// Other accounts' regions that could not be read, with the error: their
    /// VPCs are missing from the snapshot for that reason, not for not existing.
    pub unreadable: Vec<(AccountId, Region, String)>,
}

impl World {
    pub fn vpc(&self, endpoint: &Endpoint) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| &v.endpoint == endpoint)
    }

    pub fn vpc_mut(&mut self, endpoint: &Endpoint) -> Option<&mut Vpc> {
        self.vpcs.iter_mut().find(|v| &v.endpoint == endpoint)
    }

    pub fn peering(&self, id: &PeeringId) -> Option<&Peering> {
        self.peerings.iter().find(|p| &p.id == id)
    }

    pub fn route_tables_of<'a>(&'a self, vpc: &Endpoint) -> impl Iterator<Item = &'a RouteTable> + 'a {
        let vpc = vpc.clone();
        self.route_tables.iter().filter(move |t| t.vpc == vpc)
    }

    pub fn route_table_mut(&mut self, region: &Region, id: &RouteTableId) -> Option<&mut RouteTable> {
        self.route_tables.iter_mut().find(|t| &t.vpc.region == region && &t.id == id)
    }

    /// Adds what another region showed, once: a cross-region connection is
    /// listed in both regions, and the requester's view carries its tags.
    pub fn merge_peering(&mut self, seen: Peering, seen_in: &Region) {
        match self.peerings.iter_mut().find(|p| p.id == seen.id) {
            Some(known) if seen_in == &seen.requester.region => *known = seen,
            Some(_) => {}
            None => self.peerings.push(seen),
        }
    }

    /// [`World::merge_peering`] for each of many connections, each seen in its
    /// region, in one pass: an observation lists every connection of every
    /// region, so merging them one by one would scan the list once each.
    pub fn merge_peerings(&mut self, seen: impl IntoIterator<Item = (Peering, Region)>) {
        let mut at: std::collections::HashMap<PeeringId, usize> =
            self.peerings.iter().enumerate().rev().map(|(i, p)| (p.id.clone(), i)).collect();
        for (peering, seen_in) in seen {
            match at.get(&peering.id) {
                Some(&i) if seen_in == peering.requester.region => self.peerings[i] = peering,
                Some(_) => {}
                None => {
                    at.insert(peering.id.clone(), self.peerings.len());
                    self.peerings.push(peering);
                }
            }
        }
    }

    /// Adds what another account's reader role showed: its VPCs and route
    /// tables; for connections already known, the tags of the requester's
    /// view (each account sees only its own tags on a connection); and that
    /// account's requests to this world's VPCs that their regions do not list
    /// yet, marked `hidden_from_accepter`.
    pub fn merge_remote(&mut self, remote: World, account: &AccountId, region: &Region) {
        for vpc in remote.vpcs {
            if self.vpc(&vpc.endpoint).is_none() {
                self.vpcs.push(vpc);
            }
        }
        self.route_tables.extend(remote.route_tables);
        for seen in remote.peerings {
            let requested_there = &seen.requester.account == account && &seen.requester.region == region;
            let ours = self.vpc(&seen.accepter).is_some();
            match self.peerings.iter_mut().find(|p| p.id == seen.id) {
                Some(known) if requested_there => known.tags = seen.tags,
                Some(_) => {}
                // A request the other account made to one of this world's
                // VPCs, which the accepter's region, read before, does not
                // list yet (AWS lists a new connection there a moment after
                // it is made): known from the requester's view, and marked
                // so, as a request not yet listed in one's own regions is.
                None if requested_there && ours => self.peerings.push(Peering { hidden_from_accepter: true, ..seen }),
                None => {}
            }
        }
        self.unreadable.extend(remote.unreadable);
    }

    /// The peering connections tagpeer made for `key` that still stand, the one
    /// to keep first: active before pending, then the smallest id.
    pub fn live_managed(&self, key: &LinkKey) -> Vec<&Peering> {
        kept_first(self.peerings.iter().filter(|p| p.state.is_live() && p.is_of(key) && p.is_managed()).collect())
    }

    /// The world once AWS has finished what it was doing: a connection
    /// `initiating-request` is `pending-acceptance`, one `provisioning` is
    /// `active`. Returns whether anything moved.
    pub fn settle(&mut self) -> bool {
        let mut moved = false;
        for p in &mut self.peerings {
            let next = match p.state {
                PeeringState::InitiatingRequest => PeeringState::PendingAcceptance,
                PeeringState::Provisioning => PeeringState::Active,
                _ => continue,
            };
            p.state = next;
            moved = true;
        }
        moved
    }

    /// Why `vpc`'s account and region could not be read, if they could not.
    pub fn unreadable(&self, vpc: &Endpoint) -> Option<&str> {
        self.unreadable.iter().find(|(a, r, _)| a == &vpc.account && r == &vpc.region).map(|(_, _, e)| e.as_str())
    }
}

/// One link's `live` managed connections, the one to keep first: active
/// before pending, then the smallest id. Shared by [`World::live_managed`] and
/// the planner's index (`crate::index`), so that both keep the same one.
pub(crate) fn kept_first(mut live: Vec<&Peering>) -> Vec<&Peering> {
    live.sort_by(|x, y| {
        (x.state != PeeringState::Active, x.id.as_str()).cmp(&(y.state != PeeringState::Active, y.id.as_str()))
    });
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{osaka, seoul};

    #[test]
    fn a_link_tag_names_its_key_exactly() {
        let key = LinkKey::new(seoul(), osaka());
        let shown = key.to_string();
        assert!(written_as(&key, &shown));
        for wrong in ["", &shown[..shown.len() - 1], &format!("{shown}x"), &format!("x{shown}")] {
            assert!(!written_as(&key, wrong), "{wrong:?}");
        }
        let swapped = format!("{}+{}", key.b, key.a);
        assert!(!written_as(&key, &swapped), "canonical order only");
    }

    #[test]
    fn two_vpcs_show_as_the_link_they_make_either_way_round() {
        let shown = LinkKey::new(seoul(), osaka()).to_string();
        assert_eq!(AsKey(&seoul(), &osaka()).to_string(), shown);
        assert_eq!(AsKey(&osaka(), &seoul()).to_string(), shown);
    }

    #[test]
    fn a_connection_is_of_its_two_vpcs_either_way_round() {
        let key = LinkKey::new(seoul(), osaka());
        let peering = |requester: Endpoint, accepter: Endpoint| Peering {
            id: "pcx-00000001".parse().unwrap(),
            requester,
            accepter,
            state: PeeringState::Active,
            tags: BTreeMap::new(),
            dns: PeeringDns::default(),
            hidden_from_accepter: false,
        };
        assert!(peering(seoul(), osaka()).is_of(&key));
        assert!(peering(osaka(), seoul()).is_of(&key));
        assert!(!peering(seoul(), seoul()).is_of(&key));
    }

    #[test]
    fn another_accounts_request_not_yet_listed_here_is_known_from_its_view_as_hidden() {
        use crate::testing::WorldBuilder;
        let theirs = Endpoint::new("222222222222".parse().unwrap(), seoul().region, seoul().vpc_id);
        let peering = |id: &str, requester: &Endpoint, tagged: bool| Peering {
            id: id.parse().unwrap(),
            requester: requester.clone(),
            accepter: osaka(),
            state: PeeringState::PendingAcceptance,
            tags: if tagged { [(intent::MANAGED.to_owned(), "true".to_owned())].into() } else { BTreeMap::new() },
            dns: PeeringDns::default(),
            hidden_from_accepter: false,
        };
        // Osaka's view lists one request untagged; the other account's view
        // of its own region shows it tagged, and one more Osaka does not list.
        let mut world = WorldBuilder::default().vpc(&osaka(), "10.2.0.0/16", &[]).build();
        world.peerings.push(peering("pcx-00000001", &theirs, false));
        let mut remote = WorldBuilder::default().vpc(&theirs, "10.1.0.0/16", &[]).build();
        remote.peerings = vec![peering("pcx-00000001", &theirs, true), peering("pcx-00000002", &theirs, true)];
        // A third, between two of the other account's own VPCs, is none of this world's.
        let elsewhere = Endpoint::new(theirs.account.clone(), theirs.region.clone(), "vpc-0000000f".parse().unwrap());
        remote.peerings.push(Peering { accepter: elsewhere, ..peering("pcx-00000003", &theirs, true) });
        world.merge_remote(remote, &theirs.account, &theirs.region);

        // (id, tagged, hidden)
        let ids: Vec<(&str, bool, bool)> =
            world.peerings.iter().map(|p| (p.id.as_str(), !p.tags.is_empty(), p.hidden_from_accepter)).collect();
        assert_eq!(ids, [("pcx-00000001", true, false), ("pcx-00000002", true, true)]);
    }

    #[test]
    fn merging_many_connections_at_once_is_merging_them_one_by_one() {
        let (seoul_region, osaka_region) = (seoul().region, osaka().region);
        let peering = |id: &str, state: PeeringState, tagged: bool| Peering {
            id: id.parse().unwrap(),
            requester: seoul(),
            accepter: osaka(),
            state,
            tags: if tagged { [(intent::MANAGED.to_owned(), "true".to_owned())].into() } else { BTreeMap::new() },
            dns: PeeringDns::default(),
            hidden_from_accepter: false,
        };
        // A cross-region connection is listed in both regions, in either order; the
        // requester's view (tagged) wins; one known before the merge is updated in place.
        let known = World {
            peerings: vec![peering("pcx-00000003", PeeringState::PendingAcceptance, true)],
            ..World::default()
        };
        let seen = vec![
            (peering("pcx-00000001", PeeringState::Active, false), osaka_region.clone()),
            (peering("pcx-00000001", PeeringState::Active, true), seoul_region.clone()),
            (peering("pcx-00000002", PeeringState::Active, true), seoul_region.clone()),
            (peering("pcx-00000002", PeeringState::Active, false), osaka_region.clone()),
            (peering("pcx-00000003", PeeringState::Active, true), seoul_region.clone()),
            (peering("pcx-00000004", PeeringState::Deleted, false), osaka_region),
        ];
        let mut one_by_one = known.clone();
        for (p, region) in seen.clone() {
            one_by_one.merge_peering(p, &region);
        }
        let mut at_once = known;
        at_once.merge_peerings(seen);
        assert_eq!(at_once.peerings, one_by_one.peerings);
        assert_eq!(at_once.peerings.len(), 4);
        assert!(at_once.peerings.iter().take(3).all(|p| p.tags.contains_key(intent::MANAGED)), "the requester's view");
    }
}
