//! What the benches that time other programs share: one run of a process, measured.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the command to its end; its wall time and peak resident memory (kB, sampled
/// every 10 ms from /proc, which is as often as a short run allows).
pub fn measure(mut cmd: Command) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = started.elapsed();
            if !status.success() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("{:?} failed: {err}", cmd.get_program());
            }
            return (took, peak);
        }
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn count_lines(path: &Path) -> u64 {
    use std::io::BufRead;
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    f.split(b'\n').count() as u64
}

/// The `weir` binary (`$WEIR_BIN`, or the build's) and the built plugins, with `plugin`
/// among them.
pub fn weir_and_plugins(plugin: &str) -> (PathBuf, PathBuf) {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    let weir = std::env::var("WEIR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/weir/target/release/weir")
        });
    assert!(
        weir.exists() && plugins.join(plugin).exists(),
        "run scripts/build.sh first"
    );
    (weir, plugins)
}

/// `weir check FILE` in `dir`, which must pass: it compiles the plugins into the cache,
/// so a timed run measures the work, not the compiling.
pub fn weir_check(weir: &Path, dir: &Path, file: &str) {
    let check = Command::new(weir)
        .args(["check", file])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
