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

// ------------------------------------------------------------------ the table
//
// Many bad inputs on one moto server: each tag case gets a network of its own
// (the seed's Seoul, on a range of its own), so the cases are independent, and
// each checks that nothing anywhere changed. Each case is a row of `make
// reliability`'s table.

use tagpeer::intent::{ACCEPT, DNS, IPV6, MESH, ROUTE_TABLES};
use tagpeer_tests::reliability::{record, Row};

/// How a case must end.
enum Expect {
    /// `error: …` in `tagpeer-status` containing this, and a WARN log line saying it.
    Error(String),
    /// Not an error: this status, and still no mutation.
    Status(&'static str),
}

/// A case: its name, and the tags to write on a fresh Seoul VPC (built on
/// `cidr`), given that network and Osaka's default VPC.
struct TagCase {
    name: &'static str,
    cidr: &'static str,
    tags: fn(&Seed) -> Vec<(&'static str, String)>,
    expect: fn(&Seed) -> Expect,
}

fn err(s: impl Into<String>) -> Expect {
    Expect::Error(s.into())
}

fn osaka_ref(s: &Seed) -> String {
    format!("{OSAKA}/{}", s.osaka_vpc)
}

/// Writes the case's tags on a fresh network, runs the chain the tag change
/// starts and a sweep, and checks: the status and the log line, no peering,
/// no route table changed, no violation. Returns the row.
async fn run_tag_case(cloud: &Cloud, case: &TagCase) -> Row {
    let seed = build_seed(&cloud.sdk, case.cidr).await;
    let before = cloud.observe().await;
    let tags = (case.tags)(&seed);
    for (key, value) in &tags {
        tag_vpc(&cloud.sdk, &seed.seoul(), key, Some(value)).await;
    }
    let keys: Vec<&str> = tags.iter().map(|(k, _)| *k).collect();
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &keys).await;
    let (log, lines) =
        with_logs(cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event })).await;
    let name = case.name;
    assert_eq!(log.len(), 1, "{name}: no event follows a rejected tag");
    let report = log[0].1.as_ref().unwrap_or_else(|e| panic!("{name}: bad tags are answered, not failed: {e}"));
    let actions: Vec<&str> = report.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions, ["CreateTags"], "{name}: only the status is written");

    let sweep = cloud.sweep().await;
    assert_eq!(changes(&sweep), Vec::<String>::new(), "{name}: the sweep agrees and changes nothing");

    let world = cloud.observe().await;
    assert!(world.peerings.is_empty(), "{name}: no peering request: {:?}", world.peerings);
    assert_eq!(world.route_tables, before.route_tables, "{name}: no route changed");
    let status = world.vpc(&seed.seoul()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert!(status.chars().count() <= 256, "{name}: a status fits a tag value: {} characters", status.len());
    let outcome = match (case.expect)(&seed) {
        Expect::Error(expect) => {
            assert!(status.starts_with("error: ") && status.contains(&expect), "{name}: status: {status}");
            let line = lines
                .iter()
                .find(|l| l["level"] == "WARN" && l["detail"].as_str().is_some_and(|d| d.contains(&expect)))
                .unwrap_or_else(|| panic!("{name}: no log line says {expect:?}: {lines:#?}"));
            assert_eq!(line["resource"], json!(seed.seoul_vpc), "{name}");
            "error in tagpeer-status and a WARN line, no mutation".to_owned()
        }
        Expect::Status(want) => {
            assert_eq!(status, want, "{name}");
            format!("status {want:?}, no mutation")
        }
    };
    let violations = tagpeer::invariants::violations(&world, cloud.deployment()).len();
    assert_eq!(violations, 0, "{name}: {:?}", tagpeer::invariants::violations(&world, cloud.deployment()));
    let faults = tags.iter().map(|(k, v)| format!("{k} = {}", clip_for_table(v))).collect::<Vec<_>>().join("; ");
    Row { kind: "bad-input", name: name.to_owned(), faults, outcome, violations }
}

/// Long values shortened for the table.
fn clip_for_table(v: &str) -> String {
    if v.chars().count() <= 60 {
        format!("{v:?}")
    } else {
        format!("{:?}… ({} characters)", v.chars().take(40).collect::<String>(), v.chars().count())
    }
}

fn tag_cases() -> Vec<TagCase> {
    vec![
        // Lengths: EC2 takes 256 characters; moto takes more, and so tagpeer
        // must cope with more. The error echoes at most 48 characters of the
        // value, so the reason always fits in the status after it.
        TagCase {
            name: "a 256-character value",
            cidr: "10.1.0.0/16",
            tags: |_| vec![(PEERS, "a".repeat(256))],
            expect: |_| err(format!("tagpeer:peers: \"{}\"… is not a VPC reference", "a".repeat(48))),
        },
        TagCase {
            name: "a 1000-character value",
            cidr: "10.2.0.0/16",
            tags: |_| vec![(PEERS, format!("vpc-{}", "0".repeat(996)))],
            expect: |_| err(format!("tagpeer:peers: \"vpc-{}\"… is not a VPC reference", "0".repeat(44))),
        },
        TagCase {
            name: "a 256-character list whose last item is bad",
            cidr: "10.3.0.0/16",
            tags: |_| {
                let mut v = String::new();
                for i in 0.. {
                    let item = format!("{OSAKA}/vpc-{i:017x},");
                    if v.len() + item.len() > 250 {
                        break;
                    }
                    v.push_str(&item);
                }
                v.push_str("osaka");
                v.extend(std::iter::repeat_n(' ', 256 - v.len()));
                vec![(PEERS, v)]
            },
            expect: |_| err("tagpeer:peers: \"osaka\" is not a VPC reference"),
        },
        TagCase {
            name: "a 300-character mesh group",
            cidr: "10.4.0.0/16",
            tags: |_| vec![(MESH, "g".repeat(300))],
            expect: |_| err("tagpeer:mesh: \"gggg"),
        },
        // Regions.
        TagCase {
            name: "a region that does not exist",
            cidr: "10.5.0.0/16",
            tags: |s| vec![(PEERS, format!("us-mars-1/{}", s.osaka_vpc))],
            expect: |_| err("region us-mars-1 is not one of this deployment's"),
        },
        TagCase {
            name: "an upper-case region",
            cidr: "10.6.0.0/16",
            tags: |s| vec![(PEERS, format!("AP-NORTHEAST-3/{}", s.osaka_vpc))],
            expect: |_| err("\"AP-NORTHEAST-3\" is not a region name"),
        },
        // Ids of the wrong kind where a VPC is expected.
        TagCase {
            name: "a subnet id where a VPC is expected",
            cidr: "10.7.0.0/16",
            tags: |s| vec![(PEERS, s.seoul_subnet.clone())],
            expect: |s| err(format!("\"{}\" is not a VPC id", s.seoul_subnet)),
        },
        TagCase {
            name: "a peering connection id where a VPC is expected",
            cidr: "10.8.0.0/16",
            tags: |_| vec![(PEERS, format!("{OSAKA}/pcx-0123456789abcdef0"))],
            expect: |_| err("\"pcx-0123456789abcdef0\" is not a VPC id"),
        },
        TagCase {
            name: "a route table id where a VPC is expected",
            cidr: "10.9.0.0/16",
            tags: |s| vec![(PEERS, s.seoul_route_table.clone())],
            expect: |s| err(format!("\"{}\" is not a VPC id", s.seoul_route_table)),
        },
        TagCase {
            name: "a range where a VPC is expected",
            cidr: "10.10.0.0/16",
            tags: |_| vec![(PEERS, "172.31.0.0/16".into())],
            expect: |_| err("\"172.31.0.0/16\" is not a VPC reference"),
        },
        TagCase {
            name: "a VPC id where a route table is expected",
            cidr: "10.11.0.0/16",
            tags: |s| vec![(PEERS, osaka_ref(s)), (ROUTE_TABLES, s.seoul_vpc.clone())],
            expect: |s| {
                err(format!("tagpeer:route-tables: \"{}\" is not 'all', 'main' or route table ids", s.seoul_vpc))
            },
        },
        TagCase {
            name: "another VPC's route table",
            cidr: "10.12.0.0/16",
            tags: |_| vec![(ROUTE_TABLES, "rtb-0123456789abcdef0".into()), (PEERS, "vpc-0123abcd".into())],
            expect: |_| err("tagpeer:route-tables: rtb-0123456789abcdef0 is not a route table of this VPC"),
        },
        // References to itself, in every form.
        TagCase {
            name: "itself, as REGION/vpc-…",
            cidr: "10.13.0.0/16",
            tags: |s| vec![(PEERS, format!("{SEOUL}/{}", s.seoul_vpc))],
            expect: |_| err("is this VPC itself"),
        },
        TagCase {
            name: "itself, as ACCOUNT/REGION/vpc-…",
            cidr: "10.14.0.0/16",
            tags: |s| vec![(PEERS, format!("{ACCOUNT}/{SEOUL}/{}", s.seoul_vpc))],
            expect: |_| err("is this VPC itself"),
        },
        // Duplicates: one link is asked for once, so its error is said once.
        TagCase {
            name: "an overlapping peer named twice, in two forms",
            cidr: "172.31.0.0/16",
            tags: |s| vec![(PEERS, format!("{0} {0},{ACCOUNT}/{0}", osaka_ref(s)))],
            expect: |_| err("ranges overlap (172.31.0.0/16 here, 172.31.0.0/16 there)"),
        },
        TagCase {
            name: "an unknown VPC named twice",
            cidr: "10.15.0.0/16",
            tags: |_| vec![(PEERS, "ap-northeast-3/vpc-0123456789abcdef0,ap-northeast-3/vpc-0123456789abcdef0".into())],
            expect: |_| err("ap-northeast-3/vpc-0123456789abcdef0: no such VPC"),
        },
        // Empty values.
        TagCase {
            name: "an empty tagpeer:peers",
            cidr: "10.16.0.0/16",
            tags: |_| vec![(PEERS, String::new())],
            expect: |_| Expect::Status("no links"),
        },
        TagCase {
            name: "a blank tagpeer:peers",
            cidr: "10.17.0.0/16",
            tags: |_| vec![(PEERS, " ,\t, ".into())],
            expect: |_| Expect::Status("no links"),
        },
        TagCase {
            name: "an empty tagpeer:route-tables",
            cidr: "10.18.0.0/16",
            tags: |s| vec![(PEERS, osaka_ref(s)), (ROUTE_TABLES, String::new())],
            expect: |_| err("tagpeer:route-tables: no value: give all, main or route table ids"),
        },
        TagCase {
            name: "an empty tagpeer:dns",
            cidr: "10.19.0.0/16",
            tags: |s| vec![(PEERS, osaka_ref(s)), (DNS, String::new())],
            expect: |_| err("tagpeer:dns: \"\" is neither 'on' nor 'off'"),
        },
        // Case.
        TagCase {
            name: "an upper-case VPC id",
            cidr: "10.20.0.0/16",
            tags: |s| vec![(PEERS, format!("{OSAKA}/{}", s.osaka_vpc.to_uppercase()))],
            expect: |s| err(format!("\"{}\" is not a VPC id", s.osaka_vpc.to_uppercase())),
        },
        TagCase {
            name: "an upper-case toggle",
            cidr: "10.21.0.0/16",
            tags: |s| vec![(PEERS, osaka_ref(s)), (IPV6, "ON".into())],
            expect: |_| err("tagpeer:ipv6: \"ON\" is neither 'on' nor 'off'"),
        },
        // Separators that are not commas or whitespace.
        TagCase {
            name: "references separated by semicolons",
            cidr: "10.22.0.0/16",
            tags: |s| vec![(PEERS, format!("{};vpc-0123abcd", osaka_ref(s)))],
            expect: |_| err("is not a VPC id"),
        },
        TagCase {
            name: "references separated by a zero-width space",
            cidr: "10.23.0.0/16",
            tags: |s| vec![(PEERS, format!("{}\u{200b}vpc-0123abcd", osaka_ref(s)))],
            expect: |_| err("is not a VPC id"),
        },
        TagCase {
            name: "a reference with a slash too many",
            cidr: "10.24.0.0/16",
            tags: |s| vec![(PEERS, format!("{ACCOUNT}//{}", osaka_ref(s)))],
            expect: |_| err("is not a VPC reference"),
        },
        TagCase {
            name: "a right-to-left override and a byte-order mark",
            cidr: "10.25.0.0/16",
            tags: |_| vec![(PEERS, "\u{feff}vpc-0123abcd\u{202e}".into())],
            expect: |_| err("is not a VPC"),
        },
        // The other keys' grammar.
        TagCase {
            name: "a mesh group with a bad character",
            cidr: "10.26.0.0/16",
            tags: |_| vec![(MESH, "prod staging!".into())],
            expect: |_| err("tagpeer:mesh: \"staging!\" is not a group name"),
        },
        TagCase {
            name: "'*' beside an account in tagpeer:accept",
            cidr: "10.27.0.0/16",
            tags: |_| vec![(ACCEPT, "* 222222222222".into()), (PEERS, "vpc-0123abcd".into())],
            expect: |_| err("tagpeer:accept: '*' must stand alone"),
        },
        TagCase {
            name: "'all' beside a route table id",
            cidr: "10.28.0.0/16",
            tags: |s| vec![(ROUTE_TABLES, format!("all {}", s.seoul_route_table)), (PEERS, osaka_ref(s))],
            expect: |_| err("tagpeer:route-tables: 'all' and 'main' must stand alone"),
        },
    ]
}

#[tokio::test]
async fn a_table_of_bad_tags_each_ends_in_a_clear_error_and_no_mutation() {
    let cloud = Cloud::start().await;
    let cases = tag_cases();
    for case in &cases {
        let row = run_tag_case(&cloud, case).await;
        record("bad-input", &row);
    }
    // Every bad network still stands as it was after all of them: one more sweep changes nothing.
    assert_eq!(changes(&cloud.sweep().await), Vec::<String>::new());
    assert!(cases.len() >= 29);
}

/// Events no rule of tagpeer's would send, or sends malformed, and events
/// that name things that do not exist: each function refuses the first kind
/// with an ERROR line, takes the second without a change.
#[tokio::test]
async fn a_table_of_bad_events_each_ends_in_an_error_or_nothing_and_no_mutation() {
    let cloud = Cloud::start().await;
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    let before = cloud.observe().await;
    let tag = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    let requested = sample_event("peering-requested.json");
    let trail = sample_event("cloudtrail-accept-peering.json");
    let with = |base: &Value, pointer: &str, v: Value| {
        let mut e = base.clone();
        *e.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = v;
        e
    };
    let without = |base: &Value, parent: &str, key: &str| {
        let mut e = base.clone();
        e.pointer_mut(parent).and_then(Value::as_object_mut).unwrap().remove(key);
        e
    };
    let arn = tag["resources"][0].as_str().unwrap().to_owned();
    // (name, event, Some(error) or None for "taken, nothing to do")
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("an event that is a JSON string", json!("{\"source\": \"aws.tag\"}"), Some("EventBridge's shape")),
        ("an event that is null", Value::Null, Some("EventBridge's shape")),
        ("an event that is an array", json!([tag.clone()]), Some("EventBridge's shape")),
        ("an empty object", json!({}), Some("EventBridge's shape")),
        ("detail-type a number", with(&tag, "/detail-type", json!(5)), Some("EventBridge's shape")),
        ("resources a string", with(&tag, "/resources", json!(arn)), Some("EventBridge's shape")),
        (
            "detail double-encoded as a string",
            with(&tag, "/detail", json!(tag["detail"].to_string())),
            Some("detail is malformed"),
        ),
        ("changed-tag-keys missing", without(&tag, "/detail", "changed-tag-keys"), Some("detail is malformed")),
        (
            "changed-tag-keys of numbers",
            with(&tag, "/detail/changed-tag-keys", json!([1, 2])),
            Some("detail is malformed"),
        ),
        ("a tag change of a subnet", with(&tag, "/detail/resource-type", json!("subnet")), Some("not ec2 subnet")),
        (
            "a tag change whose ARN names a peering connection",
            with(&tag, "/resources", json!([arn.replace("vpc/vpc-", "vpc/pcx-")])),
            Some("names no VPC"),
        ),
        (
            "a tag change whose ARN has an upper-case id",
            with(&tag, "/resources", json!([arn.to_uppercase()])),
            Some("names no VPC"),
        ),
        (
            "a peering event with an unknown field",
            {
                let mut e = requested.clone();
                e["detail"]["extra"] = json!(1);
                e
            },
            Some("unknown field `extra`"),
        ),
        (
            "a peering event whose link joins other VPCs",
            with(&requested, "/detail/link", json!(format!("{}+{}", seed.seoul(), seed.osaka()))),
            Some("does not join"),
        ),
        (
            "a peering event with a VPC id of numbers",
            with(&requested, "/detail/requester/vpc-id", json!(123)),
            Some("detail is malformed"),
        ),
        (
            "a peering event with a subnet where a VPC is",
            with(&requested, "/detail/accepter/vpc-id", json!("subnet-0123abcd")),
            Some("is not a VPC id"),
        ),
        (
            "a peering event with a VPC where a connection is",
            with(&requested, "/detail/peering-connection-id", json!(seed.seoul_vpc)),
            Some("is not a peering connection id"),
        ),
        (
            "a CloudTrail record with a VPC where a connection is",
            with(&trail, "/detail/requestParameters/vpcPeeringConnectionId", json!(seed.seoul_vpc)),
            Some("is not a peering connection id"),
        ),
        (
            "a CloudTrail record with an account of 11 digits",
            with(&trail, "/account", json!("12345678901")),
            Some("is not an account id"),
        ),
        (
            "a CloudTrail record of an unknown region",
            with(&trail, "/detail/awsRegion", json!("Osaka")),
            Some("is not a region name"),
        ),
        (
            "a CloudTrail record of another service",
            with(&trail, "/detail/eventSource", json!("s3.amazonaws.com")),
            Some("tagpeer takes no s3.amazonaws.com"),
        ),
        // Well formed, naming what does not exist: taken, and nothing to do.
        (
            "a tag change of a VPC that does not exist",
            with(&tag, "/resources", json!(["arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0123456789abcdef0"])),
            None,
        ),
        ("a peering event for VPCs that do not exist", requested.clone(), None),
        ("a CloudTrail record of a connection that does not exist", trail.clone(), None),
    ];
    let mut failures = Vec::new();
    for (name, event, expect) in &cases {
        for role in ROLES {
            let delivery = Delivery { role, region: SEOUL.into(), event: event.clone() };
            let ((result, next), lines) = with_logs(cloud.deliver(&delivery)).await;
            assert!(next.is_empty(), "{name}: {role:?} sent {next:?}");
            match (expect, result) {
                (Some(expect), Err(e)) => {
                    let e = e.to_string();
                    assert!(e.contains(expect), "{name}: {role:?}: {e}");
                    assert!(
                        lines
                            .iter()
                            .any(|l| l["level"] == "ERROR" && l["error"].as_str().is_some_and(|x| x.contains(expect))),
                        "{name}: {role:?}: no ERROR line: {lines:#?}"
                    );
                }
                (None, Ok(report)) => {
                    assert_eq!(
                        report.changes.iter().map(|c| c.action).collect::<Vec<_>>(),
                        Vec::<&str>::new(),
                        "{name}: {role:?}"
                    );
                }
                (expect, result) => failures.push(format!("{name}: {role:?}: expected {expect:?}, got {result:?}")),
            }
        }
        let world = cloud.observe().await;
        assert!(world.peerings.is_empty(), "{name}: {:?}", world.peerings);
        assert_eq!(world.route_tables, before.route_tables, "{name}");
        assert_eq!(world.vpcs, before.vpcs, "{name}: no tag written");
        let violations = tagpeer::invariants::violations(&world, cloud.deployment()).len();
        let outcome = match expect {
            Some(e) => format!("refused by all three functions ({e}), ERROR line, no mutation"),
            None => "taken by all three functions, nothing to do, no mutation".to_owned(),
        };
        record(
            "bad-input",
            &Row {
                kind: "bad-input",
                name: format!("event: {name}"),
                faults: clip_for_table(&event.to_string()),
                outcome,
                violations,
            },
        );
        assert_eq!(violations, 0, "{name}");
    }
    assert_eq!(failures, Vec::<String>::new());
}
