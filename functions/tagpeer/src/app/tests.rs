//! The handler's failure, retry and status logic over in-memory ports: a
//! world that changes by the actions performed on it, AWS's intermediate
//! states passing one read later, and a list for the events. No AWS, no moto.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::events::{Outgoing, LINK_READY, PEERING_ACCEPTED, PEERING_REQUESTED};
use crate::ids::{Endpoint, PeeringId, Region};
use crate::intent::{PEERS, STATUS};
use crate::model::{Peering, PeeringState};
use crate::plan::Deployment;
use tagpeer_core::testing::{deployment, osaka, seoul, WorldBuilder, OSAKA, SEOUL};

/// An in-memory cloud: each read shows what the actions left, and moves a
/// connection on from `initiating-request` or `provisioning` when `settles`.
struct MemoryCloud {
    world: Mutex<World>,
    /// Whether AWS finishes its intermediate states between two reads.
    settles: bool,
    /// API actions that fail, with the error code they fail with.
    failing: Vec<(&'static str, &'static str)>,
    calls: Mutex<Vec<&'static str>>,
    next_id: Mutex<u32>,
}

impl MemoryCloud {
    fn new(world: World) -> Self {
        Self {
            world: Mutex::new(world),
            settles: true,
            failing: vec![],
            calls: Mutex::default(),
            next_id: Mutex::new(0),
        }
    }

    fn world(&self) -> World {
        self.world.lock().unwrap().clone()
    }

    fn made(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

impl Cloud for MemoryCloud {
    async fn observe(&self, _: &Deployment, _: &[Endpoint]) -> Result<World, AwsError> {
        self.calls.lock().unwrap().push("Describe");
        let mut world = self.world.lock().unwrap();
        let seen = world.clone();
        if self.settles {
            world.settle();
        }
        Ok(seen)
    }

    async fn perform(&self, action: &Action) -> Result<Option<PeeringId>, AwsError> {
        let name = action.api_name();
        self.calls.lock().unwrap().push(name);
        if let Some((_, code)) = self.failing.iter().find(|(a, _)| *a == name) {
            let region = action.subject().region.to_string();
            return Err(AwsError { action: name, region, code: (*code).into(), message: "refused".into() });
        }
        let created = matches!(action, Action::RequestPeering { .. }).then(|| {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            format!("pcx-{:08x}", *next).parse().unwrap()
        });
        action.take_effect(&mut self.world.lock().unwrap(), created.as_ref());
        Ok(created)
    }

    fn calls(&self) -> crate::ports::Calls {
        crate::ports::Calls { sent: self.calls.lock().unwrap().len() as u64, throttled: 0 }
    }
}

/// The events sent, in order, each with the region whose bus took it.
#[derive(Default)]
struct Outbox(Mutex<Vec<(Region, Outgoing)>>);

impl EventSink for Outbox {
    async fn send(&self, region: &Region, events: &[Outgoing]) -> Result<(), AwsError> {
        self.0.lock().unwrap().extend(events.iter().map(|e| (region.clone(), e.clone())));
        Ok(())
    }
}

impl Outbox {
    /// The events sent, once each: as this function's own region's bus took them.
    fn sent(&self, own: &str) -> Vec<Outgoing> {
        self.0.lock().unwrap().iter().filter(|(r, _)| r.as_str() == own).map(|(_, e)| e.clone()).collect()
    }
}

fn app(role: Role, region: &str, cloud: MemoryCloud) -> App<MemoryCloud, Outbox> {
    let config = Config {
        role,
        region: region.parse().unwrap(),
        deployment: deployment(),
        event_bus: "default".into(),
        reader_role: None,
        wait: Duration::from_millis(600),
    };
    App::with_ports(config, cloud, Outbox::default())
}

/// Seoul asks for Osaka, as the seed's tag does.
fn seed() -> World {
    let peers = format!("{OSAKA}/vpc-0000000b");
    WorldBuilder::default().vpc(&seoul(), "10.0.0.0/16", &[(PEERS, &peers)]).vpc(&osaka(), "172.31.0.0/16", &[]).build()
}

fn tag_change(vpc: &Endpoint) -> Value {
    json!({
        "version": "0", "id": "11111111-2222-3333-4444-555555555555", "detail-type": "Tag Change on Resource",
        "source": "aws.tag", "account": vpc.account.as_str(), "time": "2026-12-01T00:00:00Z",
        "region": vpc.region.as_str(),
        "resources": [format!("arn:aws:ec2:{}:{}:vpc/{}", vpc.region, vpc.account, vpc.vpc_id)],
        "detail": {"changed-tag-keys": [PEERS], "service": "ec2", "resource-type": "vpc", "version": 1, "tags": {}}
    })
}

fn sweep() -> Value {
    json!({
        "version": "0", "id": "11111111-2222-3333-4444-555555555556", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-12-01T00:00:00Z",
        "region": SEOUL, "resources": [], "detail": {}
    })
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).and_then(|v| v.tags.get(STATUS)).cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_tag_change_requests_writes_the_status_and_hands_over_to_the_accepter() {
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    let report = requester.handle(&tag_change(&seoul())).await.expect("handled");
    let world = requester.cloud.world();
    assert_eq!(world.peerings.len(), 1, "one request");
    assert!(status(&world, &seoul()).ends_with("requesting") || status(&world, &seoul()).contains("pending"));
    // On Seoul's bus, for people, and on Osaka's, whose accepter takes it.
    let sent = requester.events.0.lock().unwrap();
    let buses: Vec<(&str, &str)> = sent.iter().map(|(r, e)| (r.as_str(), e.detail_type)).collect();
    assert_eq!(buses, [(SEOUL, PEERING_REQUESTED), (OSAKA, PEERING_REQUESTED)]);
    assert_eq!(report.failed(), 0);
    assert!(report.changes.iter().any(|c| c.action == "CreateVpcPeeringConnection"));
}

#[tokio::test]
async fn the_roles_in_turn_bring_the_link_up_and_both_statuses_say_ready() {
    let cloud = MemoryCloud::new(seed());
    let requester = app(Role::Requester, SEOUL, cloud);
    requester.handle(&tag_change(&seoul())).await.expect("requested");
    let handoff = |app: &App<MemoryCloud, Outbox>, kind: &str| {
        let sent = app.events.sent(&app.config.region.to_string());
        let e = sent.iter().find(|e| e.detail_type == kind).expect("handed over");
        json!({
            "version": "0", "id": "11111111-2222-3333-4444-555555555557", "detail-type": e.detail_type,
            "source": "tagpeer", "account": "123456789012", "time": "2026-12-01T00:00:00Z",
            "region": SEOUL, "resources": [], "detail": serde_json::to_value(&e.detail).unwrap()
        })
    };
    let requested = handoff(&requester, PEERING_REQUESTED);
    // AWS has not finished the request yet when the accepter hears of it.
    let mut world = requester.cloud.world();
    world.peerings[0].state = PeeringState::InitiatingRequest;
    let accepter = app(Role::Accepter, OSAKA, MemoryCloud::new(world));
    accepter.handle(&requested).await.expect("accepted after waiting for initiating-request to pass");
    assert!(accepter.cloud.made().contains(&"AcceptVpcPeeringConnection"));
    let accepted = handoff(&accepter, PEERING_ACCEPTED);
    // Nor has it finished the acceptance when the routers hear of it.
    let mut world = accepter.cloud.world();
    world.peerings[0].state = PeeringState::Provisioning;
    for region in [SEOUL, OSAKA] {
        let router = app(Role::Router, region, MemoryCloud::new(world));
        router.handle(&accepted).await.expect("routed after waiting for provisioning to pass");
        let sent = router.events.sent(region);
        assert!(sent.iter().any(|e| e.detail_type == LINK_READY), "Link Ready in {region}");
        world = router.cloud.world();
    }
    let pcx = &world.peerings[0].id;
    assert_eq!(status(&world, &seoul()), format!("{OSAKA}/vpc-0000000b: ready via {pcx}"));
    assert_eq!(status(&world, &osaka()), format!("{SEOUL}/vpc-0000000a: ready via {pcx}"));
    assert!(tagpeer_core::invariants::violations(&world, &deployment()).is_empty());
}

#[tokio::test]
async fn a_failed_step_stops_its_link_says_so_in_the_status_and_is_the_invocations_error() {
    // Active, with no routes yet: the router's two CreateRoutes in Seoul.
    let mut world = seed();
    let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
    let key = LinkKey::new(seoul(), osaka());
    world.peerings.push(Peering {
        id: pcx.clone(),
        requester: seoul(),
        accepter: osaka(),
        state: PeeringState::Active,
        tags: [
            (crate::intent::MANAGED.to_owned(), "true".to_owned()),
            (crate::intent::LINK.to_owned(), key.to_string()),
        ]
        .into(),
        dns: Default::default(),
        hidden_from_accepter: false,
    });
    let mut cloud = MemoryCloud::new(world);
    cloud.failing = vec![("CreateRoute", "RequestLimitExceeded")];
    let router = app(Role::Router, SEOUL, cloud);
    let error = router.handle(&sweep()).await.expect_err("a failed call is the invocation's error");
    assert!(matches!(error, HandlerError::Apply { failed: 1, .. }), "{error}");
    let calls = router.cloud.made();
    assert_eq!(calls.iter().filter(|c| **c == "CreateRoute").count(), 1, "the link's later steps wait: {calls:?}");
    let s = status(&router.cloud.world(), &seoul());
    assert!(s.contains("last step failed: CreateRoute in ap-northeast-2 failed: RequestLimitExceeded"), "{s}");
    let sent = router.events.sent(SEOUL);
    assert!(sent.iter().any(|e| e.detail_type == "Link Failed"));
}

#[tokio::test]
async fn a_connection_that_stays_initiating_is_waited_on_then_handed_back_as_still_waiting() {
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    requester.handle(&tag_change(&seoul())).await.expect("requested");
    let mut world = requester.cloud.world();
    world.peerings[0].state = PeeringState::InitiatingRequest;
    let mut cloud = MemoryCloud::new(world);
    cloud.settles = false;
    let accepter = app(Role::Accepter, OSAKA, cloud);
    let error = accepter.handle(&sweep()).await.expect_err("AWS never finished");
    assert!(matches!(&error, HandlerError::StillWaiting(w) if w.contains("initiating-request")), "{error}");
    let reads = accepter.cloud.made().iter().filter(|c| **c == "Describe").count();
    assert!(reads >= 3, "it read again while it waited: {reads}");
    assert!(!accepter.cloud.made().contains(&"AcceptVpcPeeringConnection"), "nothing accepted before it can be");
}

#[tokio::test]
async fn bad_input_changes_nothing_and_an_unrelated_tag_change_is_ignored() {
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    let error = requester.handle(&json!({"source": "aws.tag"})).await.expect_err("not an event");
    assert!(matches!(error, HandlerError::Event(_)), "{error}");
    let mut unrelated = tag_change(&seoul());
    unrelated["detail"]["changed-tag-keys"] = json!(["Name"]);
    let report = requester.handle(&unrelated).await.expect("ignored");
    assert!(report.ignored.is_some());
    assert!(requester.cloud.made().is_empty(), "no call at all: {:?}", requester.cloud.made());
}

#[tokio::test]
async fn a_malformed_tag_is_an_error_status_logged_as_a_warning_with_no_other_change() {
    let world = WorldBuilder::default().vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "osaka")]).build();
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(world));
    let report = requester.handle(&tag_change(&seoul())).await.expect("handled");
    assert_eq!(report.changes.len(), 1, "the status alone: {:?}", report.changes);
    assert!(report.changes[0].reports_error, "logged as a warning");
    assert!(status(&requester.cloud.world(), &seoul()).starts_with("error: tagpeer:peers"));
}

#[test]
fn a_failed_step_says_which_link_side_step_and_error() {
    let key = LinkKey::new(seoul(), osaka());
    let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
    let world = World {
        peerings: vec![Peering {
            id: pcx.clone(),
            requester: seoul(),
            accepter: osaka(),
            state: PeeringState::PendingAcceptance,
            tags: Default::default(),
            dns: Default::default(),
            hidden_from_accepter: false,
        }],
        ..World::default()
    };
    let accept = Action::AcceptPeering { link: key.clone(), region: osaka().region, peering: pcx.clone() };
    let error = AwsError {
        action: "AcceptVpcPeeringConnection",
        region: OSAKA.into(),
        code: "RequestLimitExceeded".into(),
        message: "Request limit exceeded.".into(),
    };
    let deployment = Deployment::new(osaka().account, vec![osaka().region]);
    let event = outcome::of_step(&world, &plan::assess(&world, &deployment), &accept, LINK_FAILED, None, Some(&error));
    assert_eq!(event.detail_type, "Link Failed");
    let detail = serde_json::to_value(&event.detail).unwrap();
    assert_eq!(detail["link"], json!(key.to_string()));
    assert_eq!(detail["side"], serde_json::to_value(osaka()).unwrap(), "the accepter's side failed");
    assert_eq!(detail["requester"], serde_json::to_value(seoul()).unwrap());
    assert_eq!(detail["step"], "AcceptVpcPeeringConnection");
    assert_eq!(detail["error-code"], "RequestLimitExceeded");
    assert_eq!(detail["message"], "Request limit exceeded.");
    assert!(detail.get("peering-connection-id").is_none());
}

/// The metrics line of `lines` that carries `metric`.
fn line_with<'l>(lines: &'l [Value], metric: &str) -> &'l Value {
    lines.iter().find(|l| l.get(metric).is_some()).unwrap_or_else(|| panic!("no {metric} in {lines:#?}"))
}

#[tokio::test]
async fn every_invocation_publishes_its_calls_errors_and_changes_and_the_router_its_regions_links() {
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    let (answer, lines) = requester.invoke(&tag_change(&seoul())).await;
    answer.expect("requested");
    let own = &lines[0];
    assert_eq!((own["Function"].as_str(), own["Region"].as_str()), (Some("requester"), Some(SEOUL)));
    assert_eq!(own["Ec2Calls"], json!(requester.cloud.made().len() as f64), "every call counted");
    assert_eq!((own["Errors"].as_f64(), own["Changes"].as_f64()), (Some(0.0), Some(2.0)), "the request and a status");
    assert!(lines.iter().all(|l| l.get("LinksWanted").is_none()), "only the router publishes the region's links");

    let mut cloud = MemoryCloud::new(requester.cloud.world());
    cloud.failing = vec![("CreateRoute", "RequestLimitExceeded")];
    cloud.world.lock().unwrap().settle();
    cloud.world.lock().unwrap().peerings[0].state = PeeringState::Active;
    let router = app(Role::Router, SEOUL, cloud);
    let (answer, lines) = router.invoke(&sweep()).await;
    answer.expect_err("the route failed");
    assert_eq!(lines[0]["Errors"], 1.0);
    let gauges = line_with(&lines, "LinksWanted");
    let counts: Vec<f64> = ["LinksWanted", "LinksReady", "LinksPending", "LinksFailing"]
        .iter()
        .map(|m| gauges[m].as_f64().unwrap())
        .collect();
    assert_eq!(counts, [1.0, 0.0, 1.0, 0.0], "the seed's link, its routes missing");
    assert_eq!(gauges["PeeringQuotaUsePercent"], 2.0, "one connection of 50");
    let vpc = line_with(&lines, "Peerings");
    assert_eq!((vpc["VpcId"].as_str(), vpc["Quota"].as_u64()), (Some("vpc-0000000a"), Some(50)), "a sweep: per VPC");
}

#[tokio::test]
async fn the_side_that_turns_ready_publishes_how_long_it_took_since_the_request() {
    let mut world = seed();
    world.observed_at = 1_000;
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(world));
    requester.handle(&tag_change(&seoul())).await.expect("requested");
    let mut world = requester.cloud.world();
    world.peerings[0].state = PeeringState::Active;
    world.observed_at = 1_042;
    let router = app(Role::Router, SEOUL, MemoryCloud::new(world));
    let (answer, lines) = router.invoke(&sweep()).await;
    answer.expect("routed");
    let up = line_with(&lines, "LinkUpSeconds");
    assert_eq!(up["LinkUpSeconds"], 42.0);
    assert_eq!(up["VpcId"], "vpc-0000000a");
    assert_eq!(line_with(&lines, "LinksReady")["LinksReady"], 0.0, "Osaka's side has no routes yet");
}

/// Lambda's batch of SQS messages, each body one of `events`.
fn queue_batch(events: &[Value]) -> Value {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            json!({
                "messageId": format!("00000000-0000-0000-0000-{i:012}"), "receiptHandle": format!("handle-{i}"),
                "body": event.to_string(), "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": SEOUL,
                "eventSourceARN": format!("arn:aws:sqs:{SEOUL}:123456789012:tagpeer-RequesterQueue"),
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Three VPCs in Seoul each asking for Osaka's, tagged one after another.
fn three_asking() -> World {
    let peers = format!("{OSAKA}/vpc-0000000b");
    let mut b = WorldBuilder::default().vpc(&osaka(), "172.31.0.0/16", &[]);
    for (i, vpc) in ["vpc-0000000a", "vpc-0000000c", "vpc-0000000d"].iter().enumerate() {
        let vpc = tagpeer_core::testing::ep(SEOUL, vpc);
        b = b.vpc(&vpc, &format!("10.{i}.0.0/16"), &[(PEERS, &peers)]);
    }
    b.build()
}

#[tokio::test]
async fn a_batch_of_changes_is_read_and_planned_once_and_does_each_of_them() {
    let world = three_asking();
    let vpcs: Vec<Endpoint> =
        world.vpcs.iter().map(|v| v.endpoint.clone()).filter(|v| v.region.as_str() == SEOUL).collect();
    let mut events: Vec<Value> = vpcs.iter().map(tag_change).collect();
    events.push(tag_change(&vpcs[0])); // EventBridge and SQS deliver at least once
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(world));
    let (answer, lines) = requester.invoke(&queue_batch(&events)).await;
    let report = answer.expect("handled");
    assert_eq!(report.trigger, crate::events::TAG_CHANGE, "one kind of event: its name");
    let made = requester.cloud.made();
    let requests = made.iter().filter(|c| **c == "CreateVpcPeeringConnection").count();
    assert_eq!(requests, 3, "each VPC's link requested, the doubled one once: {made:?}");
    // One read before acting, one to check the statuses written: not one per event.
    assert_eq!(made.iter().filter(|c| **c == "Describe").count(), 2, "{made:?}");
    assert_eq!(line_with(&lines, "Errors")["Errors"], 0.0);
    let world = requester.cloud.world();
    for vpc in &vpcs {
        assert!(!status(&world, vpc).is_empty(), "{vpc} has its status");
    }
}

#[tokio::test]
async fn a_message_that_holds_no_event_is_counted_and_the_rest_of_its_batch_is_handled() {
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    let mut batch = queue_batch(&[tag_change(&seoul()), tag_change(&seoul())]);
    batch["Records"][0]["body"] = json!("{not an event");
    let (answer, lines) = requester.invoke(&batch).await;
    answer.expect("the readable event is handled");
    assert_eq!(requester.cloud.world().peerings.len(), 1, "its link requested");
    assert_eq!(line_with(&lines, "Errors")["Errors"], 1.0, "the unreadable message is an error of the invocation's");

    // Nothing readable at all: the invocation's error, so that the queue
    // hands it back and, after its last try, to the dead-letter queue.
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    batch["Records"][1]["body"] = json!("[]");
    let (answer, _) = requester.invoke(&batch).await;
    assert!(matches!(answer, Err(HandlerError::Event(_))), "{answer:?}");
    assert!(requester.cloud.made().is_empty(), "nothing read, nothing changed");
}

#[tokio::test]
async fn a_batch_with_a_sweep_sweeps_and_one_of_several_kinds_is_named_a_batch() {
    let world = three_asking();
    let requester = app(Role::Requester, SEOUL, MemoryCloud::new(world));
    let (answer, _) = requester.invoke(&queue_batch(&[tag_change(&seoul()), sweep()])).await;
    let report = answer.expect("handled");
    assert_eq!(report.trigger, BATCH);
    let requests = requester.cloud.made().iter().filter(|c| **c == "CreateVpcPeeringConnection").count();
    assert_eq!(requests, 3, "the sweep in the batch takes in the links no tag change named");
}

#[tokio::test]
async fn a_consent_change_delivered_twice_in_a_batch_is_told_to_the_other_accounts_once() {
    let mut accept_changed = tag_change(&seoul());
    accept_changed["detail"]["changed-tag-keys"] = json!([crate::intent::ACCEPT]);
    let mut requester = app(Role::Requester, SEOUL, MemoryCloud::new(seed()));
    requester.config.deployment.allowed_accounts = vec!["222222222222".parse().unwrap()];
    let (answer, _) = requester.invoke(&queue_batch(&[accept_changed.clone(), accept_changed])).await;
    answer.expect("handled");
    let told = requester.events.sent(SEOUL).iter().filter(|e| e.detail_type == crate::events::CONSENT_CHANGED).count();
    assert_eq!(told, 1);
}
