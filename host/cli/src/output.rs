//! What `weir` prints: text for people, one JSON object per line for scripts.

use crate::Output;
use anyhow::Result;
use std::path::Path;
use weir_pipeline::{Inspected, Status, Stream, Summary};
use weir_runtime::{Compilation, Limits, Runtime};

pub fn summaries(summaries: &[Summary], output: Output) -> Result<()> {
    for s in summaries {
        match output {
            Output::Json => println!("{}", serde_json::to_string(s)?),
            Output::Text => println!("{}", text(s)),
        }
    }
    Ok(())
}

fn text(s: &Summary) -> String {
    let seconds = s.elapsed_ms as f64 / 1000.0;
    let into = if s.sink_dirs.is_empty() {
        String::new()
    } else {
        format!(" into {}", s.sink_dirs.join(", "))
    };
    let moved = match (s.records_read, s.records_written) {
        (0, 0) if s.status == Status::Ok => {
            "0 new records (nothing past the last checkpoint)".to_string()
        }
        (read, written) => {
            let through = if s.transforms.is_empty() {
                String::new()
            } else {
                format!(" through {}", s.transforms.join(" → "))
            };
            format!(
                "{read} records read, {written} written{through} by {}{into} in {seconds:.2}s ({} batches)",
                s.sink, s.batches
            )
        }
    };
    match &s.error {
        None => format!("{}: {moved}", s.pipeline),
        Some(e) => format!("{}: FAILED: {e}\n{}: {moved}", s.pipeline, s.pipeline),
    }
}

pub struct Checked {
    pub pipeline: String,
    pub side: String,
    /// The plugin's name, or why the side is not usable.
    pub result: Result<String, String>,
}

pub fn checks(results: &[Checked], output: Output) -> Result<()> {
    for r in results {
        match output {
            Output::Json => {
                let (ok, plugin, error) = match &r.result {
                    Ok(name) => (true, Some(name), None),
                    Err(e) => (false, None, Some(e)),
                };
                let line = serde_json::json!({
                    "pipeline": r.pipeline, "side": r.side, "ok": ok, "plugin": plugin, "error": error,
                });
                println!("{line}");
            }
            Output::Text => match &r.result {
                Ok(name) => println!("{} {}: ok ({name})", r.pipeline, r.side),
                Err(e) => println!("{} {}: {e}", r.pipeline, r.side),
            },
        }
    }
    Ok(())
}

/// Each pipeline's streams, or why they could not be listed.
pub fn streams(found: &[(String, Result<Vec<Stream>>)], output: Output) -> Result<()> {
    for (pipeline, result) in found {
        match (result, output) {
            (Ok(streams), Output::Json) => {
                for s in streams {
                    let line = serde_json::json!({
                        "pipeline": pipeline, "stream": s.name, "schema": s.schema,
                    });
                    println!("{line}");
                }
            }
            (Ok(streams), Output::Text) => {
                for s in streams {
                    match &s.schema {
                        Some(schema) => println!("{pipeline}: {} {schema}", s.name),
                        None => println!("{pipeline}: {}", s.name),
                    }
                }
            }
            (Err(e), Output::Json) => {
                let line = serde_json::json!({ "pipeline": pipeline, "error": format!("{e:#}") });
                println!("{line}");
            }
            (Err(e), Output::Text) => println!("{pipeline}: {e:#}"),
        }
    }
    Ok(())
}

pub fn inspect(runtime: &Runtime, file: &Path, output: Output) -> Result<()> {
    let Inspected {
        plugin,
        spec,
        schema,
    } = weir_runtime::block_on(weir_pipeline::inspect(runtime, file, Limits::default()))?;
    let (how, took) = match plugin.compilation {
        Compilation::Cached(d) => ("cached", d),
        Compilation::Compiled(d) => ("compiled", d),
    };
    match output {
        Output::Json => {
            let line = serde_json::json!({
                "file": file.display().to_string(),
                "world": plugin.world.name(),
                "delivery": plugin.delivery(),
                "name": spec.name,
                "version": spec.version,
                "description": spec.description,
                "config_schema": schema,
                "compilation": how,
                "compile_ms": took.as_secs_f64() * 1000.0,
            });
            println!("{line}");
        }
        Output::Text => {
            match plugin.delivery() {
                Some(delivery) => println!(
                    "{} {} ({}, {delivery})",
                    spec.name, spec.version, plugin.world
                ),
                None => println!("{} {} ({})", spec.name, spec.version, plugin.world),
            }
            println!("{}", spec.description);
            println!("file: {} ({how} in {took:.1?})", file.display());
            println!("config schema:\n{}", serde_json::to_string_pretty(&schema)?);
        }
    }
    Ok(())
}

/// `weir test`: a line per check with its evidence, then the totals.
pub fn report(report: &weir_conformance::Report, output: Output) -> Result<()> {
    use weir_conformance::Status as S;
    if output == Output::Json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "weir test {}: {} {} ({})",
        report.plugin, report.name, report.version, report.world
    );
    for c in &report.checks {
        let status = match c.status {
            S::Pass => "pass",
            S::Fail => "FAIL",
            S::Skip => "skip",
        };
        println!("  {status}  {:<14} {}", c.name, c.evidence);
    }
    let count = |s: S| report.checks.iter().filter(|c| c.status == s).count();
    println!(
        "{} checks: {} passed, {} failed, {} skipped",
        report.checks.len(),
        count(S::Pass),
        count(S::Fail),
        count(S::Skip)
    );
    Ok(())
}
