//! Each pipeline's recent throughput, for the console's charts: its counters sampled every
//! few seconds over the last quarter hour, in memory (a restart starts empty).

use crate::registry::key;
use crate::supervisor::Supervisor;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the counters are sampled, and how many samples are kept (15 minutes).
pub const EVERY: Duration = Duration::from_secs(5);
const KEPT: usize = 180;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
}

#[derive(Default)]
pub struct Series {
    samples: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Series {
    /// Samples every pipeline this process runs. A pipeline whose counters did not move
    /// since its last sample gets none: an idle pipeline holds one sample, not 180.
    pub fn sample(&self, supervisor: &Supervisor) {
        let at_ms = weir_pipeline::now_ms();
        let mut all = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        // A set: at 10,000 pipelines a list's `contains` would be 10^8 comparisons a round.
        let mut alive = HashSet::new();
        for w in supervisor.workers() {
            let m = w.meter.read();
            let sample = Sample {
                at_ms,
                records_in: m.records_in,
                records_out: m.records_out,
                bytes_in: m.bytes_in,
            };
            let k = key(&w.tenant, &w.name);
            let ring = all.entry(k.clone()).or_default();
            let moved = ring.back().is_none_or(|last| {
                (last.records_in, last.records_out, last.bytes_in)
                    != (sample.records_in, sample.records_out, sample.bytes_in)
            });
            if moved {
                if ring.len() == KEPT {
                    ring.pop_front();
                }
                ring.push_back(sample);
            }
            alive.insert(k);
        }
        all.retain(|k, _| alive.contains(k));
        let oldest = at_ms.saturating_sub(EVERY.as_millis() as u64 * KEPT as u64);
        for ring in all.values_mut() {
            while ring.len() > 1 && ring.front().is_some_and(|s| s.at_ms < oldest) {
                ring.pop_front();
            }
        }
    }

    /// The pipeline's samples, oldest first.
    pub fn of(&self, tenant: &str, name: &str) -> Vec<Sample> {
        let all = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&key(tenant, name))
            .map(|ring| ring.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Samples until `stop` fires.
    pub async fn run(self: Arc<Self>, supervisor: Arc<Supervisor>, stop: weir_pipeline::Shutdown) {
        while !stop.is_triggered() {
            self.sample(&supervisor);
            stop.sleep(EVERY).await;
        }
    }
}
