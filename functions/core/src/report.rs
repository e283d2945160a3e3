//! What the `tagpeer` command prints: `tagpeer plan`'s [`sweep_plan`], and
//! `tagpeer status`'s [`StatusReport`]: per link, its peering connection and
//! health, each side's state and routes, and the progress of the wanted
//! links, as a table ([`status_text`]) or as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::ids::Region;
use crate::index::{Lookup, WorldIndex};
use crate::model::{LinkKey, Target, World};
use crate::overview::{self, Health, LinkSummary};
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

/// `tagpeer status` as data: every link with its health and each side's
/// state and routes, every problem, and how many of the wanted links are ready.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    pub links: Vec<LinkRow>,
    pub problems: Vec<ProblemRow>,
    pub progress: Progress,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkRow {
    pub link: String,
    pub health: &'static str,
    /// Its live connections, each with its state (`pcx-… active`).
    pub connections: Vec<String>,
    /// Why it stands so, in the words of `tagpeer-status`.
    pub detail: String,
    /// Each side of a link that exists or is asked for; none for a
    /// reference that makes no link (its problem says why).
    pub sides: Vec<SideRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SideRow {
    pub vpc: String,
    pub peer: String,
    pub state: String,
    /// `rtb-… DESTINATION -> pcx-…`, each of this side's routes through the link.
    pub routes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProblemRow {
    pub vpc: String,
    pub problem: String,
}

/// How many of the wanted links are ready, and how the others stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub wanted: usize,
    pub ready: usize,
    pub pending: usize,
    pub failing: usize,
    pub conflict: usize,
    pub awaiting_consent: usize,
    pub removing: usize,
}

impl Progress {
    pub fn of(links: &[LinkSummary]) -> Self {
        let mut p = Progress::default();
        for link in links {
            match link.health {
                Health::Ready => p.ready += 1,
                Health::Pending => p.pending += 1,
                Health::Failing => p.failing += 1,
                Health::Conflict => p.conflict += 1,
                Health::AwaitingConsent => p.awaiting_consent += 1,
                Health::Removing => p.removing += 1,
            }
            if link.health.is_wanted() {
                p.wanted += 1;
            }
        }
        p
    }

    /// Every wanted link ready, and none left to remove.
    pub fn is_done(&self) -> bool {
        self.ready == self.wanted && self.removing == 0
    }
}

/// `3 of 6 links ready (2 pending, 1 failing)`.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.wanted == 1 { "link" } else { "links" };
        write!(f, "{} of {} {noun} ready", self.ready, self.wanted)?;
        let rest: Vec<String> = [
            (self.pending, "pending"),
            (self.failing, "failing"),
            (self.conflict, "in conflict"),
            (self.awaiting_consent, "waiting for consent"),
            (self.removing, "being removed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !rest.is_empty() {
            write!(f, " ({})", rest.join(", "))?;
        }
        Ok(())
    }
}

/// The deployment's links as [`StatusReport`] data.
pub fn status_report(world: &World, deployment: &Deployment) -> StatusReport {
    let assessment = plan::assess(world, deployment);
    let summaries = overview::links(world, &assessment);
    let existing = plan::all_links(world, &assessment);
    let index = WorldIndex::new(world);
    let links = summaries
        .iter()
        .map(|summary| {
            let key = &summary.key;
            let connections = index.live_managed(key).iter().map(|p| format!("{} {}", p.id, p.state.code())).collect();
            let sides = if existing.contains(key) { sides(&index, &assessment, key) } else { Vec::new() };
            LinkRow {
                link: key.to_string(),
                health: summary.health.word(),
                connections,
                detail: summary.detail.clone(),
                sides,
            }
        })
        .collect();
    let mut problems = Vec::new();
    for (vpc, errors) in &assessment.held {
        for e in errors {
            problems.push(ProblemRow { vpc: format!("{}/{}", vpc.region, vpc.vpc_id), problem: e.to_string() });
        }
    }
    for (vpc, list) in &assessment.problems {
        for p in list {
            problems.push(ProblemRow { vpc: format!("{}/{}", vpc.region, vpc.vpc_id), problem: p.to_string() });
        }
    }
    StatusReport { links, problems, progress: Progress::of(&summaries) }
}

/// Each side of `key`: its state and its routes through the link's connections.
fn sides(index: &WorldIndex, assessment: &plan::Assessment, key: &LinkKey) -> Vec<SideRow> {
    let link_connections: BTreeSet<&str> = index.connections_of(key).map(|p| p.id.as_str()).collect();
    [&key.a, &key.b]
        .into_iter()
        .map(|side| {
            let mut routes = Vec::new();
            for table in index.route_tables_of(side) {
                for route in &table.routes {
                    if let Target::Peering(id) = &route.target {
                        if link_connections.contains(id.as_str()) {
                            routes.push(format!("{} {} -> {id}", table.id, route.destination));
                        }
                    }
                }
            }
            SideRow {
                vpc: format!("{}/{}", side.region, side.vpc_id),
                peer: key.other(side).relative_to(side),
                state: status::link_state_at(index, assessment, key, side).to_string(),
                routes,
            }
        })
        .collect()
}

/// The links of the deployment with their connections, each side's state and
/// routes, then every VPC whose intent has a problem.
pub fn status(world: &World, deployment: &Deployment) -> String {
    status_text(&status_report(world, deployment))
}

/// A [`StatusReport`] as `tagpeer status` prints it: a row per side of each
/// link, then the problems.
pub fn status_text(report: &StatusReport) -> String {
    let dash = |cell: String| if cell.is_empty() { "-".to_owned() } else { cell };
    let mut rows = Vec::new();
    for link in &report.links {
        for side in &link.sides {
            rows.push(vec![
                side.vpc.clone(),
                side.peer.clone(),
                dash(link.connections.join(", ")),
                side.state.clone(),
                dash(side.routes.join(", ")),
            ]);
        }
    }
    let mut out = if rows.is_empty() {
        "no links\n".to_owned()
    } else {
        table(&["VPC", "PEER", "CONNECTION", "STATE", "ROUTES"], &rows)
    };
    let problems: Vec<Vec<String>> = report.problems.iter().map(|p| vec![p.vpc.clone(), p.problem.clone()]).collect();
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
    planned(&WorldIndex::new(world), &assessment, deployment)
}

/// [`sweep_plan`], on an index of the world and its assessment.
fn planned(index: &WorldIndex, assessment: &plan::Assessment, deployment: &Deployment) -> Vec<(Role, Region, Action)> {
    let mut out = Vec::new();
    for role in ROLES {
        for region in &deployment.regions {
            for action in plan::actions_at(index, assessment, role, region, &Scope::sweep()) {
                out.push((role, region.clone(), action));
            }
        }
    }
    // Each region's requester writes its VPCs' statuses first in a sweep.
    for region in &deployment.regions {
        for action in status::statuses_at(index, assessment, region, &Scope::sweep(), &BTreeMap::new()) {
            out.push((Role::Requester, region.clone(), action));
        }
    }
    out
}

const ROLES: [Role; 3] = [Role::Requester, Role::Accepter, Role::Router];

/// The functions a sweep of `world` has work for, each once, in the order
/// found: a role's actions in a region; a region's statuses to write, which
/// its router writes after its own steps; a step that waits on AWS (a request
/// not yet listed in its accepter's region, a connection provisioning),
/// which the function woken waits for. The deployment's sweeper wakes these
/// alone. One index of the world serves every role and region.
pub fn sweep_work(world: &World, assessment: &plan::Assessment, deployment: &Deployment) -> Vec<(Role, Region)> {
    let index = WorldIndex::new(world);
    let mut work: Vec<(Role, Region)> = Vec::new();
    let mut add = |role: Role, region: &Region| {
        if !work.iter().any(|(r, g)| *r == role && g == region) {
            work.push((role, region.clone()));
        }
    };
    for (role, region, action) in planned(&index, assessment, deployment) {
        add(if matches!(action, Action::SetStatus { .. }) { Role::Router } else { role }, &region);
    }
    for role in ROLES {
        for region in &deployment.regions {
            if !plan::awaiting_at(&index, assessment, role, region, &Scope::sweep()).is_empty() {
                add(role, region);
            }
        }
    }
    work
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
