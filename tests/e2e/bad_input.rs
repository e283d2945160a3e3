//! Bad input on moto's real server: each case ends in a clear `tagpeer-status`,
//! a log line, and no peering request.

use serde_json::{json, Value};
use tagpeer::intent::{PEERS, STATUS};
use tagpeer::plan::Role;
use tagpeer_tests::*;

/// Builds the seed with Seoul on `seoul_cidr`, tags Seoul's VPC with
/// `tagpeer:peers = value(seed)`, runs the chain and one sweep, and checks the
/// outcome: no connection, no route, the status and a log line saying `expect`.
async fn rejected(seoul_cidr: &str, value: impl Fn(&Seed) -> String, expect: &str) {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, seoul_cidr).await;
    let before = cloud.observe().await;
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&value(&seed))).await;
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;

    let (log, lines) =
        with_logs(cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event })).await;
    assert_eq!(log.len(), 1, "no event follows a rejected tag");
    let report = log[0].1.as_ref().expect("bad tags are answered, not failed");
    let actions: Vec<&str> = report.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions, ["CreateTags"], "only the status is written");

    let sweep = cloud.sweep().await;
    assert_eq!(changes(&sweep), Vec::<String>::new(), "the sweep agrees and changes nothing");

    let world = cloud.observe().await;
    assert!(world.peerings.is_empty(), "no peering request: {:?}", world.peerings);
    assert_eq!(world.route_tables, before.route_tables, "no route changed");
    let status = world.vpc(&seed.seoul()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert!(status.starts_with("error: ") && status.contains(expect), "status: {status}");

    let line = lines
        .iter()
        .find(|l| l["level"] == "WARN" && l["detail"].as_str().is_some_and(|d| d.contains(expect)))
        .unwrap_or_else(|| panic!("no log line says {expect:?}: {lines:#?}"));
    assert_eq!(line["resource"], json!(seed.seoul_vpc));
    assert_eq!(line["function"], json!("requester"));
}

#[tokio::test]
async fn an_overlapping_range_is_refused() {
    rejected(
        "172.31.0.0/16",
        |s| format!("ap-northeast-3/{}", s.osaka_vpc),
        "ranges overlap (172.31.0.0/16 here, 172.31.0.0/16 there)",
    )
    .await;
}

#[tokio::test]
async fn a_self_reference_is_refused() {
    rejected("10.0.0.0/16", |s| s.seoul_vpc.clone(), "is this VPC itself").await;
}

#[tokio::test]
async fn an_unknown_vpc_is_refused() {
    rejected(
        "10.0.0.0/16",
        |_| "ap-northeast-3/vpc-0123456789abcdef0".into(),
        "ap-northeast-3/vpc-0123456789abcdef0: no such VPC",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_region_is_refused() {
    rejected(
        "10.0.0.0/16",
        |s| format!("eu-south-9/{}", s.osaka_vpc),
        "region eu-south-9 is not one of this deployment's (ap-northeast-2, ap-northeast-3)",
    )
    .await;
}

#[tokio::test]
async fn a_malformed_tag_value_is_refused() {
    rejected("10.0.0.0/16", |_| "osaka, please".into(), "tagpeer:peers: \"osaka\" is not a VPC reference").await;
}

#[tokio::test]
async fn malformed_events_are_rejected_with_a_log_line_and_no_change() {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&format!("ap-northeast-3/{}", seed.osaka_vpc))).await;
    let good = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    let mut wrong_arn = good.clone();
    wrong_arn["resources"] = json!(["arn:aws:ec2:ap-northeast-2:123456789012:subnet/subnet-0123abcd"]);
    let mut wrong_type = good.clone();
    wrong_type["detail"]["changed-tag-keys"] = json!("tagpeer:peers");
    let cases: [(Value, &str); 5] = [
        (json!({"hello": "world"}), "EventBridge's shape"),
        (
            json!({"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "detail": {}}),
            "detail is malformed",
        ),
        (
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
            "no rule of tagpeer's",
        ),
        (wrong_arn, "names no VPC"),
        (wrong_type, "detail is malformed"),
    ];
    for (event, expect) in cases {
        for role in ROLES {
            let delivery = Delivery { role, region: SEOUL.into(), event: event.clone() };
            let ((result, next), lines) = with_logs(cloud.deliver(&delivery)).await;
            let err = result.expect_err("a malformed event is an error").to_string();
            assert!(err.contains(expect), "{err}");
            assert!(next.is_empty());
            assert!(
                lines.iter().any(|l| l["level"] == "ERROR" && l["error"].as_str().is_some_and(|e| e.contains(expect))),
                "{lines:#?}"
            );
        }
    }
    let world = cloud.observe().await;
    assert!(world.peerings.is_empty());
    assert_eq!(world.vpc(&seed.seoul()).unwrap().tags.get(STATUS), None);
}
