//! `weir dev`: the author's loop in a project made by `weir new`. Build with the project's
//! `build.sh`, run its `pipeline.toml` from the start, show the records and dead letters
//! as each batch becomes durable, and do it again when a source file changes. Ctrl-C stops
//! the run in flight (its batches finish) and the loop.

use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use weir_pipeline::{PipelineFile, RunOptions, Shutdown, Tap};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{DeadLetter, Records, Runtime};

pub struct Dev {
    pub dir: PathBuf,
    /// How often to look for changed sources.
    pub poll: Duration,
    /// Records shown per batch (the rest are counted).
    pub show: usize,
}

/// What is not the author's source: build output, installed packages, lock files the
/// builds write, what runs write.
const NOT_SOURCES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "target",
    "node_modules",
    "out",
    "test-out",
    "dead-letters",
    ".weir",
    "__pycache__",
    ".git",
];

/// A fingerprint of the project's sources: how many, their total size, the latest change.
fn sources(dir: &Path) -> (usize, u64, Option<SystemTime>) {
    let mut seen = (0, 0, None);
    fn walk(dir: &Path, seen: &mut (usize, u64, Option<SystemTime>)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if NOT_SOURCES.contains(&name.as_ref()) || name.ends_with(".wasm") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&entry.path(), seen);
            } else {
                seen.0 += 1;
                seen.1 += meta.len();
                seen.2 = seen.2.max(meta.modified().ok());
            }
        }
    }
    walk(dir, &mut seen);
    seen
}

pub fn run(dev: Dev, runtime: Arc<Runtime>, policy: &ClientPolicy, quit: Shutdown) -> Result<()> {
    let dir = dev
        .dir
        .canonicalize()
        .with_context(|| format!("{} not found", dev.dir.display()))?;
    ensure!(
        dir.join("build.sh").is_file() && dir.join("pipeline.toml").is_file(),
        "{} has no build.sh and pipeline.toml: run weir dev in a project made by `weir new`",
        dir.display()
    );
    let tasks = weir_runtime::task_runtime().context("cannot start the runtime")?;
    let tap: Arc<dyn Tap> = Arc::new(Printer { show: dev.show });
    for round in 1.. {
        if quit.is_triggered() {
            break;
        }
        let before = sources(&dir);
        println!("weir dev: building {}", dir.display());
        let build = std::process::Command::new(dir.join("build.sh"))
            .current_dir(&dir)
            .output()
            .context("cannot run build.sh")?;
        if !build.status.success() {
            println!(
                "{}{}weir dev: the build failed; waiting for a change (Ctrl-C stops)",
                String::from_utf8_lossy(&build.stdout),
                String::from_utf8_lossy(&build.stderr)
            );
        } else if let Err(e) = run_once(&tasks, &runtime, &dir, policy, round, &tap, &quit, before)
        {
            println!("weir dev: {e:#}");
        }
        // Until a source changes (or Ctrl-C).
        while sources(&dir) == before {
            if quit.wait(dev.poll) {
                break;
            }
        }
    }
    println!("weir dev: stopped");
    Ok(())
}

/// One run of the pipeline file from the start: checkpoints in a scratch directory, and
/// each pipeline named for the round, so that a sink that keeps its checkpoint with its
/// data does not resume the last round's run. A change of the sources stops it.
#[allow(clippy::too_many_arguments)]
fn run_once(
    tasks: &tokio::runtime::Runtime,
    runtime: &Arc<Runtime>,
    dir: &Path,
    policy: &ClientPolicy,
    round: usize,
    tap: &Arc<dyn Tap>,
    quit: &Shutdown,
    before: (usize, u64, Option<SystemTime>),
) -> Result<()> {
    let mut file = PipelineFile::load_with(&dir.join("pipeline.toml"), policy)?;
    let state = tempfile::tempdir().context("cannot make a scratch state directory")?;
    file.state_dir = state.path().to_path_buf();
    for p in &mut file.pipelines {
        p.name = format!("{}-dev{round}", p.name);
    }
    println!(
        "weir dev: round {round}: running {} from the start",
        dir.join("pipeline.toml").display()
    );
    let stop = Shutdown::default();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, done, quit, dir) = (stop.clone(), done.clone(), quit.clone(), dir.to_path_buf());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if quit.wait(Duration::from_millis(200)) || sources(&dir) != before {
                    stop.trigger();
                    return;
                }
            }
        })
    };
    let options = RunOptions {
        once: true,
        tap: Some(tap.clone()),
        ..RunOptions::default()
    };
    let summaries = tasks.block_on(weir_pipeline::run(runtime, &file, &options, &stop));
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    crate::output::summaries(&summaries?, crate::Output::Text)
}

/// Prints each durable batch's first records and every dead letter.
#[derive(Debug)]
struct Printer {
    show: usize,
}

impl Tap for Printer {
    fn delivered(&self, pipeline: &str, records: &Records, dead: &[(&str, &[DeadLetter])]) {
        let mut out = String::new();
        for r in records.iter().take(self.show) {
            out += &format!("{pipeline} ← {}\n", text(r.value()));
        }
        if records.len() > self.show {
            out += &format!("{pipeline} ← … and {} more\n", records.len() - self.show);
        }
        for (plugin, letters) in dead {
            for d in letters.iter() {
                out += &format!(
                    "{pipeline} ✗ dead letter from {plugin}: {} ← {}\n",
                    d.reason,
                    text(d.value.as_deref())
                );
            }
        }
        print!("{out}");
    }
}

fn text(value: Option<&[u8]>) -> String {
    match value {
        None => "(no value)".into(),
        Some(v) => {
            let s = String::from_utf8_lossy(v);
            match s.char_indices().nth(200) {
                Some((at, _)) => format!("{}…", &s[..at]),
                None => s.into_owned(),
            }
        }
    }
}
