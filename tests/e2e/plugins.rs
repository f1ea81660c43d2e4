//! Loading plugins: bad files, wrong worlds, bad configs, inspect, the compile cache.

use crate::support::*;
use serde_json::Value;

#[test]
fn a_file_that_is_not_wasm_is_a_clear_error() {
    let s = Scratch::new();
    s.write("junk.wasm", "this is not wasm at all");
    s.write("core.wasm", "\0asm\u{1}\0\0\0");
    s.pipelines(&[
        file_pipeline("junk", 10, "a.jsonl")
            .replace(&plugin("file_source").display().to_string(), "junk.wasm"),
        file_pipeline("core", 10, "b.jsonl")
            .replace(&plugin("file_sink").display().to_string(), "core.wasm"),
        file_pipeline("fine", 10, "c.jsonl"),
    ]);
    s.write("data/a.jsonl", &numbered(0..5));
    let run = s.run_once();
    assert!(!run.ok);
    let junk = run.error("junk");
    assert!(
        junk.contains("junk.wasm") && junk.contains("not a WebAssembly file"),
        "{junk}"
    );
    assert!(junk.contains("pipeline `junk` source"), "{junk}");
    let core = run.error("core");
    assert!(
        core.contains("core.wasm") && core.contains("core WebAssembly module, not a component"),
        "{core}"
    );
    assert!(core.contains("pipeline `core` sink"), "{core}");
    assert_eq!(
        run.summary("fine")["records_written"],
        5,
        "the healthy pipeline ran"
    );
}

#[test]
fn a_plugin_of_the_wrong_world_is_refused() {
    let s = Scratch::new();
    let swapped = file_pipeline("swapped", 10, "a.jsonl")
        .replace(&plugin("file_source").display().to_string(), "SOURCE")
        .replace(
            &plugin("file_sink").display().to_string(),
            &plugin("file_source").display().to_string(),
        )
        .replace("SOURCE", &plugin("file_sink").display().to_string());
    s.pipelines(&[swapped]);
    let run = s.run_once();
    let error = run.error("swapped");
    assert!(
        error.contains("file_sink.wasm is a sink, but a batch-source or stream-source is needed"),
        "{error}"
    );
}

#[test]
fn a_bad_config_names_the_field() {
    let s = Scratch::new();
    let table = file_pipeline("bad", 10, "a.jsonl").replace(
        "config = { dir = \"/data\" }",
        "config = { dir = 42, format = \"xml\" }",
    );
    s.pipelines(&[table]);

    let run = s.run_once();
    let error = run.error("bad");
    assert!(error.contains("pipeline `bad` source"), "{error}");
    assert!(error.contains("config field `/dir`"), "{error}");
    assert!(error.contains("config field `/format`"), "{error}");

    let check = s.weir(&["check", "pipeline.toml"]).output().unwrap();
    assert!(!check.status.success());
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("bad source: ") && text.contains("`/dir`"),
        "{text}"
    );
    assert!(text.contains("bad sink: ok (file-sink)"), "{text}");
}

#[test]
fn check_passes_a_good_pipeline_and_calls_the_plugins_check() {
    let s = Scratch::new();
    s.pipelines(&[
        file_pipeline("good", 10, "a.jsonl"),
        // Valid against the schema, but the plugin's own check finds no such directory.
        file_pipeline("missing", 10, "a.jsonl").replace("dir = \"/data\"", "dir = \"/nowhere\""),
    ]);
    let lines = s.weir_json(&["check", "pipeline.toml", "--output", "json"], false);
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .filter(|l| l["pipeline"] == "good")
            .all(|l| l["ok"] == true),
        "{lines:?}"
    );
    let missing = lines
        .iter()
        .find(|l| l["pipeline"] == "missing" && l["side"] == "source")
        .unwrap();
    assert_eq!(missing["ok"], false);
    assert!(
        missing["error"].as_str().unwrap().contains("/nowhere"),
        "{missing}"
    );
}

#[test]
fn inspect_prints_world_metadata_and_schema_and_caches_the_compile() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let inspect = || {
        let out = s
            .weir(&[
                "plugin",
                "inspect",
                plugin("file_source").to_str().unwrap(),
                "--output",
                "json",
            ])
            .env("WEIR_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = inspect();
    assert_eq!(first["world"], "batch-source");
    assert_eq!(first["name"], "file-source");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        first["config_schema"]["required"],
        serde_json::json!(["dir"])
    );
    assert_eq!(first["compilation"], "compiled");
    assert_eq!(
        inspect()["compilation"],
        "cached",
        "a second start does not recompile"
    );

    let sink = s
        .weir(&[
            "plugin",
            "inspect",
            plugin("file_sink").to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let sink: Value = serde_json::from_slice(&sink.stdout).unwrap();
    assert_eq!(sink["world"], "sink");
    // What each sink promises: file-sink commits its checkpoint with its data.
    assert_eq!(sink["delivery"], "exactly-once");
    assert_eq!(
        first["delivery"],
        Value::Null,
        "a source promises no delivery"
    );
    let plain = s
        .weir(&[
            "plugin",
            "inspect",
            plugin("transform").to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(plain["delivery"], "at-least-once");
}

#[test]
fn components_that_do_not_fit_the_contract_are_refused() {
    let s = Scratch::new();
    let component = |name: &str, wat: &str| {
        std::fs::write(s.path(name), wat::parse_str(wat).unwrap()).unwrap();
        s.path(name)
    };
    let empty = component("empty.wasm", "(component)");
    let foreign = component(
        "foreign.wasm",
        r#"(component (import "evil:net/raw-socket@1.0.0" (instance (export "connect" (func)))))"#,
    );
    let inspect = |path: &std::path::Path| {
        let out = s
            .weir(&["plugin", "inspect", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let error = inspect(&empty);
    assert!(error.contains("empty.wasm is not a weir plugin"), "{error}");
    assert!(
        error.contains("exports none of weir:connector/batch-read@0.1.0"),
        "{error}"
    );
    assert!(error.contains("(it exports nothing)"), "{error}");
    let error = inspect(&foreign);
    assert!(error.contains("foreign.wasm"), "{error}");
    assert!(
        error.contains("evil:net/raw-socket@1.0.0"),
        "the missing import is named: {error}"
    );
}

/// A sink written in Python runs in the same host, with the same grants and delivery, and
/// the records it rejects reach the dead-letter destination.
#[test]
fn a_python_guest_runs_end_to_end() {
    let s = Scratch::new();
    s.write(
        "data/a.jsonl",
        "{\"a\":\"x\"}\n\"just a string\"\n{\"b\":\"y\"}\n",
    );
    let table = file_pipeline("py", 10, "out.jsonl")
        .replace(
            &plugin("file_sink").display().to_string(),
            &plugin("py_upper_sink").display().to_string(),
        )
        .replace(
            "config = { dir = \"/out\", file = \"out.jsonl\" }",
            "config = { dir = \"/out\" }",
        );
    s.pipelines(&[format!("{table}[pipeline.dead_letter]\ndir = \"dlq\"\n")]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("py")["records_written"], 2);
    assert_eq!(run.summary("py")["dead_letters"], 1);
    assert_eq!(s.read("out/out.jsonl"), "{\"A\":\"X\"}\n{\"B\":\"Y\"}\n");
    let dead: serde_json::Value =
        serde_json::from_str(s.read("dlq/dead-letters.jsonl").trim()).unwrap();
    assert_eq!(dead["reason"], "expected a JSON object");
    assert_eq!(dead["value"], "\"just a string\"");
    assert_eq!(dead["plugin"], "py_upper_sink");
}

/// The loader on damaged components: a real plugin with bytes flipped, cut short or
/// spliced. Each load ends in a plugin or an error, never a panic; a plugin that loads is
/// then instantiated and asked for its spec under tight limits. Cases and seed come from
/// `PROPTEST_CASES` (default 64 here: a load that validates compiles) and `PROPTEST_RNG_SEED`.
#[test]
fn damaged_components_are_refused_or_contained_never_a_panic() {
    use proptest::prelude::*;
    use weir_runtime::{Labels, Limits, Runtime, RuntimeConfig, Sandbox};
    let original = std::fs::read(plugin("file_sink")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let sandbox = Sandbox {
        limits: Limits {
            memory: 16 << 20,
            call_timeout: std::time::Duration::from_secs(1),
            ..Limits::default()
        },
        ..Sandbox::default()
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let len = original.len();
    let damage = (
        prop::collection::vec((0..len, any::<u8>()), 0..8),
        prop::option::of(0..len),
        prop::option::of((0..len, 0..len)),
    );
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&damage, |(flips, cut, splice)| {
            let mut bytes = original.clone();
            for (at, byte) in flips {
                bytes[at] = byte;
            }
            if let Some((from, to)) = splice {
                let piece = bytes[from.min(to)..from.max(to)].to_vec();
                bytes.extend_from_slice(&piece);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            let k = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("damaged-{k}.wasm"));
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(plugin) = runtime.load(&path) {
                let labels = Labels {
                    pipeline: "fuzz".into(),
                    plugin: "damaged".into(),
                    role: "sink",
                };
                weir_runtime::block_on(async {
                    if let Ok(mut instance) = runtime.instantiate(&plugin, &sandbox, labels).await {
                        let _ = instance.spec().await;
                    }
                });
            }
            std::fs::remove_file(&path).unwrap();
            Ok(())
        })
        .unwrap();
}

/// `weir discover` asks each source what it can read: file-source lists its files.
#[test]
fn discover_lists_what_a_source_can_read() {
    let s = Scratch::new();
    s.write("data/a.jsonl", "{}\n");
    s.write("data/b.jsonl", "{}\n");
    s.pipelines(&[
        file_pipeline("files", 10, "a.jsonl"),
        file_pipeline("other", 10, "b.jsonl"),
    ]);
    let lines = s.weir_json(
        &[
            "discover",
            "pipeline.toml",
            "--pipeline",
            "files",
            "--output",
            "json",
        ],
        true,
    );
    let streams: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["pipeline"].as_str().unwrap(),
                l["stream"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(streams, [("files", "a.jsonl"), ("files", "b.jsonl")]);

    let unknown = s
        .weir(&["discover", "pipeline.toml", "--pipeline", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no pipeline `nope`"));
}
