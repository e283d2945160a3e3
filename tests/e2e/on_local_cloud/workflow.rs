//! The workflow on the local cloud, as deployed: AWS's events, the template's
//! rules and schedule, the real function binaries, driven through one endpoint.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tagpeer::intent::{MESH, PEERS};
use tagpeer::plan::Role;
use tagpeer_tests::local::{
    assert_invocations_count_their_calls, datapoints, invocations, last_gauge, LocalCloud, TEST_LIFECYCLE,
};
use tagpeer_tests::*;

fn peers_value(seed: &Seed) -> String {
    format!("{OSAKA}/{}", seed.osaka_vpc)
}

/// (function, region, detail-type) for each invocation, outcome checked.
fn chain(cloud: &LocalCloud) -> Vec<(String, String, String)> {
    invocations(&cloud.events())
        .into_iter()
        .map(|(function, region, detail_type, outcome)| {
            assert_eq!(outcome, "ok", "{function} in {region} on {detail_type}");
            (function, region, detail_type)
        })
        .collect()
}

fn step(function: &str, region: &str, detail_type: &str) -> (String, String, String) {
    (function.to_owned(), region.to_owned(), detail_type.to_owned())
}

#[tokio::test]
async fn one_tag_change_through_the_endpoint_drives_the_whole_chain_in_order() {
    // AWS's own timing: its intermediate states outlast the queues' one-second
    // batching window, so the functions wait for them (the tests' shortened
    // lifecycle passes inside the window).
    let cloud = LocalCloud::start_with(&[]);
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&peers_value(&seed))).await;
    cloud.settle();

    // With AWS's timing and no sweep: the accepter waited for the request to
    // leave `initiating-request` and to show in Osaka, the routers for the
    // connection to leave `provisioning`.
    assert_seed_converged(&observe(&sdk).await, &seed, &deployment());
    let all = chain(&cloud);
    let took = |detail_type: &str| {
        let mut who: Vec<_> = all.iter().filter(|(_, _, d)| d == detail_type).cloned().collect();
        who.sort();
        who
    };
    // The person's tag: one invocation, the requester's (the router acts on
    // routing keys alone).
    assert_eq!(took("Tag Change on Resource"), [step("RequesterFunction", SEOUL, "Tag Change on Resource")]);
    assert_eq!(took("Peering Requested"), [step("AccepterFunction", OSAKA, "Peering Requested")]);
    // The acceptance: both routers route; Seoul's requester, whose quota of
    // outstanding requests it freed, requests what waited for room (nothing).
    assert_eq!(
        took("Peering Accepted"),
        [
            step("RequesterFunction", SEOUL, "Peering Accepted"),
            step("RouterFunction", SEOUL, "Peering Accepted"),
            step("RouterFunction", OSAKA, "Peering Accepted")
        ]
    );
    // CloudTrail's records of the person's CreateTags and of the accepter's
    // AcceptVpcPeeringConnection bring nobody: the events above did.
    assert_eq!(took("AWS API Call via CloudTrail"), Vec::<(String, String, String)>::new());
    // In causal order: requested, then accepted, then routed.
    let first = |wanted: (String, String, String)| all.iter().position(|s| s == &wanted).expect("it ran");
    let requested = first(step("RequesterFunction", SEOUL, "Tag Change on Resource"));
    let accepted = first(step("AccepterFunction", OSAKA, "Peering Requested"));
    let routed = first(step("RouterFunction", SEOUL, "Peering Accepted")).min(first(step(
        "RouterFunction",
        OSAKA,
        "Peering Accepted",
    )));
    assert!(requested < accepted && accepted < routed, "{all:#?}");

    // Each function's calls are its own: the requester requested, the accepter accepted, the routers routed.
    let calls = cloud.calls();
    let by = |caller: &str, action: &str| {
        calls.iter().filter(|c| c["caller"] == json!(caller) && c["action"] == json!(action)).count()
    };
    assert_eq!(by(&format!("123456789012-tagpeer-requester-{SEOUL}"), "CreateVpcPeeringConnection"), 1);
    assert_eq!(by(&format!("123456789012-tagpeer-accepter-{OSAKA}"), "AcceptVpcPeeringConnection"), 1);
    assert_eq!(by(&format!("123456789012-tagpeer-router-{SEOUL}"), "CreateRoute"), 2);
    assert_eq!(by(&format!("123456789012-tagpeer-router-{OSAKA}"), "CreateRoute"), 1);
    assert!(calls.iter().all(|c| c["error"].is_null()), "no call failed: {calls:#?}");
    // A step waiting on AWS reads its connection again, nothing else: however
    // long the accepter waited for the request to show in Osaka, and the
    // routers for `provisioning` to pass, no invocation read the VPCs or the
    // route tables more than once a region to plan and three times around its
    // status writes; the waits were polls of the connection by id, so a waiter
    // read connections more often than VPCs (a full read reads both once).
    let mut reads: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for c in calls.iter().filter(|c| c["invocation"].is_string()) {
        let what = ["DescribeVpcs", "DescribeRouteTables", "DescribeVpcPeeringConnections"];
        if let Some(i) = what.iter().position(|a| c["action"] == json!(a)) {
            reads.entry(c["invocation"].as_str().unwrap()).or_default()[i] += 1;
        }
    }
    assert!(reads.values().all(|[vpcs, tables, _]| *vpcs <= 8 && *tables <= 8), "{reads:#?}");
    assert!(reads.values().any(|[vpcs, _, peerings]| peerings > vpcs), "someone waited, by polls: {reads:#?}");

    // tagpeer's own status writes are tag changes too, and trigger nothing.
    let status_changes = cloud
        .events()
        .into_iter()
        .filter(|e| e["detail_type"] == json!("Tag Change on Resource") && e["outcome"] == json!("no rule"))
        .count();
    assert!(status_changes >= 2, "the status writes were seen and matched no rule");

    // The metrics a deployment publishes (README, "Metrics"): every
    // invocation's own EC2 calls as the cloud counted them, how long each
    // side took from the request, and, once a sweep refreshed the gauges,
    // the one link ready, counted in its requester's region only.
    let metrics = cloud.metrics();
    assert_invocations_count_their_calls(&metrics, &cloud.calls());
    let up = datapoints(&metrics, "LinkUpSeconds", &["Region"]);
    let mut sides: Vec<&str> = up.iter().map(|m| m["dimensions"]["Region"].as_str().unwrap()).collect();
    sides.sort_unstable();
    assert_eq!(sides, [SEOUL, OSAKA], "each side once: {up:#?}");
    assert!(up.iter().all(|m| m["value"].as_f64().is_some_and(|s| (0.0..60.0).contains(&s))), "{up:#?}");
    cloud.schedule();
    let metrics = cloud.metrics();
    let gauge = |name, region| last_gauge(&metrics, name, region);
    assert_eq!(gauge("LinksWanted", SEOUL), Some(1.0));
    assert_eq!(gauge("LinksReady", SEOUL), Some(1.0));
    assert_eq!((gauge("LinksPending", SEOUL), gauge("LinksFailing", SEOUL)), (Some(0.0), Some(0.0)));
    assert_eq!(gauge("LinksWanted", OSAKA), Some(0.0), "counted in the requester's region");
    assert_eq!(gauge("PeeringQuotaUsePercent", SEOUL), Some(2.0), "one connection of AWS's 50");
}

/// A failure and a quota near its limit, as the metrics show them: Seoul's
/// VPC in a mesh with two of Osaka's under a quota of 3 peerings a VPC and
/// 5 routes a table, a second Seoul VPC asking for a peer whose range
/// overlaps its own, and EC2 throttling a tenth of the functions' reads.
#[tokio::test]
async fn metrics_show_failing_links_quota_use_and_throttled_calls() {
    let cloud = LocalCloud::start_with(&[
        "--lifecycle",
        TEST_LIFECYCLE,
        "--param",
        "MaxPeeringsPerVpc=3",
        "--param",
        "MaxRoutesPerTable=5",
    ]);
    cloud.faults(&json!({"seed": 14, "errors": [
        {"action": "Describe*", "caller": "functions", "rate": 0.1, "code": "RequestLimitExceeded"}
    ]}));
    let sdk = cloud.sdk_config().await;
    let a = create_vpc(&sdk, SEOUL, "10.1.0.0/16").await;
    let b = create_vpc(&sdk, OSAKA, "10.2.0.0/16").await;
    let c = create_vpc(&sdk, OSAKA, "10.3.0.0/16").await;
    let overlapping = create_vpc(&sdk, SEOUL, "10.2.0.0/16").await;
    for vpc in [&a, &b, &c] {
        tag_vpc(&sdk, vpc, MESH, Some("g")).await;
    }
    tag_vpc(&sdk, &overlapping, PEERS, Some(&format!("{OSAKA}/{}", b.vpc_id))).await;
    cloud.settle();
    cloud.schedule();

    let world = observe(&sdk).await;
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 3, "the mesh, not the overlap");
    let metrics = cloud.metrics();
    assert_invocations_count_their_calls(&metrics, &cloud.calls());
    let throttled: f64 =
        datapoints(&metrics, "Ec2Throttled", &["Region"]).iter().filter_map(|m| m["value"].as_f64()).sum();
    assert!(throttled > 0.0, "a tenth of the reads were throttled, and counted");

    let gauge = |name, region| last_gauge(&metrics, name, region);
    // Seoul requests a-b, a-c and the overlapping one; Osaka b-c.
    assert_eq!(gauge("LinksWanted", SEOUL), Some(3.0));
    assert_eq!((gauge("LinksReady", SEOUL), gauge("LinksFailing", SEOUL)), (Some(2.0), Some(1.0)));
    assert_eq!((gauge("LinksWanted", OSAKA), gauge("LinksReady", OSAKA)), (Some(1.0), Some(1.0)));
    // a and b hold 2 of their 3 connections.
    let two_of_three = 200.0 / 3.0;
    assert!(gauge("PeeringQuotaUsePercent", SEOUL).is_some_and(|p| (p - two_of_three).abs() < 0.01));
    assert!(gauge("PeeringQuotaUsePercent", OSAKA).is_some_and(|p| (p - two_of_three).abs() < 0.01));
    // a's main table: its local route and one to each of b and c: 3 of 5.
    assert_eq!(gauge("RouteQuotaUsePercent", SEOUL), Some(60.0));
    // The sweep published each VPC's and each table's use.
    let of_a: Vec<&Value> = datapoints(&metrics, "PeeringQuotaUsePercent", &["Region", "VpcId"])
        .into_iter()
        .filter(|m| m["dimensions"]["VpcId"] == a.vpc_id.as_str())
        .collect();
    assert!(!of_a.is_empty(), "a's own quota use");
    assert_eq!(
        (of_a[0]["properties"]["Peerings"].as_u64(), of_a[0]["properties"]["Quota"].as_u64()),
        (Some(2), Some(3))
    );
    assert!(!datapoints(&metrics, "RouteQuotaUsePercent", &["Region", "RouteTableId"]).is_empty());
}

#[tokio::test]
async fn a_dropped_event_is_recovered_by_the_schedule() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    // The one event that starts the routers is lost: "Peering Accepted", put
    // on both regions' buses (CloudTrail's record of tagpeer's own
    // acceptance brings no router).
    cloud.faults(&json!({"drop": [{"detail-type": "Peering Accepted", "count": 2}]}));
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&peers_value(&seed))).await;
    cloud.settle();

    let halfway = observe(&sdk).await;
    assert!(routes_via_peering(&halfway, &seed.seoul()).is_empty(), "no router ran");
    assert!(routes_via_peering(&halfway, &seed.osaka()).is_empty(), "no router ran");
    assert!(cloud.events().iter().any(|e| e["outcome"] == json!("dropped")));

    cloud.schedule();
    assert_seed_converged(&observe(&sdk).await, &seed, &deployment());
    // One sweeper (Seoul's router, the schedule's) read both regions, routed
    // Seoul, and woke the one other function with work: Osaka's router.
    let swept: Vec<_> =
        chain(&cloud).into_iter().filter(|(_, _, d)| d == "Scheduled Event" || d == "Sweep Requested").collect();
    assert_eq!(
        swept,
        [step("RouterFunction", SEOUL, "Scheduled Event"), step("RouterFunction", OSAKA, "Sweep Requested")]
    );
}

/// The request's event is lost: the sweeper finds the request on its way to
/// Osaka and wakes Osaka's accepter, which waits for it and accepts; the
/// routers follow by the acceptance's own event.
#[tokio::test]
async fn a_lost_request_event_is_accepted_when_the_sweep_wakes_the_accepter() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    cloud.faults(&json!({"drop": [{"detail-type": "Peering Requested", "count": 2}]}));
    tag_vpc(&sdk, &seed.seoul(), PEERS, Some(&peers_value(&seed))).await;
    cloud.settle();
    let halfway = observe(&sdk).await;
    assert!(halfway.peerings.iter().all(|p| p.state != tagpeer::model::PeeringState::Active), "no accepter ran");

    // At once, while AWS still initiates the request and Osaka does not list
    // it: the accepter has nothing to do yet but wait, which is work too.
    cloud.schedule();
    assert_seed_converged(&observe(&sdk).await, &seed, &deployment());
    let woken: Vec<_> = chain(&cloud).into_iter().filter(|(_, _, d)| d == "Sweep Requested").collect();
    assert!(woken.contains(&step("AccepterFunction", OSAKA, "Sweep Requested")), "{woken:?}");
}

#[tokio::test]
async fn an_event_that_matches_no_rule_does_nothing() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let start = observe(&sdk).await;
    let seed = build_seed(&sdk, "10.0.0.0/16").await;
    tag_vpc(&sdk, &seed.seoul(), "Name", Some("seoul-renamed")).await;
    tag_vpc(&sdk, &seed.seoul(), "tagpeer-status", Some("written by someone else")).await;
    cloud.settle();

    let events = cloud.events();
    let tag_changes: Vec<_> = events.iter().filter(|e| e["detail_type"] == json!("Tag Change on Resource")).collect();
    assert_eq!(tag_changes.len(), 2, "{events:#?}");
    assert!(tag_changes.iter().all(|e| e["outcome"] == json!("no rule")));
    assert!(invocations(&events).is_empty(), "no function ran: {events:#?}");
    assert!(cloud.calls().iter().all(|c| c["caller"] == json!("123456789012-tester")), "every call is the test's own");
    assert_invariants(&sdk, &deployment(), &start).await;
}

#[tokio::test]
async fn one_network_requested_event_builds_seoul_and_the_peering_with_osaka_follows() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let osaka_vpc = default_vpc(&sdk, OSAKA).await;
    let detail = json!({"region": SEOUL, "name": "seoul", "subnets": 2, "peers": [format!("{OSAKA}/{osaka_vpc}")]});
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    request_network(&events, &detail).await;
    cloud.settle();

    let world = observe(&sdk).await;
    let seoul = world
        .vpcs
        .iter()
        .find(|v| {
            v.endpoint.region.as_str() == SEOUL && v.tags.get("tagpeer-network").map(String::as_str) == Some("seoul")
        })
        .expect("the network was built");
    assert_eq!(seoul.ipv4.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/16"]);
    let pcx = world.peerings.iter().find(|p| p.state.is_live()).expect("a peering connection");
    let status = seoul.tags.get("tagpeer-status").cloned().unwrap_or_default();
    assert_eq!(status, format!("{OSAKA}/{osaka_vpc}: ready via {}", pcx.id));
    // The network's own table routes 0.0.0.0/0 to its gateway and 172.31.0.0/16 to Osaka.
    let tables: Vec<_> = world.route_tables_of(&seoul.endpoint).collect();
    assert!(tables.iter().any(|t| {
        let dests: Vec<String> = t.routes.iter().map(|r| r.destination.to_string()).collect();
        dests.contains(&"0.0.0.0/0".to_owned()) && dests.contains(&"172.31.0.0/16".to_owned())
    }));
    assert_eq!(tagpeer::invariants::violations(&world, &deployment()), Vec::<String>::new());

    // The chain: provisioner, then the requester on the intent it wrote, then the rest.
    let steps = chain(&cloud);
    assert_eq!(steps[0], step("ProvisionerFunction", SEOUL, "Network Requested"));
    assert!(steps.contains(&step("RequesterFunction", SEOUL, "Tag Change on Resource")), "{steps:?}");
    assert!(steps.contains(&step("AccepterFunction", OSAKA, "Peering Requested")), "{steps:?}");

    // The same request again builds nothing new.
    let before = observe(&sdk).await;
    request_network(&events, &detail).await;
    cloud.settle();
    let after = observe(&sdk).await;
    assert_eq!(canonical(&after), canonical(&before));

    // The provisioner publishes its calls too, both times.
    let metrics = cloud.metrics();
    assert_invocations_count_their_calls(&metrics, &cloud.calls());
    let built = datapoints(&metrics, "Ec2Calls", &["Region", "Function"]);
    let provisioner: Vec<_> = built.iter().filter(|m| m["dimensions"]["Function"] == "provisioner").collect();
    assert_eq!(provisioner.len(), 2, "{built:#?}");
    assert!(provisioner[0]["value"].as_f64() > provisioner[1]["value"].as_f64(), "the second builds nothing");
}

/// A person asks for a network: one "Network Requested" event on the region's bus.
async fn request_network(events: &aws_sdk_eventbridge::Client, detail: &serde_json::Value) {
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("tagpeer")
        .detail_type("Network Requested")
        .detail(detail.to_string())
        .build();
    let put = events.put_events().entries(entry).send().await.expect("PutEvents");
    assert_eq!(put.failed_entry_count(), 0);
}

/// The in-process tests route tagpeer's events by hand ([`route`]); this
/// proves that routing is the functions' and the template's. Every event
/// tagpeer sends, sent from either region as a function sends it (on the bus
/// of each region [`Outgoing::destinations`] names, through the functions'
/// own sink), reaches exactly the functions `route` names, and no other.
#[tokio::test]
async fn the_in_process_routing_is_the_templates() {
    use std::collections::BTreeSet;
    use tagpeer::aws::EventBridge;
    use tagpeer::events::{
        Detail, LinkDetail, OutcomeDetail, Outgoing, PeeringDetail, LINK_FAILED, LINK_READY, LINK_REMOVED, LINK_WANTED,
        PEERING_ACCEPTED, PEERING_REQUESTED,
    };
    use tagpeer::model::LinkKey;
    use tagpeer::ports::EventSink;

    let local = LocalCloud::start();
    let sdk = local.sdk_config().await;
    let function = |role: Role| format!("{}Function", [&role.name()[..1].to_uppercase(), &role.name()[1..]].concat());
    let (seoul, osaka) = (endpoint(SEOUL, "vpc-0000000a"), endpoint(OSAKA, "vpc-0000000b"));
    let regions: Vec<tagpeer::ids::Region> = [SEOUL, OSAKA].map(|r| r.parse().unwrap()).to_vec();
    let deployment = tagpeer::plan::Deployment::new(seoul.account.clone(), regions.clone());
    let sink = EventBridge::new(&sdk, "default".into(), &regions);
    let mut checked = 0;
    for (requester, accepter) in [(&seoul, &osaka), (&osaka, &seoul)] {
        let link = LinkKey::new(requester.clone(), accepter.clone()).to_string();
        let pcx: tagpeer::ids::PeeringId = "pcx-0000abcd".parse().unwrap();
        let peering = Detail::Peering(PeeringDetail {
            link: link.clone(),
            peering_connection_id: pcx.clone(),
            requester: requester.clone(),
            accepter: accepter.clone(),
        });
        let outcome = |step: &str| {
            Detail::Outcome(OutcomeDetail {
                link: link.clone(),
                requester: requester.clone(),
                accepter: accepter.clone(),
                side: accepter.clone(),
                peering_connection_id: Some(pcx.clone()),
                step: step.to_owned(),
                error_code: None,
                message: None,
            })
        };
        let sent = [
            Outgoing { detail_type: PEERING_REQUESTED, detail: peering.clone() },
            Outgoing { detail_type: PEERING_ACCEPTED, detail: peering.clone() },
            Outgoing {
                detail_type: LINK_WANTED,
                detail: Detail::Link(LinkDetail {
                    link: link.clone(),
                    requester: requester.clone(),
                    accepter: accepter.clone(),
                }),
            },
            Outgoing { detail_type: LINK_READY, detail: outcome("ready") },
            Outgoing { detail_type: LINK_FAILED, detail: outcome("CreateRoute") },
            Outgoing { detail_type: LINK_REMOVED, detail: outcome("DeleteVpcPeeringConnection") },
        ];
        for from in [SEOUL, OSAKA] {
            let region: tagpeer::ids::Region = from.parse().unwrap();
            for out in &sent {
                let before = local.events().len();
                for bus in out.destinations(&region, &deployment) {
                    sink.send(&bus, std::slice::from_ref(out)).await.expect("PutEvents");
                }
                local.settle();
                let delivered: BTreeSet<(String, String)> = invocations(&local.events()[before..])
                    .into_iter()
                    .filter(|(_, _, detail_type, _)| detail_type == out.detail_type)
                    .map(|(f, r, _, _)| (f, r))
                    .collect();
                let routed: BTreeSet<(String, String)> =
                    route(out, &region).into_iter().map(|d| (function(d.role), d.region)).collect();
                assert_eq!(delivered, routed, "{} from {from} ({requester} requests)", out.detail_type);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}
