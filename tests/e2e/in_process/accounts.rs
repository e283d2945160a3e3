//! Links across accounts, on moto's real server through the real SDK: two
//! deployments, one to moto's default account and one to 222222222222, each
//! acting with its own account's credentials and reading the other through its
//! reader role (STS AssumeRole). Consent is exactly docs/DESIGN.md's: the other
//! account allowed on both sides, and the accepter's `tagpeer:accept`.

use tagpeer::ids::Endpoint;
use tagpeer::intent::{ACCEPT, PEERS, STATUS};
use tagpeer::model::{PeeringState, World};
use tagpeer::plan::Role;
use tagpeer::report::sweep_plan;
use tagpeer_tests::*;

const OTHER: &str = "222222222222";

/// This account's Seoul network (the seed's), and the other account's default
/// VPC in Osaka (172.31.0.0/16), with both deployments. `mutual`: whether the
/// other account's deployment allows this one.
async fn two_accounts(mutual: bool) -> (Cloud, Cloud, Seed, Endpoint) {
    let ours = Cloud::start_with(|d| d.allowed_accounts = vec![OTHER.parse().unwrap()]).await;
    let theirs = ours
        .other_account(OTHER, |d| {
            if mutual {
                d.allowed_accounts = vec![ACCOUNT.parse().unwrap()]
            }
        })
        .await;
    let seed = build_seed(&ours.sdk, "10.0.0.0/16").await;
    let vpc = default_vpc(&theirs.sdk, OSAKA).await;
    let their_vpc = Endpoint::new(OTHER.parse().unwrap(), OSAKA.parse().unwrap(), vpc.parse().unwrap());
    (ours, theirs, seed, their_vpc)
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).and_then(|v| v.tags.get(STATUS)).cloned().unwrap_or_default()
}

/// Tags Seoul with a reference to the other account's VPC and runs what
/// follows in this account, as the tag's event would.
async fn ask(ours: &Cloud, seed: &Seed, their_vpc: &Endpoint) {
    tag_vpc(&ours.sdk, &seed.seoul(), PEERS, Some(&their_vpc.to_string())).await;
    let event = tag_change_event(&ours.sdk, &seed.seoul(), &[PEERS]).await;
    ours.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
}

#[tokio::test]
async fn a_link_across_accounts_is_made_by_both_deployments_and_taken_down_by_both() {
    let (ours, theirs, seed, their_vpc) = two_accounts(true).await;
    tag_vpc(&theirs.sdk, &their_vpc, ACCEPT, Some(ACCOUNT)).await;
    ask(&ours, &seed, &their_vpc).await;

    // Requested at once; AWS has it `initiating-request` for a moment
    // (0.3 s here), then `pending-acceptance`: read until it is.
    let mut world = ours.observe().await;
    for _ in 0..50 {
        if world.peerings.iter().all(|p| p.state != PeeringState::InitiatingRequest) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        world = ours.observe().await;
    }
    assert_eq!(world.peerings.len(), 1, "requested at once: {:?}", world.peerings);
    let pcx = world.peerings[0].clone();
    assert_eq!(
        (&pcx.requester, &pcx.accepter, &pcx.state),
        (&seed.seoul(), &their_vpc, &PeeringState::PendingAcceptance)
    );

    // The other account hears of it on its sweep (this harness routes no
    // event across accounts; accounts_by_events, on the local cloud, does),
    // accepts, and routes its side; this account's sweep routes Seoul.
    theirs.sweep().await;
    ours.sweep().await;
    let world = ours.observe().await;
    assert_eq!(world.peering(&pcx.id).map(|p| p.state.clone()), Some(PeeringState::Active));
    let seoul_routes = routes_via_peering(&world, &seed.seoul());
    assert_eq!(seoul_routes.len(), 2, "{seoul_routes:?}");
    assert!(seoul_routes.iter().all(|(_, dest, p)| dest == "172.31.0.0/16" && p == pcx.id.as_str()));
    let their_routes = routes_via_peering(&world, &their_vpc);
    assert_eq!(their_routes.len(), 1, "seen through the reader role: {their_routes:?}");
    assert!(their_routes.iter().all(|(_, dest, _)| dest == "10.0.0.0/16"));
    assert_eq!(status(&world, &seed.seoul()), format!("{their_vpc}: ready via {}", pcx.id));
    let their_world = theirs.observe().await;
    assert_eq!(status(&their_world, &their_vpc), format!("{}: ready via {}", seed.seoul(), pcx.id));
    for (world, cloud) in [(&world, &ours), (&their_world, &theirs)] {
        assert_eq!(tagpeer::invariants::violations(world, cloud.deployment()), Vec::<String>::new());
        assert!(sweep_plan(world, cloud.deployment()).is_empty(), "nothing left to do");
    }

    // Teardown: this side's routes go at once; the connection waits for the
    // other account's routes, which its own deployment removes.
    tag_vpc(&ours.sdk, &seed.seoul(), PEERS, None).await;
    let event = tag_change_event(&ours.sdk, &seed.seoul(), &[PEERS]).await;
    ours.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let world = ours.observe().await;
    assert!(routes_via_peering(&world, &seed.seoul()).is_empty());
    assert_eq!(routes_via_peering(&world, &their_vpc).len(), 1, "theirs are theirs to remove");
    assert_eq!(world.peering(&pcx.id).map(|p| p.state.clone()), Some(PeeringState::Active), "the connection waits");

    theirs.sweep().await;
    ours.sweep().await;
    let world = ours.observe().await;
    assert!(routes_via_peering(&world, &their_vpc).is_empty());
    assert!(world.peerings.iter().all(|p| !p.state.is_live()), "{:?}", world.peerings);
    assert_eq!(status(&world, &seed.seoul()), "", "nothing left to say");
    assert_eq!(tagpeer::invariants::violations(&world, ours.deployment()), Vec::<String>::new());
}

#[tokio::test]
async fn without_the_accepters_consent_nothing_is_requested_until_it_is_given() {
    let (ours, theirs, seed, their_vpc) = two_accounts(true).await;
    ask(&ours, &seed, &their_vpc).await;
    ours.sweep().await;
    theirs.sweep().await;
    let world = ours.observe().await;
    assert!(world.peerings.is_empty(), "no request without consent: {:?}", world.peerings);
    assert_eq!(
        status(&world, &seed.seoul()),
        format!(
            "error: {their_vpc}: waiting for consent: {their_vpc}'s tagpeer:accept does not name account {ACCOUNT}"
        )
    );

    // Consent given: this account's next sweep requests, the other's accepts.
    tag_vpc(&theirs.sdk, &their_vpc, ACCEPT, Some(&seed.seoul().to_string())).await;
    ours.sweep().await;
    theirs.sweep().await;
    ours.sweep().await;
    let world = ours.observe().await;
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state == PeeringState::Active).collect();
    assert_eq!(live.len(), 1, "{:?}", world.peerings);
    assert!(status(&world, &seed.seoul()).contains("ready via"), "{}", status(&world, &seed.seoul()));
    assert_eq!(tagpeer::invariants::violations(&world, ours.deployment()), Vec::<String>::new());
}

#[tokio::test]
async fn a_request_from_an_account_the_accepter_does_not_allow_is_never_accepted() {
    let (ours, theirs, seed, their_vpc) = two_accounts(false).await;
    let start = theirs.observe().await;
    tag_vpc(&theirs.sdk, &their_vpc, ACCEPT, Some("*")).await;
    ask(&ours, &seed, &their_vpc).await;
    for _ in 0..2 {
        theirs.sweep().await;
        ours.sweep().await;
    }
    let world = ours.observe().await;
    assert_eq!(world.peerings.len(), 1);
    assert_eq!(world.peerings[0].state, PeeringState::PendingAcceptance, "never accepted, never deleted");
    assert!(routes_via_peering(&world, &their_vpc).is_empty());
    assert_eq!(status(&world, &seed.seoul()), format!("{their_vpc}: pending acceptance ({})", world.peerings[0].id));
    theirs.assert_changes_allowed(&start).await;
}

/// A request from an allowed account that tagpeer did not make (by hand, no
/// tagpeer tags in the requester's view) is never accepted, even by a VPC
/// that accepts anyone: consent is for tagpeer's links, not any request.
#[tokio::test]
async fn a_hand_made_request_from_an_allowed_account_is_never_accepted() {
    let (ours, theirs, seed, their_vpc) = two_accounts(true).await;
    let start = theirs.observe().await;
    tag_vpc(&theirs.sdk, &their_vpc, ACCEPT, Some("*")).await;
    let made = ec2(&ours.sdk, SEOUL)
        .create_vpc_peering_connection()
        .vpc_id(&seed.seoul_vpc)
        .peer_vpc_id(their_vpc.vpc_id.as_str())
        .peer_region(OSAKA)
        .peer_owner_id(OTHER)
        .send()
        .await
        .expect("CreateVpcPeeringConnection");
    let id = made.vpc_peering_connection().and_then(|p| p.vpc_peering_connection_id()).expect("an id").to_owned();
    for _ in 0..2 {
        theirs.sweep().await;
        ours.sweep().await;
    }
    let world = theirs.observe().await;
    let pcx = world.peerings.iter().find(|p| p.id.as_str() == id).expect("still listed");
    assert_eq!(pcx.state, PeeringState::PendingAcceptance, "left alone");
    assert!(routes_via_peering(&world, &their_vpc).is_empty());
    theirs.assert_changes_allowed(&start).await;
}
