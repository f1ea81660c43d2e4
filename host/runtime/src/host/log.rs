//! `weir:connector/log`: guest logs become `tracing` events carrying pipeline and plugin,
//! within a budget per instance. A shared host's log (and the disk and log pipeline behind
//! it) is what one tenant's loop of `log` calls takes down first, so each instance gets a
//! rate in lines and bytes per second (a token bucket holding ten seconds' worth) and a cap
//! on one message and its fields; what is dropped is counted and reported, never silent.

use crate::bindings::weir::connector::log::{Host, Level};
use crate::sandbox::{Labels, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest message kept; the rest is cut, and the cut is said.
const MAX_MESSAGE: usize = 4096;
const MAX_FIELDS: usize = 32;
/// The longest key or value of a field.
const MAX_FIELD: usize = 1024;
/// A bucket holds this long of the rate: bursts pass, floods do not.
const BURST: f64 = 10.0;
/// How often a flood is reported while it lasts.
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct LogBudget {
    lines_per_second: f64,
    bytes_per_second: f64,
    lines: f64,
    bytes: f64,
    refilled: Instant,
    /// Dropped since the last report, and when that was.
    unreported: u64,
    reported: Option<Instant>,
    /// Every line dropped, for the pipeline's counters (shared with its meter).
    pub(crate) dropped: Arc<AtomicU64>,
}

impl LogBudget {
    pub(crate) fn new(limits: &Limits) -> LogBudget {
        let lines_per_second = limits.log_lines_per_second as f64;
        let bytes_per_second = limits.log_bytes_per_second as f64;
        LogBudget {
            lines_per_second,
            bytes_per_second,
            lines: lines_per_second * BURST,
            bytes: bytes_per_second * BURST,
            refilled: Instant::now(),
            unreported: 0,
            reported: None,
            dropped: Arc::default(),
        }
    }

    /// Whether a line of `bytes` may be logged now; if not, it is counted as dropped.
    pub(crate) fn admit(&mut self, bytes: usize, labels: &Labels) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.lines =
            (self.lines + elapsed * self.lines_per_second).min(self.lines_per_second * BURST);
        self.bytes =
            (self.bytes + elapsed * self.bytes_per_second).min(self.bytes_per_second * BURST);
        let bytes = bytes as f64;
        if self.lines >= 1.0 && self.bytes >= bytes {
            self.lines -= 1.0;
            self.bytes -= bytes;
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.unreported += 1;
        if self
            .reported
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY)
        {
            self.report(labels);
            self.reported = Some(now);
        }
        false
    }

    /// One line for what was dropped since the last one.
    pub(crate) fn report(&mut self, labels: &Labels) {
        if self.unreported == 0 {
            return;
        }
        tracing::warn!(
            target: "weir::host",
            pipeline = %labels.pipeline,
            plugin = %labels.plugin,
            role = labels.role,
            dropped = self.unreported,
            total = self.dropped.load(Ordering::Relaxed),
            "plugin log over its budget ({} lines/s, {} bytes/s): {} lines dropped",
            self.lines_per_second,
            self.bytes_per_second,
            self.unreported,
        );
        self.unreported = 0;
    }
}

/// Guest logs: whose they are, and the budget they are held to.
pub(crate) struct LogCtx {
    pub(crate) labels: Labels,
    /// Shared with the guest's stdout and stderr, which are logged too.
    pub(crate) budget: Arc<std::sync::Mutex<LogBudget>>,
}

impl Host for LogCtx {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let message = cut(&message, MAX_MESSAGE);
        let extra = fields.len().saturating_sub(MAX_FIELDS);
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (cut(k, MAX_FIELD), cut(v, MAX_FIELD)))
            .collect();
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let Self { labels, budget } = self;
        let admitted = budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(size, labels);
        if !admitted {
            return;
        }
        let fields = Fields(&fields, extra);
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

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Fields<'a>(&'a [(&'a str, &'a str)], usize);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        if self.1 > 0 {
            write!(f, " (+{} fields cut)", self.1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            pipeline: "p".into(),
            plugin: "x".into(),
            role: "source",
        }
    }

    #[test]
    fn a_flood_is_held_to_the_rate_and_counted() {
        let limits = Limits {
            log_lines_per_second: 10,
            log_bytes_per_second: 1 << 20,
            ..Limits::default()
        };
        let mut budget = LogBudget::new(&limits);
        let admitted = (0..10_000).filter(|_| budget.admit(10, &labels())).count();
        // The burst (ten seconds' worth), plus what the rate refills while the loop runs.
        assert!((100..=110).contains(&admitted), "{admitted}");
        assert_eq!(
            budget.dropped.load(Ordering::Relaxed),
            10_000 - admitted as u64
        );
        assert_eq!(
            budget.unreported,
            10_000 - admitted as u64 - 1,
            "the first drop is reported at once"
        );
    }

    #[test]
    fn bytes_are_budgeted_too() {
        let limits = Limits {
            log_lines_per_second: 1000,
            log_bytes_per_second: 100,
            ..Limits::default()
        };
        let mut budget = LogBudget::new(&limits);
        assert!(budget.admit(1000, &labels()));
        assert!(!budget.admit(1, &labels()));
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }
}
