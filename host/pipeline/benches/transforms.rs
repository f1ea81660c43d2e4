//! Transforms: file-source → file-sink over 1,000,000 JSON records without a transform,
//! with the jq step `select(.n % 2 == 0) | .name |= ascii_upcase`, and with the same logic
//! as a Python and a JavaScript transform; next to the native `jaq` command-line tool
//! running the same program over the same file, in the same rounds.
//!
//! Needs the plugins built (`scripts/build.sh`). Installs `jaq` from crates.io into
//! `~/.cache/weir/tools/` on first use. Run: `cargo bench -p weir-pipeline --bench
//! transforms`. `WEIR_BENCH_RECORDS` sets the record count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::{Runtime, RuntimeConfig};

mod common;

const BATCH: usize = 5000;
const ROUNDS: usize = 3;
const PROGRAM: &str = "select(.n % 2 == 0) | .name |= ascii_upcase";
const JAQ_VERSION: &str = "3.1.2";

/// What runs between source and sink, as a `[[pipeline.transforms]]` table.
#[derive(Clone, Copy)]
enum Step {
    None,
    Jq,
    /// The jq step in two workers (`transform_parallelism = 2`).
    JqTwice,
    Python,
    Js,
}

impl Step {
    fn table(self, plugins: &Path) -> String {
        let (plugin, config) = match self {
            Step::None => return String::new(),
            Step::Jq | Step::JqTwice => ("jq", format!("{{ program = '{PROGRAM}' }}")),
            Step::Python => ("py_evens", "{}".into()),
            Step::Js => ("js_evens", "{}".into()),
        };
        format!(
            "[[pipeline.transforms]]\nplugin = \"{}\"\nconfig = {config}\n",
            plugins.join(format!("{plugin}.wasm")).display()
        )
    }

    fn parallelism(self) -> usize {
        match self {
            Step::JqTwice => 2,
            _ => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::None => "none",
            Step::Jq => "jq",
            Step::JqTwice => "jq2",
            Step::Python => "python",
            Step::Js => "js",
        }
    }
}

fn main() {
    let records = common::records();
    let plugins = common::plugins();
    for p in ["file_source", "jq", "py_evens", "js_evens"] {
        assert!(
            plugins.join(format!("{p}.wasm")).exists(),
            "build the plugins first: scripts/build.sh"
        );
    }
    let jaq = jaq();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data/events.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let bytes = write_input(&input, records);
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let steps = [Step::None, Step::Jq, Step::JqTwice, Step::Python, Step::Js];
    // Untimed: every plugin compiled and cached, the input in the page cache.
    for step in steps {
        weir_run(&runtime, dir.path(), &plugins, step, "warm", records);
    }
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); steps.len() + 1];
    let mut outputs: Vec<PathBuf> = Vec::new();
    for round in 0..ROUNDS {
        // Interleaved, so all see the same machine load.
        for (i, step) in steps.into_iter().enumerate() {
            let (time, out) = weir_run(
                &runtime,
                dir.path(),
                &plugins,
                step,
                &round.to_string(),
                records,
            );
            took[i].push(time);
            outputs.push(out);
        }
        let out = dir.path().join(format!("jaq-{round}.jsonl"));
        took[steps.len()].push(native_jaq(&jaq, &input, &out));
        outputs.push(out);
    }
    // Every transform, and jaq, made the same bytes.
    let expected = std::fs::read(outputs.last().unwrap()).unwrap();
    for (i, out) in outputs.iter().enumerate() {
        if i % (steps.len() + 1) == 0 {
            continue; // no transform: the input itself
        }
        assert!(
            std::fs::read(out).unwrap() == expected,
            "{} differs from jaq's output",
            out.display()
        );
    }

    println!(
        "\nfile-source -> [transform] -> file-sink, {records} records ({:.1} MB), batch {BATCH}, \
         {ROUNDS} rounds; program: {PROGRAM}",
        bytes as f64 / 1e6
    );
    println!(
        "{:<40} {:>12} {:>14} {:>22}",
        "", "records/s", "time vs none", "min-max records/s"
    );
    let medians: Vec<f64> = took.iter().map(|t| median(t.clone())).collect();
    let rate = |d: &Duration| records as f64 / d.as_secs_f64();
    let names = [
        "weir, no transform",
        "weir, jq step (jaq in the component)",
        "weir, jq step, transform_parallelism = 2",
        "weir, the same step in Python",
        "weir, the same step in JavaScript",
        "native jaq CLI, same program and file",
    ];
    for (i, name) in names.iter().enumerate() {
        println!(
            "{name:<40} {:>12.0} {:>13.2}x {:>10.0}-{:<11.0}",
            records as f64 / medians[i],
            medians[i] / medians[0],
            took[i].iter().max().map(rate).unwrap_or_default(),
            took[i].iter().min().map(rate).unwrap_or_default(),
        );
    }
    println!(
        "jq step: {:.2}x the time of the pipeline without it (goal <= 1.5x); \
         {:.2}x native jaq's records/s (goal >= 0.5x); in two workers {:.2}x and {:.2}x",
        medians[1] / medians[0],
        medians[5] / medians[1],
        medians[2] / medians[0],
        medians[5] / medians[2],
    );
}

fn write_input(path: &Path, records: usize) -> u64 {
    let mut out = BufWriter::new(File::create(path).unwrap());
    for i in 0..records {
        writeln!(
            out,
            r#"{{"n":{i},"name":"user-{:05}","event":"click","value":{}.5}}"#,
            i % 50_000,
            i % 1000
        )
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// One run of the pipeline with `step`; its time and output file.
fn weir_run(
    runtime: &Arc<Runtime>,
    dir: &Path,
    plugins: &Path,
    step: Step,
    round: &str,
    records: usize,
) -> (Duration, PathBuf) {
    let tag = format!("{}-{round}", step.name());
    let out = dir.join(format!("weir-{tag}"));
    let settings = format!("transform_parallelism = {}", step.parallelism());
    let text = common::file_pipeline(
        plugins,
        &tag,
        BATCH,
        &settings,
        "data",
        &step.table(plugins),
        &out,
    );
    let (took, _) = common::run_once(runtime, dir, &tag, &text, records);
    (took, out.join("out.jsonl"))
}

fn native_jaq(jaq: &Path, input: &Path, out: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(jaq)
        .args(["-c", PROGRAM])
        .arg(input)
        .stdout(File::create(out).unwrap())
        .status()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success());
    took
}

/// The `jaq` binary, installed from crates.io (the version jaq-core in the jq plugin
/// matches) on first use.
fn jaq() -> PathBuf {
    let root = Path::new(&std::env::var("HOME").unwrap())
        .join(format!(".cache/weir/tools/jaq-{JAQ_VERSION}"));
    let bin = root.join("bin/jaq");
    if !bin.exists() {
        let status = Command::new("cargo")
            .args([
                "install",
                "jaq",
                "--locked",
                "--version",
                JAQ_VERSION,
                "--root",
            ])
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "cannot install jaq {JAQ_VERSION}");
    }
    bin
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}
