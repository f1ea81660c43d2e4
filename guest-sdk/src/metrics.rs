//! Counters the host reports with the pipeline's metrics.

pub fn counter_add(name: &str, value: u64) {
    crate::wit::weir::connector::metrics::counter_add(name, value);
}
