//! Each pipeline's recent log lines, for its tenant to read through the API: a `tracing`
//! layer keeps the lines that name a pipeline (the plugin's own `log` calls, its stdout and
//! stderr, and the host's lines inside the pipeline's span) in a ring per pipeline. Bounded
//! in bytes per pipeline, so a chatty plugin only pushes out its own older lines; the
//! plugin's lines were already held to its log budget before they got here.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// What one pipeline's ring holds at most, in bytes of text.
const KEEP_BYTES: usize = 64 << 10;
/// A longer line is cut (and says so).
const MAX_LINE: usize = 2048;

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Counts up from 1 for the pipeline: read on `after` the last one seen.
    pub seq: u64,
    pub at_ms: u64,
    pub level: String,
    /// `weir::guest` for the plugin's own lines, else the host's module.
    pub target: String,
    pub message: String,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Line>,
    bytes: usize,
    last: u64,
}

#[derive(Default)]
pub struct Logs {
    rings: Mutex<HashMap<String, Ring>>,
}

/// The process's one store, filled by [`Capture`].
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(Logs::default)
}

impl Logs {
    fn push(&self, pipeline: &str, level: &str, target: &str, mut message: String) {
        if message.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" (cut)");
        }
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = rings.entry(pipeline.to_string()).or_default();
        ring.last += 1;
        ring.bytes += message.len();
        ring.lines.push_back(Line {
            seq: ring.last,
            at_ms: weir_pipeline::now_ms(),
            level: level.to_string(),
            target: target.to_string(),
            message,
        });
        while ring.bytes > KEEP_BYTES
            && let Some(old) = ring.lines.pop_front()
        {
            ring.bytes -= old.message.len();
        }
    }

    /// Up to `limit` lines of `pipeline` after line `after`, oldest first, and the seq to
    /// ask after next (the last one returned, or `after` when none).
    pub fn read(&self, pipeline: &str, after: u64, limit: usize) -> (Vec<Line>, u64) {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let lines: Vec<Line> = rings
            .get(pipeline)
            .map(|ring| {
                ring.lines
                    .iter()
                    .filter(|l| l.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let next = lines.last().map_or(after, |l| l.seq);
        (lines, next)
    }

    /// A deleted pipeline's lines go with it.
    pub fn forget(&self, pipeline: &str) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.remove(pipeline);
    }
}

/// The layer that fills [`logs`]: install it (at info) in `weir serve`'s subscriber.
pub struct Capture;

/// The pipeline a span is about (the runner's `pipeline` span).
struct PipelineOf(String);

#[derive(Default)]
struct Fields {
    pipeline: Option<String>,
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "pipeline" => self.pipeline = Some(value.to_string()),
            "message" => self.message.push_str(value),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "pipeline" => self.pipeline = Some(format!("{value:?}")),
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "pipeline" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(pipeline), Some(span)) = (fields.pipeline, ctx.span(id)) {
            span.extensions_mut().insert(PipelineOf(pipeline));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let pipeline = fields.pipeline.take().or_else(|| {
            ctx.event_scope(event)?
                .from_root()
                .find_map(|span| span.extensions().get::<PipelineOf>().map(|p| p.0.clone()))
        });
        if let Some(pipeline) = pipeline {
            let meta = event.metadata();
            let message = fields.message + &fields.rest;
            logs().push(&pipeline, meta.level().as_str(), meta.target(), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_pages_and_keeps_its_bytes_bounded() {
        let logs = Logs::default();
        for i in 0..10 {
            logs.push("a/p", "INFO", "weir::guest", format!("line {i}"));
        }
        logs.push("b/p", "INFO", "weir::guest", "other tenant".into());
        let (first, next) = logs.read("a/p", 0, 4);
        assert_eq!(first.len(), 4);
        assert_eq!((first[0].message.as_str(), next), ("line 0", 4));
        let (rest, next) = logs.read("a/p", next, 100);
        assert_eq!(rest.len(), 6);
        assert_eq!((rest[0].seq, next), (5, 10));
        assert!(rest.iter().all(|l| l.message.starts_with("line")));
        let (none, next) = logs.read("a/p", 10, 100);
        assert!(none.is_empty());
        assert_eq!(next, 10, "nothing new: ask after the same line again");

        for _ in 0..100 {
            logs.push("a/p", "INFO", "weir::guest", "x".repeat(5000));
        }
        let (all, _) = logs.read("a/p", 0, usize::MAX);
        let bytes: usize = all.iter().map(|l| l.message.len()).sum();
        assert!(bytes <= KEEP_BYTES, "{bytes}");
        assert!(all[0].seq > 10, "the oldest went first");
        assert!(all.iter().all(|l| l.message.len() <= MAX_LINE + 6));
        logs.forget("a/p");
        assert!(logs.read("a/p", 0, 10).0.is_empty());
        assert_eq!(logs.read("b/p", 0, 10).0[0].message, "other tenant");
    }
}
