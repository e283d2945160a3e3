//! A link's life after day one, on the local cloud: idle sweeps, a connection
//! deleted by hand, a range added later, a mesh across regions.

use serde_json::{json, Value};
use tagpeer::intent::{DNS, MESH, PEERS};
use tagpeer::model::World;
use tagpeer_tests::local::{invocations, LocalCloud};
use tagpeer_tests::*;

fn live(world: &World) -> usize {
    world.peerings.iter().filter(|p| p.state.is_live()).count()
}

fn calls_since(cloud: &LocalCloud, mark: usize) -> Vec<Value> {
    cloud.calls().into_iter().skip(mark).collect()
}

/// The deployment's sweep with nothing to do: one router (the schedule's,
/// in the first region) reads three paged lists in each region once, wakes
/// no function, and carries Osaka's gauges there (one `PutEvents`, which
/// Osaka's router publishes without a call of its own); nothing changes,
/// however many links there are.
#[tokio::test]
async fn an_idle_sweep_reads_each_region_once_and_changes_nothing() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let mut idle_calls = Vec::new();
    let osaka = endpoint(OSAKA, &default_vpc(&sdk, OSAKA).await);
    for (i, cidr) in ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"].iter().enumerate() {
        let seoul = create_vpc(&sdk, SEOUL, cidr).await;
        tag_vpc(&sdk, &seoul, PEERS, Some(&format!("{OSAKA}/{}", osaka.vpc_id))).await;
        cloud.settle();
        cloud.schedule(); // converge fully, whatever was in flight
        assert_eq!(live(&observe(&sdk).await), i + 1);

        let (mark, delivered) = (cloud.calls().len(), cloud.events().len());
        cloud.schedule();
        let calls = calls_since(&cloud, mark);
        let ec2: Vec<&Value> = calls.iter().filter(|c| c["service"] == "ec2").collect();
        let mutations: Vec<&&Value> =
            ec2.iter().filter(|c| !c["action"].as_str().unwrap_or_default().starts_with("Describe")).collect();
        assert!(mutations.is_empty(), "an idle sweep changes nothing: {mutations:#?}");
        let sent: Vec<&Value> = calls.iter().filter(|c| c["action"] == "PutEvents").collect();
        assert_eq!(sent.len(), 1, "Osaka's gauges, carried there: {sent:#?}");
        let invoked: Vec<(String, String, String, String)> =
            invocations(&cloud.events().into_iter().skip(delivered).collect::<Vec<_>>());
        let who: Vec<(&str, &str, &str)> =
            invoked.iter().map(|(f, r, d, _)| (f.as_str(), r.as_str(), d.as_str())).collect();
        assert_eq!(
            who,
            [("RouterFunction", SEOUL, "Scheduled Event"), ("RouterFunction", OSAKA, "Sweep Requested")],
            "the sweeper, and Osaka's router publishing its gauges"
        );
        idle_calls.push(ec2.len());
    }
    // DescribeVpcs, DescribeRouteTables, DescribeVpcPeeringConnections, once in each of 2 regions.
    assert_eq!(idle_calls, [6, 6, 6], "the same with 1, 2 and 3 links");
    assert_invariants(&sdk, &deployment(), &start).await;
}

/// A connection deleted by hand: its routes go (CloudTrail tells the
/// router), and the next sweep requests a new one while the intent stands.
#[tokio::test]
async fn a_connection_deleted_by_hand_loses_its_routes_and_is_requested_again() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    cloud.settle();
    let first = observe(&sdk).await.peerings[0].id.clone();

    ec2(&sdk, SEOUL)
        .delete_vpc_peering_connection()
        .vpc_peering_connection_id(first.as_str())
        .send()
        .await
        .expect("delete");
    cloud.settle();
    let after = observe(&sdk).await;
    for vpc in [seed.seoul(), seed.osaka()] {
        let stale: Vec<_> =
            routes_via_peering(&after, &vpc).into_iter().filter(|(_, _, p)| p == first.as_str()).collect();
        assert!(stale.is_empty(), "no route left pointing at the deleted connection: {stale:?}");
    }

    cloud.schedule();
    let world = observe(&sdk).await;
    assert_seed_converged(&world, &seed, &deployment());
    assert_ne!(world.peerings.iter().find(|p| p.state.is_live()).unwrap().id, first);
}

/// A range associated later is routed on the other side.
#[tokio::test]
async fn a_secondary_range_added_later_is_routed_on_the_other_side() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    cloud.settle();

    ec2(&sdk, OSAKA)
        .associate_vpc_cidr_block()
        .vpc_id(&seed.osaka_vpc)
        .cidr_block("100.64.0.0/16")
        .send()
        .await
        .expect("AssociateVpcCidrBlock");
    cloud.settle();
    let world = observe(&sdk).await;
    let pcx = world.peerings.iter().find(|p| p.state.is_live()).unwrap().id.to_string();
    let seoul_routes = routes_via_peering(&world, &seed.seoul());
    for table in [seed.seoul_route_table.as_str()] {
        for dest in ["172.31.0.0/16", "100.64.0.0/16"] {
            assert!(
                seoul_routes.contains(&(table.to_owned(), dest.to_owned(), pcx.clone())),
                "{table} routes {dest}: {seoul_routes:?}"
            );
        }
    }
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());
}

/// Four VPCs over two regions in one group: six links; one leaves, three go.
#[tokio::test]
async fn a_mesh_of_four_over_two_regions_is_six_links_and_a_leaver_takes_three() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let mut members = Vec::new();
    for (region, cidr) in
        [(SEOUL, "10.0.0.0/16"), (SEOUL, "10.1.0.0/16"), (OSAKA, "10.2.0.0/16"), (OSAKA, "10.3.0.0/16")]
    {
        members.push(create_vpc(&sdk, region, cidr).await);
    }
    for m in &members {
        tag_vpc(&sdk, m, MESH, Some("prod")).await;
    }
    cloud.settle();
    cloud.schedule();
    let world = observe(&sdk).await;
    assert_eq!(live(&world), 6, "{:#?}", world.peerings);
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());

    tag_vpc(&sdk, &members[3], MESH, None).await;
    cloud.settle();
    let world = observe(&sdk).await;
    assert_eq!(live(&world), 3);
    assert!(world.peerings.iter().filter(|p| p.state.is_live()).all(|p| !p.joins(&members[3])));
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());
    let events = cloud.events();
    let removed = events.iter().filter(|e| e["detail_type"] == json!("Link Removed")).count();
    assert!(removed >= 3, "each of the three links says it was removed");
}

/// `tagpeer:dns=on` on Seoul, set after the link is up: Osaka's side lets
/// Seoul resolve its names, set in Osaka's region.
#[tokio::test]
async fn dns_on_sets_the_peers_side_once_active() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    cloud.settle();
    // Turned on once the link is up. Seoul's VPC was made as the seed makes it,
    // without DNS hostnames: AWS would refuse the option, so tagpeer sets
    // nothing and says why.
    tag_vpc(&sdk, &seed.seoul(), DNS, Some("on")).await;
    cloud.settle();
    let world = observe(&sdk).await;
    let pcx = world.peerings.iter().find(|p| p.state.is_live()).expect("a connection");
    assert_eq!((pcx.dns.requester, pcx.dns.accepter), (false, false));
    let status = world.vpc(&seed.seoul()).unwrap().status().unwrap_or_default().to_owned();
    assert!(
        status.ends_with(&format!(
            "ready via {}, but no DNS resolution: {SEOUL}/{} needs DNS hostnames and DNS resolution on",
            pcx.id, seed.seoul_vpc
        )),
        "{status}"
    );
    assert!(cloud.calls().iter().all(|c| c["action"] != json!("ModifyVpcPeeringConnectionOptions")));
    // The person turns DNS hostnames on: CloudTrail's record of it alone does the rest, no sweep.
    ec2(&sdk, SEOUL)
        .modify_vpc_attribute()
        .vpc_id(&seed.seoul_vpc)
        .enable_dns_hostnames(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .expect("ModifyVpcAttribute");
    cloud.settle();
    let world = observe(&sdk).await;
    let pcx = world.peerings.iter().find(|p| p.state.is_live()).expect("a connection");
    assert_eq!((pcx.dns.requester, pcx.dns.accepter), (false, true));
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());
    let set_in: Vec<String> = cloud
        .calls()
        .iter()
        .filter(|c| c["action"] == json!("ModifyVpcPeeringConnectionOptions"))
        .map(|c| c["region"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(set_in, [OSAKA], "set once, in the accepter's region");
    // An option that needs nothing else changes nothing else.
    assert!(cloud.calls().iter().all(|c| c["action"] != json!("DeleteRoute")));
}

/// A request nobody accepts expires after 7 days, on the cloud's clock, and is
/// asked again; the functions read the time from the cloud, not the machine:
/// the new request's `tagpeer-requested-at` is a week ahead of the machine's clock.
#[tokio::test]
async fn a_request_left_pending_expires_after_a_week_and_is_asked_again() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    // The accepter never hears of the request (lost on Osaka's bus): it waits, pending.
    cloud.faults(&json!({"drop": [{"detail-type": "Peering Requested", "region": OSAKA, "count": 1}]}));
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    cloud.settle();
    let pending = |w: &World| w.peerings.iter().any(|p| p.state == tagpeer::model::PeeringState::PendingAcceptance);
    let world = observe_until(&sdk, "pending acceptance", pending).await;
    let first = world.peerings.iter().find(|p| p.state.is_live()).expect("a request").clone();

    let week = 7 * 24 * 60 * 60;
    cloud.advance_clock(week + 60);
    let world = observe(&sdk).await;
    let expired = world.peering(&first.id).expect("AWS still shows it");
    assert_eq!(expired.state, tagpeer::model::PeeringState::Expired);

    cloud.schedule();
    let world = observe(&sdk).await;
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());
    let second = world.peerings.iter().find(|p| p.state.is_live()).expect("asked again");
    assert_ne!(second.id, first.id);
    assert_eq!(second.attempt(), 2);
    assert!(
        second.requested_at() >= first.requested_at() + week,
        "requested at the cloud's time: {} then {}",
        first.requested_at(),
        second.requested_at()
    );
    assert_seed_converged(&world, &seed, &deployment());
}

/// A person rejects the request in the accepter's region: CloudTrail records it
/// there only; Osaka's requester hands the link over ("Link Wanted"), and
/// Seoul's, which alone requests for Seoul's VPCs, asks again, with no sweep.
#[tokio::test]
async fn a_reject_in_the_accepters_region_is_handed_over_and_asked_again_with_no_sweep() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    cloud.faults(&json!({"drop": [{"detail-type": "Peering Requested", "region": OSAKA, "count": 1}]}));
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    cloud.settle();
    let first = observe(&sdk).await.peerings[0].id.clone();
    // AWS lists the request in Osaka a moment after it is made.
    await_peering(&sdk, OSAKA, first.as_str(), &["pending-acceptance"]).await;
    ec2(&sdk, OSAKA)
        .reject_vpc_peering_connection()
        .vpc_peering_connection_id(first.as_str())
        .send()
        .await
        .expect("RejectVpcPeeringConnection");
    cloud.settle();
    let world = observe(&sdk).await;
    let again = world.peerings.iter().find(|p| p.state.is_live()).expect("asked again");
    assert_ne!(again.id, first);
    let requested_by: Vec<String> = cloud
        .calls()
        .iter()
        .filter(|c| c["action"] == json!("CreateVpcPeeringConnection") && c["error"].is_null())
        .map(|c| format!("{} {}", c["caller"].as_str().unwrap_or_default(), c["region"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        requested_by,
        [
            format!("123456789012-tagpeer-requester-{SEOUL} {SEOUL}"),
            format!("123456789012-tagpeer-requester-{SEOUL} {SEOUL}")
        ],
        "Seoul's requester asked both times"
    );
    let handed: Vec<_> = tagpeer_tests::local::invocations(&cloud.events())
        .into_iter()
        .filter(|(function, region, detail_type, _)| {
            function == "RequesterFunction" && region == SEOUL && detail_type == "Link Wanted"
        })
        .collect();
    assert_eq!(handed.len(), 1, "Osaka handed the link over once: {handed:?}");
    assert_seed_converged(&world, &seed, &deployment());
}
