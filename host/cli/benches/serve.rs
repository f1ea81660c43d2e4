//! `cargo bench -p weir-cli --bench serve`: what hosting costs. Prints tables; asserts nothing timed.
//!
//! 1. Warm instantiation with the pooling allocator (in process), per language.
//! 2. Hot swap latency: push a new version → first record from it, through a real
//!    `weir serve` process and its API.
//! 3. Memory and threads per idle pipeline, and how many idle pipelines one process holds
//!    in 1 GiB of RSS (idle: a stream source with nothing to read, polled every second),
//!    up to 10,000.
//!
//! Needs the plugins built (scripts/build.sh); `WEIR_PLUGINS` overrides where they are.

#[allow(dead_code)]
#[path = "../../../tests/e2e/fixtures/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../../../tests/e2e/fixtures/server.rs"]
mod server;

use serde_json::{Value, json};
use server::{Server, counter_pipeline, new_version, read_plugin};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir_runtime::{Labels, Runtime, RuntimeConfig, Sandbox};

const GIB: u64 = 1 << 30;

fn main() {
    let plugins = std::env::var("WEIR_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins"));
    // `WEIR_BENCH_ONLY=idle` (or `instantiation`, `swap`) runs one part.
    let only = std::env::var("WEIR_BENCH_ONLY").ok();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let scratch = tempfile::tempdir().unwrap();
    if runs("instantiation") {
        instantiation(&plugins);
    }
    if runs("swap") {
        hot_swap(scratch.path());
    }
    if runs("idle") {
        idle_pipelines(scratch.path());
    }
}

fn instantiation(plugins: &Path) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    println!("\n## Warm instantiation (pooling allocator, compiled component cached)\n");
    println!("| plugin | first | median | p99 | first / median |");
    println!("|---|---:|---:|---:|---:|");
    for (label, file) in [
        ("Rust file-sink", "file_sink"),
        ("Rust counter-stream", "counter_stream"),
        ("Python py-upper-sink", "py_upper_sink"),
        ("JavaScript js-transform", "js_transform"),
    ] {
        let plugin = runtime.load(&plugins.join(format!("{file}.wasm"))).unwrap();
        let labels = || Labels {
            pipeline: "bench".into(),
            plugin: file.into(),
            role: "sink",
        };
        let n = if label.starts_with("Rust") { 2000 } else { 200 };
        let mut times = Vec::with_capacity(n);
        weir_runtime::block_on(async {
            for _ in 0..n {
                let started = Instant::now();
                let instance = runtime
                    .instantiate(&plugin, &Sandbox::default(), labels())
                    .await
                    .unwrap();
                times.push(started.elapsed());
                drop(instance);
            }
        });
        let first = times[0];
        times.sort();
        let median = times[n / 2];
        let p99 = times[n * 99 / 100];
        println!(
            "| {label} | {} | {} | {} | {:.1}× |",
            us(first),
            us(median),
            us(p99),
            first.as_secs_f64() / median.as_secs_f64()
        );
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A tenant that may write below `dir`, with room for many pipelines.
fn bench_tenant(server: &Server, dir: &Path) -> String {
    server.tenant(
        "bench",
        json!({
            "grants": { "dirs": [{ "host": dir, "write": true }] },
            "quotas": { "max_pipelines": 100000, "memory": "64 MiB" },
        }),
    )
}

fn push_ok(server: &Server, token: &str, name: &str, wasm: Vec<u8>) -> Value {
    let (status, reply) = server.push(token, name, wasm);
    assert!(status == 201 || status == 200, "{status}: {reply}");
    reply
}

fn hot_swap(scratch: &Path) {
    let out = scratch.join("swap");
    std::fs::create_dir_all(&out).unwrap();
    let server = Server::start(&scratch.join("swap-data"), &[]);
    let token = bench_tenant(&server, &out);
    let counter = read_plugin("counter_stream");
    push_ok(&server, &token, "counter", counter.clone());
    push_ok(&server, &token, "file-sink", read_plugin("file_sink"));
    server.create_ok(
        &token,
        &counter_pipeline("swap", &out, u64::MAX / 2, 1, "100ms"),
    );
    while server.status(&token, "swap")["records_out"].as_u64() < Some(1000) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rounds = 10;
    // Versions no earlier run pushed: each push compiles, as a real new version would.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (mut push, mut swap, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        let pushed = push_ok(
            &server,
            &token,
            "counter",
            new_version(counter.clone(), &format!("{run}-{round}")),
        );
        let pushed_at = Instant::now();
        let version = pushed["version"].clone();
        loop {
            let st = server.status(&token, "swap");
            if st["source"]["version"] == version
                && st["records_out"].as_u64() > st["records_out_before_run"].as_u64()
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no swap: {st}");
            std::thread::sleep(Duration::from_millis(1));
        }
        let done = Instant::now();
        push.push(pushed_at - started);
        swap.push(done - pushed_at);
        total.push(done - started);
    }
    let st = server.status(&token, "swap");
    let written = std::fs::read_to_string(out.join("swap.jsonl")).unwrap();
    let lines = written.lines().count() as u64;
    assert!(
        lines >= st["records_out"].as_u64().unwrap(),
        "every committed record is in the file"
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let max = |v: &Vec<Duration>| *v.iter().max().unwrap();
    println!("\n## Hot swap: push a new version → first record from it ({rounds} swaps)\n");
    println!("| | median | max |");
    println!("|---|---:|---:|");
    println!(
        "| push call (validate, compile, store) | {} | {} |",
        ms(median(&mut push)),
        ms(max(&push))
    );
    println!(
        "| push returned → first record from the new version | {} | {} |",
        ms(median(&mut swap)),
        ms(max(&swap))
    );
    println!(
        "| total | {} | {} |",
        ms(median(&mut total)),
        ms(max(&total))
    );
    println!(
        "\nThe source emits 100 records per 1 ms poll; the pipeline wrote {lines} records across the swaps, {} failures.",
        st["failures"]
    );
}

fn idle_pipelines(scratch: &Path) {
    let out = scratch.join("idle");
    std::fs::create_dir_all(&out).unwrap();
    // Two instances per pipeline, each reserving address space for its linear memory:
    // 256 MiB (the default per-instance limit) instead of 4 GiB, or 20,000 instances would
    // not fit in the 128 TiB a process can address.
    let server = Server::start(
        &scratch.join("idle-data"),
        &["--max-instances", "20100", "--max-memory", "256MiB"],
    );
    let token = bench_tenant(&server, &out);
    push_ok(&server, &token, "counter", read_plugin("counter_stream"));
    push_ok(&server, &token, "file-sink", read_plugin("file_sink"));
    std::thread::sleep(Duration::from_millis(500));
    let base = Memory::of(server.pid());
    // The sinks rest after a second without a batch, as they do after a minute by default;
    // `WEIR_BENCH_IDLE_RELEASE=never` keeps them, as before sinks rested.
    let release = std::env::var("WEIR_BENCH_IDLE_RELEASE").unwrap_or_else(|_| "1s".into());
    let rests = release != "never";
    println!(
        "\n## Idle pipelines (counter-stream with nothing to read → file-sink, polled every \
         1 s; the sink's `release_when_idle = \"{release}\"`)\n"
    );
    println!(
        "| pipelines | RSS | per pipeline (RSS) | PSS | per pipeline (PSS) | threads | memory maps |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 0 | {} | | {} | | {} | {} |",
        mib(base.rss),
        mib(base.pss),
        base.threads,
        base.maps
    );
    // `WEIR_BENCH_IDLE=N` stops at N pipelines (a quick look); 10,000 is the goal.
    let goal: usize = std::env::var("WEIR_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut n = 0;
    let step = 500.min(goal);
    let mut last_under = (0, base);
    loop {
        let mut refused = None;
        for _ in 0..step {
            let (status, reply) = server.create(
                &token,
                &counter_pipeline(&format!("idle{n}"), &out, 0, 0, "1s").replace(
                    "[sink]",
                    &format!("[sink]\nrelease_when_idle = \"{release}\""),
                ),
            );
            if status != 201 {
                refused = Some(reply["error"].to_string());
                break;
            }
            n += 1;
        }
        if let Some(error) = refused {
            println!("\n(pipeline {} refused, before 1 GiB: {error})", n + 1);
            break;
        }
        // Until every pipeline has opened both sides and gone idle (and its sink rested);
        // one that cannot start says what bounds the count.
        let waited = Instant::now();
        let stuck = loop {
            let last = server.status(&token, &format!("idle{}", n - 1));
            let idle = match rests {
                true => last["sink_rests"].as_u64() > Some(0),
                false => last["sink_memory"].as_u64() > Some(0),
            };
            if last["state"] == "running" && idle {
                std::thread::sleep(Duration::from_millis(1500));
                break None;
            }
            if waited.elapsed() > Duration::from_secs(60) {
                break Some(last);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(last) = stuck {
            let maps = Memory::of(server.pid()).maps;
            println!(
                "\n(pipeline {n} did not start: state {}, {}; the process holds {maps} memory \
                 maps, vm.max_map_count is {})",
                last["state"],
                last["last_error"],
                std::fs::read_to_string("/proc/sys/vm/max_map_count")
                    .unwrap_or_default()
                    .trim()
            );
            break;
        }
        let now = Memory::of(server.pid());
        let each =
            |now: u64, base: u64| format!("{:.0} KiB", (now - base) as f64 / n as f64 / 1024.0);
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} |",
            mib(now.rss),
            each(now.rss, base.rss),
            mib(now.pss),
            each(now.pss, base.pss),
            now.threads,
            now.maps
        );
        if now.rss > GIB {
            break;
        }
        last_under = (n, now);
        if n >= goal {
            println!("\n(stopped at {n} pipelines: the goal)");
            break;
        }
    }
    println!("\nWhere the RSS is at {n} pipelines (by mapping, largest first):\n");
    println!("| mapping | perms | maps | RSS | per pipeline |");
    println!("|---|---|---:|---:|---:|");
    for (name, perms, maps, rss) in rss_by_mapping(server.pid()).into_iter().take(16) {
        println!(
            "| {name} | {perms} | {maps} | {} | {:.1} KiB |",
            mib(rss),
            rss as f64 / n.max(1) as f64 / 1024.0
        );
    }
    let (fit, at) = last_under;
    let per = |now: u64, base: u64| (now - base) as f64 / fit.max(1) as f64;
    println!(
        "\nLargest measured count under 1 GiB RSS: {fit} idle pipelines ({}). Extrapolated from \
         the last step: 1 GiB of RSS holds about {:.0}; 1 GiB of PSS (pages shared between \
         instances counted once, as a cgroup does) about {:.0}.",
        mib(at.rss),
        (GIB - base.rss) as f64 / per(at.rss, base.rss),
        (GIB - base.pss) as f64 / per(at.pss, base.pss),
    );
}

/// RSS summed per (mapping name, permissions) from `/proc/PID/smaps`: anonymous memory
/// (linear memories, host heap), wasmtime's memfd images, the binary.
fn rss_by_mapping(pid: u32) -> Vec<(String, String, usize, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut sums: std::collections::BTreeMap<(String, String), (usize, u64)> = Default::default();
    let mut current = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            let name = fields.get(5..).map(|r| r.join(" ")).unwrap_or_default();
            let name = if name.is_empty() {
                let (a, b) = fields[0].split_once('-').unwrap();
                let size =
                    u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap();
                format!("[anon {} KiB]", size / 1024)
            } else {
                name
            };
            current = Some((name, fields[1].to_string()));
            let entry = sums.entry(current.clone().unwrap()).or_default();
            entry.0 += 1;
        } else if let (Some(key), Some(kib)) = (&current, line.strip_prefix("Rss:")) {
            let kib: u64 = kib
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .unwrap_or(0);
            sums.get_mut(key).unwrap().1 += kib * 1024;
        }
    }
    let mut rows: Vec<_> = sums
        .into_iter()
        .map(|((n, p), (m, r))| (n, p, m, r))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.3));
    rows
}

#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    pss: u64,
    threads: u64,
    /// Mappings: bounded by `vm.max_map_count` (65,530 by default).
    maps: usize,
}

impl Memory {
    /// RSS counts a shared page once per mapping; PSS divides it among its mappers.
    fn of(pid: u32) -> Memory {
        let field = |file: &str, field: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .unwrap()
        };
        Memory {
            rss: field("status", "VmRSS:") * 1024,
            pss: field("smaps_rollup", "Pss:") * 1024,
            threads: field("status", "Threads:"),
            maps: std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .unwrap()
                .lines()
                .count(),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
