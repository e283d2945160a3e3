//! Quotas on moto's real server: checked before acting, reported in the
//! status, never met as failures, and never a reason to take a link down.

use tagpeer::ids::Endpoint;
use tagpeer::intent::{PEERS, STATUS};
use tagpeer::model::World;
use tagpeer::plan::Role;
use tagpeer_tests::*;

async fn vpc(sdk: &aws_config::SdkConfig, region: &str, cidr: &str) -> Endpoint {
    let out = ec2(sdk, region).create_vpc().cidr_block(cidr).send().await.expect("CreateVpc");
    endpoint(region, out.vpc().and_then(|v| v.vpc_id()).expect("a VPC id"))
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).and_then(|v| v.tags.get(STATUS)).cloned().unwrap_or_default()
}

fn mutations(log: &[(Delivery, Result<tagpeer::Report, tagpeer::error::HandlerError>)]) -> Vec<String> {
    changes(log).into_iter().filter(|c| !c.contains(" CreateTags ") && !c.contains(" DeleteTags ")).collect()
}

#[tokio::test]
async fn a_vpc_at_its_peering_quota_gets_no_new_link_and_says_so() {
    let cloud = Cloud::start_with(|d| d.quotas.peerings_per_vpc = 1).await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let second = vpc(&cloud.sdk, OSAKA, "10.9.0.0/16").await;
    let value = format!("{OSAKA}/{} {OSAKA}/{}", seed.osaka_vpc, second.vpc_id);
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&value)).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    // (Every test of this file captures its logs: tracing caches per call site
    // whether anyone listens, and a test that never listens beside one that
    // does would make the other's capture miss lines.)
    let (_, lines) = with_logs(cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event })).await;
    cloud.sweep().await;

    let world = cloud.observe().await;
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    assert_eq!(live.len(), 1, "one link within the quota: {:?}", world.peerings);
    let (first, other) =
        if seed.osaka() < second { (seed.osaka(), second.clone()) } else { (second.clone(), seed.osaka()) };
    assert_eq!(live[0].accepter, first, "the first in canonical order");
    let s = status(&world, &seed.seoul());
    assert!(
        s.contains(&format!(
            "error: {OSAKA}/{}: over quota: {SEOUL}/{} already has 1 peering connections",
            other.vpc_id, seed.seoul_vpc
        )),
        "{s}"
    );
    assert!(s.contains("ready via"), "the link within the quota is made: {s}");
    assert!(
        lines.iter().any(|l| l["level"] == "WARN" && l["detail"].as_str().is_some_and(|d| d.contains("over quota"))),
        "a log line says it: {lines:#?}"
    );
    assert_eq!(tagpeer::invariants::violations(&world, cloud.deployment()), Vec::<String>::new());
    assert_eq!(mutations(&cloud.sweep().await), Vec::<String>::new(), "a sweep agrees and changes nothing");
}

#[tokio::test]
async fn a_full_route_table_refuses_a_new_link_before_any_request() {
    // Seoul's public table holds its local route and the default route: full at 2.
    let cloud = Cloud::start_with(|d| d.quotas.routes_per_table = 2).await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    let (log, lines) =
        with_logs(cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event })).await;
    assert_eq!(mutations(&log), Vec::<String>::new(), "no request, no route");
    cloud.sweep().await;

    let world = cloud.observe().await;
    assert!(world.peerings.is_empty(), "{:?}", world.peerings);
    let expect = format!(
        "{OSAKA}/{}: over quota: {} of {} has no room for 1 more routes (2 at most)",
        seed.osaka_vpc, seed.seoul_route_table, seed.seoul_vpc
    );
    assert_eq!(status(&world, &seed.seoul()), format!("error: {expect}"));
    assert_eq!(tagpeer::invariants::violations(&world, cloud.deployment()), Vec::<String>::new());
    assert!(
        lines.iter().any(|l| l["level"] == "WARN" && l["detail"].as_str().is_some_and(|d| d.contains(&expect))),
        "a log line says it: {lines:#?}"
    );
}
