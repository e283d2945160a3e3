//! What the `tagpeer` command prints: `tagpeer plan`'s [`sweep_plan`], and
//! `tagpeer status`'s table: per link, its peering connection and state,
//! and the routes on each side, as a table.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::Region;
use crate::model::{LinkKey, Target, World};
use crate::plan::{self, Action, Deployment, Role, Scope};
use crate::status;

/// Columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The links of the deployment with their connections, each side's state and
/// routes, then every VPC whose intent has a problem.
pub fn status(world: &World, deployment: &Deployment) -> String {
    let assessment = plan::assess(world, deployment);
    let mut rows = Vec::new();
    for key in &plan::all_links(world, &assessment) {
        let connection = world
            .live_managed(key)
            .iter()
            .map(|p| format!("{} {}", p.id, p.state.code()))
            .collect::<Vec<_>>()
            .join(", ");
        let link_connections: BTreeSet<&str> =
            world.peerings.iter().filter(|p| &LinkKey::of(p) == key).map(|p| p.id.as_str()).collect();
        for side in [&key.a, &key.b] {
            let state = status::link_state(world, &assessment, key, side).to_string();
            let peer = key.other(side);
            let mut routes: Vec<String> = Vec::new();
            for table in world.route_tables_of(side) {
                for route in &table.routes {
                    if let Target::Peering(id) = &route.target {
                        if link_connections.contains(id.as_str()) {
                            routes.push(format!("{} {} -> {id}", table.id, route.destination));
                        }
                    }
                }
            }
            rows.push(vec![
                format!("{}/{}", side.region, side.vpc_id),
                peer.relative_to(side),
                if connection.is_empty() { "-".to_owned() } else { connection.clone() },
                state,
                if routes.is_empty() { "-".to_owned() } else { routes.join(", ") },
            ]);
        }
    }
    let mut out = if rows.is_empty() {
        "no links\n".to_owned()
    } else {
        table(&["VPC", "PEER", "CONNECTION", "STATE", "ROUTES"], &rows)
    };

    let mut problems = Vec::new();
    for (vpc, errors) in &assessment.held {
        for e in errors {
            problems.push(vec![format!("{}/{}", vpc.region, vpc.vpc_id), e.to_string()]);
        }
    }
    for (vpc, list) in &assessment.problems {
        for p in list {
            problems.push(vec![format!("{}/{}", vpc.region, vpc.vpc_id), p.to_string()]);
        }
    }
    if !problems.is_empty() {
        out.push('\n');
        out.push_str(&table(&["VPC", "PROBLEM"], &problems));
    }
    out
}

/// What the next sweep would do: every role's actions in every region, and
/// the status writes, as each function would plan them now. Changes nothing.
pub fn sweep_plan(world: &World, deployment: &Deployment) -> Vec<(Role, Region, Action)> {
    let assessment = plan::assess(world, deployment);
    let mut out = Vec::new();
    for role in [Role::Requester, Role::Accepter, Role::Router] {
        for region in &deployment.regions {
            for action in plan::actions(world, &assessment, role, region, &Scope::sweep()) {
                out.push((role, region.clone(), action));
            }
        }
    }
    // Each region's requester writes its VPCs' statuses first in a sweep.
    for region in &deployment.regions {
        for action in status::statuses(world, &assessment, region, &Scope::sweep(), &BTreeMap::new()) {
            out.push((Role::Requester, region.clone(), action));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(&["A", "BB"], &[vec!["long cell".into(), "x".into()], vec!["y".into(), "z".into()]]);
        assert_eq!(t, "A          BB\nlong cell  x\ny          z\n");
    }

    #[test]
    fn an_empty_world_has_no_links() {
        let deployment = Deployment::new("123456789012".parse().unwrap(), vec!["ap-northeast-2".parse().unwrap()]);
        assert_eq!(status(&World::default(), &deployment), "no links\n");
    }
}
