//! `make demo`: the seed scenario, told step by step, on moto's server.
//!
//! Seoul gets a VPC with its own range, a subnet, an internet gateway and a
//! route table; Osaka has its default VPC. A person tags the Seoul VPC; the
//! requester, accepter and router functions do the rest. (The functions run
//! in this process here; the local cloud runs them as deployed.)

use tagpeer::intent::{PEERS, STATUS};
use tagpeer::model::World;
use tagpeer::plan::Role;
use tagpeer_tests::*;

fn print_routes(world: &World, title: &str, vpc: &tagpeer::ids::Endpoint) {
    println!("  {title} ({}):", vpc.relative_to(vpc));
    for table in world.route_tables_of(vpc) {
        println!("    {}{}", table.id, if table.main { " (main)" } else { "" });
        for route in &table.routes {
            println!("      {:<18} -> {}", route.destination.to_string(), route.target);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("tagpeer demo: the seed scenario (Seoul <-> Osaka) on a local moto server\n");
    let cloud = Cloud::start().await;
    println!("1. moto is listening on {}", cloud.moto.endpoint);

    let seed = build_seed(&cloud.sdk, "10.0.0.0/16").await;
    println!("2. Seoul ({SEOUL}): VPC {} 10.0.0.0/16, subnet {} 10.0.6.0/24,", seed.seoul_vpc, seed.seoul_subnet);
    println!(
        "   an internet gateway, route table {} with the subnet and 0.0.0.0/0 -> the gateway",
        seed.seoul_route_table
    );
    println!("   Osaka ({OSAKA}): the default VPC {} 172.31.0.0/16", seed.osaka_vpc);
    let before = cloud.observe().await;
    println!("\n   Routes before: the two ranges cannot reach each other.");
    print_routes(&before, "Seoul", &seed.seoul());
    print_routes(&before, "Osaka", &seed.osaka());

    let value = format!("{OSAKA}/{}", seed.osaka_vpc);
    tag_vpc(&cloud.sdk, &seed.seoul(), PEERS, Some(&value)).await;
    println!("\n3. A person tags the Seoul VPC: {PEERS} = {value}");
    let event = tag_change_event(&cloud.sdk, &seed.seoul(), &[PEERS]).await;

    println!("\n4. The functions, event by event:");
    let log = cloud.run_chain(Delivery { role: Role::Requester, region: SEOUL.into(), event }).await;
    let mut failed = false;
    for (delivery, result) in &log {
        let trigger = delivery.event["detail-type"].as_str().unwrap_or("?");
        println!("   {:<9} in {} took \"{trigger}\"", delivery.role.name(), delivery.region);
        match result {
            Ok(report) => {
                for c in &report.changes {
                    let detail = c.detail.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
                    println!("      {} {} {}{detail}: {}", c.action, c.region, c.resource, c.outcome);
                }
                for e in &report.events {
                    println!("      sent \"{}\" for {}", e.detail_type, e.detail.peering_connection_id);
                }
            }
            Err(e) => {
                failed = true;
                println!("      failed: {e}");
            }
        }
    }

    let after = cloud.observe().await;
    println!("\n5. Routes after:");
    print_routes(&after, "Seoul", &seed.seoul());
    print_routes(&after, "Osaka", &seed.osaka());
    for (name, vpc) in [("Seoul", seed.seoul()), ("Osaka", seed.osaka())] {
        let status = after.vpc(&vpc).and_then(|v| v.tags.get(STATUS)).map(String::as_str).unwrap_or("(none)");
        println!("   {name} {STATUS}: {status}");
    }

    let sweep = cloud.sweep().await;
    println!("\n6. A sweep of every function in both regions changes {} things.", changes(&sweep).len());
    let violations = tagpeer::invariants::violations(&after, cloud.deployment());
    if failed || !violations.is_empty() {
        eprintln!("\nThe demo did not converge: {violations:?}");
        std::process::exit(1);
    }
    println!("\nThe link is ready: 10.0.0.0/16 and 172.31.0.0/16 route to each other through the peering connection.");
}
