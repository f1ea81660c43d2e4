//! The conformance suite behind `weir test`: what a connector owes the host, checked by
//! driving it through the host's own instances (same sandbox, limits and record checks as
//! a pipeline), and each failure reported with its evidence.
//!
//! Sources are read whole, then read again in small batches with a fresh instance opened
//! from every checkpoint; the two reads must hold the same records (no gap, no repeat).
//! Sinks write, then get their last batch again from a fresh instance, as after a crash
//! between the write and the commit. Transforms must give the same output for the same
//! input, and reject bad input as dead letters rather than fail.

mod checks;
mod config;

pub use checks::run;
pub use config::broken_config;

use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use weir_runtime::Sandbox;

/// The connector under test, as a pipeline side would hold it.
pub struct Target {
    pub plugin: PathBuf,
    pub config: serde_json::Value,
    pub sandbox: Sandbox,
}

/// How hard to push.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records per call in the full read and the sinks' batches.
    pub batch: u32,
    /// Records per call in the resumed read: small, so that it is reopened often.
    pub small_batch: u32,
    /// A source read stops past this many records (streams may never end).
    pub max_records: usize,
    /// How long a stream source's reads may take, each.
    pub stream_budget: Duration,
    /// What sinks and transforms are given: record values. The default's carry this run's
    /// start time, so that a sink that refuses what it already holds does so only for
    /// the redelivery, not for an earlier run's records.
    pub sample: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch: 100,
            small_batch: 7,
            max_records: 10_000,
            stream_budget: Duration::from_secs(10),
            sample: {
                let run = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                (1..=20)
                    .map(|i| {
                        format!("{{\"id\":{i},\"name\":\"weir-test-{i}\",\"run\":{run}}}")
                            .into_bytes()
                    })
                    .collect()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be judged (e.g. resuming an empty read); not a failure.
    Skip,
}

/// One check's outcome and what shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub name: String,
    pub version: String,
    pub world: &'static str,
    pub checks: Vec<Check>,
    /// The largest linear memory any instance reached, and the limit.
    pub peak_memory_bytes: usize,
    pub memory_limit_bytes: u64,
    /// The slowest call and how long it took, against the call timeout.
    pub slowest_call: String,
    pub slowest_call_ms: u64,
    pub call_timeout_ms: u64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}
