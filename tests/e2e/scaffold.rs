//! `weir new`: one project per language, built with its own one command, passing its own
//! generated test, then run in the host with its own pipeline file.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs a generated script, failing the test with its output if it fails.
fn script(dir: &Path, name: &str) {
    // Scaffolded Rust projects build in a target dir of their own: sharing the workspace's
    // would let their builds of `weir-guest` (same path, other profile) evict ours.
    let target = std::env::var("WEIR_SCAFFOLD_TARGET").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir/scaffold-target",
            std::env::var("HOME").unwrap()
        )
    });
    let output = Command::new(dir.join(name))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scaffold(s: &Scratch, name: &str, lang: &str, kind: &str) -> std::path::PathBuf {
    let out = s
        .weir(&["new", name, "--lang", lang, "--kind", kind])
        .env("WEIR_PLUGINS", plugin("file_sink").parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = s.path(name);
    script(&dir, "test.sh");
    script(&dir, "build.sh");
    assert!(dir.join(format!("{name}.wasm")).is_file());
    dir
}

/// `weir run pipeline.toml --once --output json` in the project, the one summary.
fn run_in(s: &Scratch, dir: &Path) -> Value {
    let out = s
        .weir(&["run", "pipeline.toml", "--once", "--output", "json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert!(run.ok, "{}", run.stderr);
    run.summaries[0].clone()
}

#[test]
fn a_rust_batch_source_scaffold_builds_tests_and_runs() {
    let s = Scratch::new();
    let dir = scaffold(&s, "numbers", "rust", "batch-source");
    assert_eq!(run_in(&s, &dir)["records_written"], 1000);
    assert_eq!(run_in(&s, &dir)["records_written"], 0, "the cursor held");
    let out = std::fs::read_to_string(dir.join("out/numbers.jsonl")).unwrap();
    assert_eq!(numbers_in(&out), (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_python_sink_scaffold_builds_tests_and_runs() {
    let s = Scratch::new();
    let dir = scaffold(&s, "lines", "python", "sink");
    let summary = run_in(&s, &dir);
    assert_eq!(summary["records_written"], 2);
    assert_eq!(summary["dead_letters"], 1);
    let out = std::fs::read_to_string(dir.join("out/out.jsonl")).unwrap();
    assert_eq!(
        out,
        "{\"id\":1,\"name\":\"ada\"}\n{\"id\":2,\"name\":\"grace\"}\n"
    );
    let dead = std::fs::read_to_string(dir.join("dead-letters/dead-letters.jsonl")).unwrap();
    assert!(dead.contains("not a JSON object"), "{dead}");
}

#[test]
fn a_js_stream_source_scaffold_builds_tests_and_runs() {
    let s = Scratch::new();
    let dir = scaffold(&s, "ticks", "js", "stream-source");
    assert_eq!(run_in(&s, &dir)["records_written"], 100);
    assert_eq!(
        run_in(&s, &dir)["records_written"],
        0,
        "the checkpoint held"
    );
    let out = std::fs::read_to_string(dir.join("out/ticks.jsonl")).unwrap();
    assert_eq!(numbers_in(&out), (0..100).collect::<Vec<_>>());
}

/// A transform in each language: its own test passes natively, and in the generated
/// pipeline it runs between the file plugins.
#[test]
fn a_transform_scaffold_in_each_language_builds_tests_and_runs() {
    for lang in ["rust", "python", "js"] {
        let s = Scratch::new();
        let dir = scaffold(&s, "upper", lang, "transform");
        let summary = run_in(&s, &dir);
        assert_eq!(summary["records_read"], 3, "{lang}: {summary}");
        assert_eq!(summary["records_written"], 2, "{lang}: {summary}");
        assert_eq!(summary["dead_letters"], 1, "{lang}: {summary}");
        let out = std::fs::read_to_string(dir.join("out/out.jsonl")).unwrap();
        assert_eq!(
            out, "{\"id\":1,\"name\":\"ADA\"}\n{\"id\":2,\"name\":\"GRACE\"}\n",
            "{lang}"
        );
        let dead = std::fs::read_to_string(dir.join("dead-letters/dead-letters.jsonl")).unwrap();
        assert!(dead.contains("not a JSON object"), "{lang}: {dead}");
        assert_eq!(
            run_in(&s, &dir)["records_written"],
            0,
            "{lang}: the checkpoint held"
        );
    }
}
