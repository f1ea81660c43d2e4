//! The host side of the WIT imports.

mod keys;
mod log;
mod metrics;

// `types` has no functions: the host only has to say it provides the interface.
impl crate::bindings::weir::connector::types::Host for crate::sandbox::HostState {}

pub use keys::Key;
pub(crate) use keys::KeysCtx;
pub(crate) use log::{LogBudget, LogCtx};
pub(crate) use metrics::MetricsCtx;
