//! Hostile and broken guests fail their own pipeline, clearly; the others keep running.

use crate::support::*;

fn hostile(name: &str, mode: &str, limits: &str) -> String {
    hostile_pipeline(
        name,
        mode,
        ", count = 10",
        "",
        &format!("[pipeline.limits]\n{limits}\n"),
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

/// A hostile source that plants `links` (`link=points-to;...`) in `shared/`, its write grant.
fn planting(links: &str) -> String {
    hostile_pipeline(
        "plant",
        "plant-link",
        &format!(", count = 0, target = \"{links}\""),
        "grants.dirs = [{ host = \"shared\", guest = \"/shared\", write = true }]",
        "",
    )
}

/// object-source over `grants.objects = { dir }` → file-sink, with `extra` tables.
fn objects_pipeline(name: &str, dir: &str, extra: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ prefix = "" }}
grants.objects = {{ dir = "{dir}" }}
{sink}{extra}"#,
        source = plugin("object_source").display(),
        sink = file_sink(&format!("{name}.jsonl"), ""),
    )
}

/// A plugin with a writable directory plants links in it, relative and absolute, to a
/// directory and to files outside every grant. Later runs whose host code opens paths in
/// that directory (a directory object store, a dead-letter directory and file, a grant)
/// never follow them: nothing outside is read or written.
#[test]
fn links_a_plugin_plants_never_lead_the_host_out() {
    let s = Scratch::new();
    s.write(
        "outside/secret/passwords.jsonl",
        "{\"user\":\"root\",\"hash\":\"secret-hash\"}\n",
    );
    s.write("outside/victim.log", "untouched\n");
    s.write("input/bad.jsonl", "not json\n{\"n\":1}\n");
    s.write("shared/real.jsonl", "{\"n\":7}\n");
    std::fs::create_dir_all(s.path("shared/dlq-file")).unwrap();
    // The victim is the outside file a relative link from the dead-letter directory hits.
    std::fs::create_dir_all(s.path("outside")).unwrap();
    // WASI lets a plugin plant relative links only; absolute ones are put there by the
    // test, as another process sharing the directory could.
    let links = [
        "/shared/up=../outside/secret",
        "/shared/leak.jsonl=../outside/secret/passwords.jsonl",
        "/shared/dlq-dir=../outside",
        "/shared/dlq-file/dead-letters.jsonl=../../outside/victim.log",
    ];
    s.pipelines(&[planting(&links.join(";"))]);
    let planted = s.run_once();
    assert!(planted.ok, "{}", planted.stderr);
    s.pipelines(&[planting(&format!(
        "/shared/abs={}",
        s.path("outside").display()
    ))]);
    let absolute = s.run_once();
    let error = absolute.summary("plant")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("cannot link") && error.contains("not-permitted"),
        "{error}"
    );
    std::os::unix::fs::symlink(s.path("outside/secret"), s.path("shared/abs")).unwrap();
    std::os::unix::fs::symlink(
        s.path("outside/secret/passwords.jsonl"),
        s.path("shared/absleak.jsonl"),
    )
    .unwrap();
    for link in [
        "up",
        "abs",
        "leak.jsonl",
        "absleak.jsonl",
        "dlq-dir",
        "dlq-file/dead-letters.jsonl",
    ] {
        let meta = std::fs::symlink_metadata(s.path(&format!("shared/{link}"))).unwrap();
        assert!(meta.is_symlink(), "{link} is planted");
    }

    // Read path: the directory store lists and reads regular files only.
    s.pipelines(&[objects_pipeline("objects", "shared", "")]);
    let read = s.run_once();
    assert!(read.ok, "{}", read.stderr);
    assert_eq!(s.read("out/objects.jsonl"), "{\"n\":7}\n");
    assert!(
        read.stderr
            .contains("symbolic link in the objects directory is skipped"),
        "{}",
        read.stderr
    );

    // Read path: a directory grant through a planted link is refused, naming the field.
    s.pipelines(&[file_pipeline("grant", 10, "grant.jsonl")
        .replace("host = \"data\"", "host = \"shared/up\"")]);
    let grant = s.run_once();
    assert!(!grant.ok);
    assert_contains_all(
        &grant.stderr,
        &["source.grants.dirs[0].host", "symbolic link"],
    );

    // Write path: a dead-letter directory that is a planted link, and a real dead-letter
    // directory whose file is a planted link: the pipeline fails, nothing moves past it.
    for (name, dir) in [
        ("dlq-dir", "shared/dlq-dir"),
        ("dlq-file", "shared/dlq-file"),
    ] {
        let table = objects_pipeline(
            name,
            "input",
            &format!("[pipeline.dead_letter]\ndir = \"{dir}\"\n"),
        );
        s.pipelines(&[table]);
        let run = s.run_once();
        assert!(!run.ok, "{name}: {}", run.stderr);
        let error = match run.summaries.first() {
            Some(summary) => {
                assert!(summary["checkpoint"].is_null(), "{name}: nothing committed");
                summary["error"].as_str().unwrap_or_default().to_string()
            }
            None => run.stderr.clone(),
        };
        assert!(error.contains("symbolic link"), "{name}: {error}");
    }
    assert_eq!(s.read("outside/victim.log"), "untouched\n");
    assert!(!s.path("outside/dead-letters.jsonl").exists());

    // Nothing from outside reached any output.
    for entry in std::fs::read_dir(s.path("out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("secret-hash"), "{text}");
    }
}

/// Host-owned paths may not sit where a plugin of the same file can write.
#[test]
fn host_owned_paths_inside_a_plugins_writable_directory_are_refused() {
    let s = Scratch::new();
    s.write("input/a.jsonl", "{\"n\":1}\n");
    let dlq_in_out = objects_pipeline(
        "dlq",
        "input",
        "[pipeline.dead_letter]\ndir = \"out/dlq\"\n",
    );
    s.pipelines(&[dlq_in_out]);
    let run = s.run_once();
    assert!(!run.ok);
    assert_contains_all(
        &run.stderr,
        &[
            "pipeline `dlq`: dead_letter.dir",
            "pipeline `dlq`: sink.grants.dirs[0]",
            "which a plugin may write",
        ],
    );
    let state_in_out = format!(
        "state_dir = \"out/state\"\n{}",
        file_pipeline("state", 10, "x.jsonl")
    );
    s.pipelines(&[state_in_out]);
    let run = s.run_once();
    assert!(!run.ok);
    assert_contains_all(&run.stderr, &["state_dir", "sink.grants.dirs[0]"]);
    assert!(
        !s.path("out/state").exists(),
        "refused before anything was created"
    );
}

/// A plugin logging 1 KiB lines in a tight loop gets its budget (64 KiB/s, ten seconds'
/// worth at once by default) and no more: the rest is dropped, counted and reported, and
/// the pipeline beside it delivers everything.
#[test]
fn a_log_flood_is_held_to_the_budget() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..2000));
    let flood = hostile_pipeline("flood", "log-flood", ", count = 20000", "", "");
    s.pipelines(&[flood, file_pipeline("healthy", 100, "healthy.jsonl")]);
    let started = std::time::Instant::now();
    let output = s
        .weir(&["run", "pipeline.toml", "--once", "--output", "json"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let run = Run::from(output);
    assert!(run.ok, "{}", run.stderr);
    let logged = run.stderr.lines().filter(|l| l.contains("flood=")).count();
    // Bytes bind first: 1 KiB lines at 64 KiB/s with a 640 KiB burst.
    let bound = 640.0 + 64.0 * elapsed + 5.0;
    assert!(
        logged > 0 && (logged as f64) <= bound,
        "{logged} lines logged in {elapsed:.1}s; the budget allows {bound:.0}"
    );
    let dropped = run.summary("flood")["log_dropped"].as_u64().unwrap();
    assert_eq!(
        dropped as usize + logged,
        20_000,
        "every line is logged or counted"
    );
    assert!(
        run.stderr.contains("plugin log over its budget"),
        "the drop is reported"
    );
    assert!(
        run.stderr.len() < 2 << 20,
        "{} bytes of log",
        run.stderr.len()
    );
    assert_eq!(run.summary("healthy")["records_written"], 2000);
}

/// A plugin's `log.info` lines show at weir's default verbosity (the host's own info lines
/// do not); `RUST_LOG` overrides.
/// What a plugin prints to stdout and stderr reaches the log line by line, labelled with
/// its stream, and within the same budget as its `log` calls: a print loop cannot flood
/// the host's log either.
#[test]
fn a_plugins_stdout_and_stderr_are_logged_within_its_budget() {
    let s = Scratch::new();
    s.pipelines(&[hostile_pipeline("printing", "print", ", count = 3", "", "")]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let printed = |run: &Run, stream: &str| {
        run.stderr
            .lines()
            .filter(|l| l.contains("weir::guest") && l.contains(&format!("{stream} line ")))
            .count()
    };
    assert_eq!(printed(&run, "stdout"), 3, "{}", run.stderr);
    assert_eq!(printed(&run, "stderr"), 3, "{}", run.stderr);
    assert!(run.stderr.contains("stdout line 2"), "{}", run.stderr);
    // Labelled with its stream (the log may colour `stream=`).
    let labelled = |stream: &str| {
        run.stderr.lines().any(|l| {
            l.contains(&format!("{stream} line 0")) && l.contains(&format!("\"{stream}\""))
        })
    };
    assert!(labelled("stdout") && labelled("stderr"), "{}", run.stderr);

    let s = Scratch::new();
    s.pipelines(&[hostile_pipeline(
        "flood",
        "print",
        ", count = 20000",
        "",
        "",
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let shown = printed(&run, "stdout") + printed(&run, "stderr");
    // The default budget: 100 lines a second, ten seconds' worth at once.
    let seconds = run.summary("flood")["elapsed_ms"].as_u64().unwrap() / 1000 + 1;
    let allowed = 1_000 + 100 * seconds as usize;
    assert!(
        shown <= allowed,
        "{shown} lines of 40,000 reached the log in {seconds} s (the budget allows {allowed})"
    );
    assert!(
        run.summary("flood")["log_dropped"].as_u64() >= Some(40_000 - allowed as u64),
        "{}",
        run.summary("flood")
    );
}

#[test]
fn a_plugins_info_lines_show_by_default() {
    let s = Scratch::new();
    s.pipelines(&[hostile_pipeline(
        "chatty",
        "log-flood",
        ", count = 3",
        "",
        "",
    )]);
    let quiet = |rust_log: Option<&str>| {
        let mut cmd = s.weir(&["run", "pipeline.toml", "--once", "--output", "json"]);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        Run::from(cmd.output().unwrap())
    };
    let run = quiet(None);
    assert!(run.ok, "{}", run.stderr);
    let lines = |run: &Run| {
        run.stderr
            .lines()
            .filter(|l| l.contains("INFO") && l.contains("weir::guest"))
            .count()
    };
    assert_eq!(lines(&run), 3, "{}", run.stderr);
    let host_info = run
        .stderr
        .lines()
        .filter(|l| l.contains("INFO") && !l.contains("weir::guest"))
        .count();
    assert_eq!(
        host_info, 0,
        "the host's own info lines stay hidden: {}",
        run.stderr
    );
    assert_eq!(lines(&quiet(Some("warn"))), 0);
}

/// README: directories are read-only unless `write = true`, and a plugin gets no
/// environment variables or process arguments. A write into a read-only grant fails and
/// leaves nothing; the host's environment (holding a secret here) and command line stay
/// out of the guest.
#[test]
fn a_read_only_grant_and_the_hosts_environment_stay_out_of_reach() {
    let s = Scratch::new();
    let read_only = "grants.dirs = [{ host = \"data\", guest = \"/data\" }]";
    s.pipelines(&[
        hostile_pipeline(
            "write",
            "write-path",
            ", count = 1, target = \"/data/pwned.txt\"",
            read_only,
            "",
        ),
        hostile_pipeline("environ", "environ", ", count = 1", "", ""),
    ]);
    let output = s
        .weir(&["run", "pipeline.toml", "--once", "--output", "json"])
        .env("WEIR_TEST_SECRET", "hunter2-secret")
        .output()
        .unwrap();
    let run = Run::from(output);
    let error = run.summary("write")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("cannot write /data/pwned.txt"), "{error}");
    assert!(!s.path("data/pwned.txt").exists());
    assert_eq!(run.summary("environ")["status"], "ok", "{}", run.stderr);
    let seen = s.read("out/environ.jsonl");
    assert!(
        seen.contains("\"end\""),
        "the plugin ran and reported: {seen}"
    );
    assert!(
        !seen.contains("env "),
        "no environment variable reached the plugin: {seen}"
    );
    assert!(
        !seen.contains("arg "),
        "no process argument reached the plugin: {seen}"
    );
    assert!(
        !seen.contains("hunter2-secret") && !seen.contains("pipeline.toml"),
        "{seen}"
    );
}
