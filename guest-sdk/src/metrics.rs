//! Counters the host reports with the pipeline's metrics.
//!
//! A connector's own unit tests run natively (`cargo test`), where no host counts: there
//! the calls do nothing, so code that counts can be tested as it is.

pub fn counter_add(name: &str, value: u64) {
    #[cfg(target_family = "wasm")]
    crate::wit::weir::connector::metrics::counter_add(name, value);
    #[cfg(not(target_family = "wasm"))]
    let _ = (name, value);
}

/// A value that goes up and down (a lag): the last one set is reported.
pub fn gauge_set(name: &str, value: u64) {
    #[cfg(target_family = "wasm")]
    crate::wit::weir::connector::metrics::gauge_set(name, value);
    #[cfg(not(target_family = "wasm"))]
    let _ = (name, value);
}
