//! `weir:connector/metrics`: counters kept per instance, read by the pipeline's summary.

use crate::bindings::weir::connector::metrics::Host;
use std::collections::BTreeMap;

/// A guest could otherwise grow the host's memory without bound through counter names.
const MAX_COUNTERS: usize = 256;
const MAX_NAME: usize = 128;

/// The guest's own counters, read by the pipeline's summary and metrics.
#[derive(Default)]
pub(crate) struct MetricsCtx {
    pub(crate) counters: BTreeMap<String, u64>,
}

impl MetricsCtx {
    /// `name`'s value becomes `to(old)`; a new name only while there is room.
    fn update(&mut self, name: String, to: impl FnOnce(u64) -> u64) {
        if name.len() > MAX_NAME {
            return;
        }
        if let Some(value) = self.counters.get_mut(&name) {
            *value = to(*value);
        } else if self.counters.len() < MAX_COUNTERS {
            self.counters.insert(name, to(0));
        }
    }
}

/// Counters and gauges share one map: a gauge is a name whose value is set, not added to.
impl Host for MetricsCtx {
    fn counter_add(&mut self, name: String, value: u64) {
        self.update(name, |total| total.saturating_add(value));
    }

    fn gauge_set(&mut self, name: String, value: u64) {
        self.update(name, |_| value);
    }
}
