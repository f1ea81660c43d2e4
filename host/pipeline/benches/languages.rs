//! The same transform (parse each JSON record, upper-case a field, mark it, re-serialise)
//! as a Rust, a Python and a JavaScript guest, next to native Rust and native CPython doing
//! the same in the same run: records/s, plus each guest's instantiation time and memory.
//!
//! Needs the plugins built (`scripts/build.sh`) and python3. Run:
//! `cargo bench -p weir-pipeline --bench languages`. `WEIR_BENCH_RECORDS` sets the record
//! count (default 200,000); `WEIR_BENCH_ONLY=transform` (a plugin file's name) runs one
//! guest only, next to the natives (for profiling it alone).

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use weir_runtime::{Labels, Records, Runtime, RuntimeConfig, Sandbox, SinkInstance};

const BATCH: usize = 5000;
const ROUNDS: usize = 3;
const INSTANCES: usize = 20;

const GUESTS: [(&str, &str); 3] = [
    ("Rust guest", "transform"),
    ("Python guest (componentize-py)", "py_transform"),
    ("JavaScript guest (componentize-js)", "js_transform"),
];

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();

    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user {:05}","event":"click","value":{},"tags":["a","b"]}}"#,
                i % 50_000,
                i % 1000
            )
        })
        .collect();
    let batches: Vec<Records> = lines
        .chunks(BATCH)
        .map(|chunk| {
            let mut r = Records::new();
            for l in chunk {
                r.push(None, Some(l.as_bytes()), &[], None);
            }
            r
        })
        .collect();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let only = std::env::var("WEIR_BENCH_ONLY").ok();
    let guests_run: Vec<(&str, &str)> = GUESTS
        .iter()
        .copied()
        .filter(|(_, file)| only.as_deref().is_none_or(|o| o == *file))
        .collect();
    let loaded: Vec<_> = guests_run
        .iter()
        .map(|(_, file)| {
            let path = plugins.join(format!("{file}.wasm"));
            assert!(
                path.exists(),
                "{} missing: run scripts/build.sh",
                path.display()
            );
            runtime.load(&path).unwrap()
        })
        .collect();

    let mut native_rs = Vec::new();
    let mut native_py = Vec::new();
    let mut guests: Vec<Vec<Duration>> = vec![Vec::new(); guests_run.len()];
    let mut sizes = Vec::new();
    for _ in 0..ROUNDS {
        // Interleaved, so every variant sees the same machine load.
        let (took, size) = native_rust(&lines);
        native_rs.push(took);
        sizes.push(("native Rust", size));
        let (took, size) = native_python(&input);
        native_py.push(took);
        sizes.push(("native CPython", size));
        for (i, plugin) in loaded.iter().enumerate() {
            let (took, size) = guest(&runtime, plugin, &batches);
            guests[i].push(took);
            sizes.push((guests_run[i].0, size));
        }
    }
    // Every variant wrote the same output, or the comparison means nothing.
    let expected = sizes[0].1;
    for (who, size) in &sizes {
        assert_eq!(
            *size, expected,
            "{who} produced {size} bytes, native Rust {expected}"
        );
    }

    let base = median(native_rs.clone());
    println!("\ntransform: parse JSON, upper-case `name`, add `seen`, re-serialise");
    println!(
        "{n} records (~{} bytes each), batch {BATCH}, median of {ROUNDS} interleaved rounds",
        lines[0].len()
    );
    println!("{:<36} {:>12} {:>12}", "", "records/s", "vs native Rust");
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<36} {:>12.0} {:>11.3}x",
            n as f64 / d.as_secs_f64(),
            base.as_secs_f64() / d.as_secs_f64()
        )
    };
    row("native Rust (serde_json)", base);
    row("native CPython (json)", median(native_py));
    for (i, (name, _)) in guests_run.iter().enumerate() {
        row(name, median(guests[i].clone()));
    }

    println!(
        "\n{:<36} {:>14} {:>16} {:>14}",
        "per instance", "component", "instantiate+open", "linear memory"
    );
    for (i, (name, file)) in guests_run.iter().enumerate() {
        let bytes = std::fs::metadata(plugins.join(format!("{file}.wasm")))
            .unwrap()
            .len();
        let (took, memory) = instances(&runtime, &loaded[i]);
        println!(
            "{name:<36} {:>11.1} MB {:>13.2} ms {:>11.1} MiB",
            bytes as f64 / 1e6,
            took.as_secs_f64() * 1e3,
            memory as f64 / (1 << 20) as f64
        );
    }
}

fn labels() -> Labels {
    Labels {
        pipeline: "bench".into(),
        plugin: "transform".into(),
        role: "sink",
    }
}

/// Writes every batch through the guest and flushes; returns the time and `bytes_out`.
fn guest(
    runtime: &Runtime,
    plugin: &std::sync::Arc<weir_runtime::Plugin>,
    batches: &[Records],
) -> (Duration, u64) {
    weir_runtime::block_on(async {
        let mut sink = opened(runtime, plugin).await;
        let started = Instant::now();
        for batch in batches {
            sink.write(batch).await.unwrap();
        }
        sink.flush().await.unwrap();
        let took = started.elapsed();
        (took, sink.counters()["bytes_out"])
    })
}

/// Median time to a usable instance (instantiate + open), and its linear memory then.
fn instances(
    runtime: &Runtime,
    plugin: &std::sync::Arc<weir_runtime::Plugin>,
) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut memory = 0;
    weir_runtime::block_on(async {
        for _ in 0..INSTANCES {
            let started = Instant::now();
            let sink = opened(runtime, plugin).await;
            times.push(started.elapsed());
            memory = sink.memory_bytes();
        }
    });
    (median(times), memory)
}

/// A fresh instance of the transform, opened.
async fn opened(runtime: &Runtime, plugin: &std::sync::Arc<weir_runtime::Plugin>) -> SinkInstance {
    let instance = runtime
        .instantiate(plugin, &Sandbox::default(), labels())
        .await
        .unwrap();
    let Some(mut sink) = instance.into_sink() else {
        panic!("the transforms are sinks")
    };
    sink.open("{}").await.unwrap();
    sink
}

fn native_rust(lines: &[String]) -> (Duration, u64) {
    let started = Instant::now();
    let mut size = 0u64;
    let mut out = Vec::new();
    for line in lines {
        let mut obj: Value = serde_json::from_str(line).unwrap();
        if let Some(Value::String(name)) = obj.get_mut("name") {
            *name = name.to_uppercase();
        }
        obj["seen"] = Value::Bool(true);
        out.clear();
        serde_json::to_writer(&mut out, &obj).unwrap();
        size += out.len() as u64 + 1;
    }
    (started.elapsed(), size)
}

const PYTHON: &str = r#"
import json, sys, time
lines = open(sys.argv[1], "rb").read().splitlines()
started = time.perf_counter()
size = 0
for line in lines:
    obj = json.loads(line)
    if isinstance(obj.get("name"), str):
        obj["name"] = obj["name"].upper()
    obj["seen"] = True
    size += len(json.dumps(obj, separators=(",", ":"))) + 1
print(time.perf_counter() - started, size)
"#;

/// CPython on the same lines, timed inside the process (start-up and reading excluded).
fn native_python(input: &Path) -> (Duration, u64) {
    let mut script = tempfile::NamedTempFile::new().unwrap();
    script.write_all(PYTHON.as_bytes()).unwrap();
    let out = Command::new("python3")
        .arg(script.path())
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut words = text.split_whitespace();
    let secs: f64 = words.next().unwrap().parse().unwrap();
    let size: u64 = words.next().unwrap().parse().unwrap();
    (Duration::from_secs_f64(secs), size)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
