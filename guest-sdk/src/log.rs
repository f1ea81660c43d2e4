//! Logs that land in the host's log, tagged with the pipeline and plugin.

use crate::wit::weir::connector::log::{Level, log};

pub fn trace(message: &str) {
    log(Level::Trace, message, &[]);
}
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}

/// A message with structured fields: `with_fields(Level::Info, "read", &[("file", name)])`.
pub fn with_fields(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    log(level, message, &fields);
}

pub use crate::wit::weir::connector::log::Level as LogLevel;
