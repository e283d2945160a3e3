//! A link across accounts, up and down by events alone: the local cloud runs
//! one deployment per account (`--accounts`, as `make local ACCOUNTS=…`),
//! each allowing the other, with AWS's timing and no schedule fired. Each
//! account's functions put events on their own account's buses only; the
//! template's `ForwardTo<ACCOUNT>` rules carry them to the other account's
//! bus in the same region, which takes them by its bus policy.

use aws_config::SdkConfig;
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};
use serde_json::{json, Value};
use tagpeer::aws::Ec2;
use tagpeer::ids::Endpoint;
use tagpeer::intent::{ACCEPT, PEERS, STATUS};
use tagpeer::model::{PeeringState, World};
use tagpeer::plan::Deployment;
use tagpeer_tests::local::{LocalCloud, TEST_LIFECYCLE};
use tagpeer_tests::*;

const OTHER: &str = "222222222222";

/// `sdk` acting as a person of `account` (the local cloud maps an access key
/// `ACCOUNT-…` to that account).
fn as_account(sdk: &SdkConfig, account: &str) -> SdkConfig {
    let key = Credentials::new(format!("{account}-tester"), "local", None, None, "tagpeer-tests");
    sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(key)).build()
}

/// `account`'s deployment, allowing `other`.
fn deployment_of(account: &str, other: &str) -> Deployment {
    let mut deployment = deployment();
    deployment.account = account.parse().unwrap();
    deployment.allowed_accounts = vec![other.parse().unwrap()];
    deployment
}

/// The world as `account`'s deployment sees it: its regions, and what it
/// reads of the other account through that account's reader role.
async fn observe_as(sdk: &SdkConfig, deployment: &Deployment) -> World {
    Ec2::new(sdk, &deployment.regions)
        .with_reader_role(Some("tagpeer-reader".into()))
        .observe_deployment(deployment)
        .await
        .expect("observing")
}

/// A local cloud with a deployment in each of two accounts, each allowing
/// the other, and a bare VPC in each: Seoul in this account, Osaka in the other.
struct TwoAccounts {
    cloud: LocalCloud,
    ours_sdk: SdkConfig,
    theirs_sdk: SdkConfig,
    ours: Deployment,
    theirs: Deployment,
    seoul: Endpoint,
    osaka: Endpoint,
}

impl TwoAccounts {
    async fn start() -> Self {
        let cloud =
            LocalCloud::start_with(&["--accounts", &format!("{ACCOUNT},{OTHER}"), "--lifecycle", TEST_LIFECYCLE]);
        let ours_sdk = cloud.sdk_config().await;
        let theirs_sdk = as_account(&ours_sdk, OTHER);
        let (ours, theirs) = (deployment_of(ACCOUNT, OTHER), deployment_of(OTHER, ACCOUNT));
        let seoul = create_vpc(&ours_sdk, SEOUL, "10.1.0.0/16").await;
        let made = create_vpc(&theirs_sdk, OSAKA, "10.2.0.0/16").await;
        let osaka = Endpoint::new(OTHER.parse().unwrap(), made.region, made.vpc_id);
        Self { cloud, ours_sdk, theirs_sdk, ours, theirs, seoul, osaka }
    }
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).and_then(|v| v.tags.get(STATUS)).cloned().unwrap_or_default()
}

fn successful(calls: &[Value], action: &str) -> usize {
    calls.iter().filter(|c| c["action"] == json!(action) && c["error"].is_null()).count()
}

#[tokio::test]
async fn a_link_across_accounts_comes_up_and_goes_down_by_events_alone() {
    let TwoAccounts { cloud, ours_sdk, theirs_sdk, ours, theirs, seoul, osaka } = TwoAccounts::start().await;
    let start = (observe_as(&ours_sdk, &ours).await, observe_as(&theirs_sdk, &theirs).await);

    // The accepter consents, then the requester asks: no sweep follows.
    tag_vpc(&theirs_sdk, &osaka, ACCEPT, Some(ACCOUNT)).await;
    tag_vpc(&ours_sdk, &seoul, PEERS, Some(&osaka.to_string())).await;
    cloud.settle();

    let (world, their_world) = (observe_as(&ours_sdk, &ours).await, observe_as(&theirs_sdk, &theirs).await);
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    assert_eq!(live.len(), 1, "{:?}", world.peerings);
    let pcx = live[0].clone();
    assert_eq!((&pcx.requester, &pcx.accepter, &pcx.state), (&seoul, &osaka, &PeeringState::Active));
    let ours_routes = routes_via_peering(&world, &seoul);
    assert!(!ours_routes.is_empty() && ours_routes.iter().all(|(_, d, p)| d == "10.2.0.0/16" && p == pcx.id.as_str()));
    let their_routes = routes_via_peering(&their_world, &osaka);
    assert!(
        !their_routes.is_empty() && their_routes.iter().all(|(_, d, p)| d == "10.1.0.0/16" && p == pcx.id.as_str())
    );
    assert_eq!(status(&world, &seoul), format!("{osaka}: ready via {}", pcx.id));
    assert_eq!(status(&their_world, &osaka), format!("{seoul}: ready via {}", pcx.id));
    for (deployment, world) in [(&ours, &world), (&theirs, &their_world)] {
        assert_eq!(tagpeer::invariants::violations(world, deployment), Vec::<String>::new());
        assert!(tagpeer::report::sweep_plan(world, deployment).is_empty(), "nothing left to the sweep");
    }

    // Teardown: this account's routes, then the other account's (its own
    // deployment's to remove), then the connection, and both statuses.
    let delivered = cloud.events().len();
    tag_vpc(&ours_sdk, &seoul, PEERS, None).await;
    cloud.settle();
    let steps: Vec<(String, String, String, String)> = cloud.events()[delivered..]
        .iter()
        .filter(|e| e["function"].is_string())
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("account"), s("function"), s("detail_type"), s("outcome"))
        })
        .collect();
    let step = |account: &str, function: &str, detail_type: &str| {
        (account.to_owned(), function.to_owned(), detail_type.to_owned(), "ok".to_owned())
    };
    // CloudTrail's record of the delete brings this account's router, as any
    // delete does (a hand-made one too), beside the chain.
    let trail = step(ACCOUNT, "RouterFunction", "AWS API Call via CloudTrail");
    assert_eq!(steps.iter().filter(|s| **s == trail).count(), 1, "{steps:?}");
    assert_eq!(
        steps.into_iter().filter(|s| *s != trail).collect::<Vec<_>>(),
        [
            step(ACCOUNT, "RequesterFunction", "Tag Change on Resource"),
            step(OTHER, "RouterFunction", "Routes Removed"),
            step(ACCOUNT, "RequesterFunction", "Routes Removed"),
            step(OTHER, "RouterFunction", "Link Removed"),
        ],
        "each account unroutes its own side, then the requester's deletes"
    );
    let (world, their_world) = (observe_as(&ours_sdk, &ours).await, observe_as(&theirs_sdk, &theirs).await);
    assert!(world.peerings.iter().all(|p| !p.state.is_live()), "{:?}", world.peerings);
    assert!(routes_via_peering(&world, &seoul).is_empty());
    assert!(routes_via_peering(&their_world, &osaka).is_empty());
    assert_eq!(status(&world, &seoul), "", "no intent left, nothing to say");
    assert_eq!(status(&their_world, &osaka), "no links", "its tagpeer:accept stands");
    for (deployment, start, now) in [(&ours, &start.0, &world), (&theirs, &start.1, &their_world)] {
        assert_eq!(tagpeer::invariants::violations_since(start, now, deployment), Vec::<String>::new());
        assert!(tagpeer::report::sweep_plan(now, deployment).is_empty(), "nothing left to the sweep");
    }

    let events = cloud.events();
    assert!(events.iter().all(|e| e["detail_type"] != json!("Scheduled Event")), "no sweep ran");
    let calls = cloud.calls();
    assert_eq!(successful(&calls, "CreateVpcPeeringConnection"), 1, "requested once");
    assert_eq!(successful(&calls, "AcceptVpcPeeringConnection"), 1, "accepted once");
    assert_eq!(successful(&calls, "DeleteVpcPeeringConnection"), 1, "deleted once");
}

/// The requester asks first, before the accepter consents: nothing is
/// requested, and the requester's status says it waits for consent. The
/// accepter's consent, given later, reaches the requester's account by its
/// own event ("Consent Changed", put in every region and carried over by the
/// forwarding rules), and the link comes up with no sweep.
#[tokio::test]
async fn consent_given_after_the_request_brings_the_link_up_by_events_alone() {
    let TwoAccounts { cloud, ours_sdk, theirs_sdk, ours, theirs, seoul, osaka } = TwoAccounts::start().await;

    tag_vpc(&ours_sdk, &seoul, PEERS, Some(&osaka.to_string())).await;
    cloud.settle();
    let world = observe_as(&ours_sdk, &ours).await;
    assert!(world.peerings.is_empty(), "no request without consent: {:?}", world.peerings);
    assert!(status(&world, &seoul).contains("waiting for consent"), "{}", status(&world, &seoul));

    tag_vpc(&theirs_sdk, &osaka, ACCEPT, Some(&seoul.to_string())).await;
    cloud.settle();
    let (world, their_world) = (observe_as(&ours_sdk, &ours).await, observe_as(&theirs_sdk, &theirs).await);
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    assert_eq!(live.len(), 1, "{:?}", world.peerings);
    assert_eq!(live[0].state, PeeringState::Active);
    assert_eq!(status(&world, &seoul), format!("{osaka}: ready via {}", live[0].id));
    assert_eq!(status(&their_world, &osaka), format!("{seoul}: ready via {}", live[0].id));
    for (deployment, world) in [(&ours, &world), (&theirs, &their_world)] {
        assert_eq!(tagpeer::invariants::violations(world, deployment), Vec::<String>::new());
        assert!(tagpeer::report::sweep_plan(world, deployment).is_empty(), "nothing left to the sweep");
    }
    let events = cloud.events();
    assert!(events.iter().all(|e| e["detail_type"] != json!("Scheduled Event")), "no sweep ran");
    let heard: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail_type"] == json!("Consent Changed") && e["function"] == json!("RequesterFunction"))
        .collect();
    assert!(heard.iter().any(|e| e["account"] == json!(ACCOUNT) && e["region"] == json!(SEOUL)), "{heard:#?}");
}

/// The accepter withdraws its consent: its own side is unrouted at once, and
/// the requester's account, told by "Routes Removed" (and "Consent
/// Changed"), unroutes its side and deletes the connection; both statuses
/// follow, with no sweep.
#[tokio::test]
async fn consent_withdrawn_takes_the_link_down_by_events_alone() {
    let TwoAccounts { cloud, ours_sdk, theirs_sdk, ours, theirs, seoul, osaka } = TwoAccounts::start().await;
    tag_vpc(&theirs_sdk, &osaka, ACCEPT, Some("*")).await;
    tag_vpc(&ours_sdk, &seoul, PEERS, Some(&osaka.to_string())).await;
    cloud.settle();
    let world = observe_as(&ours_sdk, &ours).await;
    assert_eq!(world.peerings.iter().filter(|p| p.state == PeeringState::Active).count(), 1, "{:?}", world.peerings);
    let start = (world, observe_as(&theirs_sdk, &theirs).await);

    tag_vpc(&theirs_sdk, &osaka, ACCEPT, None).await;
    cloud.settle();
    let (world, their_world) = (observe_as(&ours_sdk, &ours).await, observe_as(&theirs_sdk, &theirs).await);
    assert!(world.peerings.iter().all(|p| !p.state.is_live()), "{:?}", world.peerings);
    assert!(routes_via_peering(&world, &seoul).is_empty());
    assert!(routes_via_peering(&their_world, &osaka).is_empty());
    assert!(status(&world, &seoul).contains("waiting for consent"), "{}", status(&world, &seoul));
    assert_eq!(status(&their_world, &osaka), "", "no intent left on that side");
    for (deployment, start, now) in [(&ours, &start.0, &world), (&theirs, &start.1, &their_world)] {
        assert_eq!(tagpeer::invariants::violations_since(start, now, deployment), Vec::<String>::new());
        assert!(tagpeer::report::sweep_plan(now, deployment).is_empty(), "nothing left to the sweep");
    }
    assert!(cloud.events().iter().all(|e| e["detail_type"] != json!("Scheduled Event")), "no sweep ran");
}
