//! `weir run` shows live progress on a terminal, and nothing of it anywhere else.

use crate::support::*;
use std::process::Command;

/// A pipeline that takes ~0.6 s: long enough for a few redraws.
fn slow(s: &Scratch) {
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "slow"
batch_size = 10
[pipeline.source]
plugin = "{source}"
config = {{ total = 60, sleep_ms = 100 }}
{sink}"#,
        source = plugin("counter_stream").display(),
        sink = file_sink("slow.jsonl", ""),
    )]);
}

/// `weir ARGS` with a terminal for its output (util-linux's `script` gives it a pty):
/// everything it wrote there.
fn on_a_terminal(s: &Scratch, args: &str) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_weir"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(s.path(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts over: the checkpoint (and file-sink's own copy of it, beside the data) gone.
fn forget(s: &Scratch) {
    std::fs::remove_dir_all(s.path(".weir")).unwrap();
    std::fs::remove_dir_all(s.path("out")).unwrap();
}

#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    let s = Scratch::new();
    slow(&s);
    let terminal = on_a_terminal(&s, "run pipeline.toml --once");
    assert!(
        terminal.contains("records read, ") && terminal.contains(" records/s · "),
        "no progress line on the terminal: {terminal}"
    );
    assert!(
        terminal.contains("slow: 60 records read, 60 written"),
        "{terminal}"
    );

    forget(&s);
    let json = on_a_terminal(&s, "run pipeline.toml --once --output json");
    assert!(
        !json.contains("records/s"),
        "progress with --output json: {json}"
    );
    assert!(json.contains("\"records_written\":60"), "{json}");

    forget(&s);
    let piped = s
        .weir(&["run", "pipeline.toml", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains("records/s"),
        "progress into a pipe: {stderr}"
    );
    assert!(String::from_utf8_lossy(&piped.stdout).contains("slow: 60 records read"));
}
