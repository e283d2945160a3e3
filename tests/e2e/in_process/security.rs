//! Security on moto's real server: tagpeer accepts only the requests it made
//! for links that are still asked for, and never touches a route or a
//! connection that is not its own. Each test names the protection it guards;
//! each fails when that protection is taken out of the planner.
//! (Consent across accounts is tested with the cross-account links.)

use aws_sdk_ec2::Client;
use serde_json::json;
use tagpeer::events::{self, PeeringDetail};
use tagpeer::ids::{Endpoint, PeeringId};
use tagpeer::intent::{PEERS, STATUS};
use tagpeer::model::LinkKey;
use tagpeer::model::{PeeringState, Target, World};
use tagpeer::plan::Role;
use tagpeer_tests::reliability::{record, Row};
use tagpeer_tests::*;

/// A peering request made by hand through the SDK, as a person would, with
/// whatever tags they give it.
async fn request_by_hand(cloud: &Cloud, from: &Endpoint, to: &Endpoint, tags: &[(&str, &str)]) -> PeeringId {
    let client = ec2(&cloud.sdk, from.region.as_str());
    let mut call = client.create_vpc_peering_connection().vpc_id(from.vpc_id.as_str()).peer_vpc_id(to.vpc_id.as_str());
    if from.region != to.region {
        call = call.peer_region(to.region.as_str());
    }
    if !tags.is_empty() {
        let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::VpcPeeringConnection);
        for (k, v) in tags {
            spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
        }
        call = call.tag_specifications(spec.build());
    }
    let out = call.send().await.expect("CreateVpcPeeringConnection");
    let id: PeeringId =
        out.vpc_peering_connection().and_then(|p| p.vpc_peering_connection_id()).expect("an id").parse().unwrap();
    // AWS has it `initiating-request`, and not yet in the accepter's region, for a moment.
    await_peering(&cloud.sdk, to.region.as_str(), id.as_str(), &["pending-acceptance"]).await;
    id
}

/// "Peering Requested" for a connection, as tagpeer's requester would send it
/// (anyone allowed to put events on the bus can send one).
fn peering_requested(id: &PeeringId, requester: &Endpoint, accepter: &Endpoint) -> serde_json::Value {
    let detail = PeeringDetail {
        link: LinkKey::new(requester.clone(), accepter.clone()).to_string(),
        peering_connection_id: id.clone(),
        requester: requester.clone(),
        accepter: accepter.clone(),
    };
    json!({"version": "0", "id": "forged", "detail-type": events::PEERING_REQUESTED, "source": events::SOURCE,
        "account": ACCOUNT, "time": "2026-11-27T00:00:00Z", "region": requester.region,
        "resources": [], "detail": detail})
}

fn state(world: &World, id: &PeeringId) -> Option<PeeringState> {
    world.peering(id).map(|p| p.state.clone())
}

/// Every route through `id`, anywhere.
fn routes_through(world: &World, id: &PeeringId) -> Vec<String> {
    world
        .route_tables
        .iter()
        .flat_map(|t| t.routes.iter().map(move |r| (t, r)))
        .filter(|(_, r)| r.target == Target::Peering(id.clone()))
        .map(|(t, r)| format!("{} {}", t.id, r.destination))
        .collect()
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).and_then(|v| v.tags.get(STATUS)).cloned().unwrap_or_default()
}

/// Records the test's row; its violations are every invariant's, 3 and 4
/// (routes and consent) judged against `start`, the world before tagpeer acted.
fn row(name: &str, faults: &str, outcome: &str, start: &World, world: &World, cloud: &Cloud) -> usize {
    let found = tagpeer::invariants::violations_since(start, world, cloud.deployment());
    assert_eq!(found, Vec::<String>::new(), "{name}");
    let violations = found.len();
    record(
        "security",
        &Row {
            kind: "bad-input",
            name: format!("security: {name}"),
            faults: faults.to_owned(),
            outcome: outcome.to_owned(),
            violations,
        },
    );
    violations
}

/// Guards the consent rule "a request tagpeer did not make is left alone":
/// `plan::all_links` and `plan::live_managed` take only connections tagged
/// `tagpeer-managed=true`, and `plan::assess` refuses a link that a hand-made
/// connection already joins (`Problem::UnmanagedPeering`). Without the first,
/// the requester takes the hand-made request for a link whose intent is gone
/// and deletes it; without the second, it requests a second connection
/// beside it.
#[tokio::test]
async fn a_request_tagpeer_did_not_make_is_never_accepted_by_event_or_sweep() {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let (seoul, osaka) = (seed.seoul(), seed.osaka());
    let hand = request_by_hand(&cloud, &seoul, &osaka, &[]).await;
    let world = cloud.observe().await;
    let start = world.clone();
    assert_eq!(state(&world, &hand), Some(PeeringState::PendingAcceptance));
    let tables = world.route_tables.clone();

    // Nobody asks for the link: a forged "Peering Requested" for it and a sweep.
    let forged =
        Delivery { role: Role::Accepter, region: OSAKA.into(), event: peering_requested(&hand, &seoul, &osaka) };
    let log = cloud.run_chain(forged.clone()).await;
    assert_eq!(changes(&log), Vec::<String>::new(), "the accepter takes nothing from the event");
    assert_eq!(changes(&cloud.sweep().await), Vec::<String>::new(), "nor from a sweep");
    let world = cloud.observe().await;
    assert_eq!(state(&world, &hand), Some(PeeringState::PendingAcceptance), "neither accepted nor deleted");
    assert_eq!(world.route_tables, tables, "no route touched");
    assert_eq!(
        row(
            "a hand-made request, no intent",
            "forged Peering Requested; sweep",
            "left pending",
            &start,
            &world,
            &cloud
        ),
        0
    );

    // Seoul now asks for Osaka: the hand-made request stands in the way, and is reported, not taken.
    tag_vpc(&cloud.sdk, &seoul, PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(&cloud.sdk, &seoul, &[PEERS]).await;
    let log = cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let made: Vec<String> = changes(&log).into_iter().filter(|c| !c.contains("CreateTags")).collect();
    assert_eq!(made, Vec::<String>::new(), "only statuses are written");
    cloud.run_chain(forged).await;
    cloud.sweep().await;
    let world = cloud.observe().await;
    assert_eq!(world.peerings.len(), 1, "no second request: {:?}", world.peerings);
    assert_eq!(state(&world, &hand), Some(PeeringState::PendingAcceptance));
    assert_eq!(world.route_tables, tables, "no route touched");
    let said = status(&world, &seoul);
    assert!(said.contains(&format!("already joined by {hand}, which tagpeer did not make; left alone")), "{said}");
    assert_eq!(
        row(
            "a hand-made request where a link is asked for",
            "tagpeer:peers; forged Peering Requested; sweep",
            "reported, left pending",
            &start,
            &world,
            &cloud
        ),
        0
    );
}

/// Guards consent's "only a request tagpeer made": `plan_accepter` accepts
/// only a connection whose `tagpeer-link` names its link, so a request made by
/// hand and tagged `tagpeer-managed=true` (with no link tag) is not accepted,
/// by a forged event or a sweep.
#[tokio::test]
async fn a_request_tagged_managed_by_hand_is_never_accepted() {
    let (cloud, posing, hand_world, _) = posing_request().await;
    assert_eq!(
        state(&hand_world, &posing),
        Some(PeeringState::PendingAcceptance),
        "tagged managed by hand, not accepted"
    );
    drop(cloud);
}

/// Guards `Peering::is_managed`, which asks for a `tagpeer-link` naming the
/// connection's own VPCs as well as `tagpeer-managed=true`: a request tagged
/// managed by hand is reported like any hand-made one, and nothing is stuck.
#[tokio::test]
async fn a_request_tagged_managed_by_hand_is_reported_as_hand_made() {
    let (cloud, posing, world, seoul) = posing_request().await;
    let said = status(&world, &seoul);
    assert!(said.contains(&format!("already joined by {posing}, which tagpeer did not make")), "{said}");
    assert_eq!(tagpeer::invariants::violations(&world, cloud.deployment()), Vec::<String>::new());
}

/// Seoul asks for a new Osaka VPC, to which a request tagged
/// `tagpeer-managed=true` (and nothing else) was made by hand; a forged
/// "Peering Requested" for it and a sweep follow. Returns the world after,
/// and checks no route was touched.
async fn posing_request() -> (Cloud, PeeringId, World, Endpoint) {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let seoul = seed.seoul();
    let other = {
        let client = ec2(&cloud.sdk, OSAKA);
        let vpc = client.create_vpc().cidr_block("10.77.0.0/16").send().await.expect("CreateVpc");
        endpoint(OSAKA, vpc.vpc().and_then(|v| v.vpc_id()).unwrap())
    };
    let posing = request_by_hand(&cloud, &seoul, &other, &[("tagpeer-managed", "true")]).await;
    let start = cloud.observe().await;
    let tables = start.route_tables.clone();
    tag_vpc(&cloud.sdk, &seoul, PEERS, Some(&format!("{OSAKA}/{}", other.vpc_id))).await;
    let event = tag_change_event(&cloud.sdk, &seoul, &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let forged = peering_requested(&posing, &seoul, &other);
    cloud.run_chain(Delivery { role: Role::Accepter, region: OSAKA.into(), event: forged }).await;
    cloud.sweep().await;
    let world = cloud.observe().await;
    assert_eq!(world.route_tables, tables, "no route touched");
    assert_eq!(tagpeer::invariants::violations_since(&start, &world, cloud.deployment()), Vec::<String>::new());
    (cloud, posing, world, seoul)
}

/// Guards the consent rule "accepted only for a link that still exists":
/// `plan_accepter` accepts nothing for a link nobody asks for any more. Here
/// tagpeer made the request, then the intent went before the accepter ran
/// (neither side asks now): the late "Peering Requested" is not accepted, and
/// the sweep takes the request down.
#[tokio::test]
async fn a_request_whose_intent_is_gone_is_not_accepted_when_its_event_comes_late() {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let start = cloud.observe().await;
    let tables = start.route_tables.clone();
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    let (result, next) = cloud.deliver(&Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    result.expect("requested");
    assert_eq!(next.len(), 1, "Peering Requested, held back: {next:?}");
    let pcx = cloud.observe().await.peerings[0].id.clone();
    await_peering(&cloud.sdk, OSAKA, pcx.as_str(), &["pending-acceptance"]).await;
    assert_eq!(state(&cloud.observe().await, &pcx), Some(PeeringState::PendingAcceptance));

    // The intent goes; the event arrives afterwards.
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, None).await;
    let (result, _) = cloud.deliver(&next[0]).await;
    let report = result.expect("answered");
    assert!(report.changes.iter().all(|c| c.action != "AcceptVpcPeeringConnection"), "{:?}", report.changes);
    let world = cloud.observe().await;
    assert_eq!(state(&world, &pcx), Some(PeeringState::PendingAcceptance), "not accepted");

    cloud.sweep().await;
    let world = cloud.observe().await;
    assert!(
        world.peerings.iter().all(|p| !p.state.is_live()),
        "the sweep takes the request down: {:?}",
        world.peerings
    );
    assert_eq!(world.route_tables, tables, "no route made");
    assert_eq!(
        row(
            "a late Peering Requested after the intent went",
            "tag removed before the accepter ran",
            "not accepted; deleted by the sweep",
            &start,
            &world,
            &cloud
        ),
        0
    );
}

/// Guards invariant 3, "tagpeer never creates, replaces or deletes a route
/// whose target is not a connection it manages": the router's
/// `judge_route` calls a route through anything else a conflict (reported,
/// left alone), and `all_links` leaves hand-made connections out of every
/// role's view, so teardown and the router's clean-up never reach their
/// routes. Without the first, the router replaces the gateway route with the
/// link's; without the second, the requester deletes the hand-made
/// connection and its routes as a link nobody asks for.
#[tokio::test]
async fn hand_made_routes_are_never_changed_and_a_conflict_is_reported_through_teardown() {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let (seoul, osaka) = (seed.seoul(), seed.osaka());
    let seoul_ec2 = ec2(&cloud.sdk, SEOUL);
    let world = cloud.observe().await;
    let public = world.route_tables_of(&seoul).find(|t| t.id.as_str() == seed.seoul_route_table).unwrap();
    let igw = public
        .routes
        .iter()
        .find_map(|r| match &r.target {
            Target::Other(id) if id.starts_with("igw-") => Some(id.clone()),
            _ => None,
        })
        .expect("the seed's gateway route");

    // By hand: Osaka's range through the internet gateway in Seoul's public table.
    seoul_ec2
        .create_route()
        .route_table_id(&seed.seoul_route_table)
        .destination_cidr_block("172.31.0.0/16")
        .gateway_id(&igw)
        .send()
        .await
        .expect("CreateRoute via the gateway");
    // By hand: a peering with a third VPC, accepted, and routes through it on both sides.
    let third = {
        let client = ec2(&cloud.sdk, OSAKA);
        let vpc = client.create_vpc().cidr_block("10.88.0.0/16").send().await.expect("CreateVpc");
        endpoint(OSAKA, vpc.vpc().and_then(|v| v.vpc_id()).unwrap())
    };
    let hand = request_by_hand(&cloud, &seoul, &third, &[]).await;
    ec2(&cloud.sdk, OSAKA)
        .accept_vpc_peering_connection()
        .vpc_peering_connection_id(hand.as_str())
        .send()
        .await
        .expect("AcceptVpcPeeringConnection by hand");
    await_peering(&cloud.sdk, OSAKA, hand.as_str(), &["active"]).await;
    add_route(&seoul_ec2, &seed.seoul_route_table, "10.88.0.0/16", &hand).await;
    let third_table = cloud.observe().await.route_tables_of(&third).next().unwrap().id.clone();
    add_route(&ec2(&cloud.sdk, OSAKA), third_table.as_str(), "10.0.0.0/16", &hand).await;

    let hand_made = |world: &World| -> Vec<String> {
        let mut out: Vec<String> = world
            .route_tables
            .iter()
            .flat_map(|t| t.routes.iter().map(move |r| (t, r)))
            .filter(|(_, r)| match &r.target {
                Target::Other(id) => id == &igw && r.destination.to_string() == "172.31.0.0/16",
                Target::Peering(id) => id == &hand,
                Target::Local => false,
            })
            .map(|(t, r)| format!("{} {} via {}", t.id, r.destination, r.target))
            .collect();
        out.sort();
        out
    };
    let start = cloud.observe().await;
    let before = hand_made(&start);
    assert_eq!(before.len(), 3, "{before:?}");

    // The link: Seoul asks for Osaka's default VPC (172.31.0.0/16).
    tag_vpc(&cloud.sdk, &seoul, PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(&cloud.sdk, &seoul, &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    cloud.sweep().await;
    let world = cloud.observe().await;
    assert_eq!(hand_made(&world), before, "hand-made routes as they were");
    assert_eq!(state(&world, &hand), Some(PeeringState::Active), "the hand-made connection stands");
    let managed: Vec<_> = world.peerings.iter().filter(|p| p.is_managed() && p.state.is_live()).collect();
    assert_eq!(managed.len(), 1, "{:?}", world.peerings);
    let pcx = managed[0].id.clone();
    assert_eq!(managed[0].state, PeeringState::Active);
    // The main table, which had no route to Osaka, gets the link's.
    let seoul_routes = routes_via_peering(&world, &seoul);
    assert!(
        seoul_routes.iter().any(|(t, d, p)| t != &seed.seoul_route_table && d == "172.31.0.0/16" && p == pcx.as_str()),
        "{seoul_routes:?}"
    );
    let said = status(&world, &seoul);
    let conflict =
        format!("conflict: {} already routes 172.31.0.0/16 via {igw}, left alone ({pcx})", seed.seoul_route_table);
    assert!(said.contains(&conflict), "{said}");
    assert!(status(&world, &osaka).contains("ready via"), "Osaka's side is whole");
    assert_eq!(
        row(
            "hand-made routes beside a link",
            "172.31.0.0/16 via igw; a hand-made peering and its routes",
            "conflict reported; hand-made routes unchanged",
            &start,
            &world,
            &cloud
        ),
        0
    );

    // Teardown: the intent goes; tagpeer's routes and connection go, the hand-made ones stay.
    tag_vpc(&cloud.sdk, &seoul, PEERS, None).await;
    let event = tag_change_event(&cloud.sdk, &seoul, &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    cloud.sweep().await;
    let world = cloud.observe().await;
    assert_eq!(hand_made(&world), before, "hand-made routes as they were after teardown");
    assert_eq!(state(&world, &hand), Some(PeeringState::Active));
    assert!(!state(&world, &pcx).is_some_and(|s| s.is_live()), "tagpeer's connection is gone");
    assert_eq!(routes_through(&world, &pcx), Vec::<String>::new(), "tagpeer's routes are gone");
    assert_eq!(
        row(
            "hand-made routes through a teardown",
            "the tag removed",
            "hand-made routes and connection unchanged",
            &start,
            &world,
            &cloud
        ),
        0
    );
}

async fn add_route(client: &Client, table: &str, destination: &str, via: &PeeringId) {
    client
        .create_route()
        .route_table_id(table)
        .destination_cidr_block(destination)
        .vpc_peering_connection_id(via.as_str())
        .send()
        .await
        .expect("CreateRoute via a peering connection");
}
