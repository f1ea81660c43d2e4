//! file-source → file-sink through the host, next to a native Rust loop doing the same
//! parse and write in the same run, plus plugin load and warm instantiation times.
//!
//! Needs the plugins built: `scripts/build.sh`. Run: `cargo bench -p weir-pipeline`.
//! `WEIR_BENCH_RECORDS` sets the record count (default 1,000,000).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use weir_pipeline::{PipelineFile, RunOptions, Shutdown};
use weir_runtime::{Instance, Labels, Runtime, RuntimeConfig, Sandbox};

const BATCH: usize = 5000;
const ROUNDS: usize = 3;

fn main() {
    let records: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    assert!(
        plugins.join("file_source.wasm").exists(),
        "build the plugins first: scripts/build.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data/events.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let bytes = write_input(&input, records);
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();

    let mut native = Vec::new();
    let mut weir = Vec::new();
    for round in 0..ROUNDS {
        // Interleaved, so both see the same machine load.
        native.push(native_copy(
            &input,
            &dir.path().join(format!("native-{round}.jsonl")),
        ));
        weir.push(weir_copy(&runtime, dir.path(), &plugins, round, records));
    }
    let native = median(native);
    let weir = median(weir);

    println!(
        "\nfile-source -> file-sink, {records} records, {:.1} MB, batch {BATCH}, median of {ROUNDS}",
        bytes as f64 / 1e6
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10}",
        "", "records/s", "MB/s", "vs native"
    );
    row(
        "native Rust (parse + write + fsync)",
        records,
        bytes,
        native,
        native,
    );
    row(
        "weir (wasm source + wasm sink)",
        records,
        bytes,
        weir,
        native,
    );

    let (cold, cached, warm) =
        instantiation(&runtime, &plugins.join("file_source.wasm"), dir.path());
    println!("\nplugin file_source.wasm");
    println!("  load, compiling:         {:>9.1} ms", ms(cold));
    println!("  load, from disk cache:   {:>9.2} ms", ms(cached));
    println!(
        "  warm instantiation:      {:>9.1} µs (median of {})",
        warm.as_secs_f64() * 1e6,
        WARM
    );
}

fn row(name: &str, records: usize, bytes: u64, took: Duration, baseline: Duration) {
    let s = took.as_secs_f64();
    println!(
        "{name:<34} {:>12.0} {:>10.1} {:>9.2}x",
        records as f64 / s,
        bytes as f64 / 1e6 / s,
        baseline.as_secs_f64() / s
    );
}

fn write_input(path: &Path, records: usize) -> u64 {
    let mut out = BufWriter::new(File::create(path).unwrap());
    for i in 0..records {
        writeln!(
            out,
            r#"{{"id":{i},"user":"u{:05}","event":"click","value":{}.5,"ts":"2026-11-24T10:00:00Z"}}"#,
            i % 50_000,
            i % 1000
        )
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// What the two plugins do, natively: validate each line as JSON, append it, fsync per batch.
fn native_copy(input: &Path, output: &Path) -> Duration {
    let started = Instant::now();
    let reader = BufReader::with_capacity(256 * 1024, File::open(input).unwrap());
    let mut file = File::create(output).unwrap();
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut in_batch = 0;
    for line in reader.split(b'\n') {
        let line = line.unwrap();
        serde_json::from_slice::<serde::de::IgnoredAny>(&line).unwrap();
        buffer.extend_from_slice(&line);
        buffer.push(b'\n');
        in_batch += 1;
        if in_batch == BATCH {
            file.write_all(&buffer).unwrap();
            file.sync_data().unwrap();
            buffer.clear();
            in_batch = 0;
        }
    }
    file.write_all(&buffer).unwrap();
    file.sync_data().unwrap();
    started.elapsed()
}

fn weir_copy(
    runtime: &Runtime,
    dir: &Path,
    plugins: &Path,
    round: usize,
    records: usize,
) -> Duration {
    let out = dir.join(format!("weir-{round}"));
    let pipeline = dir.join(format!("bench-{round}.toml"));
    std::fs::write(
        &pipeline,
        format!(
            r#"
state_dir = "state-{round}"
[[pipeline]]
name = "bench"
batch_size = {BATCH}
[pipeline.source]
plugin = "{source}"
config = {{ dir = "/data" }}
grants.dirs = [{{ host = "data", guest = "/data" }}]
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "out.jsonl" }}
grants.dirs = [{{ host = "{out}", guest = "/out", write = true }}]
"#,
            source = plugins.join("file_source.wasm").display(),
            sink = plugins.join("file_sink.wasm").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let file = PipelineFile::load(&pipeline).unwrap();
    let started = Instant::now();
    let summaries = weir_pipeline::run(
        runtime,
        &file,
        &RunOptions {
            once: true,
            ..RunOptions::default()
        },
        &Shutdown::default(),
    )
    .unwrap();
    let took = started.elapsed();
    assert_eq!(
        summaries[0].records_written as usize, records,
        "{:?}",
        summaries[0].error
    );
    took
}

const WARM: usize = 200;

fn instantiation(runtime: &Runtime, wasm: &Path, dir: &Path) -> (Duration, Duration, Duration) {
    let cold_runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.join("cold-cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    cold_runtime.load(wasm).unwrap();
    let cold = started.elapsed();
    drop(cold_runtime);
    let started = Instant::now();
    let plugin = runtime.load(wasm).unwrap();
    let cached = started.elapsed();
    let mut times = Vec::with_capacity(WARM);
    for _ in 0..WARM {
        let started = Instant::now();
        let instance: Instance = runtime
            .instantiate(&plugin, &Sandbox::default(), labels())
            .unwrap();
        times.push(started.elapsed());
        drop(instance);
    }
    (cold, cached, median(times))
}

fn labels() -> Labels {
    Labels {
        pipeline: "bench".into(),
        plugin: "file_source".into(),
        role: "source",
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
