//! file-source → file-sink through the host, next to a native Rust loop doing the same
//! parse and write in the same run; the same rows as CSV, next to a native `csv` → JSON
//! loop; object-source (on a local directory store) reading both; plus plugin load and
//! warm instantiation times.
//!
//! Needs the plugins built: `scripts/build.sh`. Run: `cargo bench -p weir-pipeline`.
//! `WEIR_BENCH_RECORDS` sets the record count (default 1,000,000).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use weir_runtime::{Instance, Labels, Runtime, RuntimeConfig, Sandbox};

mod common;

const BATCH: usize = 5000;
const ROUNDS: usize = 3;

fn main() {
    let records = common::records();
    let plugins = common::plugins();
    assert!(
        plugins.join("file_source.wasm").exists(),
        "build the plugins first: scripts/build.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data/events.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let bytes = write_input(&input, records);
    let csv = dir.path().join("data-csv/events.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let csv_bytes = write_csv(&input, &csv);
    let runtime = std::sync::Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );

    // One untimed run first: the plugins compiled and cached, the files in the page cache.
    weir_copy(&runtime, dir.path(), &plugins, "warm", "", "data", records);
    object_copy(
        &runtime,
        dir.path(),
        &plugins,
        "warm-objects",
        "data",
        records,
    );
    let mut native = Vec::new();
    let mut native_csv = Vec::new();
    let mut weir = Vec::new();
    let mut weir_grouped = Vec::new();
    let mut weir_csv = Vec::new();
    let mut objects = Vec::new();
    let mut objects_csv = Vec::new();
    for round in 0..ROUNDS {
        // Interleaved, so all see the same machine load.
        native.push(native_copy(
            &input,
            &dir.path().join(format!("native-{round}.jsonl")),
        ));
        native_csv.push(native_csv_to_json(
            &csv,
            &dir.path().join(format!("native-csv-{round}.jsonl")),
        ));
        for (data, took) in [("data", &mut objects), ("data-csv", &mut objects_csv)] {
            took.push(object_copy(
                &runtime,
                dir.path(),
                &plugins,
                &format!("objects-{data}-{round}"),
                data,
                records,
            ));
        }
        for (kind, settings, took) in [
            ("jsonl", "", &mut weir),
            ("jsonl-grouped", GROUPED, &mut weir_grouped),
        ] {
            let name = format!("{kind}-{round}");
            took.push(weir_copy(
                &runtime,
                dir.path(),
                &plugins,
                &name,
                settings,
                "data",
                records,
            ));
        }
        let name = format!("csv-{round}");
        weir_csv.push(weir_copy(
            &runtime,
            dir.path(),
            &plugins,
            &name,
            "",
            "data-csv",
            records,
        ));
    }

    println!(
        "\nfile-source -> file-sink, {records} records ({:.1} MB as JSON Lines, {:.1} MB as CSV), \
         batch {BATCH}, {ROUNDS} rounds",
        bytes as f64 / 1e6,
        csv_bytes as f64 / 1e6
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>22}",
        "", "records/s", "MB/s", "vs native", "min-max records/s"
    );
    let baseline = median(native.clone());
    row(
        "native Rust (parse + write + fsync)",
        records,
        bytes,
        &native,
        baseline,
    );
    row("weir, JSON Lines", records, bytes, &weir, baseline);
    row(
        "weir, JSON Lines, group_commit = 3",
        records,
        bytes,
        &weir_grouped,
        baseline,
    );
    row(
        "weir, the same rows as CSV",
        records,
        csv_bytes,
        &weir_csv,
        baseline,
    );
    row(
        "native Rust csv -> JSON + fsync",
        records,
        csv_bytes,
        &native_csv,
        baseline,
    );
    row(
        "weir, object-source JSON Lines",
        records,
        bytes,
        &objects,
        baseline,
    );
    row(
        "weir, object-source CSV",
        records,
        csv_bytes,
        &objects_csv,
        baseline,
    );
    let ratio = |a: &[Duration], b: &[Duration]| {
        median(b.to_vec()).as_secs_f64() / median(a.to_vec()).as_secs_f64()
    };
    println!(
        "CSV vs JSON Lines through weir (medians): file-source {:.2}x, object-source {:.2}x",
        ratio(&weir_csv, &weir),
        ratio(&objects_csv, &objects)
    );
    println!(
        "weir CSV vs the native csv -> JSON loop: file-source {:.2}x, object-source {:.2}x",
        ratio(&weir_csv, &native_csv),
        ratio(&objects_csv, &native_csv)
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

/// Median records/s, MB/s and ratio to `baseline` (a median), and the min-max records/s.
fn row(name: &str, records: usize, bytes: u64, took: &[Duration], baseline: Duration) {
    let median = median(took.to_vec()).as_secs_f64();
    let rate = |d: &Duration| records as f64 / d.as_secs_f64();
    let (slowest, fastest) = (
        took.iter().max().map(rate).unwrap_or_default(),
        took.iter().min().map(rate).unwrap_or_default(),
    );
    println!(
        "{name:<34} {:>12.0} {:>10.1} {:>9.2}x {:>10.0}-{:<11.0}",
        records as f64 / median,
        bytes as f64 / 1e6 / median,
        baseline.as_secs_f64() / median,
        slowest,
        fastest
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
    let mut out = BatchedFile::create(output);
    for line in reader.split(b'\n') {
        let line = line.unwrap();
        serde_json::from_slice::<serde::de::IgnoredAny>(&line).unwrap();
        out.buffer.extend_from_slice(&line);
        out.buffer.push(b'\n');
        out.record_written();
    }
    out.finish();
    started.elapsed()
}

/// The native loops' sink: records appended to a buffer, written and fsynced once per
/// batch, as file-sink does.
struct BatchedFile {
    file: File,
    buffer: Vec<u8>,
    in_batch: usize,
}

impl BatchedFile {
    fn create(path: &Path) -> BatchedFile {
        BatchedFile {
            file: File::create(path).unwrap(),
            buffer: Vec::with_capacity(1 << 20),
            in_batch: 0,
        }
    }

    /// One more record is in the buffer; at a batch's end, it all goes to the disk.
    fn record_written(&mut self) {
        self.in_batch += 1;
        if self.in_batch == BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.file.write_all(&self.buffer).unwrap();
        self.file.sync_data().unwrap();
        self.buffer.clear();
        self.in_batch = 0;
    }

    fn finish(mut self) {
        self.flush();
    }
}

/// What file-source does with CSV, natively with the `csv` crate: each row a JSON object
/// of its header's names to the fields (as text, file-source's default), appended, fsync
/// per batch.
fn native_csv_to_json(input: &Path, output: &Path) -> Duration {
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .buffer_capacity(256 * 1024)
        .from_path(input)
        .unwrap();
    let names: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(|h| serde_json::to_string(h).unwrap())
        .collect();
    let mut out = BatchedFile::create(output);
    let mut row = csv::ByteRecord::new();
    while reader.read_byte_record(&mut row).unwrap() {
        let buffer = &mut out.buffer;
        buffer.push(b'{');
        for (i, (name, field)) in names.iter().zip(row.iter()).enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            buffer.extend_from_slice(name.as_bytes());
            buffer.push(b':');
            serde_json::to_writer(&mut *buffer, std::str::from_utf8(field).unwrap()).unwrap();
        }
        buffer.extend_from_slice(b"}\n");
        out.record_written();
    }
    out.finish();
    started.elapsed()
}

/// object-source reading `data` through a local directory store → file-sink.
fn object_copy(
    runtime: &std::sync::Arc<Runtime>,
    dir: &Path,
    plugins: &Path,
    tag: &str,
    data: &str,
    records: usize,
) -> Duration {
    let out = dir.join(format!("weir-{tag}"));
    let text = format!(
        r#"
state_dir = "state-{tag}"
[[pipeline]]
name = "bench"
batch_size = {BATCH}
[pipeline.source]
plugin = "{source}"
config = {{ prefix = "" }}
grants.objects = {{ dir = "{data}" }}
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "out.jsonl" }}
grants.dirs = [{{ host = "{out}", guest = "/out", write = true }}]
"#,
        source = plugins.join("object_source.wasm").display(),
        sink = plugins.join("file_sink.wasm").display(),
        out = out.display(),
    );
    let (took, summary) = common::run_once(runtime, dir, tag, &text, records);
    assert_eq!(summary.records_written as usize, records);
    took
}

/// The same rows as CSV (a header, then the fields in the same order), for the CSV path.
fn write_csv(jsonl: &Path, csv: &Path) -> u64 {
    let mut out = BufWriter::new(File::create(csv).unwrap());
    writeln!(out, "id,user,event,value,ts").unwrap();
    for line in BufReader::new(File::open(jsonl).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        writeln!(
            out,
            "{},{},{},{},{}",
            v["id"],
            v["user"].as_str().unwrap(),
            v["event"].as_str().unwrap(),
            v["value"],
            v["ts"].as_str().unwrap()
        )
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(csv).unwrap().len()
}

/// Pipeline settings of the grouped run: up to three batches (the one taken and the two
/// `buffer_batches` waiting) under one commit.
const GROUPED: &str = "group_commit = 3";

fn weir_copy(
    runtime: &std::sync::Arc<Runtime>,
    dir: &Path,
    plugins: &Path,
    round: &str,
    settings: &str,
    data: &str,
    records: usize,
) -> Duration {
    let out = dir.join(format!("weir-{round}"));
    let text = common::file_pipeline(plugins, round, BATCH, settings, data, "", &out);
    let (took, summary) = common::run_once(runtime, dir, round, &text, records);
    assert_eq!(summary.records_written as usize, records);
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
    weir_runtime::block_on(async {
        for _ in 0..WARM {
            let started = Instant::now();
            let instance: Instance = runtime
                .instantiate(&plugin, &Sandbox::default(), labels())
                .await
                .unwrap();
            times.push(started.elapsed());
            drop(instance);
        }
    });
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
