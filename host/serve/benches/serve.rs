//! `cargo bench -p weir-serve`: what hosting costs. Prints tables; asserts nothing timed.
//!
//! 1. Warm instantiation with the pooling allocator (in process), per language.
//! 2. Hot swap latency: push a new version → first record from it, through a real
//!    `weir serve` process and its API.
//! 3. Memory per idle pipeline, and how many idle pipelines one process holds in 1 GiB
//!    of RSS (idle: a stream source with nothing to read, polled every second).
//!
//! Needs the built binary and plugins (scripts/build.sh); `WEIR_BIN` and `WEIR_PLUGINS`
//! override where they are.

use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_runtime::{Labels, Runtime, RuntimeConfig, Sandbox};

const ADMIN: &str = "bench-admin-token-0123456789";
const GIB: u64 = 1 << 30;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugins = std::env::var("WEIR_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("dist/plugins"));
    let weir = std::env::var("WEIR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/weir/target/release/weir")
        });
    assert!(
        weir.exists() && plugins.join("counter_stream.wasm").exists(),
        "build first: scripts/build.sh ({} / {})",
        weir.display(),
        plugins.display()
    );
    instantiation(&plugins);
    let scratch = tempfile::tempdir().unwrap();
    hot_swap(&weir, &plugins, scratch.path());
    idle_pipelines(&weir, &plugins, scratch.path());
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
        for _ in 0..n {
            let started = Instant::now();
            let instance = runtime
                .instantiate(&plugin, &Sandbox::default(), labels())
                .unwrap();
            times.push(started.elapsed());
            drop(instance);
        }
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

struct Server {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(weir: &Path, data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(weir)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env("WEIR_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("weir serve did not start")
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        Server { child, url, agent }
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Value {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"));
        let (request, bytes) = match body {
            Some((kind, bytes)) => (request.header("Content-Type", kind), bytes),
            None => (request, Vec::new()),
        };
        let mut response = self.agent.run(request.body(bytes).unwrap()).unwrap();
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn tenant(&self, dir: &Path) -> String {
        let body = json!({
            "name": "bench",
            "grants": { "dirs": [{ "path": dir, "write": true }] },
            "quotas": { "max_pipelines": 100000, "memory": "64 MiB" },
        });
        let reply = self.call(
            ADMIN,
            "POST",
            "/v1/tenants",
            Some(("application/json", body.to_string().into_bytes())),
        );
        reply["token"].as_str().unwrap().to_string()
    }

    fn push(&self, token: &str, name: &str, wasm: Vec<u8>) -> Value {
        self.call(
            token,
            "POST",
            &format!("/v1/plugins/{name}"),
            Some(("application/wasm", wasm)),
        )
    }

    fn create(&self, token: &str, toml: String) {
        self.call(
            token,
            "POST",
            "/v1/pipelines",
            Some(("application/toml", toml.into_bytes())),
        );
    }

    fn status(&self, token: &str, name: &str) -> Value {
        self.call(token, "GET", &format!("/v1/pipelines/{name}"), None)
    }

    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same component with a custom section appended: a new version that behaves the same.
fn tagged(mut wasm: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"weir-bench-version";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    wasm.push(0);
    wasm.push(payload.len() as u8);
    wasm.extend_from_slice(&payload);
    wasm
}

fn counter_pipeline(name: &str, out: &Path, total: u64, sleep_ms: u64, poll_wait: &str) -> String {
    format!(
        r#"
name = "{name}"
batch_size = 100
[source]
plugin = "counter"
config = {{ total = {total}, sleep_ms = {sleep_ms} }}
poll_wait = "{poll_wait}"
[sink]
plugin = "file-sink"
config = {{ dir = "/out", file = "{name}.jsonl" }}
grants.dirs = [{{ host = "{}", guest = "/out", write = true }}]
"#,
        out.display()
    )
}

fn hot_swap(weir: &Path, plugins: &Path, scratch: &Path) {
    let out = scratch.join("swap");
    std::fs::create_dir_all(&out).unwrap();
    let server = Server::start(weir, &scratch.join("swap-data"), &[]);
    let token = server.tenant(scratch);
    let counter = std::fs::read(plugins.join("counter_stream.wasm")).unwrap();
    server.push(&token, "counter", counter.clone());
    server.push(
        &token,
        "file-sink",
        std::fs::read(plugins.join("file_sink.wasm")).unwrap(),
    );
    server.create(
        &token,
        counter_pipeline("swap", &out, u64::MAX / 2, 1, "100ms"),
    );
    while server.status(&token, "swap")["records_out"].as_u64() < Some(1000) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rounds = 10;
    let (mut push, mut swap, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        let pushed = server.push(
            &token,
            "counter",
            tagged(counter.clone(), &round.to_string()),
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

fn idle_pipelines(weir: &Path, plugins: &Path, scratch: &Path) {
    let out = scratch.join("idle");
    std::fs::create_dir_all(&out).unwrap();
    let server = Server::start(
        weir,
        &scratch.join("idle-data"),
        &["--max-instances", "6000"],
    );
    let token = server.tenant(scratch);
    server.push(
        &token,
        "counter",
        std::fs::read(plugins.join("counter_stream.wasm")).unwrap(),
    );
    server.push(
        &token,
        "file-sink",
        std::fs::read(plugins.join("file_sink.wasm")).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let base = server.rss();
    println!(
        "\n## Idle pipelines (counter-stream with nothing to read → file-sink, polled every 1 s)\n"
    );
    println!("| pipelines | RSS | per pipeline above the empty server |");
    println!("|---:|---:|---:|");
    println!("| 0 | {:.1} MiB | |", base as f64 / (1 << 20) as f64);
    let mut n = 0;
    let step = 100;
    let mut last_under = (0, base);
    loop {
        for _ in 0..step {
            server.create(
                &token,
                counter_pipeline(&format!("idle{n}"), &out, 0, 0, "1s"),
            );
            n += 1;
        }
        // Until every pipeline has opened both sides and gone idle.
        loop {
            let last = server.status(&token, &format!("idle{}", n - 1));
            if last["state"] == "running" && last["sink_memory"].as_u64() > Some(0) {
                std::thread::sleep(Duration::from_millis(1500));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rss = server.rss();
        println!(
            "| {n} | {:.1} MiB | {:.0} KiB |",
            rss as f64 / (1 << 20) as f64,
            (rss - base) as f64 / n as f64 / 1024.0
        );
        if rss > GIB {
            break;
        }
        last_under = (n, rss);
        if n >= 2900 {
            println!("\n(stopped at {n} pipelines: the instance pool holds 6000 instances)");
            break;
        }
    }
    let (fit, rss) = last_under;
    let per = (rss - base) as f64 / fit.max(1) as f64;
    println!(
        "\nLargest measured count under 1 GiB RSS: {fit} idle pipelines ({:.0} MiB). At {:.0} KiB each above a {:.0} MiB empty server, 1 GiB holds about {:.0}.",
        rss as f64 / (1 << 20) as f64,
        per / 1024.0,
        base as f64 / (1 << 20) as f64,
        (GIB - base) as f64 / per
    );
}
