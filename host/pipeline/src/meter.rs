//! Live counters of one pipeline, updated per batch and read while it runs (the serve
//! API's status and `/metrics`). Atomics: the delivery threads write, anyone reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Meter {
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub records_out: AtomicU64,
    pub batches: AtomicU64,
    pub dead_letters: AtomicU64,
    /// Linear memory of the current source and sink instances, in bytes.
    pub source_memory: AtomicU64,
    pub sink_memory: AtomicU64,
    /// Linear memory of the transform instances, every worker's together.
    pub transform_memory: AtomicU64,
    /// Times the sink's instance was let go for want of batches (`release_when_idle`).
    pub sink_rests: AtomicU64,
    /// When the last checkpoint was committed, in ms since the Unix epoch; 0 for never.
    pub last_commit_ms: AtomicU64,
    /// CPU the source's and sink's calls used, and time spent waiting for the CPU budget.
    pub cpu_ns: AtomicU64,
    pub throttled_ns: AtomicU64,
    /// Guest log lines dropped over the instances' log budgets; the instances count into it.
    pub log_dropped: Arc<AtomicU64>,
    /// The connectors' own counters (`metrics.counter-add`, `gauge-set`) as each live
    /// instance last reported them, by side, plugin and transform worker. An instance keeps
    /// at most 256 names, so this stays small whatever a plugin does.
    guest: Mutex<BTreeMap<GuestKey, BTreeMap<String, u64>>>,
}

/// Side, plugin and transform worker (0 for the source and the sink).
type GuestKey = (String, String, usize);

/// One of a connector's own counters, every worker's instance summed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestCounter {
    /// `source`, `transform1`…, `sink`.
    pub side: String,
    pub plugin: String,
    pub name: String,
    pub value: u64,
}

/// A consistent-enough copy of a [`Meter`] for display.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct MeterReading {
    pub records_in: u64,
    pub bytes_in: u64,
    pub records_out: u64,
    pub batches: u64,
    pub dead_letters: u64,
    pub source_memory: u64,
    pub sink_memory: u64,
    pub transform_memory: u64,
    pub sink_rests: u64,
    pub last_commit_ms: u64,
    pub cpu_ns: u64,
    pub throttled_ns: u64,
    pub log_dropped: u64,
}

impl Meter {
    pub fn read(&self) -> MeterReading {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MeterReading {
            records_in: get(&self.records_in),
            bytes_in: get(&self.bytes_in),
            records_out: get(&self.records_out),
            batches: get(&self.batches),
            dead_letters: get(&self.dead_letters),
            source_memory: get(&self.source_memory),
            sink_memory: get(&self.sink_memory),
            transform_memory: get(&self.transform_memory),
            sink_rests: get(&self.sink_rests),
            last_commit_ms: get(&self.last_commit_ms),
            cpu_ns: get(&self.cpu_ns),
            throttled_ns: get(&self.throttled_ns),
            log_dropped: get(&self.log_dropped),
        }
    }

    /// The instances' memory right after they were made, before any batch.
    pub(crate) fn instantiated(&self, source: usize, transforms: usize, sink: usize) {
        self.source_memory.store(source as u64, Ordering::Relaxed);
        self.transform_memory
            .store(transforms as u64, Ordering::Relaxed);
        self.sink_memory.store(sink as u64, Ordering::Relaxed);
    }

    /// The sink's instance was let go: it holds no memory until the next batch.
    pub(crate) fn sink_rested(&self) {
        self.sink_memory.store(0, Ordering::Relaxed);
        self.sink_rests.fetch_add(1, Ordering::Relaxed);
    }

    /// One worker's transforms now hold `memory`; they held `*last` when it last said.
    pub(crate) fn transformed(&self, last: &mut usize, memory: usize) {
        if memory >= *last {
            let grown = (memory - *last) as u64;
            self.transform_memory.fetch_add(grown, Ordering::Relaxed);
        } else {
            let shrunk = (*last - memory) as u64;
            self.transform_memory.fetch_sub(shrunk, Ordering::Relaxed);
        }
        *last = memory;
    }

    /// A side's instance reports its counters (after each batch).
    pub(crate) fn guest(
        &self,
        side: &str,
        plugin: &str,
        worker: usize,
        counters: &BTreeMap<String, u64>,
    ) {
        if counters.is_empty() {
            return;
        }
        let mut guest = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        let key = (side.to_string(), plugin.to_string(), worker);
        guest.insert(key, counters.clone());
    }

    /// The connectors' own counters, by side, plugin and name.
    pub fn guest_counters(&self) -> Vec<GuestCounter> {
        let guest = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        let mut summed: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        for ((side, plugin, _), counters) in guest.iter() {
            for (name, value) in counters {
                *summed.entry((side, plugin, name)).or_default() += value;
            }
        }
        summed
            .into_iter()
            .map(|((side, plugin, name), value)| GuestCounter {
                side: side.into(),
                plugin: plugin.into(),
                name: name.into(),
                value,
            })
            .collect()
    }

    pub(crate) fn pulled(&self, records: u64, bytes: u64, memory: usize) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.source_memory.store(memory as u64, Ordering::Relaxed);
    }

    /// `batches` went under one commit (more than one when they waited for the sink).
    pub(crate) fn committed(&self, batches: u64, written: u64, dead_letters: u64, memory: usize) {
        self.records_out.fetch_add(written, Ordering::Relaxed);
        self.dead_letters.fetch_add(dead_letters, Ordering::Relaxed);
        self.batches.fetch_add(batches, Ordering::Relaxed);
        self.sink_memory.store(memory as u64, Ordering::Relaxed);
        self.last_commit_ms.store(now_ms(), Ordering::Relaxed);
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
