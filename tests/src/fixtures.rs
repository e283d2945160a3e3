//! Events in AWS's own shapes, as EventBridge hands them to a function.

use crate::*;
use aws_config::SdkConfig;
use serde_json::{json, Value};
use tagpeer::events::{self};
use tagpeer::ids::Endpoint;

/// The event AWS sends when `changed` keys change on a VPC: the sample in
/// `events/tag-change.json`, pointed at this VPC with its current tags.
pub async fn tag_change_event(sdk: &SdkConfig, vpc: &Endpoint, changed: &[&str]) -> Value {
    let mut event = sample_event("tag-change.json");
    let described =
        ec2(sdk, vpc.region.as_str()).describe_vpcs().vpc_ids(vpc.vpc_id.as_str()).send().await.expect("DescribeVpcs");
    let tags: serde_json::Map<String, Value> = described
        .vpcs()
        .iter()
        .flat_map(|v| v.tags())
        .filter_map(|t| Some((t.key()?.to_owned(), json!(t.value().unwrap_or_default()))))
        .collect();
    event["region"] = json!(vpc.region);
    event["account"] = json!(vpc.account);
    event["resources"] = json!([events::vpc_arn(vpc)]);
    event["detail"]["changed-tag-keys"] = json!(changed);
    event["detail"]["tags"] = Value::Object(tags);
    event
}

/// The schedule's event in one region (`events/scheduled.json`).
pub fn scheduled_event(region: &str) -> Value {
    let mut event = sample_event("scheduled.json");
    event["region"] = json!(region);
    event["resources"] = json!([format!("arn:aws:events:{region}:{ACCOUNT}:rule/tagpeer-sweep")]);
    event
}

/// One of the sample events in `events/`.
pub fn sample_event(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
