//! The local cloud (`tests/localcloud`), started by a test on a free loopback
//! port and stopped on drop, with a small client for its `/_local/` interface.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region as SdkRegion};
use serde_json::Value;

use crate::{repo_root, SEOUL};

/// Where cargo put the function binaries: next to this test's own executable
/// (`target/debug/deps/NAME` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe.parent().expect("deps/").to_path_buf();
    if dir.ends_with("deps") {
        dir.parent().expect("target/debug").to_path_buf()
    } else {
        dir
    }
}

/// AWS's intermediate states, shortened so that `make test` keeps its budget:
/// a fraction of a second each still makes every one of them observable. A
/// function waits for those its own steps meet (a request's
/// `initiating-request`); the next function, a batching window later
/// ([`TEST_BATCHING_WINDOW`]), may find AWS done. The tests of waiting use
/// AWS's own timing (`LocalCloud::start_with(&[])`).
pub const TEST_LIFECYCLE: &str =
    r#"{"initiating_s": 0.3, "visibility_s": 0.6, "provisioning_s": 0.3, "deleting_s": 0.3}"#;

/// The queues' batching window, shortened as the lifecycle is: still a
/// window, so events that arrive together are one batch, but a quarter of the
/// template's second at each step. The tests of coalescing use the
/// template's own (`LocalCloud::start_with(&[])`).
pub const TEST_BATCHING_WINDOW: &str = "0.25";

/// A running local cloud.
pub struct LocalCloud {
    child: Child,
    pub endpoint: String,
    port: u16,
}

impl LocalCloud {
    /// Starts `python -m localcloud` from the repository's virtual environment
    /// and waits for its `ready` line. The function binaries must be built
    /// (`make test` builds them first).
    pub fn start() -> Self {
        Self::start_with(&["--lifecycle", TEST_LIFECYCLE, "--batching-window", TEST_BATCHING_WINDOW])
    }

    /// [`LocalCloud::start`] with more arguments for `python -m localcloud`.
    pub fn start_with(args: &[&str]) -> Self {
        let python = repo_root().join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run `make venv` first", python.display());
        for f in ["tagpeer-requester", "tagpeer-accepter", "tagpeer-router"] {
            let bin = bin_dir().join(f);
            assert!(bin.exists(), "{} is missing: run `cargo build --bins` first", bin.display());
        }
        let mut child = Command::new(&python)
            // Port 0: the local cloud binds a port of the kernel's choosing and says which in its
            // ready line (a port chosen here and bound there could be taken in between).
            .args(["-m", "localcloud", "--port", "0", "--bin-dir"])
            .arg(bin_dir())
            .args(args)
            .env("PYTHONPATH", repo_root().join("tests"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the local cloud");
        let endpoint = wait_until_ready(&mut child);
        let port = endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the ready line's port");
        Self { child, endpoint, port }
    }

    /// The standard AWS configuration pointed at the local cloud, as a person's
    /// `AWS_ENDPOINT_URL` would.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(SdkRegion::new(SEOUL))
            .credentials_provider(Credentials::new("123456789012-tester", "local", None, None, "tagpeer-tests"))
            .load()
            .await
    }

    fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the local cloud");
        stream.set_read_timeout(Some(Duration::from_secs(600))).expect("a timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// POST /_local/settle: returns once no event is queued or in flight.
    pub fn settle(&self) {
        let (status, body) = self.request("POST", "/_local/settle", "");
        assert_eq!(status, 200, "{body}");
    }

    /// POST /_local/schedule: every schedule in every region once, then settle.
    pub fn schedule(&self) {
        let (status, body) = self.request("POST", "/_local/schedule", "");
        assert_eq!(status, 200, "{body}");
    }

    /// GET /_local/events
    pub fn events(&self) -> Vec<Value> {
        let (status, body) = self.request("GET", "/_local/events", "");
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }

    /// GET /_local/calls
    pub fn calls(&self) -> Vec<Value> {
        let (status, body) = self.request("GET", "/_local/calls", "");
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }

    /// GET /_local/metrics: the datapoints the functions published in
    /// CloudWatch's embedded metric format, one per metric and dimension set:
    /// `{"name", "unit", "value", "dimensions", "function" (`tagpeer-RouterFunction`),
    /// "region", "account", "invocation", "properties" (`Function`: `router`, ...),
    /// "timestamp", "record"}`. Fails on any line CloudWatch would reject.
    pub fn metrics(&self) -> Vec<Value> {
        let (status, body) = self.request("GET", "/_local/metrics", "");
        assert_eq!(status, 200, "{body}");
        let rejected = body["rejected"].as_array().cloned().unwrap_or_default();
        assert!(rejected.is_empty(), "CloudWatch would reject these lines: {rejected:#?}");
        body["metrics"].as_array().cloned().unwrap_or_default()
    }

    /// POST /_local/faults
    pub fn faults(&self, spec: &Value) {
        let (status, body) = self.request("POST", "/_local/faults", &spec.to_string());
        assert_eq!(status, 200, "{body}");
    }

    /// GET /_local/faults: `{"faults": {...}, "counters": {"mutating_calls", "injected", "throttled",
    /// "crashed", "refused_after_crash", "invocations_refused", "killed", "latency_ms",
    /// "events_dropped", "events_duplicated", "events_reordered"}}`.
    pub fn get_faults(&self) -> Value {
        let (status, body) = self.request("GET", "/_local/faults", "");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POST /_local/lifecycle: how long connections stay in AWS's intermediate states.
    pub fn lifecycle(&self, spec: &Value) -> Value {
        let (status, body) = self.request("POST", "/_local/lifecycle", &spec.to_string());
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POST /_local/clock `{"advance_s": seconds}`: moves the cloud's clock forward.
    pub fn advance_clock(&self, seconds: u64) -> Value {
        let (status, body) = self.request("POST", "/_local/clock", &format!(r#"{{"advance_s": {seconds}}}"#));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POST /_local/reset
    pub fn reset(&self) {
        let (status, body) = self.request("POST", "/_local/reset", "");
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        // SIGTERM, so that it stops moto and the function processes itself.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a starting `python -m localcloud`'s standard output (piped) until
/// its `ready http://127.0.0.1:PORT` line and answers the endpoint; the rest
/// of its output is read and dropped, so that it never blocks on a full pipe.
pub(crate) fn wait_until_ready(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line); // once ready is read, nobody listens: dropped
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.starts_with("ready ") => return line["ready ".len()..].trim().to_owned(),
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("the local cloud did not say ready: {e}");
            }
        }
    }
}

/// The deliveries to functions in the order they started: (function, region, detail-type, outcome).
pub fn invocations(events: &[Value]) -> Vec<(String, String, String, String)> {
    let mut started: Vec<&Value> = events.iter().filter(|e| e["function"].is_string()).collect();
    started.sort_by(|a, b| a["time"].as_f64().unwrap_or_default().total_cmp(&b["time"].as_f64().unwrap_or_default()));
    started
        .into_iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("function"), s("region"), s("detail_type"), s("outcome"))
        })
        .collect()
}

/// The datapoints of `metrics` named `name`, published under exactly the
/// dimension keys `dimensions`, in the order they were published.
pub fn datapoints<'m>(metrics: &'m [Value], name: &str, dimensions: &[&str]) -> Vec<&'m Value> {
    let mut keys: Vec<&str> = dimensions.to_vec();
    keys.sort_unstable();
    metrics
        .iter()
        .filter(|m| m["name"] == name)
        .filter(|m| {
            let mut have: Vec<&str> =
                m["dimensions"].as_object().map(|d| d.keys().map(String::as_str).collect()).unwrap_or_default();
            have.sort_unstable();
            have == keys
        })
        .collect()
}

/// The last value of gauge `name` that `region`'s router published.
pub fn last_gauge(metrics: &[Value], name: &str, region: &str) -> Option<f64> {
    datapoints(metrics, name, &["Region"])
        .into_iter()
        .rfind(|m| m["dimensions"]["Region"] == region && m["properties"]["Function"] == "router")
        .and_then(|m| m["value"].as_f64())
}

/// Each invocation's `Ec2Calls` and `Ec2Throttled` are the EC2 calls the
/// cloud recorded for that invocation, and those it throttled.
pub fn assert_invocations_count_their_calls(metrics: &[Value], calls: &[Value]) {
    let lines = datapoints(metrics, "Ec2Calls", &["Region", "Function"]);
    assert!(!lines.is_empty(), "no invocation published its calls");
    for line in lines {
        let invocation = &line["invocation"];
        assert!(invocation.is_string(), "a line names its invocation: {line}");
        let own: Vec<&Value> =
            calls.iter().filter(|c| &c["invocation"] == invocation && c["service"] == "ec2").collect();
        assert_eq!(line["value"].as_f64(), Some(own.len() as f64), "{line}");
        let throttled = own.iter().filter(|c| c["error"] == "RequestLimitExceeded").count();
        let published = metrics
            .iter()
            .find(|m| {
                m["name"] == "Ec2Throttled" && &m["invocation"] == invocation && m["dimensions"]["Function"].is_string()
            })
            .and_then(|m| m["value"].as_f64());
        assert_eq!(published, Some(throttled as f64), "throttled calls of {invocation}");
    }
}
