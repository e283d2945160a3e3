//! The seed scenario end to end on moto's real server: a person tags the Seoul
//! VPC, and the requester, accepter and router functions do the rest.

use tagpeer::intent::{PEERS, STATUS};
use tagpeer::invariants;
use tagpeer::plan::Role;
use tagpeer_tests::*;

const TAG_VALUE_PREFIX: &str = "ap-northeast-3/";

/// The world after the seed is built and the tag is set, before any function runs.
async fn tagged_seed(cloud: &Cloud) -> (Seed, Delivery) {
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let value = format!("{TAG_VALUE_PREFIX}{}", seed.osaka_vpc);
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&value)).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    (seed, Delivery { role: Role::Requester, region: SEOUL.into(), event })
}

#[tokio::test]
async fn one_tag_gives_a_working_peering_and_handlers_run_again_change_nothing() {
    let cloud = Cloud::start().await;
    let (seed, first) = tagged_seed(&cloud).await;

    let log = cloud.run_chain(first).await;
    let steps: Vec<(Role, &str, &str)> = log
        .iter()
        .map(|(d, r)| (d.role, d.region.as_str(), r.as_ref().map(|r| r.trigger).unwrap_or("error")))
        .collect();
    assert_eq!(
        steps,
        [
            (Role::Requester, SEOUL, "Tag Change on Resource"),
            (Role::Accepter, OSAKA, "Peering Requested"),
            (Role::Router, SEOUL, "Peering Accepted"),
            (Role::Router, OSAKA, "Peering Accepted"),
            // The acceptance freed room in Seoul's quota of outstanding requests.
            (Role::Requester, SEOUL, "Peering Accepted"),
        ]
    );
    for (d, r) in &log {
        assert!(r.is_ok(), "{:?} in {}: {r:?}", d.role, d.region);
    }
    let world = cloud.observe().await;
    assert_seed_converged(&world, &seed, cloud.deployment());
    let ready: Vec<serde_json::Value> = outcomes(&log, "Link Ready").iter().map(|d| d["side"].clone()).collect();
    let sides = [serde_json::to_value(seed.seoul()).unwrap(), serde_json::to_value(seed.osaka()).unwrap()];
    assert_eq!(ready, sides, "each side says it is ready, once");

    // Every handler again, by event and by sweep: no change at all.
    let again = cloud.run_chain(tagged_seed_event(&cloud, &seed).await).await;
    assert_eq!(changes(&again), Vec::<String>::new());
    let sweep = cloud.sweep().await;
    assert_eq!(changes(&sweep), Vec::<String>::new());
    assert_eq!(canonical(&cloud.observe().await), canonical(&world));
}

async fn tagged_seed_event(cloud: &Cloud, seed: &Seed) -> Delivery {
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    Delivery { role: Role::Requester, region: SEOUL.into(), event }
}

#[tokio::test]
async fn every_event_delivered_twice_ends_as_the_clean_run() {
    let cloud = Cloud::start().await;
    let (seed, first) = tagged_seed(&cloud).await;
    let mut queue = std::collections::VecDeque::from([first.clone(), first]);
    let mut deliveries = 0;
    while let Some(d) = queue.pop_front() {
        let (result, next) = cloud.deliver(&d).await;
        assert!(result.is_ok(), "{:?} in {}: {result:?}", d.role, d.region);
        deliveries += 1;
        // Each event the functions send arrives twice.
        for n in next {
            queue.push_back(n.clone());
            queue.push_back(n);
        }
    }
    assert!(deliveries >= 8, "{deliveries} deliveries");
    assert_seed_converged(&cloud.observe().await, &seed, cloud.deployment());
}

#[tokio::test]
async fn events_out_of_order_then_one_sweep_end_as_the_clean_run() {
    let cloud = Cloud::start().await;
    let (seed, first) = tagged_seed(&cloud).await;

    // The tag change reaches the routers and the accepter before the requester:
    // nothing to do yet but to say that the link is being requested.
    for (role, region) in [(Role::Router, SEOUL), (Role::Router, OSAKA), (Role::Accepter, OSAKA)] {
        let (result, next) = cloud.deliver(&Delivery { role, region: region.into(), ..first.clone() }).await;
        let report = result.expect("handled");
        assert!(next.is_empty(), "{role:?}: {next:?}");
        for c in &report.changes {
            assert_eq!(
                (c.action, c.detail.as_deref().map(|d| d.ends_with(": requesting"))),
                ("CreateTags", Some(true)),
                "{role:?}: {c:?}"
            );
        }
    }
    let (result, requested) = cloud.deliver(&first).await;
    result.expect("requested");
    assert_eq!(requested.len(), 1);

    // "Peering Accepted" before the acceptance (as if the chain were reordered): the routers wait.
    let mut early = requested[0].clone();
    early.event["detail-type"] = serde_json::json!("Peering Accepted");
    for region in [SEOUL, OSAKA] {
        let (result, _) = cloud.deliver(&Delivery { role: Role::Router, region: region.into(), ..early.clone() }).await;
        let network_changes: Vec<String> =
            changes_of(result).into_iter().filter(|c| !c.starts_with("CreateTags")).collect();
        assert_eq!(network_changes, Vec::<String>::new(), "no route before the connection is active");
    }

    // The acceptance happens; its "Peering Accepted" reaches Osaka's router only (Seoul's is lost).
    let (result, accepted) = cloud.deliver(&requested[0]).await;
    result.expect("accepted");
    let to_osaka: Vec<_> = accepted.into_iter().filter(|d| d.region == OSAKA).collect();
    assert_eq!(to_osaka.len(), 1);
    cloud.deliver(&to_osaka[0]).await.0.expect("routed in Osaka");
    let halfway = cloud.observe().await;
    assert!(routes_via_peering(&halfway, &seed.seoul()).is_empty());

    // The sweep finishes the work.
    let sweep = cloud.sweep().await;
    assert!(changes(&sweep).iter().any(|c| c.starts_with("router CreateRoute")), "{:?}", changes(&sweep));
    assert_seed_converged(&cloud.observe().await, &seed, cloud.deployment());
}

fn changes_of(result: Result<tagpeer::Report, tagpeer::error::HandlerError>) -> Vec<String> {
    result.expect("handled").changes.iter().map(|c| format!("{} {}", c.action, c.resource)).collect()
}

#[tokio::test]
async fn removing_the_tag_removes_the_routes_then_the_connection() {
    let cloud = Cloud::start().await;
    let (seed, first) = tagged_seed(&cloud).await;
    cloud.run_chain(first).await;
    let pcx = cloud.observe().await.peerings[0].id.clone();

    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, None).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    let log = cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let done = changes(&log);
    let last_route = done.iter().rposition(|c| c.contains("DeleteRoute")).expect("routes deleted");
    let peering = done.iter().position(|c| c.contains("DeleteVpcPeeringConnection")).expect("connection deleted");
    assert!(last_route < peering, "routes go first: {done:?}");
    assert_eq!(done.iter().filter(|c| c.contains("DeleteRoute")).count(), 3, "{done:?}");
    let removed = outcomes(&log, "Link Removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["peering-connection-id"], serde_json::json!(pcx.as_str()));
    assert_eq!(removed[0]["step"], serde_json::json!("DeleteVpcPeeringConnection"));

    let world = cloud.observe().await;
    assert!(routes_via_peering(&world, &seed.seoul()).is_empty());
    assert!(routes_via_peering(&world, &seed.osaka()).is_empty());
    assert!(world.peering(&pcx).is_none_or(|p| !p.state.is_live()), "{:?}", world.peering(&pcx));
    assert_eq!(invariants::violations(&world, cloud.deployment()), Vec::<String>::new());
    assert_eq!(world.vpc(&seed.seoul()).unwrap().tags.get(STATUS), None, "nothing left to report");
}

#[tokio::test]
async fn a_rejected_request_is_asked_again_once_then_waits_and_says_so() {
    let cloud = Cloud::start().await;
    let start = cloud.observe().await;
    let (seed, first) = tagged_seed(&cloud).await;
    // The request reaches nobody who accepts: Osaka's owner rejects it by hand.
    cloud.deliver(&first).await.0.expect("requested");
    let osaka = ec2(&cloud.sdk, OSAKA);
    let sdk = cloud.sdk.clone();
    let reject = |id: String| {
        let (osaka, sdk) = (osaka.clone(), sdk.clone());
        async move {
            // As a person would: once AWS lists the request in Osaka.
            await_peering(&sdk, OSAKA, &id, &["pending-acceptance"]).await;
            osaka.reject_vpc_peering_connection().vpc_peering_connection_id(id).send().await.expect("rejected");
        }
    };
    let live = |w: &tagpeer::model::World| w.peerings.iter().find(|p| p.state.is_live()).map(|p| p.id.to_string());
    reject(live(&cloud.observe().await).expect("a pending request")).await;

    // Seoul's requester sweeps and asks again at once: attempt 2.
    let requester_sweep = Delivery { role: Role::Requester, region: SEOUL.into(), event: scheduled_event(SEOUL) };
    let sweep = vec![(requester_sweep.clone(), cloud.deliver(&requester_sweep).await.0)];
    let world = cloud.observe().await;
    let second = world.peerings.iter().find(|p| p.state.is_live()).expect("asked again");
    assert_eq!(second.attempt(), 2, "{:?}", world.peerings);
    assert!(changes(&sweep).iter().any(|c| c.contains("CreateVpcPeeringConnection")));
    reject(second.id.to_string()).await;

    // Rejected again: the next request waits, and the status says how long.
    let sweep = vec![(requester_sweep.clone(), cloud.deliver(&requester_sweep).await.0)];
    assert!(!changes(&sweep).iter().any(|c| c.contains("CreateVpcPeeringConnection")), "{:?}", changes(&sweep));
    let world = cloud.observe().await;
    assert!(live(&world).is_none());
    let status = world.vpc(&seed.seoul()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert!(status.contains(&format!("{} ended rejected; request 3 in", second.id)), "{status}");
    cloud.assert_changes_allowed(&start).await;
}
