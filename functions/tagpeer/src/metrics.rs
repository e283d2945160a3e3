//! Metrics in CloudWatch's embedded metric format (EMF): JSON lines on
//! standard output that Lambda's log delivery turns into CloudWatch metrics,
//! with no API call from the function. Namespace `tagpeer`; each line also
//! carries `Function`, `Region` and `Account` as properties (and, on Lambda,
//! the invocation's `RequestId`: [`crate::run_lambda`]). The names,
//! units and dimensions are documented in the README ("Metrics"):
//!
//! - every invocation: `Ec2Calls`, `Ec2Throttled`, `Errors`, `Changes`, by
//!   region and by region and function;
//! - the router, every invocation: its region's links by health and the
//!   highest quota use ([`RegionGauges`]);
//! - the router, in a sweep: each VPC's and each route table's quota use;
//! - whoever sees a side turn ready: `LinkUpSeconds`.

use serde_json::{json, Map, Value};

use crate::ids::{AccountId, Endpoint, PeeringId, Region, RouteTableId};
use crate::model::LinkKey;
use crate::overview::{QuotaUse, RegionGauges};
use crate::ports::Calls;

pub const NAMESPACE: &str = "tagpeer";

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Percent,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Percent => "Percent",
        }
    }
}

/// Who publishes: the function, its region and account, and when.
#[derive(Clone, Debug)]
pub struct Source {
    pub function: &'static str,
    pub region: Region,
    pub account: AccountId,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Source {
    pub fn now(function: &'static str, region: Region, account: AccountId) -> Self {
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self { function, region, account, timestamp_ms }
    }

    /// One EMF line: `metrics` under each set of `dimensions`, with
    /// `properties` beside them (every dimension must name a property).
    pub fn line(&self, dimensions: &[&[&str]], properties: &[(&str, Value)], metrics: &[(&str, Unit, f64)]) -> Value {
        let mut line = Map::new();
        line.insert("Function".into(), json!(self.function));
        line.insert("Region".into(), json!(self.region.as_str()));
        line.insert("Account".into(), json!(self.account.as_str()));
        for (key, value) in properties {
            line.insert((*key).to_owned(), value.clone());
        }
        for (name, _, value) in metrics {
            line.insert((*name).to_owned(), json!(value));
        }
        let definitions: Vec<Value> =
            metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()})).collect();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(line)
    }

    /// Every invocation's line: its EC2 calls, throttles, errors and changes.
    pub fn invocation(&self, calls: Calls, errors: usize, changes: usize) -> Value {
        self.counters(calls, errors, Some(changes))
    }

    /// The provisioner's line: its EC2 calls, throttles and whether it failed
    /// (what it built is in its answer and its log, not counted).
    pub fn provisioning(&self, calls: Calls, errors: usize) -> Value {
        self.counters(calls, errors, None)
    }

    fn counters(&self, calls: Calls, errors: usize, changes: Option<usize>) -> Value {
        let mut metrics = vec![
            ("Ec2Calls", Unit::Count, calls.sent as f64),
            ("Ec2Throttled", Unit::Count, calls.throttled as f64),
            ("Errors", Unit::Count, errors as f64),
        ];
        metrics.extend(changes.map(|c| ("Changes", Unit::Count, c as f64)));
        self.line(&[&["Region"], &["Region", "Function"]], &[], &metrics)
    }

    /// The router's line for its region.
    pub fn region_gauges(&self, g: &RegionGauges) -> Value {
        self.line(
            &[&["Region"]],
            &[],
            &[
                ("LinksWanted", Unit::Count, g.wanted as f64),
                ("LinksReady", Unit::Count, g.ready as f64),
                ("LinksPending", Unit::Count, g.pending as f64),
                ("LinksFailing", Unit::Count, g.failing as f64),
                ("ConsentRefusals", Unit::Count, g.awaiting_consent as f64),
                ("RouteConflicts", Unit::Count, g.route_conflicts as f64),
                ("OldestPendingSeconds", Unit::Seconds, g.oldest_pending_seconds as f64),
                ("PeeringQuotaUsePercent", Unit::Percent, g.peering_quota_use),
                ("RouteQuotaUsePercent", Unit::Percent, g.route_quota_use),
            ],
        )
    }

    /// One VPC's use of the peering quota.
    pub fn vpc_quota(&self, q: &QuotaUse<Endpoint>) -> Value {
        self.line(
            &[&["Region", "VpcId"]],
            &[("VpcId", json!(q.vpc.vpc_id.as_str())), ("Peerings", json!(q.used)), ("Quota", json!(q.quota))],
            &[("PeeringQuotaUsePercent", Unit::Percent, q.percent())],
        )
    }

    /// One route table's use of the route quota.
    pub fn table_quota(&self, q: &QuotaUse<RouteTableId>) -> Value {
        self.line(
            &[&["Region", "RouteTableId"]],
            &[
                ("RouteTableId", json!(q.id.as_str())),
                ("VpcId", json!(q.vpc.vpc_id.as_str())),
                ("Routes", json!(q.used)),
                ("Quota", json!(q.quota)),
            ],
            &[("RouteQuotaUsePercent", Unit::Percent, q.percent())],
        )
    }

    /// `side` of `link` turned ready `seconds` after its connection was requested.
    pub fn link_up(&self, link: &LinkKey, side: &Endpoint, peering: &PeeringId, seconds: u64) -> Value {
        self.line(
            &[&["Region"]],
            &[
                ("Link", json!(link.to_string())),
                ("Peering", json!(peering.as_str())),
                ("VpcId", json!(side.vpc_id.as_str())),
            ],
            &[("LinkUpSeconds", Unit::Seconds, seconds as f64)],
        )
    }
}

/// Writes `lines` to standard output, one JSON object each (through
/// `println!`, which a test harness captures).
pub fn publish(lines: &[Value]) {
    for line in lines {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            function: "router",
            region: "ap-northeast-2".parse().unwrap(),
            account: "123456789012".parse().unwrap(),
            timestamp_ms: 1_764_620_000_000,
        }
    }

    /// Every dimension names a string property, every metric a number, as
    /// CloudWatch requires of an EMF line (else it drops the line).
    fn assert_valid(line: &Value) {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert!(line["_aws"]["Timestamp"].is_u64());
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(line[key.as_str().unwrap()].is_string(), "dimension {key} in {line}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(line[metric["Name"].as_str().unwrap()].is_number(), "{metric} in {line}");
            assert!(["Count", "Seconds", "Percent"].contains(&metric["Unit"].as_str().unwrap()));
        }
    }

    #[test]
    fn an_invocation_line_is_valid_emf_by_region_and_by_function() {
        let line = source().invocation(Calls { sent: 7, throttled: 2 }, 1, 3);
        assert_valid(&line);
        let provisioning = source().provisioning(Calls { sent: 4, throttled: 0 }, 0);
        assert_valid(&provisioning);
        assert!(provisioning.get("Changes").is_none());
        assert_eq!(line["Ec2Calls"], 7.0);
        assert_eq!(line["Ec2Throttled"], 2.0);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Region"], ["Region", "Function"]]));
    }

    #[test]
    fn gauges_quota_and_link_up_lines_are_valid_emf() {
        let s = source();
        let g =
            RegionGauges { wanted: 3, ready: 1, pending: 1, failing: 1, peering_quota_use: 4.0, ..Default::default() };
        let line = s.region_gauges(&g);
        assert_valid(&line);
        assert_eq!(line["LinksWanted"], 3.0);
        let vpc = tagpeer_core::testing::seoul();
        let q = QuotaUse { id: vpc.clone(), vpc: vpc.clone(), used: 40, quota: 50 };
        let line = s.vpc_quota(&q);
        assert_valid(&line);
        assert_eq!(
            (line["VpcId"].as_str(), line["PeeringQuotaUsePercent"].as_f64()),
            (Some("vpc-0000000a"), Some(80.0))
        );
        let t = QuotaUse { id: "rtb-00000001".parse().unwrap(), vpc: vpc.clone(), used: 5, quota: 50 };
        assert_valid(&s.table_quota(&t));
        let key = LinkKey::new(vpc.clone(), tagpeer_core::testing::osaka());
        let line = s.link_up(&key, &vpc, &"pcx-00000001".parse().unwrap(), 12);
        assert_valid(&line);
        assert_eq!(line["LinkUpSeconds"], 12.0);
    }
}
