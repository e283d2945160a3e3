//! The planner alone, no AWS: one invocation's planning on synthetic worlds
//! of a deployment's size, its time and the heap it takes.
//!
//! ```text
//! cargo run --release -p tagpeer-core --example planner -- [VPCS ...] [--group N] [--budget-seconds S]
//! ```
//!
//! Each world: VPCS VPCs of one account (by default 100, 1,000 and 10,000)
//! over ten regions, in `tagpeer:mesh` groups of `--group` (default 50: 49
//! peers a VPC, as many links as AWS's default quotas allow, 50 peerings a
//! VPC and 50 routes a table), every
//! link's connection active and its routes in place, every status written:
//! the steady state a sweep finds. For each of the three roles, in the first
//! region, one invocation's planning (`plan::for_role` then
//! `status::statuses`, as the handler does) is timed, and the heap it takes
//! beyond the world's own is measured with a counting allocator. One JSON
//! line per size. A size whose time, extrapolated from the last one at the
//! growth measured so far, would pass `--budget-seconds` (default 120) is
//! reported as skipped, with that estimate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tagpeer_core::ids::{AccountId, Endpoint, Region};
use tagpeer_core::intent::{LINK, MANAGED, MESH, REQUESTED_AT};
use tagpeer_core::model::{LinkKey, Peering, PeeringState, Route, RouteTable, Target, Vpc, World};
use tagpeer_core::plan::{self, Deployment, Role, Scope};
use tagpeer_core::status;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = IN_USE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ACCOUNT: &str = "123456789012";
const REGIONS: [&str; 10] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
];

/// The steady state of `vpcs` VPCs meshed in groups of `group`.
fn world(vpcs: usize, group: usize) -> (World, Deployment) {
    let account: AccountId = ACCOUNT.parse().unwrap();
    let regions: Vec<Region> = REGIONS.iter().map(|r| r.parse().unwrap()).collect();
    let deployment = Deployment::new(account.clone(), regions.clone());
    let mut world = World { observed_at: 1_800_000_000, ..World::default() };
    let endpoint = |i: usize| {
        Endpoint::new(account.clone(), regions[i % regions.len()].clone(), format!("vpc-{i:017x}").parse().unwrap())
    };
    for i in 0..vpcs {
        let range = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
        world.vpcs.push(Vpc {
            endpoint: endpoint(i),
            ipv4: vec![range],
            ipv6: vec![],
            tags: [(MESH.to_owned(), format!("g{}", i / group))].into(),
            dns: None,
        });
        world.route_tables.push(RouteTable {
            id: format!("rtb-{i:017x}").parse().unwrap(),
            vpc: endpoint(i),
            main: true,
            routes: vec![Route { destination: range, target: Target::Local }],
        });
    }
    let mut next = 0;
    for start in (0..vpcs).step_by(group) {
        let members: Vec<usize> = (start..(start + group).min(vpcs)).collect();
        for (n, &x) in members.iter().enumerate() {
            for &y in &members[n + 1..] {
                next += 1;
                let key = LinkKey::new(endpoint(x), endpoint(y));
                let id = format!("pcx-{next:017x}");
                world.peerings.push(Peering {
                    id: id.parse().unwrap(),
                    requester: key.a.clone(),
                    accepter: key.b.clone(),
                    state: PeeringState::Active,
                    tags: [
                        (MANAGED.to_owned(), "true".to_owned()),
                        (LINK.to_owned(), key.to_string()),
                        (REQUESTED_AT.to_owned(), "1799990000".to_owned()),
                    ]
                    .into(),
                    dns: Default::default(),
                    hidden_from_accepter: false,
                });
                for (side, other) in [(x, y), (y, x)] {
                    let destination = world.vpcs[other].ipv4[0];
                    world.route_tables[side]
                        .routes
                        .push(Route { destination, target: Target::Peering(id.parse().unwrap()) });
                }
            }
        }
    }
    // The statuses a first sweep writes, written. One assessment serves every
    // region: a status is no intent, so writing one changes no assessment.
    let assessment = plan::assess(&world, &deployment);
    for region in &deployment.regions {
        for action in status::statuses(&world, &assessment, region, &Scope::sweep(), &BTreeMap::new()) {
            action.take_effect(&mut world, None);
        }
    }
    (world, deployment)
}

/// One invocation's planning: its time in seconds, the heap it took beyond
/// what stood before, and how many actions it planned.
fn plan_once(world: &World, deployment: &Deployment, role: Role) -> (f64, usize, usize) {
    let region = &deployment.regions[0];
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let planned = plan::for_role(world, deployment, role, region, &Scope::sweep());
    let writes = status::statuses(world, &planned.assessment, region, &Scope::sweep(), &BTreeMap::new());
    let seconds = started.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (seconds, peak, planned.actions.len() + writes.len())
}

fn main() {
    let mut sizes = Vec::new();
    let (mut group, mut budget) = (50usize, 120f64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--group" => group = args.next().and_then(|v| v.parse().ok()).expect("--group N"),
            "--budget-seconds" => budget = args.next().and_then(|v| v.parse().ok()).expect("--budget-seconds S"),
            size => sizes.push(size.parse::<usize>().expect("a number of VPCs")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1_000, 10_000];
    }
    let mut last: Option<(usize, f64, f64)> = None; // (links, seconds, growth exponent)
    for vpcs in sizes {
        let links_of =
            |n: usize| (n / group) * group * (group - 1) / 2 + (n % group) * (n % group).saturating_sub(1) / 2;
        let links = links_of(vpcs);
        if let Some((links_then, seconds_then, exponent)) = last {
            let estimate = seconds_then * (links as f64 / links_then as f64).powf(exponent) * 4.0;
            if estimate > budget {
                println!(
                    "{{\"vpcs\": {vpcs}, \"links\": {links}, \"skipped\": \"estimated {estimate:.0} s for the world and three plans (over {budget} s)\"}}"
                );
                continue;
            }
        }
        let before = IN_USE.load(Ordering::Relaxed);
        let built = Instant::now();
        let (world, deployment) = world(vpcs, group);
        let build_seconds = built.elapsed().as_secs_f64();
        let world_bytes = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
        let mut roles = Vec::new();
        let mut slowest = 0f64;
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            let (seconds, heap, actions) = plan_once(&world, &deployment, role);
            slowest = slowest.max(seconds);
            roles.push(format!(
                "\"{}\": {{\"seconds\": {seconds:.4}, \"heap_mb\": {:.2}, \"actions\": {actions}}}",
                role.name(),
                heap as f64 / 1e6
            ));
        }
        println!(
            "{{\"vpcs\": {vpcs}, \"links\": {links}, \"world_mb\": {:.2}, \"build_seconds\": {build_seconds:.2}, {}}}",
            world_bytes as f64 / 1e6,
            roles.join(", ")
        );
        let exponent = match last {
            Some((links_then, seconds_then, _)) if slowest > 0.0 && seconds_then > 0.0 => {
                ((slowest / seconds_then).ln() / (links as f64 / links_then as f64).ln()).max(1.0)
            }
            _ => 2.0,
        };
        last = Some((links, slowest.max(build_seconds / 4.0), exponent));
    }
}
