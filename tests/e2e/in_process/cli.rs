//! The tagpeer command against moto's real server.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use tagpeer::intent::{MESH, PEERS};
use tagpeer::plan::Role;
use tagpeer_tests::local::bin_dir;
use tagpeer_tests::*;

/// The `tagpeer` command pointed at `endpoint`, as a person's shell would run it.
fn command(program: &std::path::Path, endpoint: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", SEOUL)
        .env("TAGPEER_REGIONS", format!("{SEOUL},{OSAKA}"))
        .env_remove("AWS_PROFILE");
    command
}

fn tagpeer_bin() -> std::path::PathBuf {
    let bin = bin_dir().join("tagpeer");
    assert!(bin.exists(), "{} is missing: run `make functions` first", bin.display());
    bin
}

fn tagpeer(endpoint: &str, args: &[&str]) -> Output {
    command(&tagpeer_bin(), endpoint).args(args).output().expect("running tagpeer")
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
    let planned: Value = serde_json::from_str(&stdout(&tagpeer(&endpoint, &["plan", "--json"]))).expect("JSON");
    let request = planned.as_array().and_then(|rows| rows.iter().find(|r| r["action"] == "CreateVpcPeeringConnection"));
    let request = request.unwrap_or_else(|| panic!("the request is planned: {planned:#}"));
    assert_eq!((request["function"].as_str(), request["region"].as_str()), (Some("requester"), Some(SEOUL)));
    let pending: Value = serde_json::from_str(&stdout(&tagpeer(&endpoint, &["status", "--json"]))).expect("JSON");
    assert_eq!(pending["progress"]["wanted"], 1);
    assert_eq!(pending["progress"]["pending"], 1);

    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    assert_eq!(stdout(&tagpeer(&endpoint, &["plan"])), "nothing to do\n");
    assert_eq!(stdout(&tagpeer(&endpoint, &["plan", "--json"])), "[]\n");
    let ready: Value = serde_json::from_str(&stdout(&tagpeer(&endpoint, &["status", "--json"]))).expect("JSON");
    assert_eq!((ready["progress"]["wanted"].as_u64(), ready["progress"]["ready"].as_u64()), (Some(1), Some(1)));
    assert_eq!(ready["links"][0]["health"], "ready");
    assert_eq!(ready["links"][0]["sides"].as_array().map(Vec::len), Some(2), "{ready:#}");
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
    let json: Value = serde_json::from_str(&stdout(&tagpeer(&endpoint, &["check", &seoul, &osaka, "--json"]))).unwrap();
    assert_eq!(json["reachable"], true);
    assert!(json["hops"].as_array().is_some_and(|h| h.len() >= 6), "out and back: {json:#}");
    // TCP to a port the groups do not open: the first drop is the destination's group.
    let tcp = tagpeer(&endpoint, &["check", &seoul, &osaka, "--protocol", "tcp", "--port", "22"]);
    assert_eq!(tcp.status.code(), Some(1));
    let text = String::from_utf8_lossy(&tcp.stdout);
    assert!(text.starts_with("unreachable") && text.contains(&osaka_group), "{text}");
    let tcp = tagpeer(&endpoint, &["check", &seoul, &osaka, "--protocol", "tcp", "--port", "22", "--json"]);
    assert_eq!(tcp.status.code(), Some(1), "unreachable exits 1 with --json too");
    let json: Value = serde_json::from_slice(&tcp.stdout).expect("JSON");
    assert_eq!(json["reachable"], false);
    assert!(json["dropped"]["at"].as_str().is_some_and(|at| at.contains(&osaka_group)), "{json:#}");
    assert!(json["reason"].as_str().is_some_and(|r| !r.is_empty()));

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

/// `tagpeer status --watch` in a real terminal (util-linux's `script` gives
/// it a pseudo-terminal): it draws the link pending, redraws as the chain
/// brings it up, and stops by itself once it is ready. Into a pipe, with a
/// link that cannot come up, it gives up at its timeout and exits 1.
#[tokio::test]
async fn status_watch_follows_a_link_in_a_terminal_until_it_is_ready() {
    let cloud = Cloud::start().await;
    let endpoint = cloud.moto.endpoint.clone();
    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;

    let watch = format!("{} status --watch --interval 1 --timeout 120", tagpeer_bin().display());
    let mut child = command(std::path::Path::new("script"), &endpoint)
        .args(["--quiet", "--flush", "--return", "--command", &watch, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().expect("piped");
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let shown = |text: &str| screen.lock().unwrap().contains(text);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shown("0 of 1 link ready (1 pending)") {
        assert!(Instant::now() < deadline, "never drew the pending link: {:?}", screen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        assert!(Instant::now() < deadline, "still watching: {:?}", screen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reader.join().unwrap();
    let screen = screen.lock().unwrap().clone();
    assert!(status.success(), "every link ready: exit 0: {screen:?}");
    assert!(screen.contains("\x1b[H\x1b[2J"), "on a terminal each drawing replaces the last: {screen:?}");
    assert!(screen.contains("ready via pcx-"), "{screen:?}");
    assert!(screen.contains("done: 1 of 1 link ready"), "{screen:?}");

    // A reference to no VPC never comes up: the watch gives up at its timeout.
    let peers = format!("{OSAKA}/{} vpc-0123456789abcdef0", seed.osaka_vpc);
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&peers)).await;
    let out = tagpeer(&endpoint, &["status", "--watch", "--interval", "1", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "timed out: exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "into a pipe, no terminal codes: {text:?}");
    assert!(text.contains("timed out after 2s: 1 of 2 links ready (1 failing)"), "{text}");
    let lines = tagpeer(&endpoint, &["status", "--watch", "--json", "--interval", "1", "--timeout", "1"]);
    let first: Value = serde_json::from_str(String::from_utf8_lossy(&lines.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["status"]["progress"]["failing"], 1, "{first:#}");
}

/// Each graph's JSON as the real parser read it (`tools/graphcheck/run`,
/// `make graphcheck`): Mermaid's own parser, or pydot's for DOT. A file the
/// parser refuses is `Err` with its message.
fn parse_graphs(format: &str, files: &[std::path::PathBuf]) -> Vec<Result<Value, String>> {
    let run = repo_root().join("tools/graphcheck/run");
    let out = Command::new(run).arg(format).args(files).output().expect("tools/graphcheck/run");
    assert_ne!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let parsed: Value = serde_json::from_str(line).expect("a JSON line a file");
            match parsed["ok"].as_bool() {
                Some(true) => Ok(parsed["graph"].clone()),
                _ => Err(parsed["error"].to_string()),
            }
        })
        .collect()
}

/// `tagpeer graph` draws the seed, then the seed beside a three-VPC mesh
/// with a failing link, in Mermaid and DOT; the real parsers read both, and
/// the nodes, groups and edges they find are the deployment's.
#[tokio::test]
async fn graph_draws_the_links_by_account_region_and_state_for_real_parsers() {
    let cloud = Cloud::start().await;
    let endpoint = cloud.moto.endpoint.clone();
    let sdk = &cloud.sdk;
    let seed = build_seed(sdk, "10.0.0.0/16").await;
    tag_vpc(sdk, &seed.seoul(), PEERS, Some(&format!("{OSAKA}/{}", seed.osaka_vpc))).await;
    let event = tag_change_event(sdk, &seed.seoul(), &[PEERS]).await;
    cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let pcx = cloud.observe().await.peerings[0].id.to_string();
    let dir = std::env::temp_dir().join(format!("tagpeer-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let draw = |name: &str, format: &str| {
        let path = dir.join(name);
        std::fs::write(&path, stdout(&tagpeer(&endpoint, &["graph", "--format", format]))).unwrap();
        path
    };
    let seed_files = [draw("seed.mmd", "mermaid"), draw("seed.dot", "dot")];

    // The mesh: a and b peer fine (pending: no function runs); c's range is b's.
    let a = create_vpc(sdk, SEOUL, "10.1.0.0/16").await;
    let b = create_vpc(sdk, OSAKA, "10.2.0.0/16").await;
    let c = create_vpc(sdk, SEOUL, "10.2.0.0/16").await;
    for vpc in [&a, &b, &c] {
        tag_vpc(sdk, vpc, MESH, Some("g")).await;
    }
    let mesh_files = [draw("mesh.mmd", "mermaid"), draw("mesh.dot", "dot")];
    let broken = dir.join("broken.mmd");
    std::fs::write(&broken, "flowchart LR\n  subgraph a[\"never ended\"]\n    x --- y\n").unwrap();

    let mermaid = parse_graphs("mermaid", &[seed_files[0].clone(), mesh_files[0].clone(), broken]);
    assert!(mermaid[2].is_err(), "the parser refuses a broken graph: {:?}", mermaid[2]);
    let (seed_graph, mesh_graph) = (mermaid[0].as_ref().unwrap(), mermaid[1].as_ref().unwrap());
    let labels = |g: &Value, key: &str| -> Vec<String> {
        let mut v: Vec<String> =
            g[key].as_array().unwrap().iter().map(|x| x["label"].as_str().unwrap_or_default().to_owned()).collect();
        v.sort();
        v
    };
    let mut vpcs = vec![format!("{}<br>10.0.0.0/16", seed.seoul_vpc), format!("{}<br>172.31.0.0/16", seed.osaka_vpc)];
    vpcs.sort();
    assert_eq!(labels(seed_graph, "nodes"), vpcs);
    assert_eq!(labels(seed_graph, "edges"), [format!("ready {pcx}")]);
    assert_eq!(seed_graph["edges"][0]["stroke"], "thick");
    // One account holding its two regions, each holding its VPC.
    let titles: Vec<(String, Value)> = seed_graph["subgraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["title"].as_str().unwrap().to_owned(), s["parent"].clone()))
        .collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(titles.iter().any(|(t, p)| t == "account 123456789012" && p.is_null()), "{titles:?}");
    assert!(titles.iter().filter(|(t, p)| t.starts_with("ap-northeast-") && p.is_string()).count() == 2);

    let edges = mesh_graph["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4, "the seed and the mesh's three pairs: {edges:#?}");
    let by_label = |label: &str| edges.iter().filter(|e| e["label"] == label).collect::<Vec<_>>();
    let failing = by_label("failing");
    assert_eq!(failing.len(), 1, "c and b overlap: {edges:#?}");
    assert_eq!(failing[0]["stroke"], "normal");
    assert!(failing[0]["style"].as_array().unwrap().iter().any(|s| s == "stroke:#c62828"), "red: {failing:?}");
    let pending = by_label("pending");
    assert_eq!(pending.len(), 2, "{edges:#?}");
    assert!(pending.iter().all(|e| e["stroke"] == "dotted"));
    assert_eq!(mesh_graph["nodes"].as_array().unwrap().len(), 5);

    let dot = parse_graphs("dot", &[seed_files[1].clone(), mesh_files[1].clone()]);
    let (seed_dot, mesh_dot) = (dot[0].as_ref().unwrap(), dot[1].as_ref().unwrap());
    assert_eq!(seed_dot["type"], "graph");
    let account = &seed_dot["clusters"][0];
    assert_eq!(account["label"], "account 123456789012");
    assert_eq!(account["clusters"].as_array().map(Vec::len), Some(2), "two regions inside: {account:#}");
    assert_eq!(seed_dot["edges"][0]["label"], format!("ready {pcx}"));
    assert_eq!(seed_dot["edges"][0]["style"], "bold");
    let dot_edges = mesh_dot["edges"].as_array().unwrap();
    assert_eq!(dot_edges.len(), 4);
    let red: Vec<&Value> = dot_edges.iter().filter(|e| e["color"] == "#c62828").collect();
    assert_eq!(red.len(), 1);
    assert_eq!(red[0]["label"], "failing");
    let ends = [red[0]["from"].as_str().unwrap(), red[0]["to"].as_str().unwrap()];
    assert!(ends.contains(&format!("{}", b).as_str()) && ends.contains(&format!("{}", c).as_str()), "{ends:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
