//! Hostile input, fuzzed with proptest and bounded so that the file runs in a
//! few seconds in a debug build (the case counts are set per property below).
//!
//! - Event decoding ([`events::events_of`], then [`Trigger::decode`] of each
//!   event a queue's batch holds): arbitrary JSON values shaped like
//!   EventBridge's, arbitrary bytes and byte-level mutations of the sample
//!   events parsed as JSON, and field-level mutations of the samples in
//!   `events/` (fields removed, types changed, strings made long, unicode or
//!   garbage). It never panics; every error says which kind of wrong it is; an
//!   accepted event is internally consistent and its detail round-trips.
//! - The tag grammar ([`tagpeer::intent`]): values built from valid, nearly
//!   valid and garbage tokens joined by every kind of separator, for all six
//!   `tagpeer:` keys. A value is accepted exactly when each of its items is;
//!   what is accepted prints back as written (canonical) and parses again to
//!   the same; an error names its key and the item at fault.
//! - Status rendering: whatever the tags hold, every `tagpeer-status` the
//!   planner would write fits EC2's 256-character tag value.
//!
//! The unit properties inside `intent.rs`, `status.rs` and `events.rs` cover
//! well-formed lists, `clip` alone and fixed malformed examples; these go wider.

use std::collections::BTreeMap;

use ipnet::IpNet;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};
use tagpeer::events::{self, Trigger};
use tagpeer::ids::{AccountId, Endpoint};
use tagpeer::intent::{
    self, parse_accept, parse_mesh, parse_peers, parse_route_tables, parse_toggle, Acceptance, Intent, RouteTables,
    VpcRef,
};
use tagpeer::model::LinkKey;
use tagpeer::model::{Route, RouteTable, Target, Vpc, World};
use tagpeer::plan::{Action, Deployment};

// ---------------------------------------------------------------- events

/// The sample events in `events/`, by file name.
fn samples() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            (path.file_name().unwrap().to_string_lossy().into_owned(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 6, "the sample events are there: {:?}", out.iter().map(|s| &s.0).collect::<Vec<_>>());
    out
}

/// The beginnings of [`tagpeer::error::EventError`]'s messages: every
/// rejection says which kind of wrong it is.
const EVENT_ERRORS: [&str; 5] = [
    "the event is not JSON of EventBridge's shape: ",
    "no rule of tagpeer's sends ",
    "detail is malformed: ",
    "the tag change names no VPC",
    "holds no event: ",
];

/// One of tagpeer's own events, decoded as `trigger` with `detail`: its link
/// names its own two sides; the detail round-trips (as tagpeer would send it,
/// it decodes to the same); and every field tagpeer read holds what the event
/// wrote (fields it does not read inside the endpoints are ignored).
fn own_event<D: serde::Serialize>(
    event: &Value,
    trigger: &Trigger,
    detail: &D,
    (link, requester, accepter): (&str, &Endpoint, &Endpoint),
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&event["source"], events::SOURCE);
    prop_assert_eq!(link, LinkKey::new(requester.clone(), accepter.clone()).to_string());
    let mut again = event.clone();
    again["detail"] = serde_json::to_value(detail).unwrap();
    let again = Trigger::decode(&again).ok();
    prop_assert_eq!(again.as_ref(), Some(trigger));
    let read = serde_json::to_value(detail).unwrap();
    prop_assert!(within(&read, &event["detail"]), "{read} was not read from {}", event["detail"]);
    Ok(())
}

/// Reads `payload` as Lambda hands it over (an event, or a queue's batch of
/// them: [`events::events_of`]), decodes each event and checks what every
/// outcome must satisfy; returns whether every event was accepted.
fn check_decode(payload: &Value) -> Result<bool, TestCaseError> {
    let mut accepted = true;
    for event in events::events_of(payload) {
        accepted &= match event {
            Ok(event) => check_event(&event)?,
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(EVENT_ERRORS.iter().any(|p| msg.contains(p)), "an error of no known kind: {msg}");
                false
            }
        };
    }
    Ok(accepted)
}

/// Decodes `event` and checks what every outcome must satisfy; returns whether it was accepted.
fn check_event(event: &Value) -> Result<bool, TestCaseError> {
    match Trigger::decode(event) {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(EVENT_ERRORS.iter().any(|p| msg.contains(p)), "an error of no known kind: {msg}");
            // The message says more than its kind.
            prop_assert!(!msg.trim_end().ends_with(':'), "an error with nothing after its kind: {msg}");
            Ok(false)
        }
        Ok(trigger) => {
            check_accepted(event, &trigger)?;
            // Decoding is a function of the event.
            prop_assert_eq!(Trigger::decode(event).ok(), Some(trigger.clone()));
            let _ = trigger.scope();
            Ok(true)
        }
    }
}

/// What an accepted event must be: its parts agree with each other, and what
/// tagpeer reads from it prints back as the event wrote it.
fn check_accepted(event: &Value, trigger: &Trigger) -> Result<(), TestCaseError> {
    match trigger {
        Trigger::Schedule => {
            prop_assert_eq!(&event["source"], "aws.events");
            prop_assert_eq!(&event["detail-type"], events::SCHEDULED);
        }
        Trigger::TagChange { vpc, .. } | Trigger::UnrelatedTagChange { vpc } => {
            prop_assert_eq!(&event["source"], "aws.tag");
            prop_assert_eq!(&event["detail"]["service"], "ec2");
            prop_assert_eq!(&event["detail"]["resource-type"], "vpc");
            let resources: Vec<&str> =
                event["resources"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let named = resources.iter().any(|arn| {
                events::vpc_from_arn(arn).as_ref() == Some(vpc)
                    && arn.ends_with(&format!(":{}:{}:vpc/{}", vpc.region, vpc.account, vpc.vpc_id))
            });
            prop_assert!(named, "{vpc} is named by none of {resources:?}");
            let keys: Vec<&str> = event["detail"]["changed-tag-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let intent_keys: Vec<&str> =
                keys.iter().copied().filter(|k| k.starts_with(intent::INTENT_PREFIX)).collect();
            match trigger {
                Trigger::TagChange { changed, .. } => {
                    prop_assert!(!changed.is_empty());
                    prop_assert_eq!(changed.iter().map(String::as_str).collect::<Vec<_>>(), intent_keys);
                }
                _ => prop_assert!(intent_keys.is_empty(), "{keys:?}"),
            }
        }
        Trigger::PeeringRequested(d) | Trigger::PeeringAccepted(d) => {
            own_event(event, trigger, d, (&d.link, &d.requester, &d.accepter))?
        }
        Trigger::LinkWanted(d) => own_event(event, trigger, d, (&d.link, &d.requester, &d.accepter))?,
        Trigger::LinkRemoved(d) | Trigger::RoutesRemoved(d) => {
            own_event(event, trigger, d, (&d.link, &d.requester, &d.accepter))?
        }
        Trigger::SweepRequested(_) | Trigger::ConsentChanged(_) => prop_assert_eq!(&event["source"], "tagpeer"),
        Trigger::ApiCall { name, .. } => {
            prop_assert_eq!(&event["source"], "aws.ec2");
            prop_assert!(events::API_CALLS.contains(&name.as_str()), "{name}");
            prop_assert_eq!(&event["detail"]["eventName"], name.as_str());
            prop_assert_eq!(&event["detail"]["eventSource"], "ec2.amazonaws.com");
        }
    }
    Ok(())
}

/// Whether every field of `part` is in `whole`, with the same value.
fn within(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p.iter().all(|(k, v)| w.get(k).is_some_and(|x| within(v, x))),
        _ => part == whole,
    }
}

/// Strings an attacker or a broken producer might put anywhere.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".into()),
        Just("x".repeat(10_000)),
        Just("é".repeat(300)),
        Just("\u{0}\u{1b}[31m\u{202e}\u{200b}\u{feff}".into()),
        Just("🦀🦀🦀".into()),
        Just("VPC-0A1B2C3D".into()),
        Just("arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0a1b2c3d".into()),
        Just("arn:aws:ec2:ap-northeast-2:123456789012:vpc/VPC-0A1B2C3D".into()),
        Just("arn:aws:ec2:ap-northeast-2:123456789012:subnet/subnet-0a1b2c3d".into()),
        Just("arn:aws:ec2:ap-northeast-2:123456789012:vpc/pcx-0a1b2c3d".into()),
        Just("arn:aws:ec2:ap-northeast-2:12345678901:vpc/vpc-0a1b2c3d".into()),
        Just("arn:aws:ec2:AP-NORTHEAST-2:123456789012:vpc/vpc-0a1b2c3d".into()),
        Just("arn:aws:ec2:::vpc/vpc-0a1b2c3d".into()),
        Just("arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0a1b2c3d:extra".into()),
        Just("tagpeer:peers".into()),
        Just("tagpeer-status".into()),
        Just("vpc-0a1b2c3d".into()),
        Just("pcx-0a1b2c3d".into()),
        Just("subnet-0a1b2c3d".into()),
        Just("123456789012".into()),
        Just("ap-northeast-2".into()),
        "\\PC{0,40}",
        ".{0,40}",
        "[a-z0-9:/+-]{0,60}",
    ]
}

/// Values of every JSON type, shallow.
fn any_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ]
}

/// Keys EventBridge, CloudTrail and tagpeer use, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail",
            "changed-tag-keys", "service", "resource-type", "tags", "link", "peering-connection-id", "requester",
            "accepter", "vpc-id", "eventSource", "eventName", "awsRegion", "requestParameters", "errorCode",
            "resourcesSet", "tagSet", "items", "resourceId", "key", "value", "vpcPeeringConnectionId", "vpcId",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// Strings EventBridge, CloudTrail and tagpeer use, and hostile ones.
fn word() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "aws.tag", "aws.events", "aws.ec2", "tagpeer", "Tag Change on Resource", "Scheduled Event",
            "Peering Requested", "Peering Accepted", "AWS API Call via CloudTrail", "ec2", "vpc", "ec2.amazonaws.com",
            "CreateTags", "DeleteTags", "AcceptVpcPeeringConnection", "DeleteVpcPeeringConnection",
            "AssociateVpcCidrBlock", "RunInstances", "123456789012", "ap-northeast-2", "ap-northeast-3",
            "vpc-0a1b2c3d", "pcx-0a1b2c3d", "tagpeer:peers", "Name",
            "arn:aws:ec2:ap-northeast-2:123456789012:vpc/vpc-0a1b2c3d",
            "123456789012/ap-northeast-2/vpc-0a1b2c3d+123456789012/ap-northeast-3/vpc-4e5f6a7b",
        ])
        .prop_map(Value::from),
        2 => any_leaf(),
    ]
}

/// Arbitrary JSON, biased towards the words and keys events use so that the
/// fuzzer gets past the first checks.
fn any_json() -> impl Strategy<Value = Value> {
    word().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An EventBridge envelope whose parts are arbitrary.
fn any_envelope() -> impl Strategy<Value = Value> {
    (word(), word(), word(), word(), prop::collection::vec(word(), 0..3), any_json()).prop_map(
        |(source, detail_type, account, region, resources, detail)| {
            json!({"version": "0", "id": "x", "source": source, "detail-type": detail_type, "account": account,
                "time": "2026-11-27T07:00:00Z", "region": region, "resources": resources, "detail": detail})
        },
    )
}

/// Every JSON pointer into `v`, the root excluded.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Remove,
    Replace(Value),
    /// The string there, upper-cased, padded, repeated or cut.
    Warp(u8),
    /// An unknown field beside it.
    AddSibling(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        3 => any_leaf().prop_map(Mutation::Replace),
        1 => any_json().prop_map(Mutation::Replace),
        2 => (0u8..6).prop_map(Mutation::Warp),
        1 => (key(), any_leaf()).prop_map(|(k, v)| Mutation::AddSibling(k, v)),
    ]
}

fn apply(event: &mut Value, pointer: &str, m: &Mutation) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointers start with /");
    let last = last.replace("~1", "/").replace("~0", "~");
    match m {
        Mutation::Remove => match event.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(&last);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        },
        Mutation::Replace(v) => {
            if let Some(slot) = event.pointer_mut(pointer) {
                *slot = v.clone();
            }
        }
        Mutation::Warp(how) => {
            if let Some(Value::String(s)) = event.pointer_mut(pointer) {
                *s = match how {
                    0 => s.to_uppercase(),
                    1 => format!(" {s} "),
                    2 => s.repeat(40),
                    3 => s.chars().take(s.chars().count() / 2).collect(),
                    4 => format!("{s}\u{0}"),
                    _ => s.replace('-', "\u{2010}"),
                };
            }
        }
        Mutation::AddSibling(k, v) => {
            if let Some(Value::Object(o)) = event.pointer_mut(parent) {
                o.insert(k.clone(), v.clone());
            }
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 1500, failure_persistence: None, ..Config::default() })]

    /// Arbitrary JSON never panics the decoder, and every error says what is wrong.
    #[test]
    fn arbitrary_json_is_decoded_or_refused_with_a_reason(event in any_json()) {
        check_decode(&event)?;
    }

    /// Envelopes of EventBridge's shape with arbitrary parts reach the detail
    /// decoders, which never panic either.
    #[test]
    fn arbitrary_envelopes_are_decoded_or_refused_with_a_reason(event in any_envelope()) {
        check_decode(&event)?;
    }

    /// The sample events with one to four fields removed, retyped, warped or added.
    #[test]
    fn mutated_sample_events_are_decoded_or_refused_with_a_reason(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..5),
    ) {
        let all = samples();
        let (_, sample) = which.get(&all);
        let mut event = sample.clone();
        for (at, m) in &edits {
            let mut ps = Vec::new();
            pointers(&event, String::new(), &mut ps);
            if ps.is_empty() { break; }
            let at = at.get(&ps).clone();
            apply(&mut event, &at, m);
        }
        check_decode(&event)?;
    }
}

proptest! {
    #![proptest_config(Config { cases: 1000, failure_persistence: None, ..Config::default() })]

    /// Arbitrary bytes, and the sample events' text with bytes flipped,
    /// inserted or removed: what parses as JSON decodes or is refused.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        raw in prop::collection::vec(any::<u8>(), 0..256),
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        if let Ok(v) = serde_json::from_slice::<Value>(&raw) {
            check_decode(&v)?;
        }
        let all = samples();
        let mut text = serde_json::to_vec(&which.get(&all).1).unwrap();
        for (at, byte, op) in &edits {
            let i = at.index(text.len());
            match op {
                0 => text[i] = *byte,
                1 => text.insert(i, *byte),
                _ => { text.remove(i); }
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&text) {
            check_decode(&v)?;
        }
    }
}

#[test]
fn the_unmutated_samples_are_accepted() {
    // The mutation properties start from events that decode; otherwise they
    // would only ever test the first check.
    for (name, event) in samples() {
        assert_eq!(check_decode(&event).map_err(|e| e.to_string()), Ok(true), "{name}");
    }
}

#[test]
fn json_nested_as_deep_as_serde_parses_is_refused_without_overflow() {
    // serde_json refuses more than 128 levels; Lambda's runtime parses the
    // payload with it, so this is the deepest event that can arrive.
    for (name, sample) in samples() {
        let depth = 120;
        let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let mut event = sample.clone();
        event["detail"] = serde_json::from_str(&deep).unwrap();
        check_decode(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut event = sample;
        let deep_object = format!("{}1{}", "{\"detail\":".repeat(depth), "}".repeat(depth));
        event["detail"]["requestParameters"] = serde_json::from_str(&deep_object).unwrap();
        check_decode(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ---------------------------------------------------------------- the tag grammar

/// Lowercase hex of a given length.
fn hex(len: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), len)
        .prop_map(|b| String::from_utf8(b).unwrap())
}

fn vpc_id() -> impl Strategy<Value = String> {
    prop_oneof![hex(8), hex(17)].prop_map(|h| format!("vpc-{h}"))
}

fn region() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["ap-northeast-2", "ap-northeast-3", "us-east-1", "us-gov-west-1", "eu-south-9"])
        .prop_map(str::to_owned)
}

fn account() -> impl Strategy<Value = String> {
    prop_oneof![Just("123456789012".to_owned()), Just("222222222222".to_owned()), "[0-9]{12}"]
}

fn vpc_ref() -> impl Strategy<Value = String> {
    prop_oneof![
        vpc_id(),
        (region(), vpc_id()).prop_map(|(r, v)| format!("{r}/{v}")),
        (account(), region(), vpc_id()).prop_map(|(a, r, v)| format!("{a}/{r}/{v}")),
    ]
}

/// Items that are almost right: the mistakes people and scripts make.
fn near_miss() -> impl Strategy<Value = String> {
    prop_oneof![
        vpc_id().prop_map(|v| v.to_uppercase()),
        vpc_id().prop_map(|v| v.replacen("vpc-", "VPC-", 1)),
        hex(8).prop_map(|h| format!("vpc-{}", h.to_uppercase())),
        prop_oneof![hex(7), hex(9), hex(16), hex(18), hex(0)].prop_map(|h| format!("vpc-{h}")),
        prop::sample::select(vec!["subnet", "pcx", "rtb", "igw", "sg", "eni", "i"])
            .prop_flat_map(|k| hex(17).prop_map(move |h| format!("{k}-{h}"))),
        (region(), vpc_id()).prop_map(|(r, v)| format!("{}/{v}", r.to_uppercase())),
        (region(), vpc_id()).prop_map(|(r, v)| format!("{r}//{v}")),
        (region(), vpc_id()).prop_map(|(r, v)| format!("{r}/{v}/")),
        (region(), vpc_id()).prop_map(|(r, v)| format!("/{r}/{v}")),
        (account(), account(), region(), vpc_id()).prop_map(|(a, b, r, v)| format!("{a}/{b}/{r}/{v}")),
        ("[0-9]{11}|[0-9]{13}", region(), vpc_id()).prop_map(|(a, r, v)| format!("{a}/{r}/{v}")),
        vpc_id().prop_map(|v| v.replace('-', "\u{2010}")),
        vpc_id().prop_map(|v| format!("{v}\u{200b}")),
        vpc_id().prop_map(|v| v.replace('0', "\u{ff10}")),
        vpc_id().prop_map(|v| format!("\"{v}\"")),
        vpc_id().prop_map(|v| format!("{v};")),
        Just("*".to_owned()),
        Just("all".to_owned()),
        Just("main".to_owned()),
        Just("ALL".to_owned()),
        Just("on".to_owned()),
        Just("ON".to_owned()),
        Just("off".to_owned()),
        Just("true".to_owned()),
        "rtb-[0-9a-f]{8}",
        "rtb-[0-9a-fA-F]{8,17}",
        "[a-zA-Z0-9._-]{1,70}",
        "\\PC{1,12}",
    ]
}

fn item() -> impl Strategy<Value = String> {
    prop_oneof![3 => vpc_ref(), 1 => account(), 3 => near_miss()]
}

/// What separates items: commas and whitespace (any Unicode whitespace), and
/// things that do not.
fn separator() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ",", " ", ", ", " ,", ",,", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{2003}", ";", "|", "\u{200b}",
        "\u{ff0c}", "/", "+",
    ])
    .prop_map(str::to_owned)
}

/// A tag value: items joined by separators, sometimes padded, sometimes long.
fn tag_value() -> impl Strategy<Value = String> {
    (prop::collection::vec((item(), separator()), 0..8), separator(), 0usize..40).prop_map(|(parts, pad, repeat)| {
        let mut v = String::new();
        if repeat % 3 == 0 {
            v.push_str(&pad);
        }
        for (item, sep) in &parts {
            v.push_str(item);
            v.push_str(sep);
        }
        if repeat > 30 {
            // Long values: the same list again and again, past 256 characters.
            v = v.repeat(repeat - 25);
        }
        v
    })
}

/// The items of a list as the README defines them: what lies between commas and whitespace.
fn spec_items(value: &str) -> Vec<&str> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

fn dedup(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.iter().any(|o| o == i) {
            out.push((*i).to_owned());
        }
    }
    out
}

/// An error message names its key and the item at fault, quoted (cut to
/// its first `QUOTED_MAX` characters, so that the reason fits after it).
fn names(msg: &str, key: &str, item: &str) -> Result<(), TestCaseError> {
    prop_assert!(msg.starts_with(&format!("{key}: ")), "{msg}");
    prop_assert!(msg.contains(&tagpeer::error::quoted(item)), "{msg} does not name {item:?}");
    if item.chars().count() > tagpeer::error::QUOTED_MAX {
        let head: String = item.chars().take(tagpeer::error::QUOTED_MAX).collect();
        prop_assert!(msg.contains(&format!("{head:?}…")), "{msg} does not cut {item:?}");
    }
    Ok(())
}

fn group_ok(g: &str) -> bool {
    !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

proptest! {
    #![proptest_config(Config { cases: 2000, failure_persistence: None, ..Config::default() })]

    /// `tagpeer:peers`: accepted exactly when every item is a VPC reference;
    /// the references print back as written, once each, in order.
    #[test]
    fn peers_accept_exactly_lists_of_references_and_print_them_back(value in tag_value()) {
        let items = spec_items(&value);
        let first_bad = items.iter().find(|i| VpcRef::parse(i, intent::PEERS).is_err());
        match (parse_peers(&value), first_bad) {
            (Ok(refs), None) => {
                let printed: Vec<String> = refs.iter().map(ToString::to_string).collect();
                prop_assert_eq!(&printed, &dedup(&items), "canonical: printed as written, repeats once");
                prop_assert_eq!(parse_peers(&printed.join(",")).unwrap(), refs.clone());
                prop_assert_eq!(parse_peers(&printed.join(" ")).unwrap(), refs);
            }
            (Err(e), Some(bad)) => names(&e.to_string(), intent::PEERS, bad)?,
            (got, bad) => prop_assert!(false, "{value:?}: parsed {got:?}, first bad item {bad:?}"),
        }
    }

    /// `tagpeer:mesh`: group names of letters, digits, `.`, `_`, `-`, at most 64.
    #[test]
    fn mesh_accepts_exactly_group_names(value in tag_value()) {
        let items = spec_items(&value);
        match (parse_mesh(&value), items.iter().find(|g| !group_ok(g))) {
            (Ok(groups), None) => {
                prop_assert_eq!(&groups, &dedup(&items));
                prop_assert_eq!(parse_mesh(&groups.join(" ")).unwrap(), groups);
            }
            (Err(e), Some(bad)) => names(&e.to_string(), intent::MESH, bad)?,
            (got, bad) => prop_assert!(false, "{value:?}: parsed {got:?}, first bad item {bad:?}"),
        }
    }

    /// `tagpeer:accept`: `*` alone, or account ids and VPC references.
    #[test]
    fn accept_takes_a_lone_star_or_accounts_and_references(value in tag_value()) {
        let items = spec_items(&value);
        let principal = |i: &&str| i.parse::<AccountId>().is_ok() || VpcRef::parse(i, intent::ACCEPT).is_ok();
        match parse_accept(&value) {
            Ok(Acceptance::Nobody) => prop_assert!(items.is_empty()),
            Ok(Acceptance::Anyone) => prop_assert_eq!(items, vec!["*"]),
            Ok(Acceptance::Only { accounts, vpcs }) => {
                prop_assert!(!items.is_empty() && items.iter().all(principal), "{items:?}");
                let printed: Vec<String> =
                    accounts.iter().map(ToString::to_string).chain(vpcs.iter().map(ToString::to_string)).collect();
                let mut sorted_items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
                sorted_items.sort();
                let mut sorted_printed = printed.clone();
                sorted_printed.sort();
                prop_assert_eq!(sorted_printed, sorted_items, "canonical: printed as written");
                prop_assert_eq!(parse_accept(&printed.join(" ")).unwrap(), Acceptance::Only { accounts, vpcs });
            }
            Err(e) => {
                let msg = e.to_string();
                if items.contains(&"*") {
                    prop_assert!(items.len() > 1);
                    prop_assert_eq!(msg, "tagpeer:accept: '*' must stand alone");
                } else {
                    let bad = items.iter().find(|i| !principal(i));
                    prop_assert!(bad.is_some(), "{value:?} refused: {msg}");
                    names(&msg, intent::ACCEPT, bad.unwrap())?;
                }
            }
        }
    }

    /// `tagpeer:route-tables`: `all`, `main`, or route table ids, never mixed, never empty.
    #[test]
    fn route_tables_take_all_main_or_ids(value in tag_value()) {
        let items = spec_items(&value);
        match parse_route_tables(&value) {
            Ok(RouteTables::All) => prop_assert_eq!(items, vec!["all"]),
            Ok(RouteTables::Main) => prop_assert_eq!(items, vec!["main"]),
            Ok(RouteTables::Ids(ids)) => {
                let printed: Vec<String> = ids.iter().map(ToString::to_string).collect();
                prop_assert_eq!(&printed, &dedup(&items));
                prop_assert_eq!(parse_route_tables(&printed.join(",")).unwrap(), RouteTables::Ids(ids));
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("tagpeer:route-tables: "), "{msg}");
                let ok = |i: &&str| i.parse::<tagpeer::ids::RouteTableId>().is_ok();
                prop_assert!(
                    items.is_empty()
                        || (items.len() > 1 && items.iter().any(|i| *i == "all" || *i == "main"))
                        || !items.iter().all(|i| ok(i) || *i == "all" || *i == "main"),
                    "{value:?} refused: {msg}"
                );
            }
        }
    }

    /// Every key at once: the errors are exactly the keys whose value is
    /// malformed alone, each says its key, and the toggles take only `on`
    /// and `off` (surrounding whitespace forgiven).
    #[test]
    fn every_malformed_key_is_reported_and_only_those(
        peers in tag_value(), mesh in tag_value(), accept in tag_value(), tables in tag_value(),
        dns in prop_oneof![tag_value(), Just(" on ".to_owned()), Just("off".to_owned())],
        ipv6 in prop_oneof![tag_value(), Just("on".to_owned()), Just("\toff\n".to_owned())],
        present in prop::collection::vec(any::<bool>(), 6),
    ) {
        let all = [
            (intent::PEERS, peers), (intent::MESH, mesh), (intent::ACCEPT, accept),
            (intent::ROUTE_TABLES, tables), (intent::DNS, dns), (intent::IPV6, ipv6),
        ];
        let tags: BTreeMap<String, String> = all
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|((k, v), _)| ((*k).to_owned(), v.clone()))
            .collect();
        let alone_bad = |k: &str, v: &str| -> bool {
            let v = v.trim();
            match k {
                intent::PEERS => parse_peers(v).is_err(),
                intent::MESH => parse_mesh(v).is_err(),
                intent::ACCEPT => parse_accept(v).is_err(),
                intent::ROUTE_TABLES => parse_route_tables(v).is_err(),
                _ => parse_toggle(intent::DNS, v).is_err(),
            }
        };
        let expected: Vec<&str> =
            tags.iter().filter(|(k, v)| alone_bad(k, v)).map(|(k, _)| k.as_str()).collect();
        match Intent::from_tags(&tags) {
            Ok(intent) => {
                prop_assert!(expected.is_empty(), "{expected:?} malformed, yet accepted");
                if let Some(v) = tags.get(intent::DNS) { prop_assert_eq!(intent.dns, v.trim() == "on"); }
                if let Some(v) = tags.get(intent::IPV6) { prop_assert_eq!(intent.ipv6, v.trim() == "on"); }
            }
            Err(errors) => {
                let mut keys: Vec<&str> = errors.iter().map(|e| e.key).collect();
                keys.sort();
                let mut expected = expected.clone();
                expected.sort();
                prop_assert_eq!(keys, expected);
                for e in &errors {
                    prop_assert!(e.to_string().starts_with(&format!("{}: ", e.key)), "{e}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- status lines

const ACCOUNT: &str = "123456789012";

fn endpoint(region: &str, vpc: &str) -> Endpoint {
    Endpoint::new(ACCOUNT.parse().unwrap(), region.parse().unwrap(), vpc.parse().unwrap())
}

/// A VPC with its main route table.
fn vpc(world: &mut World, at: &Endpoint, cidr: &str, table: &str, tags: BTreeMap<String, String>) {
    let range: IpNet = cidr.parse().unwrap();
    world.vpcs.push(Vpc { endpoint: at.clone(), ipv4: vec![range], ipv6: vec![], tags, dns: None });
    world.route_tables.push(RouteTable {
        id: table.parse().unwrap(),
        vpc: at.clone(),
        main: true,
        routes: vec![Route { destination: range, target: Target::Local }],
    });
}

fn deployment() -> Deployment {
    Deployment::new(
        "123456789012".parse().unwrap(),
        vec!["ap-northeast-2".parse().unwrap(), "ap-northeast-3".parse().unwrap()],
    )
}

/// Every `tagpeer-status` a sweep would write.
fn statuses(world: &World) -> Vec<(Endpoint, String)> {
    tagpeer::report::sweep_plan(world, &deployment())
        .into_iter()
        .filter_map(|(_, _, a)| match a {
            Action::SetStatus { vpc, status: Some(s), .. } => Some((vpc, s)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 300, failure_persistence: None, ..Config::default() })]

    /// Whatever the tags of a VPC hold, long, unicode or malformed, and however
    /// many peers they name, every status tagpeer would write fits a tag
    /// value, and a VPC with malformed tags is told so.
    #[test]
    fn every_status_fits_a_tag_value(
        values in prop::collection::vec((0usize..6, tag_value()), 1..4),
        extra_peers in 0usize..40,
        existing in 0usize..12,
    ) {
        let home = endpoint("ap-northeast-2", "vpc-0000000a");
        let mut world = World::default();
        // Peers that exist, each in its own range, so that many links stand.
        let mut peer_refs = Vec::new();
        for i in 0..existing {
            let peer = endpoint("ap-northeast-3", &format!("vpc-{:08x}", 0x1000 + i));
            vpc(&mut world, &peer, &format!("10.{}.0.0/16", 100 + i), &format!("rtb-{:08x}", 0x1000 + i), BTreeMap::new());
            peer_refs.push(format!("ap-northeast-3/{}", peer.vpc_id));
        }
        // Peers that do not, each an error of its own.
        for i in 0..extra_peers {
            peer_refs.push(format!("ap-northeast-3/vpc-{:017x}", 0xdead_0000_u64 + i as u64));
        }
        let keys = [intent::PEERS, intent::MESH, intent::ACCEPT, intent::ROUTE_TABLES, intent::DNS, intent::IPV6];
        let mut tags: BTreeMap<String, String> = BTreeMap::new();
        tags.insert(intent::PEERS.into(), peer_refs.join(","));
        for (k, v) in &values {
            tags.insert(keys[*k].into(), v.clone());
        }
        let malformed = Intent::from_tags(&tags).is_err();
        vpc(&mut world, &home, "10.0.0.0/16", "rtb-0000000a", tags);

        let written = statuses(&world);
        for (at, status) in &written {
            prop_assert!(status.chars().count() <= tagpeer::intent::TAG_VALUE_MAX, "{at}: {} characters", status.chars().count());
            prop_assert!(!status.is_empty());
        }
        let home_status = written.iter().find(|(v, _)| v == &home).map(|(_, s)| s.as_str());
        if malformed {
            prop_assert!(home_status.is_some_and(|s| s.starts_with("error: tagpeer:")), "{home_status:?}");
        } else {
            prop_assert!(home_status.is_some(), "a VPC with intent is told its state");
        }
    }
}
