//! `/metrics` in Prometheus' text format: one series per pipeline, labelled by tenant.

use crate::supervisor::{State, Supervisor};
use std::fmt::Write;

pub fn render(supervisor: &Supervisor) -> String {
    let snapshots: Vec<_> = supervisor
        .workers()
        .iter()
        .map(|w| (w.tenant.clone(), supervisor.snapshot_of(w)))
        .collect();
    // A node of a cluster labels its series with its name, so a dashboard over every
    // node tells them apart (and sees a pipeline move).
    let node = match supervisor.node() {
        "" => String::new(),
        node => format!(",node=\"{}\"", escape(node)),
    };
    let mut out = String::new();
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&crate::supervisor::Snapshot) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (tenant, s) in &snapshots {
                if let Some(v) = value(s) {
                    let _ = writeln!(
                        out,
                        "{name}{{tenant=\"{}\",pipeline=\"{}\"{node}}} {v}",
                        escape(tenant),
                        escape(&s.name)
                    );
                }
            }
        };
    let n = |v: u64| Some(v as f64);
    family(
        "weir_records_in_total",
        "counter",
        "Records read from the source.",
        &|s| n(s.counters.records_in),
    );
    family(
        "weir_records_out_total",
        "counter",
        "Records written and committed by the sink.",
        &|s| n(s.counters.records_out),
    );
    family(
        "weir_bytes_in_total",
        "counter",
        "Record bytes read from the source.",
        &|s| n(s.counters.bytes_in),
    );
    family(
        "weir_batches_total",
        "counter",
        "Batches committed.",
        &|s| n(s.counters.batches),
    );
    family(
        "weir_dead_letters_total",
        "counter",
        "Records sent to the dead-letter destination.",
        &|s| n(s.counters.dead_letters),
    );
    family(
        "weir_log_dropped_total",
        "counter",
        "Guest log lines dropped over the instances' log budgets.",
        &|s| n(s.counters.log_dropped),
    );
    let secs = |ns: u64| Some(ns as f64 / 1e9);
    family(
        "weir_cpu_seconds_total",
        "counter",
        "CPU used by the pipeline's guest calls.",
        &|s| secs(s.counters.cpu_ns),
    );
    family(
        "weir_throttled_seconds_total",
        "counter",
        "Time waited for the tenant's CPU share.",
        &|s| secs(s.counters.throttled_ns),
    );
    family("weir_errors_total", "counter", "Failed runs.", &|s| {
        n(s.stats.errors)
    });
    family(
        "weir_restarts_total",
        "counter",
        "Restarts after a failure.",
        &|s| n(s.stats.restarts),
    );
    family(
        "weir_traps_total",
        "counter",
        "Runs stopped by a guest trap.",
        &|s| n(s.stats.traps),
    );
    family(
        "weir_epoch_stops_total",
        "counter",
        "Calls interrupted at their deadline (epoch).",
        &|s| n(s.stats.deadline_stops),
    );
    family(
        "weir_memory_stops_total",
        "counter",
        "Runs stopped at the memory limit.",
        &|s| n(s.stats.memory_stops),
    );
    family(
        "weir_source_memory_bytes",
        "gauge",
        "Linear memory of the source instance.",
        &|s| n(s.counters.source_memory),
    );
    family(
        "weir_sink_memory_bytes",
        "gauge",
        "Linear memory of the sink instance.",
        &|s| n(s.counters.sink_memory),
    );
    family(
        "weir_sink_rests_total",
        "counter",
        "Times the sink's instance was released after it waited `release_when_idle` for a batch.",
        &|s| n(s.counters.sink_rests),
    );
    family(
        "weir_transform_memory_bytes",
        "gauge",
        "Linear memory of the transform instances, every worker's together.",
        &|s| n(s.counters.transform_memory),
    );
    family(
        "weir_checkpoint_age_seconds",
        "gauge",
        "Seconds since the last committed checkpoint.",
        &|s| s.checkpoint_age_ms.map(|ms| ms as f64 / 1000.0),
    );
    family(
        "weir_pipeline_running",
        "gauge",
        "1 when the pipeline is running.",
        &|s| {
            Some(if s.stats.state == State::Running {
                1.0
            } else {
                0.0
            })
        },
    );
    // The connectors' own counters: a series per side, plugin and name (at most 256 names
    // per instance, so a plugin cannot flood the page).
    let _ = writeln!(
        out,
        "# HELP weir_guest_metric A connector's own counter or gauge (metrics.counter-add, gauge-set)."
    );
    let _ = writeln!(out, "# TYPE weir_guest_metric untyped");
    for (tenant, s) in &snapshots {
        for g in &s.guest_counters {
            let _ = writeln!(
                out,
                "weir_guest_metric{{tenant=\"{}\",pipeline=\"{}\",side=\"{}\",plugin=\"{}\",name=\"{}\"{node}}} {}",
                escape(tenant),
                escape(&s.name),
                escape(&g.side),
                escape(&g.plugin),
                escape(&g.name),
                g.value
            );
        }
    }
    out
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest counter's name is the plugin's to choose: escaped, it stays inside its label
    /// and cannot end the line to forge another series.
    #[test]
    fn a_hostile_label_value_stays_in_its_label() {
        let hostile = "polls\"} 1\nweir_records_out_total{tenant=\"other\"} 999\\";
        let escaped = escape(hostile);
        assert!(!escaped.contains('\n'), "{escaped}");
        let bytes = escaped.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'"' {
                let backslashes = bytes[..i].iter().rev().take_while(|c| **c == b'\\').count();
                assert_eq!(backslashes % 2, 1, "an unescaped quote at {i}: {escaped}");
            }
        }
    }
}
