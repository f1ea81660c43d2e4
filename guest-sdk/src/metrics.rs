//! Counters the host reports with the pipeline's metrics.

pub fn counter_add(name: &str, value: u64) {
    crate::wit::weir::connector::metrics::counter_add(name, value);
}

/// A value that goes up and down (a lag): the last one set is reported.
pub fn gauge_set(name: &str, value: u64) {
    crate::wit::weir::connector::metrics::gauge_set(name, value);
}
