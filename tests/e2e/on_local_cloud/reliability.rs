//! Reliability on the local cloud: the workflow stopped after every one of its
//! mutating calls, its events lost, doubled and shuffled, its EC2 calls failed
//! and throttled. Each run ends with the faults off, the remaining events and
//! one sweep; then the invariants hold and the deployment is the one a run
//! without faults builds. Every run writes a row for `make reliability`.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};
use tagpeer::ids::Endpoint;
use tagpeer::intent::{MESH, PEERS};
use tagpeer::model::{Target, World};
use tagpeer_tests::local::LocalCloud;
use tagpeer_tests::reliability::{record, Row};
use tagpeer_tests::*;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// Seoul 10.0.0.0/16 built as the seed builds it, Osaka's default VPC, `tagpeer:peers` on Seoul.
    Seed,
    /// Two VPCs in Seoul and one in Osaka, all `tagpeer:mesh = prod`: three links.
    Mesh,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Seed => "seed",
            Scenario::Mesh => "3-VPC mesh",
        }
    }

    /// Builds the networks; returns the tags a person then writes, in order.
    async fn build(self, sdk: &SdkConfig) -> Vec<(Endpoint, &'static str, String)> {
        match self {
            Scenario::Seed => {
                let seed = build_seed(sdk, "10.0.0.0/16").await;
                vec![(seed.seoul(), PEERS, format!("{OSAKA}/{}", seed.osaka_vpc))]
            }
            Scenario::Mesh => {
                let mut tags = Vec::new();
                for (region, cidr, name) in [
                    (SEOUL, "10.0.0.0/16", "mesh-a"),
                    (SEOUL, "10.1.0.0/16", "mesh-b"),
                    (OSAKA, "10.2.0.0/16", "mesh-c"),
                ] {
                    tags.push((vpc(sdk, region, cidr, name).await, MESH, "prod".to_owned()));
                }
                tags
            }
        }
    }
}

/// A VPC with a name, in a region.
async fn vpc(sdk: &SdkConfig, region: &str, cidr: &str, name: &str) -> Endpoint {
    let out = ec2(sdk, region)
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key("Name").value(name).build())
                .build(),
        )
        .send()
        .await
        .expect("CreateVpc");
    endpoint(region, out.vpc().and_then(|v| v.vpc_id()).expect("a VPC id"))
}

/// The deployment with every id replaced by a name that does not change from
/// one run to the next: a VPC by its region and range, a route table by its
/// VPC (and `main`), a connection by the VPCs it joins, a gateway by its kind.
/// Connections that ended (deleted, rejected…) are history, not state, and
/// are left out; `tagpeer-requested-at` (a clock reading) too. Between two
/// VPCs of one region the requester is the one with the smaller id, which
/// changes from run to run: so a connection is named by its two VPCs in order
/// of name, and lists in tags whose order follows the ids (a status's parts,
/// a link's two ends) are sorted.
fn normalized(world: &World) -> String {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for v in &world.vpcs {
        let range = v.ipv4.first().map(ToString::to_string).unwrap_or_default();
        names.insert(v.endpoint.vpc_id.to_string(), format!("<{}:{range}>", v.endpoint.region));
    }
    let name_of = |names: &BTreeMap<String, String>, e: &Endpoint| {
        names.get(e.vpc_id.as_str()).cloned().unwrap_or_else(|| format!("<{}:?>", e.region))
    };
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    for p in &live {
        let mut ends = [name_of(&names, &p.requester), name_of(&names, &p.accepter)];
        ends.sort();
        let name = format!("<pcx {}+{}>", ends[0], ends[1]);
        names.insert(p.id.to_string(), name);
    }
    let clean = |text: &str| -> String {
        let mut text = text.to_owned();
        for (id, name) in &names {
            text = text.replace(id, name);
        }
        // Anything else with an id (a gateway, a connection that ended): its kind only.
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = ["pcx-", "igw-", "vpc-", "rtb-", "subnet-"].iter().filter_map(|k| rest.find(k)).min() {
            let dash = at + rest[at..].find('-').unwrap_or(0) + 1;
            let end = rest[dash..].find(|c: char| !c.is_ascii_hexdigit()).map_or(rest.len(), |n| dash + n);
            out.push_str(&rest[..dash]);
            out.push('?');
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    };
    let mut lines = Vec::new();
    for v in &world.vpcs {
        let tags: Vec<String> = v.tags.iter().map(|(k, val)| format!("{k}={}", sorted(&clean(val), "; "))).collect();
        lines.push(format!("vpc {} {:?} {:?} [{}]", name_of(&names, &v.endpoint), v.ipv4, v.ipv6, tags.join(", ")));
    }
    for t in &world.route_tables {
        let mut routes: Vec<String> = t
            .routes
            .iter()
            .map(|r| {
                let target = match &r.target {
                    Target::Local => "local".to_owned(),
                    Target::Peering(p) => clean(p.as_str()),
                    Target::Other(id) => clean(id),
                };
                format!("{} -> {target}", r.destination)
            })
            .collect();
        routes.sort();
        let kind = if t.main { "main" } else { "table" };
        lines.push(format!("rtb {} {kind} [{}]", name_of(&names, &t.vpc), routes.join(", ")));
    }
    for p in &live {
        let tags: Vec<String> = p
            .tags
            .iter()
            .filter(|(k, _)| k.as_str() != tagpeer::intent::REQUESTED_AT)
            .map(|(k, v)| match k.as_str() {
                tagpeer::intent::LINK => format!("{k}={}", sorted(&clean(v), "+")),
                "Name" => format!("{k}={}", sorted(&clean(v), " ")),
                _ => format!("{k}={}", clean(v)),
            })
            .collect();
        // Each side's DNS option, by the side's name.
        let mut dns = [
            format!("{}={}", name_of(&names, &p.requester), p.dns.requester),
            format!("{}={}", name_of(&names, &p.accepter), p.dns.accepter),
        ];
        dns.sort();
        lines.push(format!("{} {} dns {dns:?} [{}]", clean(p.id.as_str()), p.state.code(), tags.join(", ")));
    }
    lines.sort();
    lines.join("\n")
}

/// `text`'s parts between `separator`s, sorted.
fn sorted(text: &str, separator: &str) -> String {
    let mut parts: Vec<&str> = text.split(separator).collect();
    parts.sort_unstable();
    parts.join(separator)
}

/// The successful mutating calls the functions made, in order: "Action region".
fn mutating_calls(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c["caller"].as_str().is_some_and(|k| k.contains("-tagpeer-")))
        .filter(|c| c["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
        .filter(|c| {
            let action = c["action"].as_str().unwrap_or_default();
            !["Describe", "Get", "List", "Search"].iter().any(|p| action.starts_with(p))
        })
        .map(|c| format!("{} {}", c["action"].as_str().unwrap_or_default(), c["region"].as_str().unwrap_or_default()))
        .collect()
}

/// What a run ended in.
struct End {
    world: World,
    /// GET /_local/faults before the faults were turned off.
    faults: Value,
    /// The functions' successful mutating calls before the faults were turned off.
    calls: Vec<String>,
}

/// Builds the scenario on an empty cloud, turns `faults` on, writes the tags,
/// lets the events settle; then `recovery` faults (none: `{}`), the remaining
/// events, one sweep.
async fn run(cloud: &LocalCloud, sdk: &SdkConfig, scenario: Scenario, faults: &Value, recovery: &Value) -> End {
    cloud.reset();
    let tags = scenario.build(sdk).await;
    cloud.faults(faults);
    for (vpc, key, value) in &tags {
        tag_vpc(sdk, vpc, key, Some(value)).await;
    }
    cloud.settle();
    let state = cloud.get_faults();
    let calls = mutating_calls(&cloud.calls());
    cloud.faults(recovery);
    cloud.settle();
    cloud.schedule();
    cloud.faults(&json!({}));
    End { world: observe(sdk).await, faults: state, calls }
}

/// The clean run: its final state, and its mutating calls.
async fn baseline(cloud: &LocalCloud, sdk: &SdkConfig, scenario: Scenario) -> (String, Vec<String>) {
    let end = run(cloud, sdk, scenario, &json!({}), &json!({})).await;
    let violations = tagpeer::invariants::violations(&end.world, &deployment());
    let n = end.faults["counters"]["mutating_calls"].as_u64().unwrap_or_default() as usize;
    assert_eq!(n, end.calls.len(), "the cloud and the record agree: {:?}", end.calls);
    record(
        "scenario",
        &Row {
            kind: "scenario",
            name: scenario.name().to_owned(),
            faults: "none".to_owned(),
            outcome: format!("converged, {n} mutating calls"),
            violations: violations.len(),
        },
    );
    assert_eq!(violations, Vec::<String>::new(), "the clean run of the {} holds the invariants", scenario.name());
    (normalized(&end.world), end.calls)
}

/// One run with faults: the invariants, the same end as the clean run, and a row.
fn judge(
    kind: &'static str,
    scenario: Scenario,
    faults: String,
    end: &End,
    expected: &str,
    failures: &mut Vec<String>,
) {
    let violations = tagpeer::invariants::violations(&end.world, &deployment());
    let same = normalized(&end.world) == expected;
    let ended = end.world.peerings.iter().filter(|p| !p.state.is_live()).count();
    let outcome = match (violations.is_empty(), same) {
        (true, true) if ended == 0 => "converged".to_owned(),
        (true, true) => format!("converged ({ended} ended connection(s) left as history)"),
        (true, false) => "invariants hold, but the end differs from the clean run's".to_owned(),
        (false, _) => format!("violations: {}", violations.join("; ")),
    };
    record(
        kind,
        &Row {
            kind,
            name: scenario.name().to_owned(),
            faults: faults.clone(),
            outcome: outcome.clone(),
            violations: violations.len(),
        },
    );
    if !violations.is_empty() || !same {
        failures.push(format!(
            "{} with {faults}: {outcome}\n--- expected\n{expected}\n--- got\n{}",
            scenario.name(),
            normalized(&end.world)
        ));
    }
}

/// Stops the workflow after each of its mutating calls in turn: of the
/// clean run's `n`, those `k` with `k % parts == part` (a cloud each part, so
/// that the harness runs the parts side by side: most of a run is waiting on
/// AWS's states and the queues' windows, not the CPU).
async fn crash_at_every_step(scenario: Scenario, part: usize, parts: usize) {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let (expected, clean_calls) = baseline(&cloud, &sdk, scenario).await;
    let n = clean_calls.len();
    assert!(n >= 3, "a run makes mutating calls: {clean_calls:?}");
    let mut failures = Vec::new();
    for k in (1..=n).filter(|k| k % parts == part) {
        let end = run(&cloud, &sdk, scenario, &json!({"crash_after": k}), &json!({})).await;
        let counters = &end.faults["counters"];
        let made = counters["mutating_calls"].as_u64().unwrap_or_default() as usize;
        // A run's status writes depend on how its steps interleave, so a run
        // may make fewer calls than the clean one did: then it never crashes.
        let faults = if counters["crashed"] == json!(true) {
            // (Fewer when the k-th, refused to others while it ran, then failed at moto.)
            assert!(made <= k, "at most {k} went through: {:?}", end.calls);
            let last = end.calls.get(k - 1).cloned().unwrap_or_default();
            let refused = counters["refused_after_crash"].as_u64().unwrap_or_default();
            format!("crash after mutating call {k} of {n} ({last}); {refused} calls refused after it")
        } else {
            assert!(made < k, "no crash, so fewer than {k} calls: {:?}", end.calls);
            format!("crash after mutating call {k} of {n}: not reached, this run made {made}")
        };
        judge("crash", scenario, faults, &end, &expected, &mut failures);
    }
    assert!(failures.is_empty(), "{} of {n} crash points failed:\n{}", failures.len(), failures.join("\n\n"));
}

#[tokio::test]
async fn the_seed_survives_a_crash_after_every_mutating_call() {
    crash_at_every_step(Scenario::Seed, 0, 1).await;
}

#[tokio::test]
async fn a_mesh_survives_a_crash_after_every_mutating_call_odd() {
    crash_at_every_step(Scenario::Mesh, 1, 2).await;
}

#[tokio::test]
async fn a_mesh_survives_a_crash_after_every_mutating_call_even() {
    crash_at_every_step(Scenario::Mesh, 0, 2).await;
}

/// Every delivery twice, a tenth dropped, the rest shuffled; then one sweep.
async fn lost_doubled_and_shuffled_events(scenario: Scenario) {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let (expected, _) = baseline(&cloud, &sdk, scenario).await;
    let mut failures = Vec::new();
    let mut dropped = 0;
    for seed in 1..=4 {
        let faults = json!({"seed": seed, "events": {"duplicate": 1.0, "drop": 0.1, "shuffle": true}});
        // The sweep's own events are still doubled and shuffled, but no longer lost.
        let recovery = json!({"seed": seed, "events": {"duplicate": 1.0, "shuffle": true}});
        let end = run(&cloud, &sdk, scenario, &faults, &recovery).await;
        let c = &end.faults["counters"];
        dropped += c["events_dropped"].as_u64().unwrap_or_default();
        assert!(c["events_duplicated"].as_u64().unwrap_or_default() > 0, "{c}");
        let what = format!(
            "events doubled, 10% dropped, shuffled (seed {seed}): {} dropped, {} doubled, {} reordered",
            c["events_dropped"], c["events_duplicated"], c["events_reordered"]
        );
        judge("events", scenario, what, &end, &expected, &mut failures);
    }
    assert!(dropped > 0, "some event was lost in some run");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn the_seed_converges_after_lost_doubled_and_shuffled_events_and_one_sweep() {
    lost_doubled_and_shuffled_events(Scenario::Seed).await;
}

#[tokio::test]
async fn a_mesh_converges_after_lost_doubled_and_shuffled_events_and_one_sweep() {
    lost_doubled_and_shuffled_events(Scenario::Mesh).await;
}

/// 30% of the functions' mutating calls answered RequestLimitExceeded, 500 or
/// 503, with AWS's throttle on; then the faults go and one sweep finishes.
#[tokio::test]
async fn the_seed_converges_through_errors_and_throttling() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let (expected, _) = baseline(&cloud, &sdk, Scenario::Seed).await;
    let mut failures = Vec::new();
    for seed in 1..=3 {
        let faults = json!({"seed": seed, "throttle": true, "errors": [{
            "action": "mutating", "caller": "functions", "rate": 0.3,
            "code": ["RequestLimitExceeded", "InternalError", "ServiceUnavailable"],
        }]});
        let end = run(&cloud, &sdk, Scenario::Seed, &faults, &json!({})).await;
        let c = &end.faults["counters"];
        let what = format!(
            "30% RequestLimitExceeded/500/503 on the functions' mutating calls, throttle on (seed {seed}): injected {}, throttled {}",
            c["injected"], c["throttled"]
        );
        judge("scenario", Scenario::Seed, what, &end, &expected, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A step the throttle refuses (Seoul's second CreateRoute, its bucket empty
/// and never refilled) is left undone, said so, and done by the next sweep.
#[tokio::test]
async fn a_throttled_step_completes_on_the_next_sweep() {
    let cloud = LocalCloud::start();
    let sdk = cloud.sdk_config().await;
    let (expected, _) = baseline(&cloud, &sdk, Scenario::Seed).await;
    cloud.reset();
    let tags = Scenario::Seed.build(&sdk).await;
    cloud.faults(&json!({"throttle": {"actions": {"CreateRoute": {"capacity": 1, "refill": 0}}}}));
    for (vpc, key, value) in &tags {
        tag_vpc(&sdk, vpc, key, Some(value)).await;
    }
    cloud.settle();
    let halfway = observe(&sdk).await;
    let seoul = &tags[0].0;
    assert_eq!(routes_via_peering(&halfway, seoul).len(), 1, "one of Seoul's two routes got its token");
    let status = halfway.vpc(seoul).and_then(|v| v.status()).unwrap_or_default().to_owned();
    assert!(!status.contains("ready"), "Seoul does not say ready: {status}");
    let state = cloud.get_faults();
    let throttled = state["counters"]["throttled"].as_u64().unwrap_or_default();
    assert!(throttled > 0, "{state}");
    assert!(cloud.calls().iter().any(|c| c["throttled"] == json!(true) && c["action"] == json!("CreateRoute")));

    cloud.faults(&json!({}));
    cloud.schedule();
    let end = End { world: observe(&sdk).await, faults: state, calls: vec![] };
    let mut failures = Vec::new();
    judge(
        "scenario",
        Scenario::Seed,
        format!("throttle: CreateRoute bucket of 1, never refilled: {throttled} calls throttled, then one sweep"),
        &end,
        &expected,
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
