//! `tagpeer`: the command line. It reads the standard AWS configuration
//! (profiles, regions, `AWS_ENDPOINT_URL`) like any AWS tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tagpeer::app::{parse_accounts, parse_regions};
use tagpeer::aws::Ec2;
use tagpeer::ids::Region;
use tagpeer::plan::Deployment;
use tagpeer::reach;

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
    Status,
    /// What the next sweep would do, from the planner; changes nothing
    Plan,
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
        Command::Status => {
            let deployment = deployment().await?;
            let world = ec2.observe_deployment(&deployment).await.map_err(|e| e.to_string())?;
            Ok(tagpeer::report::status(&world, &deployment).into())
        }
        Command::Plan => {
            let deployment = deployment().await?;
            let world = ec2.observe_deployment(&deployment).await.map_err(|e| e.to_string())?;
            let planned = tagpeer::report::sweep_plan(&world, &deployment);
            if planned.is_empty() {
                return Ok("nothing to do\n".to_owned().into());
            }
            let rows: Vec<Vec<String>> = planned
                .iter()
                .map(|(role, region, action)| vec![role.name().to_owned(), region.to_string(), action.to_string()])
                .collect();
            Ok(tagpeer::report::table(&["FUNCTION", "REGION", "ACTION"], &rows).into())
        }
        Command::Check { src, dst, protocol, port } => {
            let protocol: reach::Protocol = protocol.parse().map_err(|e: reach::PacketError| e.to_string())?;
            let packet = reach::Packet::new(protocol, port).map_err(|e| e.to_string())?;
            let net = ec2.observe_network(&regions).await.map_err(|e| e.to_string())?;
            let src = interface(&net, &src)?;
            let dst = interface(&net, &dst)?;
            let verdict = reach::check(&net, src, dst, &packet);
            let negative = !matches!(verdict, reach::Verdict::Reachable { .. });
            Ok(Answer { text: format!("{verdict}\n"), negative })
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
