//! Rows for `make reliability`: each reliability test says what it ran, what
//! it injected and how many invariant violations it found, one JSON object a
//! line, into `$TAGPEER_RELIABILITY_DIR/<test>.jsonl` when that variable is
//! set (`make reliability` sets it, then prints the table). Outside that run
//! nothing is written.

use std::io::Write;

use serde_json::{json, Value};

/// One line of the reliability table.
#[derive(Clone, Debug)]
pub struct Row {
    /// `scenario`, `crash`, `events` or `bad-input`.
    pub kind: &'static str,
    /// What ran: `seed`, `3-VPC mesh`, `tagpeer:peers = vpc-…itself`, …
    pub name: String,
    /// What was injected: `crash after mutating call 3 of 9`, `RequestLimitExceeded 20% on CreateRoute`, …
    pub faults: String,
    /// How it ended, in words (`converged`, `error: … in tagpeer-status, no mutation`).
    pub outcome: String,
    /// Invariant violations found at the end (the test fails when this is not zero).
    pub violations: usize,
}

impl Row {
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind,
            "name": self.name,
            "faults": self.faults,
            "outcome": self.outcome,
            "violations": self.violations,
        })
    }
}

/// Appends `row` to `$TAGPEER_RELIABILITY_DIR/<file>.jsonl`, when the variable is set.
pub fn record(file: &str, row: &Row) {
    let Some(dir) = std::env::var_os("TAGPEER_RELIABILITY_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join(format!("{file}.jsonl"));
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    writeln!(out, "{}", row.to_json()).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
