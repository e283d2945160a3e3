//! `tagpeer`: the command line. It reads the standard AWS configuration
//! (profiles, regions, `AWS_ENDPOINT_URL`) like any AWS tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tagpeer::app::parse_regions;
use tagpeer::aws::Ec2;
use tagpeer::ids::Region;
use tagpeer::plan::Deployment;

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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tagpeer: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<String, String> {
    let sdk = aws_config::load_from_env().await;
    let regions = regions(&cli, sdk.region().map(|r| r.to_string()))?;
    let ec2 = Ec2::new(&sdk, &regions);
    let deployment = Deployment { regions: regions.clone() };
    match cli.command {
        Command::Status => {
            let world = ec2.observe(&regions).await.map_err(|e| e.to_string())?;
            Ok(tagpeer::report::status(&world, &deployment))
        }
        Command::Plan => {
            let world = ec2.observe(&regions).await.map_err(|e| e.to_string())?;
            let planned = tagpeer::plan::sweep_plan(&world, &deployment);
            if planned.is_empty() {
                return Ok("nothing to do\n".to_owned());
            }
            let rows: Vec<Vec<String>> = planned
                .iter()
                .map(|(role, region, action)| vec![role.name().to_owned(), region.to_string(), action.to_string()])
                .collect();
            Ok(tagpeer::report::table(&["FUNCTION", "REGION", "ACTION"], &rows))
        }
    }
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
