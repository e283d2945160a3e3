//! Builders of hand-made worlds, shared by the unit, property, hostile and
//! handler tests of every crate (feature `testing`; always on in this
//! crate's own tests). Not part of tagpeer's behaviour.

use ipnet::IpNet;

use std::collections::BTreeMap;

use crate::ids::{Endpoint, Region};
use crate::model::{Route, RouteTable, Target, Vpc, World};
use crate::plan::{actions, assess, Action, Deployment, Role, Scope};
use crate::status::statuses;

pub const SEOUL: &str = "ap-northeast-2";
pub const OSAKA: &str = "ap-northeast-3";
pub const ACCOUNT: &str = "123456789012";

pub fn region(r: &str) -> Region {
    r.parse().unwrap()
}

/// A VPC of [`ACCOUNT`] in region `r`.
pub fn ep(r: &str, vpc: &str) -> Endpoint {
    Endpoint::new(ACCOUNT.parse().unwrap(), region(r), vpc.parse().unwrap())
}

/// [`ACCOUNT`] in Seoul and Osaka, AWS's default quotas.
pub fn deployment() -> Deployment {
    Deployment::new(ACCOUNT.parse().unwrap(), vec![region(SEOUL), region(OSAKA)])
}

/// The seed's Seoul VPC.
pub fn seoul() -> Endpoint {
    ep(SEOUL, "vpc-0000000a")
}

/// The seed's Osaka VPC.
pub fn osaka() -> Endpoint {
    ep(OSAKA, "vpc-0000000b")
}

/// A world under construction: VPCs with a main route table each.
#[derive(Default)]
pub struct WorldBuilder {
    world: World,
    next_table: u32,
}

impl WorldBuilder {
    /// A VPC at `at` with range `cidr`, tags `tags`, and a main route table.
    pub fn vpc(mut self, at: &Endpoint, cidr: &str, tags: &[(&str, &str)]) -> Self {
        let cidr: IpNet = cidr.parse().unwrap();
        self.world.vpcs.push(Vpc {
            endpoint: at.clone(),
            ipv4: vec![cidr],
            ipv6: vec![],
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            dns: None,
        });
        self.table(at, true)
    }

    /// Another route table of `vpc` (ids `rtb-00000001`, `rtb-00000002`, … in order).
    pub fn table(mut self, vpc: &Endpoint, main: bool) -> Self {
        self.next_table += 1;
        let local = self.world.vpc(vpc).unwrap().ipv4[0];
        self.world.route_tables.push(RouteTable {
            id: format!("rtb-{:08x}", self.next_table).parse().unwrap(),
            vpc: vpc.clone(),
            main,
            routes: vec![Route { destination: local, target: Target::Local }],
        });
        self
    }

    pub fn build(self) -> World {
        self.world
    }
}

/// Runs every role in every region of `deployment` until nothing is left to
/// do, as the sweeps would, AWS finishing its part between rounds; requested
/// connections get fresh ids. Returns the rounds.
pub fn converge(world: &mut World, deployment: &Deployment) -> usize {
    let mut next_id = world.peerings.len() as u32;
    for round in 1..=10 {
        let mut changed = false;
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            for r in &deployment.regions {
                let assessment = assess(world, deployment);
                let mut actions = actions(world, &assessment, role, r, &Scope::sweep());
                actions.extend(statuses(world, &assessment, r, &Scope::sweep(), &BTreeMap::new()));
                for action in actions {
                    changed = true;
                    let created = matches!(action, Action::RequestPeering { .. }).then(|| {
                        next_id += 1;
                        format!("pcx-{next_id:08x}").parse().unwrap()
                    });
                    action.take_effect(world, created.as_ref());
                }
            }
        }
        changed |= world.settle();
        if !changed {
            return round;
        }
    }
    panic!("no convergence in 10 rounds: {world:#?}");
}
