//! The tagpeer command against moto's real server.

use std::process::{Command, Output};

use tagpeer::intent::PEERS;
use tagpeer::plan::Role;
use tagpeer_tests::local::bin_dir;
use tagpeer_tests::*;

fn tagpeer(endpoint: &str, args: &[&str]) -> Output {
    let bin = bin_dir().join("tagpeer");
    assert!(bin.exists(), "{} is missing: run `make functions` first", bin.display());
    Command::new(bin)
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", SEOUL)
        .env("TAGPEER_REGIONS", format!("{SEOUL},{OSAKA}"))
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running tagpeer")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn plan_and_status_follow_the_link_from_tag_to_ready() {
    let cloud = Cloud::start().await;
    let endpoint = cloud.moto.endpoint.clone();
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    assert_eq!(stdout(&tagpeer(&endpoint, &["plan"])), "nothing to do\n");
    assert_eq!(stdout(&tagpeer(&endpoint, &["status"])), "no links\n");

    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let plan = stdout(&tagpeer(&endpoint, &["plan"]));
    assert!(plan.starts_with("FUNCTION"), "{plan}");
    assert!(
        plan.contains(&format!(
            "CreateVpcPeeringConnection in {SEOUL}: {} to {OSAKA}/{}",
            seed.seoul_vpc, seed.osaka_vpc
        )),
        "{plan}"
    );
    assert!(cloud.observe().await.peerings.is_empty(), "plan changes nothing");

    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    assert_eq!(stdout(&tagpeer(&endpoint, &["plan"])), "nothing to do\n");
    let status = stdout(&tagpeer(&endpoint, &["status"]));
    let world = cloud.observe().await;
    assert_eq!(tagpeer::invariants::violations(&world, cloud.deployment()), Vec::<String>::new());
    let pcx = world.peerings[0].id.clone();
    assert_eq!(status.lines().count(), 3, "{status}");
    assert!(status.contains(&format!("{SEOUL}/{}", seed.seoul_vpc)) && status.contains(&format!("ready via {pcx}")));
    assert!(status.contains(&format!("172.31.0.0/16 -> {pcx}")) && status.contains(&format!("10.0.0.0/16 -> {pcx}")));
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    let cases: [(&[&str], &str); 3] = [
        (&["--regions", "Seoul", "status"], "not a region name"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&[], "Usage"),
    ];
    for (args, expect) in cases {
        let out = tagpeer("http://127.0.0.1:9", args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let help = tagpeer("http://127.0.0.1:9", &["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success() && text.contains("status") && text.contains("plan"), "{text}");
}

#[tokio::test]
async fn check_agrees_with_the_seed_before_and_after_the_tag() {
    let cloud = Cloud::start().await;
    let start = cloud.observe().await;
    let endpoint = cloud.moto.endpoint.clone();
    let sdk = &cloud.sdk;
    let seed = build_seed(sdk, "10.0.0.0/16").await;
    let seoul = run_instance(sdk, SEOUL, &seed.seoul_subnet, "10.0.6.38").await;
    let osaka_subnet = subnet_holding(sdk, OSAKA, &seed.osaka_vpc, "172.31.39.92").await;
    let osaka = run_instance(sdk, OSAKA, &osaka_subnet, "172.31.39.92").await;
    let seoul_group = default_group(sdk, SEOUL, &seed.seoul_vpc).await;
    let osaka_group = default_group(sdk, OSAKA, &seed.osaka_vpc).await;
    allow_icmp(sdk, SEOUL, &seoul_group, "172.31.0.0/16").await;
    allow_icmp(sdk, OSAKA, &osaka_group, "10.0.0.0/16").await;

    let before = tagpeer(&endpoint, &["check", &seoul, &osaka]);
    assert_eq!(before.status.code(), Some(1), "unreachable exits 1");
    let text = String::from_utf8_lossy(&before.stdout);
    assert!(text.starts_with("unreachable") && text.contains("no route to 172.31.39.92 (172.31.0.0/16"), "{text}");

    tag_vpc(sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(sdk, &seed.seoul(), &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let pcx = cloud.observe().await.peerings[0].id.clone();
    // Every form of naming an end: instance, interface, REGION/IP.
    for (src, dst) in [
        (seoul.clone(), osaka.clone()),
        (osaka.clone(), seoul.clone()),
        (format!("{SEOUL}/10.0.6.38"), format!("{OSAKA}/172.31.39.92")),
    ] {
        let text = stdout(&tagpeer(&endpoint, &["check", &src, &dst]));
        assert!(text.starts_with("reachable") && text.contains(pcx.as_str()), "{src} -> {dst}: {text}");
    }
    // TCP to a port the groups do not open: the first drop is the destination's group.
    let tcp = tagpeer(&endpoint, &["check", &seoul, &osaka, "--protocol", "tcp", "--port", "22"]);
    assert_eq!(tcp.status.code(), Some(1));
    let text = String::from_utf8_lossy(&tcp.stdout);
    assert!(text.starts_with("unreachable") && text.contains(&osaka_group), "{text}");

    for (args, expect) in [
        (vec!["check", seoul.as_str(), "i-0123456789abcdef0"], "i-0123456789abcdef0"),
        (vec!["check", seoul.as_str(), osaka.as_str(), "--protocol", "tcp"], "port"),
        (vec!["check", seoul.as_str(), osaka.as_str(), "--protocol", "gre"], "gre"),
    ] {
        let out = tagpeer(&endpoint, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cloud.assert_invariants(&start).await;
}
