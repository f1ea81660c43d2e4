//! `weir new`: one project per language, built with its own one command, passing its own
//! generated test, then run in the host with its own pipeline file.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Scaffolded Rust projects build in a target dir of their own: sharing the workspace's
/// would let their builds of `weir-guest` (same path, other profile) evict ours.
fn scaffold_target() -> String {
    std::env::var("WEIR_SCAFFOLD_TARGET").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir/scaffold-target",
            std::env::var("HOME").unwrap()
        )
    })
}

/// Runs a generated script, failing the test with its output if it fails.
fn script(dir: &Path, name: &str) {
    let output = Command::new(dir.join(name))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .env("WEIR", env!("CARGO_BIN_EXE_weir"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A project linked to this checkout's SDKs (`--sdk`); the shipped binary's own copy is
/// tested below, from outside the tree.
fn scaffold(s: &Scratch, name: &str, lang: &str, kind: &str) -> std::path::PathBuf {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    let out = s
        .weir(&["new", name, "--lang", lang, "--kind", kind])
        .arg("--sdk")
        .arg(&sdk)
        .env("WEIR_PLUGINS", plugin("file_sink").parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = s.path(name);
    // test.sh ends with the conformance suite on the built component (a JS sink's needs its
    // webhook's server, so it only says how).
    let test_sh = std::fs::read_to_string(dir.join("test.sh")).unwrap();
    if (lang, kind) != ("js", "sink") {
        let runs = format!("test {name}.wasm --config test-config.json");
        assert!(test_sh.contains(&runs), "{test_sh}");
    }
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
    assert_eq!(
        run_in(&s, &dir)["records_written"],
        0,
        "the checkpoint held"
    );
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

    // A third-party package from requirements.txt goes into the component (pure Python).
    std::fs::write(dir.join("requirements.txt"), "humanize==4.9.0\n").unwrap();
    let app = std::fs::read_to_string(dir.join("app.py")).unwrap();
    let app = app.replace("import weir\n", "import humanize\n\nimport weir\n").replace(
        "            self.out.write(r.value + b\"\\n\")",
        "            value[\"size\"] = humanize.naturalsize(len(r.value))\n            self.out.write(json.dumps(value, separators=(\",\", \":\")).encode() + b\"\\n\")",
    );
    assert!(
        app.contains("humanize.naturalsize"),
        "the template changed: {app}"
    );
    std::fs::write(dir.join("app.py"), app).unwrap();
    std::fs::remove_file(dir.join("out/out.jsonl")).unwrap();
    std::fs::remove_dir_all(dir.join(".weir")).unwrap(); // from the start again
    script(&dir, "build.sh");
    assert!(dir.join(".weir-deps/humanize").is_dir());
    let summary = run_in(&s, &dir);
    assert_eq!(summary["records_written"], 2, "{summary}");
    let out = std::fs::read_to_string(dir.join("out/out.jsonl")).unwrap();
    assert!(out.contains("\"size\":\"21 Bytes\""), "{out}");

    // A package with a compiled extension cannot load in the component: refused at build.
    std::fs::write(dir.join("requirements.txt"), "numpy\n").unwrap();
    let built = Command::new(dir.join("build.sh"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!built.status.success());
    let said = String::from_utf8_lossy(&built.stderr);
    assert!(said.contains("only pure-Python packages"), "{said}");
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

/// This build's `weir` as `scripts/build.sh` ships it (through `scripts/ship-bin.sh`), in
/// `dir/bin/`.
fn shipped_weir(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ship-bin.sh");
    let out = Command::new(script)
        .arg(env!("CARGO_BIN_EXE_weir"))
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin.join("weir")
}

/// The shipped binary is small, and its symbols and DWARF are in `weir.debug` beside it,
/// where a backtrace finds them through the binary's `.gnu_debuglink`.
#[test]
fn the_shipped_binary_is_lean_and_its_debug_info_is_beside_it() {
    let s = Scratch::new();
    let weir = shipped_weir(s.path("dist").as_path());
    let size = std::fs::metadata(&weir).unwrap().len();
    assert!(size < 60_000_000, "dist/bin/weir is {size} bytes");
    let readelf = |args: &[&str], file: &Path| {
        let out = Command::new("readelf")
            .args(args)
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "readelf {args:?}");
        // The debug link ends in its CRC, which readelf prints as raw bytes.
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let link = readelf(&["--string-dump=.gnu_debuglink"], &weir);
    assert!(link.contains("weir.debug"), "{link}");
    let debug = weir.with_file_name("weir.debug");
    let sections = readelf(&["--section-headers", "--wide"], &debug);
    for section in [".debug_line", ".debug_info", ".symtab"] {
        assert!(sections.contains(section), "weir.debug lacks {section}");
    }
    let build_id = |file: &Path| {
        let notes = readelf(&["--notes"], file);
        notes
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
            .expect("a build id")
    };
    assert_eq!(
        build_id(&weir),
        build_id(&debug),
        "weir.debug is another build's"
    );
    let version = Command::new(&weir).arg("--version").output().unwrap();
    assert!(version.status.success());
}

/// `weir new` from the shipped binary alone, copied out of the tree with the plugins it
/// ships beside it: each language's project builds, passes its test and runs, and nothing
/// in it names the tree weir was built from.
#[test]
fn a_project_from_the_binary_alone_builds_tests_and_runs_in_each_language() {
    let s = Scratch::new();
    let weir = shipped_weir(s.path("weir").as_path());
    std::fs::create_dir_all(s.path("weir/plugins")).unwrap();
    for p in ["file_source", "file_sink"] {
        std::fs::copy(plugin(p), s.path(&format!("weir/plugins/{p}.wasm"))).unwrap();
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    for (lang, kind) in [
        ("rust", "batch-source"),
        ("python", "transform"),
        ("js", "transform"),
    ] {
        let name = format!("{lang}-{kind}");
        let out = Command::new(&weir)
            .args(["new", &name, "--lang", lang, "--kind", kind])
            .current_dir(s.path(""))
            .env_remove("WEIR_SDK")
            .env_remove("WEIR_PLUGINS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = s.path(&name);
        assert!(dir.join("weir-sdk/wit/connector.wit").is_file(), "{lang}");
        script(&dir, "test.sh");
        script(&dir, "build.sh");
        let run = Command::new(&weir)
            .args(["run", "pipeline.toml", "--once", "--output", "json"])
            .current_dir(&dir)
            .env_remove("WEIR_PLUGINS")
            .output()
            .unwrap();
        let run = Run::from(run);
        assert!(run.ok, "{lang}: {}", run.stderr);
        let expected = if kind == "transform" { 2 } else { 1000 };
        assert_eq!(run.summaries[0]["records_written"], expected, "{lang}");
        let named = files_naming(&dir, tree.to_str().unwrap());
        assert!(
            named.is_empty(),
            "{lang}: {named:?} name {}",
            tree.display()
        );
    }
}

/// Files under `dir` (not installed packages or build output) whose text contains `needle`.
fn files_naming(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if name == "node_modules" || name == "target" || name == ".weir" {
            continue;
        }
        if path.is_dir() {
            found.extend(files_naming(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            found.push(path);
        }
    }
    found
}

/// `weir dev` in a scaffolded Rust transform: it builds and runs, showing the records and
/// the dead letter; a change to the source is rebuilt and run again, showing the new
/// output; one Ctrl-C stops it cleanly.
#[test]
fn weir_dev_rebuilds_reruns_on_a_change_and_stops_on_ctrl_c() {
    let s = Scratch::new();
    let dir = scaffold(&s, "upper", "rust", "transform");
    let log = s.path("dev.log");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["dev", "--poll", "100ms"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |text: &str| {
        let started = std::time::Instant::now();
        loop {
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            if seen.contains(text) {
                return seen;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "weir dev never printed {text:?}:\n{seen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let first = wait_for("upper-dev1: 3 records read, 2 written");
    assert!(
        first.contains("upper-dev1 ← {\"id\":1,\"name\":\"ADA\"}"),
        "{first}"
    );
    assert!(
        first
            .contains("upper-dev1 ✗ dead letter from upper: not a JSON object ← \"just a string\""),
        "{first}"
    );
    let source = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, code.replace("to_uppercase", "to_lowercase")).unwrap();
    let second = wait_for("upper-dev2: 3 records read, 2 written");
    assert!(
        second.contains("upper-dev2 ← {\"id\":1,\"name\":\"ada\"}"),
        "{second}"
    );
    crate::fixtures::cluster::signal(dev.id(), "INT");
    let status = dev.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(wait_for("weir dev: stopped").ends_with("weir dev: stopped\n"));
}
