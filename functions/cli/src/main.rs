//! `tagpeer`: the command line. It reads the standard AWS configuration
//! (profiles, regions, `AWS_ENDPOINT_URL`) like any AWS tool.

use std::process::ExitCode;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tagpeer::app::{parse_accounts, parse_regions};
use tagpeer::aws::Ec2;
use tagpeer::ids::Region;
use tagpeer::plan::Deployment;
use tagpeer::{graph, reach, report};

#[derive(Parser)]
#[command(name = "tagpeer", version, about = "Tag a VPC, get a working VPC peering across regions")]
struct Cli {
    /// The deployment's regions, separated by commas [default: $TAGPEER_REGIONS, else the configured region]
    #[arg(long, global = true)]
    regions: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per link: its peering connection and state, and the routes on each side
    Status {
        /// Redraw as the links change, with a progress line, until every wanted link is
        /// ready (exit 0) or --timeout passes (exit 1)
        #[arg(long)]
        watch: bool,
        /// How long --watch waits for every link to be ready, in seconds
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
        /// How often --watch reads the deployment, in seconds
        #[arg(long, default_value_t = 2, value_name = "SECONDS")]
        interval: u64,
        /// JSON for scripts (with --watch: one object per line, each time something changed)
        #[arg(long)]
        json: bool,
    },
    /// What the next sweep would do, from the planner; changes nothing
    Plan {
        /// JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// The deployment's links as a picture: VPCs grouped by account and region, each
    /// link an edge styled and labelled by its state
    Graph {
        /// mermaid (renders in GitHub and most Markdown viewers) or dot (Graphviz)
        #[arg(long, default_value = "mermaid")]
        format: String,
    },
    /// Whether a packet from SRC reaches DST and its reply comes back, as AWS forwards it;
    /// if not, the first hop that drops it and why. Exits 0 when reachable, 1 when not.
    Check {
        /// An instance id (i-…), a network interface id (eni-…), or a private IP (REGION/IP, or IP when unique)
        src: String,
        /// Same forms as SRC
        dst: String,
        /// icmp (an echo request), tcp or udp
        #[arg(long, default_value = "icmp")]
        protocol: String,
        /// The destination port, for tcp and udp
        #[arg(long)]
        port: Option<u16>,
        /// JSON for scripts
        #[arg(long)]
        json: bool,
    },
}

/// What a command answers: its text, and whether the answer is a "no".
struct Answer {
    text: String,
    negative: bool,
}

impl From<String> for Answer {
    fn from(text: String) -> Self {
        Self { text, negative: false }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(answer) => {
            print!("{}", answer.text);
            if answer.negative {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("tagpeer: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<Answer, String> {
    let sdk = tagpeer::aws::load_sdk_config().await;
    let regions = regions(&cli, sdk.region().map(|r| r.to_string()))?;
    let reader_role = std::env::var("TAGPEER_READER_ROLE").ok().filter(|v| !v.trim().is_empty());
    let ec2 = Ec2::new(&sdk, &regions).with_reader_role(reader_role);
    let deployment = || async {
        let mut deployment = Deployment::new(ec2.caller_account().await.map_err(|e| e.to_string())?, regions.clone());
        if let Ok(list) = std::env::var("TAGPEER_ALLOWED_ACCOUNTS") {
            deployment.allowed_accounts = parse_accounts(&list).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(deployment)
    };
    match cli.command {
        Command::Status { watch: true, timeout, interval, json } => {
            let deployment = deployment().await?;
            let watch = Watch {
                timeout: Duration::from_secs(timeout),
                interval: Duration::from_secs(interval.max(1)),
                json,
                terminal: std::io::stdout().is_terminal(),
            };
            watch.run(&ec2, &deployment).await
        }
        Command::Status { json, .. } => {
            let deployment = deployment().await?;
            let world = ec2.observe_deployment(&deployment).await.map_err(|e| e.to_string())?;
            let status = report::status_report(&world, &deployment);
            Ok(if json { json_line(&status) } else { report::status_text(&status) }.into())
        }
        Command::Graph { format } => {
            let format: graph::Format = format.parse()?;
            let deployment = deployment().await?;
            let world = ec2.observe_deployment(&deployment).await.map_err(|e| e.to_string())?;
            let assessment = tagpeer::plan::assess(&world, &deployment);
            let links = tagpeer::overview::links(&world, &assessment);
            Ok(graph::render(&world, &assessment, &links, format).into())
        }
        Command::Plan { json } => {
            let deployment = deployment().await?;
            let world = ec2.observe_deployment(&deployment).await.map_err(|e| e.to_string())?;
            let planned = tagpeer::report::sweep_plan(&world, &deployment);
            if json {
                let rows: Vec<serde_json::Value> = planned
                    .iter()
                    .map(|(role, region, action)| {
                        serde_json::json!({
                            "function": role.name(),
                            "region": region.as_str(),
                            "action": action.api_name(),
                            "link": action.link().map(ToString::to_string),
                            "says": action.to_string(),
                        })
                    })
                    .collect();
                return Ok(json_line(&rows).into());
            }
            if planned.is_empty() {
                return Ok("nothing to do\n".to_owned().into());
            }
            let rows: Vec<Vec<String>> = planned
                .iter()
                .map(|(role, region, action)| vec![role.name().to_owned(), region.to_string(), action.to_string()])
                .collect();
            Ok(tagpeer::report::table(&["FUNCTION", "REGION", "ACTION"], &rows).into())
        }
        Command::Check { src, dst, protocol, port, json } => {
            let protocol: reach::Protocol = protocol.parse().map_err(|e: reach::PacketError| e.to_string())?;
            let packet = reach::Packet::new(protocol, port).map_err(|e| e.to_string())?;
            let net = ec2.observe_network(&regions).await.map_err(|e| e.to_string())?;
            let src = interface(&net, &src)?;
            let dst = interface(&net, &dst)?;
            let verdict = reach::check(&net, src, dst, &packet);
            let negative = !verdict.is_reachable();
            let text = if json { json_line(&verdict.to_json()) } else { format!("{verdict}\n") };
            Ok(Answer { text, negative })
        }
    }
}

/// `i-…`, `eni-…`, `REGION/IP` or `IP`.
fn interface<'n>(net: &'n reach::Network, query: &str) -> Result<&'n reach::Interface, String> {
    let (region, what) = match query.split_once('/') {
        Some((region, ip)) => (Some(region.parse::<Region>().map_err(|e| e.to_string())?), ip),
        None => (None, query),
    };
    reach::find_interface(net, what, region.as_ref()).map_err(|e| e.to_string())
}

fn regions(cli: &Cli, configured: Option<String>) -> Result<Vec<Region>, String> {
    let list = cli
        .regions
        .clone()
        .or_else(|| std::env::var("TAGPEER_REGIONS").ok().filter(|v| !v.trim().is_empty()))
        .or(configured)
        .ok_or("no region: give --regions, or set TAGPEER_REGIONS or AWS_REGION")?;
    let regions = parse_regions(&list).map_err(|e| e.to_string())?;
    if regions.is_empty() {
        return Err("no region: --regions is empty".to_owned());
    }
    Ok(regions)
}

/// One JSON document on one line.
fn json_line(value: &impl serde::Serialize) -> String {
    let mut line = serde_json::to_string(value).expect("plain data serializes");
    line.push('\n');
    line
}

/// `tagpeer status --watch`: reads the deployment every `interval` and
/// redraws the table with a progress line whenever it changed, until every
/// wanted link is ready or `timeout` passes. On a terminal each drawing
/// replaces the last; otherwise (a pipe, a log) each is appended.
struct Watch {
    timeout: Duration,
    interval: Duration,
    json: bool,
    terminal: bool,
}

/// Clears a terminal and puts the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

impl Watch {
    async fn run(&self, ec2: &Ec2, deployment: &Deployment) -> Result<Answer, String> {
        let start = tokio::time::Instant::now();
        let mut last: Option<report::StatusReport> = None;
        loop {
            let world = ec2.observe_deployment(deployment).await.map_err(|e| e.to_string())?;
            let now = report::status_report(&world, deployment);
            let waited = start.elapsed();
            if last.as_ref() != Some(&now) {
                self.draw(&now, waited);
            }
            let progress = now.progress;
            last = Some(now);
            if progress.is_done() {
                let summary = format!("done: {progress} after {}s\n", waited.as_secs());
                return Ok(if self.json { String::new() } else { summary }.into());
            }
            if waited >= self.timeout {
                let summary = format!("timed out after {}s: {progress}\n", self.timeout.as_secs());
                return Ok(Answer { text: if self.json { String::new() } else { summary }, negative: true });
            }
            // The last read falls on the timeout itself.
            tokio::time::sleep(self.interval.min(self.timeout - waited)).await;
        }
    }

    fn draw(&self, status: &report::StatusReport, waited: Duration) {
        let mut out = std::io::stdout().lock();
        let text = if self.json {
            json_line(&serde_json::json!({"seconds": waited.as_secs(), "status": status}))
        } else {
            let clear = if self.terminal { CLEAR } else { "" };
            format!("{clear}{}\n{} ({}s)\n", report::status_text(status), status.progress, waited.as_secs())
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
