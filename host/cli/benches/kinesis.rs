//! Kinesis → weir (kinesis-source → file-sink, Rust guests) → JSON Lines, next to a native
//! Rust loop using the same client (weir-runtime's signed Kinesis client) against the same
//! emulator: each reads every shard of a stream from TRIM_HORIZON, at most five GetRecords a
//! second per shard (the service's limit, which the host keeps), and appends each response's
//! records to a file with an fsync. Timed until the file holds every record, in
//! interleaved rounds.
//!
//! Needs `scripts/build.sh` (which installs kinesis-local). `WEIR_BENCH_RECORDS` (default
//! 20,000: the emulator takes its input ever slower as a stream grows, ~1,200 records/s at
//! first and ~180 records/s over 100,000, while reads keep their pace).

#[path = "../../../tests/e2e/fixtures/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use fixtures::kinesis::{KEY_ID, Kinesis};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_pipeline::{PipelineFile, RunOptions, Shutdown};
use weir_runtime::{Runtime, RuntimeConfig};

const SHARDS: u32 = 4;
const ROUNDS: usize = 3;
const RECORD: usize = 100;
const LIMIT: usize = 10_000;
const READ_INTERVAL: Duration = Duration::from_millis(200);

fn median(took: &[Duration]) -> Duration {
    let mut sorted = took.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let kinesis = Kinesis::start();
    kinesis.create_stream("bench", SHARDS);
    let started = Instant::now();
    let records: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let head = format!("{{\"n\":{i},\"pad\":\"");
            let pad = "x".repeat(RECORD - head.len() - 2);
            (
                format!("k{}", i % 1000),
                format!("{head}{pad}\"}}").into_bytes(),
            )
        })
        .collect();
    kinesis.put("bench", &records);
    let load = started.elapsed();

    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        })
        .unwrap(),
    );
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    for plugin in ["kinesis_source", "file_sink"] {
        runtime
            .load(&plugins.join(format!("{plugin}.wasm")))
            .unwrap();
    }
    std::fs::write(dir.path().join("aws-key"), KEY_ID).unwrap();
    std::fs::write(dir.path().join("aws-secret"), "weir-test-secret").unwrap();

    let (mut native, mut weir) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        native.push(native_loop(
            &kinesis,
            &dir.path().join(format!("native-{round}.jsonl")),
            n,
        ));
        weir.push(weir_run(
            &runtime,
            &kinesis.endpoint,
            &plugins,
            dir.path(),
            round,
            n,
        ));
    }

    println!(
        "\nKinesis -> JSON Lines, {n} records of {RECORD} bytes, {SHARDS} shards, kinesis-mock \
         (kinesis-local 0.6.2, Node.js) on loopback, {ROUNDS} rounds"
    );
    println!("(loading the input took {:.1}s)", load.as_secs_f64());
    println!(
        "{:<44} {:>12} {:>10} {:>22}",
        "", "records/s", "vs native", "min-max records/s"
    );
    let baseline = median(&native);
    for (name, took) in [
        ("native Rust loop, same client", &native),
        ("weir kinesis-source -> file-sink", &weir),
    ] {
        let rate = |d: &Duration| n as f64 / d.as_secs_f64();
        println!(
            "{name:<44} {:>12.0} {:>9.2}x {:>10.0}-{:<11.0}",
            rate(&median(took)),
            baseline.as_secs_f64() / median(took).as_secs_f64(),
            took.iter().max().map(rate).unwrap_or_default(),
            took.iter().min().map(rate).unwrap_or_default(),
        );
    }
}

/// Every shard from TRIM_HORIZON, round-robin, each response appended and synced.
fn native_loop(kinesis: &Kinesis, out: &Path, n: usize) -> Duration {
    use base64::Engine;
    let call = |action: &str, body: Value| kinesis.call(action, body);
    let started = Instant::now();
    let mut file = std::fs::File::create(out).unwrap();
    let shards = call("ListShards", json!({ "StreamName": "bench" }));
    let mut iterators: Vec<(String, Instant)> = shards["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let it = call(
                "GetShardIterator",
                json!({ "StreamName": "bench", "ShardId": s["ShardId"], "ShardIteratorType": "TRIM_HORIZON" }),
            );
            (it["ShardIterator"].as_str().unwrap().to_string(), Instant::now() - READ_INTERVAL)
        })
        .collect();
    let (mut written, mut buffer) = (0, Vec::new());
    while written < n {
        for (iterator, last) in &mut iterators {
            let next = *last + READ_INTERVAL;
            if next > Instant::now() {
                std::thread::sleep(next - Instant::now());
            }
            *last = Instant::now();
            let got = call(
                "GetRecords",
                json!({ "ShardIterator": iterator, "Limit": LIMIT }),
            );
            buffer.clear();
            for r in got["Records"].as_array().unwrap() {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(r["Data"].as_str().unwrap())
                    .unwrap();
                buffer.extend_from_slice(&data);
                buffer.push(b'\n');
                written += 1;
            }
            file.write_all(&buffer).unwrap();
            file.sync_data().unwrap();
            *iterator = got["NextShardIterator"].as_str().unwrap().to_string();
        }
    }
    started.elapsed()
}

/// kinesis-source → file-sink in this process, until the file holds every record.
fn weir_run(
    runtime: &Arc<Runtime>,
    endpoint: &str,
    plugins: &Path,
    dir: &Path,
    round: usize,
    n: usize,
) -> Duration {
    let out = dir.join(format!("weir-{round}"));
    let path = dir.join(format!("weir-{round}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
state_dir = "state-{round}"
[[pipeline]]
name = "bench"
batch_size = {LIMIT}
[pipeline.source]
plugin = "{source}"
config = {{ stream = "bench" }}
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "out.jsonl" }}
grants.dirs = [{{ host = "{out}", guest = "/out", write = true }}]
"#,
            source = plugins.join("kinesis_source.wasm").display(),
            sink = plugins.join("file_sink.wasm").display(),
            grant = Kinesis::grant_at(endpoint, &["bench"]),
            out = out.display(),
        ),
    )
    .unwrap();
    let file = PipelineFile::load(&path).unwrap();
    let stop = Shutdown::default();
    let target = (n * (RECORD + 1)) as u64;
    let written = out.join("out.jsonl");
    std::thread::scope(|scope| {
        let started = Instant::now();
        let running = scope.spawn(|| {
            weir_runtime::block_on(weir_pipeline::run(
                runtime,
                &file,
                &RunOptions::default(),
                &stop,
            ))
        });
        while std::fs::metadata(&written).map_or(0, |m| m.len()) < target {
            assert!(!running.is_finished(), "weir stopped early");
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = started.elapsed();
        stop.trigger();
        let summaries = running.join().unwrap().unwrap();
        assert!(summaries[0].error.is_none(), "{:?}", summaries[0].error);
        took
    })
}
