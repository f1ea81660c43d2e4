//! A `weir serve` process for a test (or a bench), and its management API.

use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    stderr: PathBuf,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `weir serve` on a port the kernel picks, with its data in `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let stderr = data_dir.with_extension(format!("{n}.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("WEIR_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info,cranelift_codegen=warn,wasmtime=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| {
                panic!(
                    "weir serve did not start: {line}{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        Server {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            stderr,
            agent,
        }
    }

    #[allow(dead_code)] // the bench reads its memory
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Any request; `token` None sends none. Returns the status and the JSON (or text) body.
    pub fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let (request, bytes) = match body {
            Some((kind, bytes)) => (request.header("Content-Type", kind), bytes),
            None => (request, Vec::new()),
        };
        let mut response = self.agent.run(request.body(bytes).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Creates a tenant and returns its token.
    pub fn tenant(&self, name: &str, settings: Value) -> String {
        let mut body = settings;
        body["name"] = name.into();
        let (status, reply) = self.call(
            Some(ADMIN),
            "POST",
            "/v1/tenants",
            Some(("application/json", body.to_string().into_bytes())),
        );
        assert_eq!(status, 201, "{reply}");
        reply["token"].as_str().unwrap().to_string()
    }

    pub fn push(&self, token: &str, name: &str, wasm: Vec<u8>) -> (u16, Value) {
        self.call(
            Some(token),
            "POST",
            &format!("/v1/plugins/{name}"),
            Some(("application/wasm", wasm)),
        )
    }

    /// Pushes a built plugin under `name`; it must be accepted.
    pub fn push_plugin(&self, token: &str, name: &str, file: &str) -> Value {
        let (status, reply) = self.push(token, name, read_plugin(file));
        assert!(status == 201 || status == 200, "{status}: {reply}");
        reply
    }

    pub fn create(&self, token: &str, toml: &str) -> (u16, Value) {
        self.call(
            Some(token),
            "POST",
            "/v1/pipelines",
            Some(("application/toml", toml.as_bytes().to_vec())),
        )
    }

    pub fn create_ok(&self, token: &str, toml: &str) -> Value {
        let (status, reply) = self.create(token, toml);
        assert_eq!(status, 201, "{reply}");
        reply
    }

    pub fn status(&self, token: &str, pipeline: &str) -> Value {
        let (status, reply) = self.call(
            Some(token),
            "GET",
            &format!("/v1/pipelines/{pipeline}"),
            None,
        );
        assert_eq!(status, 200, "{reply}");
        reply
    }

    pub fn action(&self, token: &str, pipeline: &str, action: &str) -> Value {
        let (status, reply) = self.call(
            Some(token),
            "POST",
            &format!("/v1/pipelines/{pipeline}/{action}"),
            None,
        );
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// Polls the pipeline's status until `done` holds; panics with the status and log after
    /// `within`.
    pub fn wait_for(
        &self,
        token: &str,
        pipeline: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(token, pipeline);
            if done(&status) {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "pipeline {pipeline} never got there: {status:#}\nserver log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn metrics(&self) -> String {
        let (status, text) = self.call(Some(ADMIN), "GET", "/metrics", None);
        assert_eq!(status, 200, "{text}");
        text.as_str().unwrap().to_string()
    }

    /// SIGTERM and wait: what a service manager does.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "weir serve exited with {status}: {}",
            self.log()
        );
        self.log()
    }

    /// SIGKILL: a crash.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn is_up(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
            && self.call(None, "GET", "/healthz", None).0 == 200
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A built plugin's bytes: `dist/plugins/<file>.wasm`, or under `$WEIR_PLUGINS`.
pub fn read_plugin(file: &str) -> Vec<u8> {
    let dir = std::env::var("WEIR_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins"));
    let path = dir.join(format!("{file}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the plugins with scripts/build.sh",
            path.display()
        )
    })
}

/// counter-stream (pushed as plugin `counter`) counting to `total`, sleeping `sleep_ms`
/// per poll, polled with `poll_wait` when idle → file-sink writing `<out>/<name>.jsonl`.
pub fn counter_pipeline(
    name: &str,
    out: &Path,
    total: u64,
    sleep_ms: u64,
    poll_wait: &str,
) -> String {
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

/// The same component with a custom section appended: other bytes, the same behaviour.
/// How a test makes "a new version" of a plugin.
pub fn new_version(mut wasm: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"weir-test-version";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    wasm.push(0); // custom section id
    wasm.push(payload.len() as u8);
    wasm.extend_from_slice(&payload);
    wasm
}

/// A tenant whose pipelines may use `dir` (read and write).
pub fn tenant_with_dir(dir: &Path, quotas: Value) -> Value {
    json!({
        "grants": { "dirs": [{ "path": dir, "write": true }] },
        "quotas": quotas,
    })
}
