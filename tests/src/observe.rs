//! Reading the deployment as it stands, waiting for AWS, and the checks
//! the end-to-end tests end with.

use std::time::{Duration, Instant};

use crate::*;
use aws_config::SdkConfig;
use tagpeer::aws::Ec2;
use tagpeer::intent::STATUS;
use tagpeer::model::{PeeringState, Target, World};
use tagpeer::plan::Deployment;

/// A world with its connection ids replaced by their order of appearance, so
/// that two runs compare equal when they built the same thing.
pub fn canonical(world: &World) -> String {
    let mut text = format!("{:?}", World { observed_at: 0, ..world.clone() });
    for (i, p) in world.peerings.iter().enumerate() {
        text = text.replace(p.id.as_str(), &format!("pcx-#{i}"));
    }
    text
}

pub fn routes_via_peering(world: &World, vpc: &tagpeer::ids::Endpoint) -> Vec<(String, String, String)> {
    world
        .route_tables_of(vpc)
        .flat_map(|t| {
            t.routes.iter().filter_map(move |r| match &r.target {
                Target::Peering(p) => Some((t.id.to_string(), r.destination.to_string(), p.to_string())),
                _ => None,
            })
        })
        .collect()
}

/// What the clean run of the seed ends in: one active connection, 172.31.0.0/16 through
/// it in both Seoul tables, 10.0.0.0/16 in Osaka's, both VPCs ready.
pub fn assert_seed_converged(world: &World, seed: &Seed, deployment: &Deployment) {
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    assert_eq!(live.len(), 1, "one connection: {:?}", world.peerings);
    let pcx = live[0];
    assert_eq!(pcx.state, PeeringState::Active);
    assert_eq!((&pcx.requester, &pcx.accepter), (&seed.seoul(), &seed.osaka()));
    assert!(pcx.is_managed());
    assert_eq!(pcx.link_tag(), Some(format!("{}+{}", seed.seoul(), seed.osaka()).as_str()));

    let seoul_routes = routes_via_peering(world, &seed.seoul());
    assert_eq!(seoul_routes.len(), 2, "the main and the public table: {seoul_routes:?}");
    assert!(seoul_routes.iter().all(|(_, dest, p)| dest == "172.31.0.0/16" && p == pcx.id.as_str()));
    assert!(seoul_routes.iter().any(|(t, ..)| t == &seed.seoul_route_table));
    let osaka_routes = routes_via_peering(world, &seed.osaka());
    assert_eq!(osaka_routes.len(), 1, "{osaka_routes:?}");
    assert!(osaka_routes.iter().all(|(_, dest, p)| dest == "10.0.0.0/16" && p == pcx.id.as_str()));

    // The seed's own routes stay as they were.
    let public = world.route_tables_of(&seed.seoul()).find(|t| t.id.as_str() == seed.seoul_route_table).unwrap();
    assert!(public.routes.iter().any(|r| r.destination.to_string() == "0.0.0.0/0"
        && matches!(&r.target, Target::Other(igw) if igw.starts_with("igw-"))));

    let seoul_status = world.vpc(&seed.seoul()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert_eq!(seoul_status, format!("ap-northeast-3/{}: ready via {}", seed.osaka_vpc, pcx.id));
    let osaka_status = world.vpc(&seed.osaka()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert_eq!(osaka_status, format!("ap-northeast-2/{}: ready via {}", seed.seoul_vpc, pcx.id));
    assert_eq!(tagpeer::invariants::violations(world, deployment), Vec::<String>::new());
}

/// The deployment the tests use: Seoul and Osaka.
pub fn deployment() -> Deployment {
    Deployment::new(ACCOUNT.parse().unwrap(), [SEOUL, OSAKA].iter().map(|r| r.parse().unwrap()).collect())
}

/// Reads the deployment until `ready` holds of it (AWS moves a connection
/// through its states on its own time), every 100 ms for at most 20 s.
pub async fn observe_until(sdk: &SdkConfig, what: &str, ready: impl Fn(&World) -> bool) -> World {
    let started = Instant::now();
    loop {
        let world = observe(sdk).await;
        if ready(&world) {
            return world;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: not within 20 s: {world:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, as a person would, until AWS shows `pcx` in `region` in one of
/// `states` (`pending-acceptance` in the accepter's region: listed there and
/// ready to accept; `active`: ready to route), every 100 ms for at most 20 s.
pub async fn await_peering(sdk: &SdkConfig, region: &str, pcx: &str, states: &[&str]) {
    let client = ec2(sdk, region);
    let started = Instant::now();
    loop {
        let out = client.describe_vpc_peering_connections().send().await.expect("DescribeVpcPeeringConnections");
        let state = out
            .vpc_peering_connections()
            .iter()
            .find(|p| p.vpc_peering_connection_id() == Some(pcx))
            .and_then(|p| p.status()?.code().map(|c| c.as_str().to_owned()));
        if state.as_deref().is_some_and(|s| states.contains(&s)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{pcx} in {region}: {state:?}, not {states:?} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deployment as it stands, read through `sdk`'s endpoint.
pub async fn observe(sdk: &SdkConfig) -> World {
    let regions = deployment().regions;
    Ec2::new(sdk, &regions).observe(&regions).await.expect("observing")
}

/// The end of an end-to-end test whose deployment has converged: what stands
/// now breaks no invariant, and nothing changed since `start` (read before
/// tagpeer acted) breaks 3 or 4.
pub async fn assert_invariants(sdk: &SdkConfig, deployment: &Deployment, start: &World) {
    let now = observe(sdk).await;
    assert_eq!(tagpeer::invariants::violations_since(start, &now, deployment), Vec::<String>::new());
}

/// The end of a test whose deployment is not converged by design (a link
/// waiting for consent, a network built with no workflow run): nothing changed
/// since `start` breaks invariant 3 or 4.
pub async fn assert_changes_allowed(sdk: &SdkConfig, deployment: &Deployment, start: &World) {
    let now = observe(sdk).await;
    assert_eq!(tagpeer::invariants::changes_violating(start, &now, deployment), Vec::<String>::new());
}
