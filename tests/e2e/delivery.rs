//! Records arrive, once, in order; checkpoints resume; crashes lose nothing.

use crate::support::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn file_to_file_output_equals_input() {
    let s = Scratch::new();
    let jsonl = numbered(0..2500);
    s.write("data/a.jsonl", &jsonl);
    s.write(
        "data/b.csv",
        "id,name\n1,\"Smith, Jo\"\n2,\"multi\nline\"\n",
    );
    s.pipelines(&[file_pipeline("copy", 400, "out.jsonl")]);

    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let summary = run.summary("copy");
    assert_eq!(summary["records_read"], 2502);
    assert_eq!(summary["records_written"], 2502);
    assert_eq!(summary["status"], "ok");

    let out = s.read("out/out.jsonl");
    let (json_lines, csv_lines) = out.split_at(jsonl.len());
    assert_eq!(
        json_lines, jsonl,
        "JSON Lines copied byte for byte, in order"
    );
    let rows: Vec<serde_json::Value> = csv_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0], serde_json::json!({"id": "1", "name": "Smith, Jo"}));
    assert_eq!(
        rows[1],
        serde_json::json!({"id": "2", "name": "multi\nline"})
    );
}

#[test]
fn rerun_delivers_only_appended_lines() {
    let s = Scratch::new();
    s.write("data/events.jsonl", &numbered(0..100));
    s.pipelines(&[file_pipeline("p", 30, "out.jsonl")]);
    assert_eq!(s.run_once().summary("p")["records_written"], 100);

    let again = s.run_once();
    assert_eq!(
        again.summary("p")["records_written"],
        0,
        "the checkpoint held"
    );

    // Appended lines, one of them still being written (no newline yet).
    s.append("data/events.jsonl", &numbered(100..150));
    s.append("data/events.jsonl", "{\"n\":150");
    s.write("data/later.jsonl", &numbered(1000..1010));
    let third = s.run_once();
    assert_eq!(
        third.summary("p")["records_written"],
        60,
        "{}",
        third.stderr
    );

    s.append("data/events.jsonl", "}\n");
    assert_eq!(s.run_once().summary("p")["records_written"], 1);

    let mut expected: Vec<u64> = (0..151).collect();
    expected.splice(150..150, 1000..1010);
    assert_eq!(numbers_in(&s.read("out/out.jsonl")), expected);
}

/// SIGKILL mid-run, then rerun: every record arrives, duplicates at most one batch.
#[test]
fn kill_9_mid_run_loses_nothing() {
    const N: u64 = 400_000;
    const BATCH: u32 = 500;
    let s = Scratch::new();
    s.write("data/big.jsonl", &numbered(0..N));
    s.pipelines(&[file_pipeline("crash", BATCH, "out.jsonl")]);

    let mut child = s.spawn_run(&["--once"]);
    let started = Instant::now();
    // Kill once a few batches are through, while the run is far from done.
    while s.read("out/out.jsonl").lines().count() < 5 * BATCH as usize {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        assert!(child.is_running(), "finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill_9();
    let partial = numbers_in(&s.read("out/out.jsonl")).len() as u64;
    assert!(
        partial < N,
        "the kill landed mid-run ({partial} of {N} written)"
    );

    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let out = numbers_in(&s.read("out/out.jsonl"));
    let mut seen = BTreeMap::new();
    for n in &out {
        *seen.entry(*n).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len() as u64, N, "every record arrived");
    assert!(seen.keys().copied().eq(0..N));
    let duplicates = out.len() as u64 - N;
    assert!(
        duplicates <= BATCH as u64,
        "{duplicates} duplicates: more than the one batch in flight"
    );
}

/// SIGTERM: the batches in flight are flushed and committed, so a rerun neither loses
/// nor repeats anything.
#[test]
fn sigterm_stops_cleanly_and_resumes_without_duplicates() {
    const N: u64 = 400_000;
    let s = Scratch::new();
    s.write("data/big.jsonl", &numbered(0..N));
    s.pipelines(&[file_pipeline("graceful", 500, "out.jsonl")]);

    let child = s.spawn_run(&["--once"]);
    let started = Instant::now();
    while s.read("out/out.jsonl").lines().count() < 2500 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    let stopped = terminate(child);
    assert!(
        stopped.ok,
        "a graceful stop is a success: {}",
        stopped.stderr
    );
    let written = stopped.summary("graceful")["records_written"]
        .as_u64()
        .unwrap();
    assert!(written < N, "stopped mid-run");
    assert_eq!(
        numbers_in(&s.read("out/out.jsonl")).len() as u64,
        written,
        "flushed = committed"
    );

    assert!(s.run_once().ok);
    let out = numbers_in(&s.read("out/out.jsonl"));
    assert!(
        out.iter().copied().eq(0..N),
        "no loss, no duplicate, in order"
    );
}

/// A cron schedule runs the pipeline repeatedly until stopped, picking up new data.
#[test]
fn schedule_runs_repeatedly() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..10));
    let table = file_pipeline("cron", 100, "out.jsonl").replace(
        "config = { dir = \"/data\" }",
        "config = { dir = \"/data\" }\nschedule = \"* * * * * *\"",
    );
    s.pipelines(&[table]);
    let child = s.spawn_run(&[]);
    let started = Instant::now();
    while numbers_in(&s.read("out/out.jsonl")).len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "first run never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.write("data/b.jsonl", &numbered(10..20));
    while numbers_in(&s.read("out/out.jsonl")).len() < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "new data never picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.summary("cron")["runs"].as_u64().unwrap() >= 2);
    assert!(numbers_in(&s.read("out/out.jsonl")).into_iter().eq(0..20));
}

/// Between scheduled runs the sink rests when the wait is longer than `release_when_idle`,
/// and the next run's records reach it through a new instance, once each, which goes on
/// counting from its predecessor's counters.
#[test]
fn a_scheduled_pipeline_releases_its_sink_between_runs() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..10));
    let table = file_pipeline("cron", 100, "out.jsonl")
        .replace(
            "config = { dir = \"/data\" }",
            "config = { dir = \"/data\" }\nschedule = \"*/2 * * * * *\"",
        )
        .replace(
            "[pipeline.sink]",
            "[pipeline.sink]\nrelease_when_idle = \"500ms\"",
        );
    s.pipelines(&[table]);
    let mut child = s.spawn_run(&["-v"]);
    wait_for_lines(&s, 10, &mut child);
    child.wait_for_sink_to_rest();
    s.write("data/b.jsonl", &numbered(10..20));
    wait_for_lines(&s, 20, &mut child);
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.contains("the sink has a new instance"),
        "{}",
        run.stderr
    );
    let summary = run.summary("cron");
    assert!(summary["sink_rests"].as_u64().unwrap() >= 1);
    assert!(numbers_in(&s.read("out/out.jsonl")).into_iter().eq(0..20));
    // The new instance goes on from the counters the rested one left.
    let written = s.read("out/out.jsonl").len() as u64;
    assert_eq!(summary["metrics"]["sink.bytes"], written, "{summary}");
}

/// A scheduled run that fails is tried again at a later tick (after a backoff) with fresh
/// instances, not the end of the pipeline until weir restarts.
#[test]
fn a_failed_scheduled_run_is_retried_at_a_later_tick() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..10));
    // No dead-letter destination: the bad line fails the run.
    s.write("data/b.jsonl", "not JSON\n");
    let table = file_pipeline("cron", 100, "out.jsonl").replace(
        "config = { dir = \"/data\" }",
        "config = { dir = \"/data\" }\nschedule = \"* * * * * *\"",
    );
    s.pipelines(&[table]);
    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while !child.stderr().contains("the scheduled run failed") {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no failed run: {}",
            child.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.write("data/b.jsonl", &numbered(10..20));
    while numbers_in(&s.read("out/out.jsonl")).len() < 20 {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pipeline was not tried again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("cron")["status"], "ok", "the last try's status");
    assert!(numbers_in(&s.read("out/out.jsonl")).into_iter().eq(0..20));
}

/// `weir checkpoint show|set|reset` on a `weir run` state: a set or a reset beats the
/// checkpoint file-sink keeps with its data; a checkpoint the source cannot open at is
/// refused; nothing moves while a `weir run` holds the state.
#[test]
fn an_operator_sees_sets_and_resets_a_pipelines_checkpoint() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..10));
    s.pipelines(&[file_pipeline("moved", 100, "out.jsonl")]);
    assert!(s.run_once().ok);
    let show = || {
        s.weir_json(
            &["checkpoint", "show", "pipeline.toml", "--output", "json"],
            true,
        )
    };
    let first = show();
    assert_eq!(first[0]["pipeline"], "moved");
    assert_eq!(first[0]["commits"], 1);
    let after_ten = first[0]["checkpoint"].as_str().unwrap().to_string();
    s.append("data/a.jsonl", &numbered(10..15));
    assert_eq!(s.run_once().summary("moved")["records_written"], 5);

    let checkpoint = |args: &[&str]| {
        let mut all = vec![
            "checkpoint",
            args[0],
            "pipeline.toml",
            "--pipeline",
            "moved",
        ];
        all.extend_from_slice(&args[1..]);
        s.weir(&all).output().unwrap()
    };
    let typo = checkpoint(&["set", r#"{"nonsense":true}"#]);
    assert!(!typo.status.success());
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(said.contains("the source refuses checkpoint"), "{said}");
    assert_ne!(
        show()[0]["checkpoint"],
        r#"{"nonsense":true}"#,
        "nothing moved"
    );

    assert!(checkpoint(&["set", &after_ten]).status.success());
    assert_eq!(show()[0]["checkpoint"], after_ten.as_str());
    assert_eq!(
        s.run_once().summary("moved")["records_written"],
        5,
        "the last five again, from where the operator set it"
    );
    assert!(checkpoint(&["reset"]).status.success());
    assert_eq!(show()[0]["checkpoint"], serde_json::Value::Null);
    assert_eq!(
        s.run_once().summary("moved")["records_written"],
        15,
        "all again"
    );
    let out = numbers_in(&s.read("out/out.jsonl"));
    let expected: Vec<u64> = (0..15).chain(10..15).chain(0..15).collect();
    assert_eq!(out, expected);
    // Both moves are in the pipeline's history, with where from; the refused one is not.
    let history = show()[0]["history"].clone();
    let moves: Vec<(&str, &serde_json::Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), &e["detail"]))
        .collect();
    assert_eq!(moves.len(), 2, "{history}");
    assert_eq!(moves[0].0, "checkpoint set");
    assert_eq!(moves[0].1["to"], after_ten.as_str());
    assert_eq!(moves[1].0, "checkpoint reset");
    assert_eq!(moves[1].1["to"], serde_json::Value::Null);

    // A weir run waiting for its schedule holds the state: nothing may move it.
    let scheduled = file_pipeline("moved", 100, "out.jsonl").replace(
        "config = { dir = \"/data\" }",
        "config = { dir = \"/data\" }\nschedule = \"0 0 1 1 *\"",
    );
    s.pipelines(&[scheduled]);
    let mut running = s.spawn_run(&[]);
    // Only once it holds the state (its pid in the lock file): trying earlier could take
    // the lock first and make *it* the one refused.
    let holder = format!("pid {}", running.pid());
    let started = Instant::now();
    while s.read(".weir/weir.lock").trim() != holder {
        running.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "weir run never took the state"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = checkpoint(&["reset"]);
    let said = String::from_utf8_lossy(&held.stderr).into_owned();
    assert!(!held.status.success());
    assert!(
        said.contains(&format!("in use by another weir process ({holder})")),
        "{said}"
    );
    terminate(running);
}

/// A stream source: polled until idle with `--once`, acknowledged only with checkpoints the
/// host committed, resumed from the committed checkpoint.
#[test]
fn stream_source_is_acked_after_commit_and_resumes() {
    let s = Scratch::new();
    let stream = |total: u64| stream_pipeline(total, "500ms");
    s.pipelines(&[stream(2500)]);
    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    let summary = first.summary("stream");
    assert_eq!(summary["records_written"], 2500);
    assert_eq!(summary["checkpoint"], "2500");
    let acks: Vec<u64> = s
        .read("acks/acks.log")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        acks.last(),
        Some(&2500),
        "the final commit is acknowledged: {acks:?}"
    );
    assert!(
        acks.windows(2).all(|w| w[0] < w[1]),
        "acks only move forward: {acks:?}"
    );
    assert!(
        acks.iter().all(|a| [1000, 2000, 2500].contains(a)),
        "only committed checkpoints: {acks:?}"
    );

    s.pipelines(&[stream(4000)]);
    let second = s.run_once();
    assert_eq!(
        second.summary("stream")["records_written"],
        1500,
        "{}",
        second.stderr
    );
    assert!(numbers_in(&s.read("out/out.jsonl")).into_iter().eq(0..4000));
}

/// Two processes on the same state would deliver everything twice: the second is refused.
#[test]
fn a_second_weir_on_the_same_state_is_refused() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..10));
    let table = file_pipeline("locked", 100, "out.jsonl").replace(
        "config = { dir = \"/data\" }",
        "config = { dir = \"/data\" }\nschedule = \"0 0 1 1 *\"",
    );
    s.pipelines(&[table]);
    let first = s.spawn_run(&[]); // waits for New Year with the state locked
    let started = Instant::now();
    while !s.path(".weir/weir.db").exists() {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = s
        .weir(&["run", "pipeline.toml", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    let holder = format!("is in use by another weir process (pid {})", first.pid());
    assert!(stderr.contains(&holder), "{stderr}");
    let stopped = terminate(first);
    assert!(stopped.ok, "{}", stopped.stderr);
}

/// `--pipeline NAME` runs that pipeline of the file and no other; a name the file does not
/// have is an error naming the file.
#[test]
fn run_pipeline_runs_one_pipeline_of_the_file() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..30));
    s.pipelines(&[
        file_pipeline("first", 10, "first.jsonl"),
        file_pipeline("second", 10, "second.jsonl"),
    ]);
    let run = Run::from(
        s.weir(&[
            "run",
            "pipeline.toml",
            "--once",
            "--output",
            "json",
            "--pipeline",
            "second",
        ])
        .output()
        .unwrap(),
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summaries.len(), 1, "{:?}", run.summaries);
    assert_eq!(run.summary("second")["records_written"], 30);
    assert!(
        !s.path("out/first.jsonl").exists(),
        "the other pipeline did not run"
    );
    let missing = s
        .weir(&["run", "pipeline.toml", "--once", "--pipeline", "third"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no pipeline `third` in"), "{stderr}");
}

fn stream_pipeline(total: u64, poll_wait: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "stream"
batch_size = 1000
[pipeline.source]
plugin = "{source}"
config = {{ total = {total}, ack_log = "/acks/acks.log" }}
poll_wait = "{poll_wait}"
grants.dirs = [{{ host = "acks", guest = "/acks", write = true }}]
{sink}"#,
        source = plugin("counter_stream").display(),
        sink = file_sink("out.jsonl", ""),
    )
}

/// A stream source that answers idle polls at once must not make the host spin: the host
/// waits out `poll_wait` between idle polls. Counted through the guest's own metrics.
#[test]
fn an_idle_stream_is_not_polled_in_a_busy_loop() {
    let s = Scratch::new();
    s.pipelines(&[stream_pipeline(10, "200ms")]);
    let child = s.spawn_run(&[]);
    let started = Instant::now();
    while numbers_in(&s.read("out/out.jsonl")).len() < 10 {
        assert!(started.elapsed() < Duration::from_secs(30), "no records");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(1));
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let polls = run.summary("stream")["metrics"]["source.polls"]
        .as_u64()
        .unwrap();
    // About one poll per 200 ms of idling; a busy loop makes many thousands.
    assert!((2..100).contains(&polls), "{polls} polls");
}

/// README: "A second signal exits at once; the last commit still holds." The source sleeps
/// 3 s in each poll, so the first SIGTERM's graceful stop has a poll to wait out; a second
/// one exits now (128 + SIGTERM), and the committed checkpoint is still there, with every
/// record before it in the output.
#[test]
fn a_second_signal_exits_at_once_and_the_last_commit_holds() {
    let s = Scratch::new();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "slow"
batch_size = 10
[pipeline.source]
plugin = "{source}"
config = {{ total = 1000000, sleep_ms = 3000 }}
{sink}"#,
        source = plugin("counter_stream").display(),
        sink = file_sink("out.jsonl", ""),
    )]);
    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while numbers_in(&s.read("out/out.jsonl")).is_empty() {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no first batch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.pid().to_string();
    let term = || {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    term();
    // Signals of one kind may be merged: the second goes once the first was taken.
    while !child.stderr().contains("weir: stopping") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first signal was not taken"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    term();
    let signalled = Instant::now();
    let status = child.wait_at_most(Duration::from_secs(20));
    assert!(
        signalled.elapsed() < Duration::from_millis(2500),
        "exited only after {:?}: it waited for the poll",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(128 + 15), "the second signal's exit");
    let store = weir_checkpoint::SqliteCheckpoints::open(&s.path(".weir")).unwrap();
    let committed: u64 = weir_checkpoint::CheckpointStore::load(&store, "slow")
        .unwrap()
        .expect("a commit before the signals")
        .checkpoint
        .parse()
        .unwrap();
    let out = numbers_in(&s.read("out/out.jsonl"));
    assert!(committed >= 10, "{committed}");
    assert!(
        (0..committed).all(|n| out.contains(&n)),
        "every record before the committed checkpoint {committed} is in the output"
    );
}

/// A commit is durable once it returns: killed (-9) the moment weir logs a commit, the
/// store holds that checkpoint or a later one, never an earlier one.
#[test]
fn a_commit_that_returned_survives_kill_9() {
    let s = Scratch::new();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "counted"
batch_size = 50
[pipeline.source]
plugin = "{source}"
config = {{ total = 1000000 }}
{sink}"#,
        source = plugin("counter_stream").display(),
        sink = file_sink("out.jsonl", ""),
    )]);
    let log = [("RUST_LOG", "warn,weir_pipeline::delivery=debug")];
    let mut child = s.spawn_run_with(&[], &log);
    let started = Instant::now();
    // The third commit, so the store has moved on from its first value.
    let returned: u64 = loop {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no commit logged"
        );
        let committed: Vec<u64> = without_colours(&child.stderr())
            .lines()
            .filter(|l| l.contains("checkpoint committed"))
            .filter_map(|l| {
                l.split("checkpoint=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        if let Some(third) = committed.get(2) {
            break *third;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill_9();
    let store = weir_checkpoint::SqliteCheckpoints::open(&s.path(".weir")).unwrap();
    let stored: u64 = weir_checkpoint::CheckpointStore::load(&store, "counted")
        .unwrap()
        .expect("a checkpoint")
        .checkpoint
        .parse()
        .unwrap();
    assert!(stored >= returned, "committed {returned}, found {stored}");
}

/// `text` without the terminal colour codes the log may carry.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A slow sink slows the source: with `buffer_batches = 2` the source is polled only as
/// fast as the sink flushes, and weir's resident memory stays flat while many times the
/// buffer passes through, instead of growing with a backlog (which would add the source's
/// whole lead, hundreds of MiB, within the window).
#[test]
fn a_slow_sink_slows_the_source_and_memory_stays_bounded() {
    // 64 records of 64 KiB: 4 MiB a batch; the sink takes 100 ms to flush one.
    const BATCH_BYTES: u64 = 64 * 64 * 1024;
    const BUFFER: u64 = 2;
    let s = Scratch::new();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "slow"
batch_size = 64
buffer_batches = {BUFFER}
[pipeline.source]
plugin = "{source}"
config = {{ total = 100000000, pad = 65536 }}
[pipeline.sink]
plugin = "{sink}"
config = {{ flush_sleep_ms = 100 }}
"#,
        source = plugin("counter_stream").display(),
        sink = plugin("transform").display(),
    )]);
    let log = [("RUST_LOG", "warn,weir_pipeline::delivery=debug")];
    let mut child = s.spawn_run_with(&[], &log);
    let pid = child.pid();
    let commits = |child: &Running| child.stderr().matches("checkpoint committed").count();
    let started = Instant::now();
    let wait_for = |child: &mut Running, n: usize, mut each: Box<dyn FnMut()>| {
        while commits(child) < n {
            child.assert_running();
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "only {} commits",
                commits(child)
            );
            each();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Past the start, the buffer full. Resident memory swings by a few batches as they are
    // allocated and freed on different worker threads, so the baseline is the peak of a
    // first window, not one sample that may fall in a trough.
    wait_for(&mut child, 5, Box::new(|| {}));
    let peak = std::cell::Cell::new(rss(pid));
    let sample = || peak.set(peak.get().max(rss(pid)));
    wait_for(&mut child, 15, Box::new(&sample));
    let baseline = peak.get();
    wait_for(&mut child, 55, Box::new(&sample));
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let summary = run.summary("slow");
    let (batches, polls) = (
        summary["batches"].as_u64().unwrap(),
        summary["metrics"]["source.polls"].as_u64().unwrap(),
    );
    // Each poll is one batch: only the buffer and the two in hand run ahead of the sink.
    assert!(
        polls <= batches + BUFFER + 2,
        "{polls} polls for {batches} batches: the source ran ahead of the sink"
    );
    let growth = peak.get().saturating_sub(baseline);
    assert!(
        growth < 4 * BATCH_BYTES,
        "memory grew {} MiB while {} MiB passed through",
        growth >> 20,
        (40 * BATCH_BYTES) >> 20
    );
}
