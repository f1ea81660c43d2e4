//! A scratch directory with a pipeline file, and ways to run `weir` on it.

use crate::fixtures::process::{STUCK_AFTER, exit_within};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn plugin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins with scripts/build.sh (scripts/test.sh does)",
        path.display()
    );
    path.canonicalize().unwrap()
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn append(&self, rel: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// Writes `pipeline.toml` from the given `[[pipeline]]` tables.
    pub fn pipelines(&self, tables: &[String]) -> PathBuf {
        let path = self.path("pipeline.toml");
        std::fs::write(&path, tables.join("\n")).unwrap();
        path
    }

    pub fn weir(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// `weir ARGS` (one JSON object per line on stdout), parsed; it must exit with success
    /// or failure as `succeeds` says, else the test fails with weir's stderr.
    pub fn weir_json(&self, args: &[&str], succeeds: bool) -> Vec<Value> {
        let out = self.weir(args).output().unwrap();
        assert_eq!(
            out.status.success(),
            succeeds,
            "weir {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `weir run pipeline.toml --once --output json`, parsed.
    pub fn run_once(&self) -> Run {
        let output = self
            .weir(&["run", "pipeline.toml", "--once", "--output", "json"])
            .output()
            .unwrap();
        Run::from(output)
    }

    /// `weir run` in the background. Its stderr goes to a file (a pipe nobody reads could
    /// fill and stall it); it is killed if the test ends without stopping it.
    pub fn spawn_run(&self, extra: &[&str]) -> Running {
        self.spawn_run_with(extra, &[])
    }

    /// `spawn_run` with environment variables set for weir (e.g. `RUST_LOG`).
    pub fn spawn_run_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let mut args = vec!["run", "pipeline.toml", "--output", "json"];
        args.extend_from_slice(extra);
        let stderr = self.path(&format!(
            "weir-{}.stderr",
            self.dir.path().read_dir().unwrap().count()
        ));
        let child = self
            .weir(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        Running {
            child: Some(child),
            stderr,
        }
    }
}

pub struct Running {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Running {
    /// Panics with weir's log if it has exited: a wait for output would only time out.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "weir exited early ({status}): {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }

    /// What it has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the sink's instance is released (`release_when_idle`, logged with `-v`)
    /// and no new one was made since.
    pub fn wait_for_sink_to_rest(&mut self) {
        let started = std::time::Instant::now();
        loop {
            let log = self.stderr();
            let released = log.rfind("its instance is released");
            if released.is_some() && released > log.rfind("the sink has a new instance") {
                return;
            }
            self.assert_running();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the sink never rested: {log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the process to exit by itself, panicking (and killing it) after `limit`.
    pub fn wait_at_most(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        exit_within(self.child.as_mut().unwrap(), limit, &self.stderr)
    }

    /// Waits until `done` (which may read weir's log), polling; panics with the log if weir
    /// exits first, or if `what` did not happen within `limit`.
    pub fn wait_until(
        &mut self,
        what: &str,
        limit: std::time::Duration,
        mut done: impl FnMut(&Running) -> bool,
    ) {
        let started = std::time::Instant::now();
        while !done(self) {
            self.assert_running();
            assert!(
                started.elapsed() < limit,
                "{what}, within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGKILL: a crash.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The output of a run that already ended by itself.
pub fn terminate_exited(running: Running) -> Run {
    output_of(running)
}

/// SIGTERM, then the run's output: what an operator's Ctrl-C or a service manager does.
pub fn terminate(running: Running) -> Run {
    let pid = running.pid().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid} failed");
    output_of(running)
}

/// Waits for the run to exit (at most `STUCK_AFTER`) and collects its output.
fn output_of(mut running: Running) -> Run {
    let mut child = running.child.take().unwrap();
    // Read while waiting: a full pipe would otherwise stop the process from exiting.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).map(|_| bytes)
    });
    let status = exit_within(&mut child, STUCK_AFTER, &running.stderr);
    let stdout = reader.join().unwrap().unwrap();
    let mut run = Run::from(Output {
        status,
        stdout,
        stderr: Vec::new(),
    });
    run.stderr = std::fs::read_to_string(&running.stderr).unwrap_or_default();
    run
}

pub struct Run {
    pub ok: bool,
    pub summaries: Vec<Value>,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        let stdout = String::from_utf8_lossy(&output.stdout);
        Run {
            ok: output.status.success(),
            summaries: stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The error of `pipeline`, which must have failed.
    pub fn error(&self, pipeline: &str) -> String {
        let summary = self.summary(pipeline);
        assert_eq!(summary["status"], "failed", "{summary}");
        summary["error"].as_str().unwrap().to_string()
    }

    pub fn summary(&self, pipeline: &str) -> &Value {
        self.summaries
            .iter()
            .find(|s| s["pipeline"] == pipeline)
            .unwrap_or_else(|| panic!("no summary for {pipeline}; stderr: {}", self.stderr))
    }
}

/// The `[pipeline.source]` table of a file-source reading `data/`.
pub fn file_source() -> String {
    format!(
        r#"[pipeline.source]
plugin = "{}"
config = {{ dir = "/data" }}
grants.dirs = [{{ host = "data", guest = "/data" }}]
"#,
        plugin("file_source").display()
    )
}

/// A file-source → file-sink pipeline reading `data/` and writing `out/<file>`.
pub fn file_pipeline(name: &str, batch_size: u32, out_file: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
batch_size = {batch_size}
{source}{sink}"#,
        source = file_source(),
        sink = file_sink(out_file, ""),
    )
}

/// The `[pipeline.sink]` table of a file-sink writing `out/<file>`; `extra` adds to its
/// config (e.g. `, format = "record"`).
pub fn file_sink(file: &str, extra: &str) -> String {
    format!(
        r#"[pipeline.sink]
plugin = "{}"
config = {{ dir = "/out", file = "{file}"{extra} }}
grants.dirs = [{{ host = "out", guest = "/out", write = true }}]
"#,
        plugin("file_sink").display()
    )
}

/// A `hostile` batch source (config `{ mode = "<mode>"<config> }`, then its `grants`) →
/// file-sink writing `out/<name>.jsonl`, then `tail` (more tables, e.g. limits).
pub fn hostile_pipeline(name: &str, mode: &str, config: &str, grants: &str, tail: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ mode = "{mode}"{config} }}
{grants}
{sink}{tail}"#,
        source = plugin("hostile").display(),
        sink = file_sink(&format!("{name}.jsonl"), ""),
    )
}

/// Panics unless `text` holds every one of `expected`.
pub fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "{e:?} not in {text}");
    }
}

/// JSON Lines of `{"n": i}` for i in `range`.
/// Waits until the output file holds at least `n` records (and weir is still running).
pub fn wait_for_lines(s: &Scratch, n: usize, weir: &mut Running) {
    let started = std::time::Instant::now();
    while numbers_in(&s.read("out/out.jsonl")).len() < n {
        weir.assert_running();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "only {} of {n} records arrived",
            numbers_in(&s.read("out/out.jsonl")).len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn numbered(range: std::ops::Range<u64>) -> String {
    range.map(|i| format!("{{\"n\":{i}}}\n")).collect()
}

/// The `n` of every output line, checking each line is whole JSON.
pub fn numbers_in(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            v["n"].as_u64().unwrap()
        })
        .collect()
}
