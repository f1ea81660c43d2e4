//! Hostile and broken guests fail their own pipeline, clearly; the others keep running.

use crate::support::*;

fn hostile(name: &str, mode: &str, limits: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ mode = "{mode}", count = 10 }}
{sink}[pipeline.limits]
{limits}
"#,
        source = plugin("hostile").display(),
        sink = file_sink(&format!("{name}.jsonl"), ""),
    )
}

/// Four attacks and one healthy pipeline in one host process.
#[test]
fn misbehaving_guests_are_contained() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..3000));
    s.pipelines(&[
        hostile("trap", "trap", ""),
        hostile("loop", "loop", "call_timeout = \"1s\""),
        hostile("oom", "oom", "memory = \"32 MiB\""),
        hostile("stack", "stack-overflow", ""),
        file_pipeline("healthy", 100, "healthy.jsonl"),
    ]);
    let run = s.run_once();
    assert!(!run.ok, "failures make a failing exit");

    let error = |p: &str| {
        let summary = run.summary(p);
        assert_eq!(summary["status"], "failed", "{summary}");
        summary["error"].as_str().unwrap().to_string()
    };
    let trap = error("trap");
    assert!(
        trap.contains("plugin `hostile` trapped in batch-read.reader.next"),
        "{trap}"
    );
    assert!(
        trap.contains("hostile plugin panics on purpose"),
        "the guest's panic message: {trap}"
    );
    let looped = error("loop");
    assert!(
        looped.contains("plugin `hostile` ran past its deadline"),
        "{looped}"
    );
    let oom = error("oom");
    assert!(
        oom.contains("plugin `hostile` ran out of its memory limit"),
        "{oom}"
    );
    assert!(oom.contains(&format!("the limit is {}", 32 << 20)), "{oom}");
    let stack = error("stack");
    assert!(
        stack.contains("trapped") && stack.contains("stack overflow"),
        "{stack}"
    );

    let healthy = run.summary("healthy");
    assert_eq!(healthy["status"], "ok");
    assert_eq!(healthy["records_written"], 3000);
    assert!(
        numbers_in(&s.read("out/healthy.jsonl"))
            .into_iter()
            .eq(0..3000)
    );
    // Nothing was committed for the failed pipelines.
    assert!(run.summary("trap")["checkpoint"].is_null());
}

#[test]
fn directories_not_granted_cannot_be_read() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..3));
    s.write("secret/passwords.jsonl", "{\"n\":666}\n");
    let with_dir = |name: &str, dir: &str| {
        file_pipeline(name, 10, &format!("{name}.jsonl")).replace(
            "config = { dir = \"/data\" }",
            &format!("config = {{ dir = \"{dir}\" }}"),
        )
    };
    s.pipelines(&[
        with_dir("absolute", &s.path("secret").display().to_string()),
        with_dir("dotdot", "/data/../secret"),
        with_dir("root", "/"),
    ]);
    // A symlink inside the granted directory that points outside it.
    std::os::unix::fs::symlink(s.path("secret"), s.path("data/link")).unwrap();
    let linked = with_dir("symlink", "/data/link");
    let path = s.path("pipeline.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&linked);
    std::fs::write(&path, text).unwrap();

    let run = s.run_once();
    for name in ["absolute", "dotdot", "root", "symlink"] {
        let summary = run.summary(name);
        assert_eq!(summary["status"], "failed", "{name}: {summary}");
        assert_eq!(summary["records_read"], 0, "{name}");
        let error = summary["error"].as_str().unwrap();
        assert!(error.contains("cannot read directory"), "{name}: {error}");
    }
    let out = std::fs::read_dir(s.path("out")).unwrap();
    for entry in out {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("666"), "a secret leaked");
    }
}

#[test]
fn transient_errors_are_retried() {
    let s = Scratch::new();
    s.pipelines(&[hostile("flaky", "flaky", "").replace("count = 10", "count = 2500")]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("flaky")["records_written"], 2500);
    assert!(
        run.stderr.contains("transient error, retrying"),
        "{}",
        run.stderr
    );
    assert!(
        numbers_in(&s.read("out/flaky.jsonl"))
            .into_iter()
            .eq(0..2500)
    );
}

#[test]
fn a_memory_limit_beyond_the_host_maximum_is_refused() {
    let s = Scratch::new();
    s.pipelines(&[hostile("huge", "ok", "memory = \"64 GiB\"")]);
    let run = s.run_once();
    let error = run.summary("huge")["error"].as_str().unwrap().to_string();
    assert!(error.contains("pipeline `huge` source"), "{error}");
    assert!(error.contains("exceeds this host's maximum"), "{error}");
}
