//! The lookups a planning pass makes once per link, hashed.
//!
//! A [`World`] is plain lists, and its fields are public and changed in place
//! (the shell merges what it reads into them, actions take effect on them),
//! so an index kept inside it would go stale. A planning pass, though, reads
//! one world it does not change: each pass (`plan::for_role`, `plan::assess`,
//! `status::statuses`, `overview::links`, the invariants…) builds a
//! [`WorldIndex`] of it once and finds every VPC, connection and route table
//! through that, so that the pass grows with the world, not with its square.
//!
//! [`Lookup`] is what the planner's functions ask of a world, answered either
//! by a [`WorldIndex`] or by the `World` itself (its own methods, each a scan):
//! the public functions that take a `&World` and answer for one link
//! (`status::link_state`, `plan::wanted_routes`, `plan::retry`…) run the same
//! code on the world, and so cost a caller who asks once no index to build.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::ids::{Endpoint, PeeringId};
use crate::model::{self, LinkKey, Peering, RouteTable, Vpc, World};

/// Where the planner finds what a world holds. Every answer is the one the
/// world's own scan gives, in the world's order: an implementation differs
/// only in what it costs.
pub(crate) trait Lookup<'w>: Copy {
    /// The world looked in.
    fn world(self) -> &'w World;

    /// The first VPC at `endpoint` ([`World::vpc`]).
    fn vpc(self, endpoint: &Endpoint) -> Option<&'w Vpc>;

    /// The first connection with id `id` ([`World::peering`]).
    fn peering(self, id: &PeeringId) -> Option<&'w Peering>;

    /// The route tables of `vpc` ([`World::route_tables_of`]).
    fn route_tables_of(self, vpc: &Endpoint) -> impl Iterator<Item = &'w RouteTable>;

    /// Every connection between `x` and `y`, either way round, in any state,
    /// made by anyone ([`Peering::is_of`]).
    fn connections_between(self, x: &Endpoint, y: &Endpoint) -> impl Iterator<Item = &'w Peering>;

    /// Every connection between the two VPCs of `key` ([`Lookup::connections_between`]).
    fn connections_of(self, key: &LinkKey) -> impl Iterator<Item = &'w Peering> {
        self.connections_between(&key.a, &key.b)
    }

    /// The connections tagpeer made between `x` and `y` that still stand,
    /// the one to keep first ([`World::live_managed`]).
    fn live_managed_between(self, x: &Endpoint, y: &Endpoint) -> Vec<&'w Peering>;

    /// The connections tagpeer made for `key` that still stand, the one to
    /// keep first ([`World::live_managed`]).
    fn live_managed(self, key: &LinkKey) -> Vec<&'w Peering> {
        self.live_managed_between(&key.a, &key.b)
    }
}

/// The world answers by scanning its lists: what a caller that asks once wants.
impl<'w> Lookup<'w> for &'w World {
    fn world(self) -> &'w World {
        self
    }

    fn vpc(self, endpoint: &Endpoint) -> Option<&'w Vpc> {
        World::vpc(self, endpoint)
    }

    fn peering(self, id: &PeeringId) -> Option<&'w Peering> {
        World::peering(self, id)
    }

    fn route_tables_of(self, vpc: &Endpoint) -> impl Iterator<Item = &'w RouteTable> {
        World::route_tables_of(self, vpc)
    }

    fn connections_between(self, x: &Endpoint, y: &Endpoint) -> impl Iterator<Item = &'w Peering> {
        self.peerings
            .iter()
            .filter(move |p| (&p.requester == x && &p.accepter == y) || (&p.requester == y && &p.accepter == x))
    }

    fn live_managed_between(self, x: &Endpoint, y: &Endpoint) -> Vec<&'w Peering> {
        model::kept_first(self.connections_between(x, y).filter(|p| p.state.is_live() && p.is_managed()).collect())
    }
}

/// One world's VPCs, connections and route tables, by what the planner looks
/// them up by. Built in one pass over the world; it borrows the world, so the
/// world cannot change while it stands.
pub(crate) struct WorldIndex<'w> {
    world: &'w World,
    /// Each endpoint's first VPC, as [`World::vpc`] finds it.
    vpcs: HashMap<&'w Endpoint, &'w Vpc>,
    /// Each id's first connection, as [`World::peering`] finds it.
    peerings: HashMap<&'w PeeringId, &'w Peering>,
    /// Each VPC's route tables, by their positions in `world.route_tables`
    /// (ascending: the world's order).
    tables: HashMap<&'w Endpoint, Vec<usize>>,
    /// Each pair of VPCs (smaller first) that has connections: the positions
    /// in `world.peerings` of its first and its last; `next` chains the rest.
    pairs: HashMap<Pair<'w>, (usize, usize)>,
    /// For each connection, the position of the next one of the same pair. A
    /// chain through the world's list, rather than a list per pair: most
    /// pairs have one connection, and a list each would cost an allocation.
    next: Vec<Option<usize>>,
    /// Whether tagpeer made each connection ([`Peering::is_managed`]), asked
    /// once: the answer compares the connection's tag with its link's id as
    /// shown, and a pass asks it several times of every link.
    managed: Vec<bool>,
}

/// Two VPCs in canonical order (smaller first), as a [`LinkKey`] holds them,
/// borrowed.
pub(crate) type Pair<'a> = (&'a Endpoint, &'a Endpoint);

/// `x` and `y` as a [`Pair`].
pub(crate) fn pair<'a>(x: &'a Endpoint, y: &'a Endpoint) -> Pair<'a> {
    if x <= y {
        (x, y)
    } else {
        (y, x)
    }
}

impl<'w> WorldIndex<'w> {
    pub(crate) fn new(world: &'w World) -> Self {
        let mut vpcs = HashMap::with_capacity(world.vpcs.len());
        for vpc in &world.vpcs {
            vpcs.entry(&vpc.endpoint).or_insert(vpc);
        }
        let mut tables: HashMap<&Endpoint, Vec<usize>> = HashMap::new();
        for (at, table) in world.route_tables.iter().enumerate() {
            tables.entry(&table.vpc).or_default().push(at);
        }
        let mut peerings = HashMap::with_capacity(world.peerings.len());
        let mut pairs: HashMap<Pair, (usize, usize)> = HashMap::with_capacity(world.peerings.len());
        let mut next = vec![None; world.peerings.len()];
        let managed = world.peerings.iter().map(Peering::is_managed).collect();
        for (at, p) in world.peerings.iter().enumerate() {
            peerings.entry(&p.id).or_insert(p);
            match pairs.entry(pair(&p.requester, &p.accepter)) {
                Entry::Occupied(mut chain) => {
                    let last = &mut chain.get_mut().1;
                    next[*last] = Some(at);
                    *last = at;
                }
                Entry::Vacant(chain) => {
                    chain.insert((at, at));
                }
            }
        }
        Self { world, vpcs, peerings, tables, pairs, next, managed }
    }

    fn table_positions(&self, vpc: &Endpoint) -> &[usize] {
        self.tables.get(vpc).map_or(&[], Vec::as_slice)
    }

    /// The positions in `world.peerings` of the connections between `x` and
    /// `y`, in the world's order.
    fn positions_between(&self, x: &Endpoint, y: &Endpoint) -> impl Iterator<Item = usize> + '_ {
        let first = self.pairs.get(&pair(x, y)).map(|&(first, _)| first);
        std::iter::successors(first, move |&at| self.next[at])
    }

    /// The route tables of either VPC `peering` joins ([`Peering::joins`]), in
    /// the world's order.
    pub(crate) fn route_tables_joined_by(&self, peering: &Peering) -> impl Iterator<Item = &'w RouteTable> {
        let mut positions = self.table_positions(&peering.requester).to_vec();
        if peering.accepter != peering.requester {
            // Two VPCs' tables, put back in the world's order.
            positions.extend(self.table_positions(&peering.accepter));
            positions.sort_unstable();
        }
        let tables = &self.world.route_tables;
        positions.into_iter().map(move |at| &tables[at])
    }

    /// Every connection tagpeer made that still stands, in the world's order.
    pub(crate) fn live_managed_all(&self) -> impl Iterator<Item = &'w Peering> + '_ {
        let world = self.world;
        world.peerings.iter().zip(&self.managed).filter(|(p, managed)| **managed && p.state.is_live()).map(|(p, _)| p)
    }
}

impl<'w> Lookup<'w> for &WorldIndex<'w> {
    fn world(self) -> &'w World {
        self.world
    }

    fn vpc(self, endpoint: &Endpoint) -> Option<&'w Vpc> {
        self.vpcs.get(endpoint).copied()
    }

    fn peering(self, id: &PeeringId) -> Option<&'w Peering> {
        self.peerings.get(id).copied()
    }

    fn route_tables_of(self, vpc: &Endpoint) -> impl Iterator<Item = &'w RouteTable> {
        let tables = &self.world.route_tables;
        self.table_positions(vpc).iter().map(move |&at| &tables[at])
    }

    fn connections_between(self, x: &Endpoint, y: &Endpoint) -> impl Iterator<Item = &'w Peering> {
        let peerings = &self.world.peerings;
        self.positions_between(x, y).map(move |at| &peerings[at])
    }

    fn live_managed_between(self, x: &Endpoint, y: &Endpoint) -> Vec<&'w Peering> {
        let peerings = &self.world.peerings;
        let live = self.positions_between(x, y).filter(|&at| self.managed[at] && peerings[at].state.is_live());
        model::kept_first(live.map(|at| &peerings[at]).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ids::{AccountId, Region};
    use crate::intent;
    use crate::model::{PeeringDns, PeeringState, Route, Target};

    /// A few VPCs, so that the generated lists collide: VPCs listed twice,
    /// connections both ways round, to themselves, and sharing an id; tables
    /// of VPCs the world does not list.
    const ENDPOINTS: usize = 6;

    fn endpoint(i: usize) -> Endpoint {
        let account: AccountId = if i % 3 == 2 { "222222222222" } else { "111111111111" }.parse().unwrap();
        let region: Region = if i % 2 == 0 { "ap-northeast-2" } else { "ap-northeast-3" }.parse().unwrap();
        Endpoint::new(account, region, format!("vpc-{:08x}", i % 5).parse().unwrap())
    }

    fn state(code: u8) -> PeeringState {
        [
            PeeringState::InitiatingRequest,
            PeeringState::PendingAcceptance,
            PeeringState::Provisioning,
            PeeringState::Active,
            PeeringState::Deleted,
            PeeringState::Rejected,
            PeeringState::Failed,
            PeeringState::Expired,
        ][usize::from(code) % 8]
            .clone()
    }

    /// A connection between `endpoint(x)` and `endpoint(y)`: tagged as
    /// tagpeer's (with its link's tag, or a wrong one) or not at all.
    fn peering(id: u8, x: usize, y: usize, code: u8, tagged: u8) -> Peering {
        let (requester, accepter) = (endpoint(x), endpoint(y));
        let mut tags = BTreeMap::new();
        if tagged > 0 {
            tags.insert(intent::MANAGED.to_owned(), "true".to_owned());
            let link = if tagged == 1 {
                LinkKey::new(requester.clone(), accepter.clone())
            } else {
                LinkKey::new(requester.clone(), requester.clone())
            };
            tags.insert(intent::LINK.to_owned(), link.to_string());
        }
        Peering {
            id: format!("pcx-{id:08x}").parse().unwrap(),
            requester,
            accepter,
            state: state(code),
            tags,
            dns: PeeringDns::default(),
            hidden_from_accepter: false,
        }
    }

    fn random_world() -> impl Strategy<Value = World> {
        let vpcs = proptest::collection::vec(0..ENDPOINTS, 0..8);
        let tables = proptest::collection::vec((0..ENDPOINTS, any::<bool>()), 0..10);
        let peerings = proptest::collection::vec((0u8..6, 0..ENDPOINTS, 0..ENDPOINTS, any::<u8>(), 0u8..3), 0..16);
        (vpcs, tables, peerings).prop_map(|(vpcs, tables, peerings)| World {
            vpcs: vpcs
                .into_iter()
                .enumerate()
                .map(|(n, i)| Vpc {
                    endpoint: endpoint(i),
                    ipv4: vec![format!("10.{n}.0.0/16").parse().unwrap()],
                    ipv6: vec![],
                    tags: BTreeMap::new(),
                    dns: None,
                })
                .collect(),
            route_tables: tables
                .into_iter()
                .enumerate()
                .map(|(n, (i, main))| RouteTable {
                    id: format!("rtb-{:08x}", n % 4).parse().unwrap(),
                    vpc: endpoint(i),
                    main,
                    routes: vec![Route { destination: "10.0.0.0/16".parse().unwrap(), target: Target::Local }],
                })
                .collect(),
            peerings: peerings.into_iter().map(|(id, x, y, code, tagged)| peering(id, x, y, code, tagged)).collect(),
            ..World::default()
        })
    }

    /// The same items, the same ones (not equal copies), in the same order.
    fn same<'a, T: 'a>(x: impl IntoIterator<Item = &'a T>, y: impl IntoIterator<Item = &'a T>) -> bool {
        let (x, y): (Vec<&T>, Vec<&T>) = (x.into_iter().collect(), y.into_iter().collect());
        x.len() == y.len() && x.iter().zip(&y).all(|(a, b)| std::ptr::eq(*a, *b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Every lookup through the index answers as the world's own scan
        /// does, and so does the world's own answer to [`Lookup`].
        #[test]
        fn the_index_answers_as_the_world_does(world in random_world()) {
            let index = WorldIndex::new(&world);
            let scan = &world;
            let endpoints: Vec<Endpoint> = (0..ENDPOINTS).map(endpoint).collect();
            for x in &endpoints {
                prop_assert!(same(index.vpc(x), scan.vpc(x)));
                prop_assert!(same(index.route_tables_of(x), scan.route_tables_of(x)));
                for y in &endpoints {
                    // Non-canonical keys too: `is_of` takes either order.
                    let key = LinkKey { a: x.clone(), b: y.clone() };
                    let of_key = || world.peerings.iter().filter(|p| p.is_of(&key));
                    prop_assert!(same(index.connections_of(&key), of_key()));
                    prop_assert!(same(Lookup::connections_of(scan, &key), of_key()));
                    prop_assert!(same(index.live_managed(&key), world.live_managed(&key)));
                    prop_assert!(same(Lookup::live_managed(scan, &key), world.live_managed(&key)));
                }
            }
            let live_managed = world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live());
            prop_assert!(same(index.live_managed_all(), live_managed));
            for id in 0..7 {
                let id: PeeringId = format!("pcx-{id:08x}").parse().unwrap();
                prop_assert!(same(index.peering(&id), scan.peering(&id)));
            }
            for p in &world.peerings {
                let joined = world.route_tables.iter().filter(|t| p.joins(&t.vpc));
                prop_assert!(same(index.route_tables_joined_by(p), joined));
            }
        }
    }
}
