//! `tagpeer graph`: the deployment's links as a picture, in Mermaid (which
//! GitHub and most Markdown viewers draw) or Graphviz DOT. VPCs are grouped
//! by account, then region; each link is one edge whose style and label say
//! its [`Health`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;

use crate::ids::{AccountId, Endpoint, Region};
use crate::index::{Lookup, WorldIndex};
use crate::model::World;
use crate::overview::{Health, LinkSummary};
use crate::plan::Assessment;

/// The picture's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mermaid" => Ok(Format::Mermaid),
            "dot" => Ok(Format::Dot),
            other => Err(format!("unknown graph format {other:?}: mermaid or dot")),
        }
    }
}

/// How each health is drawn: the stroke's colour, and the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    Thick,
    Solid,
    Dotted,
}

/// The stroke of an edge in `health`: ready links thick and green, links
/// on their way dotted, failing ones solid red, conflicts solid orange,
/// links waiting for consent dotted purple, links being removed dotted grey.
pub fn stroke(health: Health) -> (Line, &'static str) {
    match health {
        Health::Ready => (Line::Thick, "#2e7d32"),
        Health::Pending => (Line::Dotted, "#1565c0"),
        Health::Failing => (Line::Solid, "#c62828"),
        Health::Conflict => (Line::Solid, "#ef6c00"),
        Health::AwaitingConsent => (Line::Dotted, "#6a1b9a"),
        Health::Removing => (Line::Dotted, "#757575"),
    }
}

/// One VPC as drawn.
struct Node {
    endpoint: Endpoint,
    /// Its id and its first range, or that there is no such VPC.
    label: Vec<String>,
    /// Its own tags are malformed: drawn with a red border.
    held: bool,
}

/// The picture of `links` (see [`crate::overview::links`]) over `world`:
/// every VPC with tagpeer intent or a link, grouped by account and region.
pub fn render(world: &World, assessment: &Assessment, links: &[LinkSummary], format: Format) -> String {
    let mut endpoints: BTreeSet<&Endpoint> = assessment.intents.keys().collect();
    for link in links {
        endpoints.extend([&link.key.a, &link.key.b]);
    }
    let index = WorldIndex::new(world);
    let nodes: Vec<Node> = endpoints
        .into_iter()
        .map(|e| {
            let label = match index.vpc(e) {
                Some(vpc) => {
                    let mut label = vec![e.vpc_id.to_string()];
                    label.extend(vpc.ipv4.first().map(ToString::to_string));
                    label
                }
                None => vec![e.vpc_id.to_string(), "not found".to_owned()],
            };
            Node { endpoint: e.clone(), label, held: assessment.held.contains_key(e) }
        })
        .collect();
    let mut groups: BTreeMap<&AccountId, BTreeMap<&Region, Vec<&Node>>> = BTreeMap::new();
    for node in &nodes {
        groups.entry(&node.endpoint.account).or_default().entry(&node.endpoint.region).or_default().push(node);
    }
    match format {
        Format::Mermaid => mermaid(&groups, &nodes, links),
        Format::Dot => dot(&groups, links),
    }
}

/// What an edge says: its health, and its connection when one stands.
fn edge_label(link: &LinkSummary) -> String {
    match &link.peering {
        Some(p) => format!("{} {p}", link.health),
        None => link.health.to_string(),
    }
}

/// A Mermaid identifier for a VPC, an account or a region: letters, digits, `_`.
fn mermaid_id(prefix: &str, parts: &[&str]) -> String {
    let mut id = prefix.to_owned();
    for part in parts {
        id.push('_');
        id.extend(part.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    }
    id
}

fn node_id(e: &Endpoint) -> String {
    mermaid_id("vpc", &[e.account.as_str(), e.region.as_str(), e.vpc_id.as_str()])
}

/// Text inside a quoted Mermaid label: its own quotes as an entity.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn mermaid(
    groups: &BTreeMap<&AccountId, BTreeMap<&Region, Vec<&Node>>>,
    nodes: &[Node],
    links: &[LinkSummary],
) -> String {
    let mut out = String::from("flowchart LR\n");
    out.push_str("  %% tagpeer graph: ready thick green; pending dotted blue; failing red; conflict orange;\n");
    out.push_str("  %% waiting for consent dotted purple; removing dotted grey; a red border: malformed tags\n");
    for (account, regions) in groups {
        let _ = writeln!(out, "  subgraph {}[\"account {account}\"]", mermaid_id("account", &[account.as_str()]));
        for (region, members) in regions {
            let id = mermaid_id("region", &[account.as_str(), region.as_str()]);
            let _ = writeln!(out, "    subgraph {id}[\"{region}\"]");
            for node in members {
                let label = node.label.iter().map(|l| mermaid_text(l)).collect::<Vec<_>>().join("<br/>");
                let _ = writeln!(out, "      {}[\"{label}\"]", node_id(&node.endpoint));
            }
            out.push_str("    end\n");
        }
        out.push_str("  end\n");
    }
    for link in links {
        let arrow = match stroke(link.health).0 {
            Line::Thick => "===",
            Line::Solid => "---",
            Line::Dotted => "-.-",
        };
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{}\"| {}",
            node_id(&link.key.a),
            mermaid_text(&edge_label(link)),
            node_id(&link.key.b)
        );
    }
    for (i, link) in links.iter().enumerate() {
        let (line, colour) = stroke(link.health);
        let width = if line == Line::Thick { 3 } else { 2 };
        let _ = writeln!(out, "  linkStyle {i} stroke:{colour},stroke-width:{width}px");
    }
    let held: Vec<String> = nodes.iter().filter(|n| n.held).map(|n| node_id(&n.endpoint)).collect();
    if !held.is_empty() {
        out.push_str("  classDef held stroke:#c62828,stroke-width:3px\n");
        let _ = writeln!(out, "  class {} held", held.join(","));
    }
    out
}

/// A DOT string: quoted, its quotes and backslashes escaped, each line
/// break as DOT's `\n` (a centred line).
fn dot_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

fn dot(groups: &BTreeMap<&AccountId, BTreeMap<&Region, Vec<&Node>>>, links: &[LinkSummary]) -> String {
    let mut out = String::from("graph tagpeer {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for (account, regions) in groups {
        let _ = writeln!(out, "  subgraph {} {{", dot_string(&format!("cluster_{account}")));
        let _ = writeln!(out, "    label={};", dot_string(&format!("account {account}")));
        for (region, members) in regions {
            let _ = writeln!(out, "    subgraph {} {{", dot_string(&format!("cluster_{account}_{region}")));
            let _ = writeln!(out, "      label={};", dot_string(region.as_str()));
            for node in members {
                let border = if node.held { ", color=\"#c62828\", penwidth=3" } else { "" };
                let _ = writeln!(
                    out,
                    "      {} [label={}{border}];",
                    dot_string(&node.endpoint.to_string()),
                    dot_string(&node.label.join("\n"))
                );
            }
            out.push_str("    }\n");
        }
        out.push_str("  }\n");
    }
    for link in links {
        let (line, colour) = stroke(link.health);
        let (style, width) = match line {
            Line::Thick => ("bold", 3),
            Line::Solid => ("solid", 2),
            Line::Dotted => ("dashed", 2),
        };
        let _ = writeln!(
            out,
            "  {} -- {} [label={}, style={style}, color={}, penwidth={width}];",
            dot_string(&link.key.a.to_string()),
            dot_string(&link.key.b.to_string()),
            dot_string(&edge_label(link)),
            dot_string(colour),
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{MESH, PEERS};
    use crate::overview::links;
    use crate::plan::assess;
    use crate::testing::{converge, deployment, ep, osaka, seoul, WorldBuilder, OSAKA, SEOUL};

    fn seed_ready() -> (World, Assessment) {
        let mut world = WorldBuilder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "ap-northeast-3/vpc-0000000b")])
            .vpc(&osaka(), "172.31.0.0/16", &[])
            .build();
        converge(&mut world, &deployment());
        let a = assess(&world, &deployment());
        (world, a)
    }

    #[test]
    fn the_seed_in_mermaid_is_two_vpcs_in_two_regions_and_one_ready_edge() {
        let (world, a) = seed_ready();
        let out = render(&world, &a, &links(&world, &a), Format::Mermaid);
        assert!(out.starts_with("flowchart LR\n"), "{out}");
        assert!(out.contains("subgraph account_123456789012[\"account 123456789012\"]"), "{out}");
        assert!(out.contains("subgraph region_123456789012_ap_northeast_2[\"ap-northeast-2\"]"), "{out}");
        assert!(
            out.contains("vpc_123456789012_ap_northeast_2_vpc_0000000a[\"vpc-0000000a<br/>10.0.0.0/16\"]"),
            "{out}"
        );
        let edge = "vpc_123456789012_ap_northeast_2_vpc_0000000a ===|\"ready pcx-00000001\"| \
                    vpc_123456789012_ap_northeast_3_vpc_0000000b";
        assert!(out.contains(edge), "{out}");
        assert!(out.contains("linkStyle 0 stroke:#2e7d32,stroke-width:3px"), "{out}");
        assert_eq!(out.matches("subgraph").count(), 3, "one account, two regions: {out}");
        assert_eq!(out.matches("\n  end\n").count() + out.matches("\n    end\n").count(), 3, "{out}");
    }

    #[test]
    fn the_seed_in_dot_clusters_by_account_and_region() {
        let (world, a) = seed_ready();
        let out = render(&world, &a, &links(&world, &a), Format::Dot);
        assert!(out.starts_with("graph tagpeer {"), "{out}");
        assert!(out.contains("subgraph \"cluster_123456789012\" {"), "{out}");
        assert!(out.contains("subgraph \"cluster_123456789012_ap-northeast-3\" {"), "{out}");
        assert!(
            out.contains("\"123456789012/ap-northeast-2/vpc-0000000a\" [label=\"vpc-0000000a\\n10.0.0.0/16\"];"),
            "{out}"
        );
        assert!(
            out.contains(
                "\"123456789012/ap-northeast-2/vpc-0000000a\" -- \"123456789012/ap-northeast-3/vpc-0000000b\" \
             [label=\"ready pcx-00000001\", style=bold, color=\"#2e7d32\", penwidth=3];"
            ),
            "{out}"
        );
        assert_eq!(out.matches('{').count(), out.matches('}').count());
    }

    #[test]
    fn each_health_has_its_own_stroke() {
        let all = [
            Health::Ready,
            Health::Pending,
            Health::Failing,
            Health::Conflict,
            Health::AwaitingConsent,
            Health::Removing,
        ];
        let strokes: BTreeSet<(String, &str)> = all
            .iter()
            .map(|h| {
                let (line, colour) = stroke(*h);
                (format!("{line:?}"), colour)
            })
            .collect();
        assert_eq!(strokes.len(), all.len());
    }

    #[test]
    fn a_mesh_with_a_failing_link_draws_it_red_and_a_missing_vpc_as_not_found() {
        let world = WorldBuilder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(MESH, "g"), (PEERS, "vpc-000000ff")])
            .vpc(&ep(SEOUL, "vpc-0000000c"), "10.1.0.0/16", &[(MESH, "g")])
            .vpc(&osaka(), "10.0.0.0/16", &[(MESH, "g")])
            .build();
        let a = assess(&world, &deployment());
        let summaries = links(&world, &a);
        let out = render(&world, &a, &summaries, Format::Mermaid);
        let failing: Vec<usize> =
            summaries.iter().enumerate().filter(|(_, l)| l.health == Health::Failing).map(|(i, _)| i).collect();
        assert_eq!(failing.len(), 2, "the overlap and the missing VPC: {summaries:#?}");
        for i in failing {
            assert!(out.contains(&format!("linkStyle {i} stroke:#c62828,stroke-width:2px")), "{out}");
        }
        assert!(out.contains("vpc_123456789012_ap_northeast_2_vpc_000000ff[\"vpc-000000ff<br/>not found\"]"), "{out}");
        assert!(out.contains(&format!("region_123456789012_{}", OSAKA.replace('-', "_"))), "{out}");
        assert_eq!(out.matches(" -.-|\"pending\"| ").count(), 2, "the two good pairs are pending: {out}");
    }

    #[test]
    fn formats_are_named_mermaid_and_dot() {
        assert_eq!("mermaid".parse::<Format>(), Ok(Format::Mermaid));
        assert_eq!("dot".parse::<Format>(), Ok(Format::Dot));
        assert!("svg".parse::<Format>().unwrap_err().contains("mermaid or dot"));
    }
}
