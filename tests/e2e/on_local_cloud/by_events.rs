//! Events alone do the whole job: on the local cloud with AWS's timing (a
//! connection `initiating-request` for 2 s, unseen in the accepter's region
//! for 5 s, `provisioning` for 5 s) and no schedule fired, every order of
//! tagging brings every link up, with both statuses true, and no request made
//! twice.

use serde_json::{json, Value};
use tagpeer::aws::Ec2;
use tagpeer::ids::Endpoint;
use tagpeer::intent::{MESH, PEERS};
use tagpeer::plan::Deployment;
use tagpeer_tests::local::LocalCloud;
use tagpeer_tests::*;

/// The 24 orders of four things.
fn orders() -> Vec<[usize; 4]> {
    let mut out = Vec::new();
    for a in 0..4 {
        for b in (0..4).filter(|b| *b != a) {
            for c in (0..4).filter(|c| *c != a && *c != b) {
                let d = 6 - a - b - c;
                out.push([a, b, c, d]);
            }
        }
    }
    out
}

fn successful(calls: &[Value], action: &str) -> usize {
    calls.iter().filter(|c| c["action"] == json!(action) && c["error"].is_null()).count()
}

/// Four VPCs, two in Seoul and two in Osaka, tagged `tagpeer:mesh = g` one
/// after another, in each of the 24 orders: six meshes side by side at a
/// time (each its own group), in four tests of six orders each, each on a
/// cloud of its own (every function reads the whole deployment, so one cloud
/// for all 24 would only make the later meshes slower; four let the test
/// harness run them side by side). With no sweep, each ends converged:
/// nothing is left for a sweep to do (`sweep_plan` is empty: every
/// connection, route and status as it should be), the invariants hold, and
/// each link was requested once.
async fn six_orders_of_tagging_a_four_vpc_mesh_converge_by_events_alone(round: usize) {
    let cloud = LocalCloud::start_with(&[]);
    let sdk = cloud.sdk_config().await;
    let orders = orders();
    let round = &orders[6 * round..6 * round + 6];
    let start = observe(&sdk).await;
    let mut meshes = Vec::new();
    for (i, order) in round.iter().enumerate() {
        let mut members = Vec::new();
        for (m, region) in [SEOUL, SEOUL, OSAKA, OSAKA].into_iter().enumerate() {
            members.push(create_vpc(&sdk, region, &format!("10.{}.0.0/16", 4 * i + m + 1)).await);
        }
        meshes.push((format!("g{i}"), *order, members));
    }
    for step in 0..4 {
        for (group, order, members) in &meshes {
            tag_vpc(&sdk, &members[order[step]], MESH, Some(group)).await;
        }
    }
    cloud.settle();
    let world = observe(&sdk).await;
    let left = left_to_the_sweep(&world);
    let orders: Vec<[usize; 4]> = meshes.iter().map(|(_, order, _)| *order).collect();
    assert_eq!(left, Vec::<String>::new(), "left to the sweep, orders {orders:?}");
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment()), Vec::<String>::new());
    let calls = cloud.calls();
    assert_eq!(successful(&calls, "CreateVpcPeeringConnection"), 6 * 6, "each link requested once, {orders:?}");
    assert_eq!(successful(&calls, "AcceptVpcPeeringConnection"), 6 * 6, "each accepted once, {orders:?}");
}

#[tokio::test]
async fn every_order_of_tagging_a_four_vpc_mesh_converges_by_events_alone_orders_1_to_6() {
    six_orders_of_tagging_a_four_vpc_mesh_converge_by_events_alone(0).await;
}

#[tokio::test]
async fn every_order_of_tagging_a_four_vpc_mesh_converges_by_events_alone_orders_7_to_12() {
    six_orders_of_tagging_a_four_vpc_mesh_converge_by_events_alone(1).await;
}

#[tokio::test]
async fn every_order_of_tagging_a_four_vpc_mesh_converges_by_events_alone_orders_13_to_18() {
    six_orders_of_tagging_a_four_vpc_mesh_converge_by_events_alone(2).await;
}

#[tokio::test]
async fn every_order_of_tagging_a_four_vpc_mesh_converges_by_events_alone_orders_19_to_24() {
    six_orders_of_tagging_a_four_vpc_mesh_converge_by_events_alone(3).await;
}

#[test]
fn the_four_rounds_are_the_24_orders() {
    let mut all = orders();
    assert_eq!(all.len(), 24);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 24, "each once");
}

/// Nothing left for a sweep: every connection, route and status as it should be.
fn left_to_the_sweep(world: &tagpeer::model::World) -> Vec<String> {
    left_to_the_sweep_of(world, &deployment())
}

fn left_to_the_sweep_of(world: &tagpeer::model::World, deployment: &Deployment) -> Vec<String> {
    tagpeer::report::sweep_plan(world, deployment)
        .into_iter()
        .map(|(role, region, action)| format!("{} {region} {action}", role.name()))
        .collect()
}

/// A mesh member leaves: its links come down, and the status of every VPC,
/// in either region, says so, by events alone (the statuses of a region are
/// written by its own functions: "Link Removed" tells the other region's).
#[tokio::test]
async fn a_member_leaving_a_mesh_takes_its_links_down_and_every_status_follows() {
    let cloud = LocalCloud::start_with(&[]);
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let a = create_vpc(&sdk, SEOUL, "10.1.0.0/16").await;
    let b = create_vpc(&sdk, SEOUL, "10.2.0.0/16").await;
    let c = create_vpc(&sdk, OSAKA, "10.3.0.0/16").await;
    for member in [&a, &b, &c] {
        tag_vpc(&sdk, member, MESH, Some("g")).await;
    }
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(left_to_the_sweep(&world), Vec::<String>::new(), "the mesh is up");
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 3);

    tag_vpc(&sdk, &a, MESH, None).await;
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(left_to_the_sweep(&world), Vec::<String>::new(), "no status or route left behind");
    let status = |v: &Endpoint| world.vpc(v).and_then(|v| v.status()).unwrap_or_default().to_owned();
    assert_eq!(status(&a), "", "the leaver says nothing");
    assert!(!status(&c).contains(a.vpc_id.as_str()), "Osaka's status dropped the leaver: {}", status(&c));
    assert!(status(&c).contains("ready via"), "{}", status(&c));
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment()), Vec::<String>::new());
}

/// The side in the higher region asks: Osaka names Seoul, so Osaka requests.
#[tokio::test]
async fn a_link_asked_for_from_the_higher_region_comes_up() {
    let cloud = LocalCloud::start_with(&[]);
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let seoul = create_vpc(&sdk, SEOUL, "10.1.0.0/16").await;
    let osaka = create_vpc(&sdk, OSAKA, "10.2.0.0/16").await;
    tag_vpc(&sdk, &osaka, tagpeer::intent::PEERS, Some(&format!("{SEOUL}/{}", seoul.vpc_id))).await;
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(left_to_the_sweep(&world), Vec::<String>::new());
    assert_eq!(world.peerings.len(), 1);
    assert_eq!(world.peerings[0].requester, osaka, "the asker requests");
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment()), Vec::<String>::new());
}

/// Every event delivered twice (EventBridge delivers at least once): a
/// four-VPC mesh comes up all the same, and no link is requested twice.
#[tokio::test]
async fn every_event_delivered_twice_brings_a_mesh_up_with_one_request_a_link() {
    let cloud = LocalCloud::start_with(&[]);
    cloud.faults(&json!({"events": {"duplicate": 1.0}}));
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let mut members = Vec::new();
    for (i, region) in [SEOUL, SEOUL, OSAKA, OSAKA].iter().enumerate() {
        members.push(create_vpc(&sdk, region, &format!("10.{}.0.0/16", i + 1)).await);
    }
    for member in &members {
        tag_vpc(&sdk, member, MESH, Some("g")).await;
    }
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(left_to_the_sweep(&world), Vec::<String>::new());
    assert_eq!(successful(&cloud.calls(), "CreateVpcPeeringConnection"), 6, "one request a link");
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment()), Vec::<String>::new());
}

/// A burst: twelve VPCs, six in Seoul and six in Osaka, tagged
/// `tagpeer:mesh = burst` within a second. Sixty-six links, 51 of them
/// requested from Seoul, more than the 25 outstanding requests AWS allows
/// an account in a region: Seoul requests 25, and each acceptance, which
/// frees room, brings its requester back for the links that waited. By
/// events alone every link comes up, each requested once, in a few
/// invocations: each function's queue hands it the burst's events in batches.
#[tokio::test]
async fn a_burst_of_twelve_vpcs_tagged_in_a_second_converges_by_events_alone() {
    let cloud = LocalCloud::start_with(&[]);
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let mut members = Vec::new();
    for i in 0..12 {
        let region = if i < 6 { SEOUL } else { OSAKA };
        members.push(create_vpc(&sdk, region, &format!("10.{}.0.0/16", i + 1)).await);
    }
    let tagging = std::time::Instant::now();
    for member in &members {
        tag_vpc(&sdk, member, MESH, Some("burst")).await;
    }
    assert!(tagging.elapsed() < std::time::Duration::from_secs(1), "tagged in {:?}", tagging.elapsed());
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(left_to_the_sweep(&world), Vec::<String>::new(), "the burst's mesh is up");
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 66);
    assert_eq!(successful(&cloud.calls(), "CreateVpcPeeringConnection"), 66, "one request a link");
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment()), Vec::<String>::new());

    // Coalesced: each region's six tags of the burst reached its requester
    // in at most two batches (its queue's one-second window may close
    // mid-burst), and every function took its events in batches, not one
    // invocation an event.
    let events = cloud.events();
    let batches: Vec<&Value> = events.iter().filter(|e| e["messages"].is_u64() && e["outcome"] == "ok").collect();
    for region in [SEOUL, OSAKA] {
        let tag_batches = batches
            .iter()
            .filter(|e| e["region"] == region && e["function"] == "RequesterFunction")
            .filter(|e| {
                e["events"].as_array().is_some_and(|b| b.iter().any(|e| e["detail-type"] == "Tag Change on Resource"))
            })
            .count();
        assert!((1..=2).contains(&tag_batches), "{region}'s tags in {tag_batches} invocations");
    }
    let queued = events.iter().filter(|e| e["outcome"] == "queued").count();
    let invocations = events.iter().filter(|e| e["function"].is_string()).count();
    assert!(queued >= 66 * 2, "every link's request and acceptance went through a queue: {queued}");
    assert!(invocations * 4 <= queued, "{invocations} invocations for {queued} events");
}

/// Ten regions, more than the six the template's forwarding rules once
/// allowed: the functions put each event on the bus of every region that acts
/// on it. One VPC a region, in a ring, each naming the next region's, all
/// tagged at once: by events alone every link comes up, both statuses true;
/// then the link from the last region back to the first comes down, and both
/// its statuses follow.
#[tokio::test]
async fn a_ring_over_ten_regions_comes_up_and_down_by_events_alone() {
    const TEN: [&str; 10] = [
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "eu-central-1",
        "eu-west-1",
        "us-east-1",
        "us-east-2",
        "us-west-2",
    ];
    let cloud = LocalCloud::start_with(&["--regions", &TEN.join(",")]);
    let sdk = cloud.sdk_config().await;
    let deployment = Deployment::new(ACCOUNT.parse().unwrap(), TEN.iter().map(|r| r.parse().unwrap()).collect());
    let ec2 = Ec2::new(&sdk, &deployment.regions);
    let observe = || async { ec2.observe(&deployment.regions).await.expect("observing ten regions") };
    let start = observe().await;
    let mut ring = Vec::new();
    for (i, region) in TEN.iter().enumerate() {
        ring.push(create_vpc(&sdk, region, &format!("10.{}.0.0/16", i + 1)).await);
    }
    for (i, vpc) in ring.iter().enumerate() {
        let next = &ring[(i + 1) % ring.len()];
        tag_vpc(&sdk, vpc, PEERS, Some(&format!("{}/{}", next.region, next.vpc_id))).await;
    }
    cloud.settle();
    let world = observe().await;
    assert_eq!(left_to_the_sweep_of(&world, &deployment), Vec::<String>::new(), "the ring is up");
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 10);
    assert_eq!(successful(&cloud.calls(), "CreateVpcPeeringConnection"), 10, "one request a link");
    let status = |world: &tagpeer::model::World, v: &Endpoint| {
        world.vpc(v).and_then(|v| v.status()).unwrap_or_default().to_owned()
    };
    let (first, last) = (&ring[0], &ring[9]);
    assert!(status(&world, first).contains(last.vpc_id.as_str()), "{}", status(&world, first));

    tag_vpc(&sdk, last, PEERS, None).await;
    cloud.settle();
    let world = observe().await;
    assert_eq!(left_to_the_sweep_of(&world, &deployment), Vec::<String>::new(), "no status or route left behind");
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 9);
    assert!(!status(&world, first).contains(last.vpc_id.as_str()), "{}", status(&world, first));
    assert!(!status(&world, last).contains(first.vpc_id.as_str()), "{}", status(&world, last));
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, &deployment), Vec::<String>::new());
}
