//! `weir:connector/log`: guest logs become `tracing` events carrying pipeline and plugin.

use crate::bindings::weir::connector::log::{Host, Level};
use crate::sandbox::HostState;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let Self { labels, .. } = self;
        let fields = Fields(&fields);
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(
                    target: "weir::guest",
                    $lvl,
                    pipeline = %labels.pipeline,
                    plugin = %labels.plugin,
                    role = labels.role,
                    fields = %fields,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}

struct Fields<'a>(&'a [(String, String)]);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        Ok(())
    }
}
