//! `weir serve`: the management API, pipelines that survive restarts, hot swaps.

use crate::fixtures::server::*;
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// file-source reading `<dir>/in` → file-sink writing `<dir>/out/<out>`.
pub fn copy_pipeline(name: &str, dir: &Path, out: &str, batch_size: u32) -> String {
    let dir = dir.display();
    format!(
        r#"
name = "{name}"
batch_size = {batch_size}
[source]
plugin = "file-source"
config = {{ dir = "/in" }}
grants.dirs = [{{ host = "{dir}/in", guest = "/in" }}]
[sink]
plugin = "file-sink"
config = {{ dir = "/out", file = "{out}" }}
grants.dirs = [{{ host = "{dir}/out", guest = "/out", write = true }}]
"#
    )
}

/// A server with one tenant, `acme`, owning `<scratch>/acme`, with the file plugins and
/// the counter pushed.
fn acme(s: &Scratch, extra: &[&str]) -> (Server, String) {
    std::fs::create_dir_all(s.path("acme/in")).unwrap();
    let server = Server::start(&s.path("data"), extra);
    let token = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    server.push_plugin(&token, "file-source", "file_source");
    server.push_plugin(&token, "file-sink", "file_sink");
    server.push_plugin(&token, "counter", "counter_stream");
    (server, token)
}

/// `weir ARGS` as a client of `server` with `token`, run in `dir`: whether it succeeded,
/// its stdout and its stderr.
fn client(server: &Server, token: &str, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env("WEIR_SERVER", &server.url)
        .env("WEIR_TOKEN", token)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stdout, stderr)
}

fn state(status: &Value) -> &str {
    status["state"].as_str().unwrap_or_default()
}

#[test]
fn requests_without_a_valid_token_get_401_and_no_data() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    assert_eq!(server.call(None, "GET", "/healthz", None).0, 200);
    for path in ["/v1/pipelines", "/v1/plugins", "/v1/tenants", "/metrics"] {
        for bad in [None, Some("wrong"), Some("")] {
            let (status, body) = server.call(bad, "GET", path, None);
            assert_eq!(status, 401, "{path} with {bad:?}: {body}");
            assert_eq!(body.as_object().unwrap().len(), 1, "only an error: {body}");
            assert!(body["error"].is_string());
        }
    }
    // A tenant cannot act as admin, nor the admin as a tenant.
    assert_eq!(server.call(Some(&token), "GET", "/v1/tenants", None).0, 403);
    assert_eq!(server.call(Some(&token), "GET", "/metrics", None).0, 403);
    assert_eq!(
        server.call(Some(ADMIN), "GET", "/v1/pipelines", None).0,
        403
    );
    // Rotating the token ends the old one; a tenant with no pipelines can be deleted.
    let (status, rotated) = server.call(Some(ADMIN), "POST", "/v1/tenants/acme/token", None);
    assert_eq!(status, 200, "{rotated}");
    let fresh = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(server.call(Some(&token), "GET", "/v1/plugins", None).0, 401);
    let (status, plugins) = server.call(Some(&fresh), "GET", "/v1/plugins", None);
    assert_eq!(status, 200);
    assert_eq!(plugins.as_array().unwrap().len(), 3);
    // The token is stored hashed: it appears nowhere in the data directory.
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for t in [&token, &fresh] {
                let found = bytes.windows(t.len()).any(|w| w == t.as_bytes());
                assert!(!found, "a token is stored in {}", path.display());
            }
        }
    }
    let other = server.tenant("other", json!({}));
    server.create_ok(&fresh, &copy_pipeline("p", &s.path("acme"), "p.jsonl", 10));
    let (status, reply) = server.call(Some(ADMIN), "DELETE", "/v1/tenants/acme", None);
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        server
            .call(Some(&fresh), "DELETE", "/v1/pipelines/p", None)
            .0,
        200
    );
    assert_eq!(
        server
            .call(Some(ADMIN), "DELETE", "/v1/tenants/acme", None)
            .0,
        200
    );
    assert_eq!(server.call(Some(&fresh), "GET", "/v1/plugins", None).0, 401);
    assert_eq!(server.call(Some(&other), "GET", "/v1/plugins", None).0, 200);
    let files = std::fs::read_dir(server.data_dir.join("plugins"))
        .unwrap()
        .count();
    assert_eq!(
        files, 1,
        "only the staging folder is left: the plugin files went with the tenant"
    );
}

#[test]
fn pipelines_are_managed_from_the_cli_and_survive_a_restart() {
    let s = Scratch::new();
    s.write("acme/in/a.jsonl", &numbered(0..1000));
    let (server, token) = acme(&s, &[]);
    let cli = |args: &[&str]| client(&server, &token, &s.path(""), args);

    s.write(
        "copy.toml",
        &copy_pipeline("copy", &s.path("acme"), "copy.jsonl", 100),
    );
    let (ok, out, err) = cli(&["pipeline", "create", "copy.toml"]);
    assert!(ok, "{out}{err}");
    // A push without --name names the plugin as its spec does, not as its file is named.
    let (ok, out, err) = cli(&["plugin", "push", plugin("broken_sink").to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let pushed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pushed["name"], "broken-sink", "{pushed}");
    s.write(
        "count.toml",
        &counter_pipeline("count", &s.path("acme/out"), 1_000_000, 20, "100ms"),
    );
    assert!(cli(&["pipeline", "create", "count.toml"]).0);
    let copied = server.wait_for(&token, "copy", LONG, |st| state(st) == "finished");
    assert_eq!(copied["records_out"], 1000);
    assert!(copied["checkpoint"].is_string(), "{copied}");
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(500)
    });

    let (ok, out, err) = cli(&["pipeline", "pause", "count"]);
    assert!(ok, "{err}");
    let paused: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(paused["desired"], "paused");
    let paused = server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let (ok, out, _) = cli(&["pipeline", "list"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // A duplicate name is refused.
    let (ok, _, err) = cli(&["pipeline", "create", "copy.toml"]);
    assert!(
        !ok && err.contains("409") && err.contains("exists"),
        "{err}"
    );

    // Restart: both pipelines come back as they were.
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
    let written = numbers_in(&s.read("acme/out/count.jsonl"));
    assert!(
        written.iter().copied().eq(0..written.len() as u64),
        "contiguous before restart"
    );
    let server = Server::start(&s.path("data"), &[]);
    let back = server.status(&token, "count");
    assert_eq!(back["desired"], "paused");
    assert_eq!(state(&back), "paused");
    assert_eq!(back["checkpoint"], paused["checkpoint"]);
    let copy = server.wait_for(&token, "copy", LONG, |st| state(st) == "finished");
    assert_eq!(
        copy["records_out"], 0,
        "nothing new to copy: the checkpoint held"
    );

    server.action(&token, "count", "resume");
    let before = written.len() as u64;
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(300)
    });
    server.action(&token, "count", "pause");
    server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let all = numbers_in(&s.read("acme/out/count.jsonl"));
    assert!(all.len() as u64 >= before + 300);
    assert!(
        all.iter().copied().eq(0..all.len() as u64),
        "resumed where it stopped: no gap, no duplicate"
    );

    // Delete removes the pipeline and its checkpoint.
    let (status, _) = server.call(Some(&token), "DELETE", "/v1/pipelines/copy", None);
    assert_eq!(status, 200);
    assert_eq!(
        server
            .call(Some(&token), "GET", "/v1/pipelines/copy", None)
            .0,
        404
    );
}

#[test]
fn bad_pipelines_are_refused_with_the_field() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    let good = copy_pipeline("p", &s.path("acme"), "p.jsonl", 10);
    let cases = [
        (
            good.replace("config = { dir = \"/in\" }", "config = { dir = 7 }"),
            "/dir",
        ),
        (
            good.replace("batch_size = 10", "batchsize = 10"),
            "batchsize",
        ),
        (
            good.replace("plugin = \"file-source\"", "plugin = \"nope\""),
            "no plugin `nope`",
        ),
        (
            good.replace("plugin = \"file-source\"", "plugin = \"file-sink\""),
            "its source cannot be a sink",
        ),
        (
            good.replace("plugin = \"file-source\"", "plugin = \"file-source@9\""),
            "file-source@9",
        ),
        (
            format!("{good}[limits]\nmemory = \"8 GiB\"\n"),
            "limits.memory",
        ),
        (
            good.replace(&format!("{}/in", s.path("acme").display()), "/etc"),
            "source.grants.dirs[0].host",
        ),
        (
            good.replace("name = \"p\"", "name = \"../p\""),
            "pipeline name",
        ),
        (
            format!("{good}[source.grants.http]\nhosts = [\"example.com\"]\n"),
            "host `example.com` is not granted",
        ),
    ];
    for (toml, expected) in cases {
        let (status, reply) = server.create(&token, &toml);
        assert!(
            status == 422 || status == 400,
            "{expected}: {status} {reply}"
        );
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(expected), "{expected:?} not in {error}");
    }
    let (_, listed) = server.call(Some(&token), "GET", "/v1/pipelines", None);
    assert_eq!(listed, json!([]), "nothing was created");
    assert!(!Path::new("/etc/out").exists());

    // The same definition as JSON is accepted.
    let table: toml::Table = toml::from_str(&good).unwrap();
    let (status, reply) = server.call(
        Some(&token),
        "POST",
        "/v1/pipelines",
        Some(("application/json", serde_json::to_vec(&table).unwrap())),
    );
    assert_eq!(status, 201, "{reply}");
    assert_eq!(
        reply["pinned"]["source"],
        json!({"name": "file-source", "version": 1})
    );
}

#[test]
fn a_new_version_swaps_in_at_a_checkpoint_boundary() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms"),
    );
    let v1 = server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(2000)
    });
    assert_eq!(v1["source"]["version"], 1);

    // A pipeline created with `counter@1` is pinned: pushes leave it there.
    server.create_ok(
        &token,
        &counter_pipeline("pinned", &s.path("acme/out"), 1000, 0, "100ms")
            .replace("plugin = \"counter\"", "plugin = \"counter@1\""),
    );
    // Version 2 is new code: it marks its records.
    let (status, pushed) = server.push(&token, "counter", read_plugin("counter_stream_marked"));
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["version"], 2);
    assert_eq!(pushed["upgraded"], json!(["count"]));
    let v2 = server.wait_for(&token, "count", LONG, |st| {
        st["source"]["version"] == 2
            && st["records_out"].as_u64() > st["records_out_before_run"].as_u64().map(|n| n + 500)
    });
    assert_eq!(state(&v2), "running");
    assert_eq!(v2["failures"], 0);

    // A version whose schema rejects the pipeline's config is refused; v2 keeps running.
    let (status, refused) = server.push(&token, "counter", read_plugin("hostile"));
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("pipeline `count`") && error.contains("rejects its source config"),
        "{error}"
    );
    let (_, versions) = server.call(Some(&token), "GET", "/v1/plugins/counter", None);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let still = server.status(&token, "count");
    assert_eq!(still["source"]["version"], 2);
    assert_eq!(state(&still), "running");
    assert_eq!(
        server.status(&token, "pinned")["pinned"]["source"]["version"],
        1
    );
    assert_eq!(
        server
            .call(Some(&token), "DELETE", "/v1/pipelines/pinned", None)
            .0,
        200
    );

    // Back to version 1 by command; the version in use cannot be deleted.
    let (status, reply) = server.call(
        Some(&token),
        "POST",
        "/v1/pipelines/count/upgrade",
        Some(("application/json", br#"{"source_version": 1}"#.to_vec())),
    );
    assert_eq!(status, 200, "{reply}");
    server.wait_for(&token, "count", LONG, |st| {
        st["source"]["version"] == 1
            && st["records_out"].as_u64() > st["records_out_before_run"].as_u64().map(|n| n + 100)
    });
    let (status, reply) = server.call(Some(&token), "DELETE", "/v1/plugins/counter/1", None);
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        server
            .call(Some(&token), "DELETE", "/v1/plugins/counter/2", None)
            .0,
        200
    );

    server.action(&token, "count", "pause");
    let end = server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let written = numbers_in(&s.read("acme/out/count.jsonl"));
    assert_eq!(written.len() as u64, end["records_out"].as_u64().unwrap());
    assert!(
        written.iter().copied().eq(0..written.len() as u64),
        "two swaps, no record lost or repeated"
    );
    // Version 1's records, then version 2's (marked), then version 1's again: each swap
    // at one record, the first of the new code right after the last of the old.
    let text = s.read("acme/out/count.jsonl");
    let marks: Vec<bool> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["marked"] == true)
        .collect();
    let runs: Vec<(bool, usize)> = marks
        .chunk_by(|a, b| a == b)
        .map(|r| (r[0], r.len()))
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        [false, true, false],
        "runs of (marked, length): {runs:?}"
    );
    assert_eq!(end["checkpoint"], written.len().to_string());
}

#[test]
fn a_watched_directory_pushes_changed_plugin_files() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("watch/acme")).unwrap();
    let watch = s.path("watch").display().to_string();
    let (server, token) = acme(&s, &["--watch", &watch]);
    std::fs::write(
        s.path("watch/acme/counter.wasm"),
        new_version(read_plugin("counter_stream"), "w1"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while server
        .call(Some(&token), "GET", "/v1/plugins/counter/2", None)
        .0
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms"),
    );
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(500)
    });
    std::fs::write(
        s.path("watch/acme/counter.wasm"),
        new_version(read_plugin("counter_stream"), "w2"),
    )
    .unwrap();
    let swapped = server.wait_for(&token, "count", LONG, |st| st["source"]["version"] == 3);
    assert_eq!(swapped["pinned"]["source"]["version"], 3);
    // A broken file is refused and logged; the pipeline keeps its version.
    std::fs::write(s.path("watch/acme/counter.wasm"), b"not wasm").unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while !server.log().contains("watched plugin refused") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.status(&token, "count")["source"]["version"], 3);
}

#[test]
fn a_tenant_cpu_share_holds_its_pipelines_down() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme/in")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let token = server.tenant(
        "acme",
        tenant_with_dir(&s.path("acme"), json!({ "cpu": 0.2 })),
    );
    server.push_plugin(&token, "file-sink", "file_sink");
    server.push_plugin(&token, "counter", "counter_stream");
    // Two busy pipelines (no sleep between polls) share the tenant's fifth of a core.
    for name in ["busy1", "busy2"] {
        server.create_ok(
            &token,
            &counter_pipeline(name, &s.path("acme/out"), u64::MAX / 2, 0, "100ms"),
        );
    }
    // Both running and held down (a condition), then the whole process's CPU time from
    // /proc over a window: what the tenant really used, not what weir's own bucket counted.
    for name in ["busy1", "busy2"] {
        server.wait_for(&token, name, LONG, |st| {
            st["records_out"].as_u64() > Some(0) && st["throttled_ns"].as_u64() > Some(0)
        });
    }
    let pid = server.pid();
    let (before, started) = (process_cpu_seconds(pid), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(4)); // the observation window
    let used = process_cpu_seconds(pid) - before;
    let wall = started.elapsed().as_secs_f64();
    // Tolerance: the share over the window, plus the banked burst (0.1 s) and one batch
    // per pipeline charged after the fact (0.1 s each), plus 5% of a core for what the
    // bucket does not see (the delivery loop's own bookkeeping, WASI's helper threads, the
    // API answering these calls). Measured here: 1.14 s of 1.30 s allowed in 4 s.
    // Unthrottled, the two pipelines take one to two cores.
    let bound = 0.2 * wall + 0.1 + 0.2 + 0.05 * wall;
    eprintln!("the process used {used:.2} s of CPU in {wall:.1} s (bound {bound:.2} s)");
    assert!(
        used <= bound,
        "the process used {used:.2} s of CPU in {wall:.1} s; the share allows {bound:.2} s"
    );
    let metrics = server.metrics();
    assert!(metrics.contains("weir_throttled_seconds_total{tenant=\"acme\",pipeline=\"busy1\"}"));
    // A share that is not a positive number of cores is refused.
    let (status, reply) = server.call(
        Some(ADMIN),
        "POST",
        "/v1/tenants",
        Some((
            "application/json",
            br#"{"name": "x", "quotas": {"cpu": 0}}"#.to_vec(),
        )),
    );
    assert_eq!(status, 400, "{reply}");
}

/// `weir pipeline update` (PUT /v1/pipelines/{name}) gives a pipeline a new definition and
/// keeps its checkpoint: it goes on where it committed, into what the new definition says.
/// A rename, or a definition that does not fit, is refused and changes nothing.
#[test]
fn an_update_keeps_the_checkpoint_and_resumes_there() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    let out = s.path("acme/out");
    let definition = counter_pipeline("count", &out, 10_000_000, 5, "100ms");
    server.create_ok(&token, &definition);
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(300)
    });
    let cli = |args: &[&str]| {
        let (ok, out, err) = client(&server, &token, &s.path(""), args);
        (ok, out + &err)
    };
    s.write(
        "renamed.toml",
        &definition.replace("name = \"count\"", "name = \"other\""),
    );
    let renamed = s.path("renamed.toml");
    let (ok, said) = cli(&["pipeline", "update", renamed.to_str().unwrap()]);
    assert!(!ok && said.contains("pipeline `other` not found"), "{said}");
    let renamed = definition.replace("name = \"count\"", "name = \"other\"");
    let (status, reply) = server.call(
        Some(&token),
        "PUT",
        "/v1/pipelines/count",
        Some(("application/toml", renamed.into_bytes())),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(reply.to_string().contains("keeps its name"), "{reply}");
    let misfit = definition.replace("total = 10000000", "total = \"many\"");
    s.write("count.toml", &misfit);
    let (ok, said) = cli(&["pipeline", "update", "count.toml"]);
    assert!(!ok && said.contains("total"), "{said}");

    s.write(
        "count.toml",
        &definition.replace("count.jsonl", "count2.jsonl"),
    );
    let (ok, said) = cli(&["pipeline", "update", "count.toml"]);
    assert!(ok, "{said}");
    let started = std::time::Instant::now();
    while numbers_in(&s.read("acme/out/count2.jsonl")).len() < 200 {
        assert!(started.elapsed() < LONG, "the new definition never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.action(&token, "count", "pause");
    server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let mut all = numbers_in(&s.read("acme/out/count.jsonl"));
    let before = all.len();
    all.extend(numbers_in(&s.read("acme/out/count2.jsonl")));
    assert!(
        all.iter().copied().eq(0..all.len() as u64),
        "the new definition went on where the old one committed ({before} records before)"
    );
}

/// `weir pipeline checkpoint` (GET/PUT/DELETE /v1/pipelines/{name}/checkpoint): shown;
/// moving it is refused while the pipeline runs; paused, a set (checked by opening the
/// source) or a reset is where it resumes, over the checkpoint file-sink keeps with its
/// data.
#[test]
fn an_operator_moves_a_paused_pipelines_checkpoint() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 1000, 0, "100ms"),
    );
    let written = || numbers_in(&s.read("acme/out/count.jsonl"));
    let wait_for_lines = |n: usize| {
        let started = std::time::Instant::now();
        while written().len() < n {
            assert!(
                started.elapsed() < LONG,
                "only {} of {n} lines",
                written().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_lines(1000);
    let cli = |args: &[&str]| {
        let (ok, out, err) = client(&server, &token, &s.path(""), args);
        (ok, out + &err)
    };
    let (ok, shown) = cli(&["pipeline", "checkpoint", "count"]);
    assert!(ok, "{shown}");
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["checkpoint"],
        "1000"
    );
    let (ok, said) = cli(&["pipeline", "checkpoint", "count", "--reset"]);
    assert!(!ok && said.contains("pause it first"), "{said}");

    server.action(&token, "count", "pause");
    server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let (ok, said) = cli(&["pipeline", "checkpoint", "count", "--set", r#"{"x":1}"#]);
    assert!(
        !ok && said.contains("the source refuses checkpoint"),
        "{said}"
    );
    let (ok, said) = cli(&["pipeline", "checkpoint", "count", "--set", "500"]);
    assert!(ok, "{said}");
    let moved: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(moved["checkpoint"], "500");
    assert!(moved["moved_at_ms"].is_u64(), "{moved}");
    server.action(&token, "count", "resume");
    wait_for_lines(1500);

    server.action(&token, "count", "pause");
    server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    assert!(cli(&["pipeline", "checkpoint", "count", "--reset"]).0);
    server.action(&token, "count", "resume");
    wait_for_lines(2500);
    let expected: Vec<u64> = (0..1000).chain(500..1000).chain(0..1000).collect();
    assert_eq!(written(), expected);

    // Each step is in the pipeline's history, the refused ones not.
    let (ok, said) = cli(&["pipeline", "history", "count"]);
    assert!(ok, "{said}");
    let history: Value = serde_json::from_str(&said).unwrap();
    let events = history["history"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "paused",
            "checkpoint set",
            "resumed",
            "paused",
            "checkpoint reset",
            "resumed"
        ]
    );
    assert_eq!(events[0]["detail"]["versions"]["source"], "counter@1");
    assert_eq!(events[2]["detail"], json!({ "from": "1000", "to": "500" }));
    assert_eq!(events[5]["detail"]["to"], Value::Null);
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["at_ms"].as_u64() <= w[1]["at_ms"].as_u64())
    );
}

/// A connector's own counters (`metrics.counter-add`) are live in the pipeline's status
/// and in `/metrics`, labelled by tenant, pipeline, side and plugin.
#[test]
fn guest_counters_show_in_the_status_and_in_metrics() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms"),
    );
    let polls = |st: &Value| {
        st["guest_counters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["side"] == "source" && g["name"] == "polls")
            .and_then(|g| g["value"].as_u64())
    };
    let status = server.wait_for(&token, "count", LONG, |st| polls(st) >= Some(3));
    let counted = polls(&status).unwrap();
    let metrics = server.metrics();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("weir_guest_metric{tenant=\"acme\",pipeline=\"count\",side=\"source\"")
                && l.contains("name=\"polls\"")
        })
        .unwrap_or_else(|| panic!("no guest counter in /metrics:\n{metrics}"));
    let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        value >= counted,
        "{line} (the status said {counted} before)"
    );
}

#[test]
fn a_crashed_server_resumes_its_pipelines_from_their_checkpoints() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms"),
    );
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(3000)
    });
    server.kill_9();
    let before = numbers_in(&s.read("acme/out/count.jsonl")).len() as u64;

    let server = Server::start(&s.path("data"), &[]);
    let back = server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(2000)
    });
    assert_eq!(back["desired"], "running");
    server.action(&token, "count", "pause");
    server.wait_for(&token, "count", LONG, |st| state(st) == "paused");
    let written = numbers_in(&s.read("acme/out/count.jsonl"));
    let mut distinct = written.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let last = *distinct.last().unwrap();
    assert!(last >= before, "it went on after the crash");
    assert!(
        distinct.iter().copied().eq(0..=last),
        "no record lost across the crash"
    );
    // Only what the sink wrote after the last commit comes again: the one batch being
    // written (batches still in the channel never reached the sink), 100 records.
    let repeated = written.len() - distinct.len();
    assert!(
        repeated <= 100,
        "{repeated} records repeated: more than the batch in flight"
    );
}

#[test]
fn narrowing_a_tenants_grants_stops_pipelines_that_reach_beyond_them() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    server.create_ok(
        &token,
        &counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms"),
    );
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(200)
    });
    // The operator takes the directory away; the running pipeline is stopped at its next
    // start, with the reason.
    let narrowed = json!({ "quotas": {}, "grants": {} }).to_string();
    let (status, reply) = server.call(
        Some(ADMIN),
        "PUT",
        "/v1/tenants/acme",
        Some(("application/json", narrowed.into_bytes())),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["grants"]["dirs"], json!([]));
    server.action(&token, "count", "pause");
    server.action(&token, "count", "resume");
    let stopped = server.wait_for(&token, "count", LONG, |st| state(st) == "failed");
    let error = stopped["last_error"].as_str().unwrap();
    assert!(
        error.contains("sink.grants.dirs") && error.contains("not within the tenant's"),
        "{error}"
    );
    assert_eq!(
        stopped["failures"], 1,
        "refused at once, not retried: {stopped}"
    );
}

/// With a certificate, the API speaks only TLS and the CLI verifies it against the CA it
/// is given; without one, `weir serve` refuses a non-loopback address unless told.
#[test]
fn the_api_over_tls_is_verified_and_plain_http_stays_on_loopback() {
    let s = Scratch::new();
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    s.write("tls/cert.pem", &made.cert.pem());
    s.write("tls/key.pem", &made.signing_key.serialize_pem());
    let (cert, key) = (s.path("tls/cert.pem"), s.path("tls/key.pem"));
    let server = Server::start(
        &s.path("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let cli = |url: &str, ca: Option<&Path>| {
        let mut args = vec!["tenant", "list", "--server", url];
        if let Some(ca) = ca {
            args.extend(["--ca-file", ca.to_str().unwrap()]);
        }
        s.weir(&args)
            .env("WEIR_TOKEN", ADMIN)
            .env_remove("WEIR_CA_FILE")
            .output()
            .unwrap()
    };
    let trusted = cli(&server.url, Some(&cert));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let listed: Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(listed, json!([]));
    let untrusted = cli(&server.url, None);
    assert!(
        !untrusted.status.success(),
        "a certificate no root vouches for is refused"
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("cannot reach weir serve"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    let plain = cli(&server.url.replace("https://", "http://"), None);
    assert!(!plain.status.success(), "no plain HTTP on the TLS port");

    let mut open = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(s.path("data2"))
        .env("WEIR_ADMIN_TOKEN", ADMIN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while open.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            open.kill().unwrap();
            panic!("weir serve listened on 0.0.0.0 over plain HTTP");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = open.wait_with_output().unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("refusing to serve the API over plain HTTP"),
        "{error}"
    );
    assert!(
        !s.path("data2").exists(),
        "refused before anything was made"
    );
}

/// The API asks a pipeline's source what it can read, inside the tenant's grants.
#[test]
fn the_api_lists_a_pipelines_streams() {
    let s = Scratch::new();
    let (server, token) = acme(&s, &[]);
    std::fs::write(s.path("acme/in/a.jsonl"), "{}\n").unwrap();
    std::fs::write(s.path("acme/in/b.jsonl"), "{}\n").unwrap();
    server.create_ok(&token, &copy_pipeline("p", &s.path("acme"), "p.jsonl", 10));
    let (status, reply) = server.call(Some(&token), "GET", "/v1/pipelines/p/streams", None);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["streams"],
        json!([{ "name": "a.jsonl", "schema": null }, { "name": "b.jsonl", "schema": null }])
    );
    let (status, _) = server.call(Some(&token), "GET", "/v1/pipelines/nope/streams", None);
    assert_eq!(status, 404);
}

/// User and system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = rest[11].parse::<f64>().unwrap() + rest[12].parse::<f64>().unwrap();
    let per_second: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    ticks / per_second
}

/// Each subcommand of the CLI says what it does in one line of its own (not its server
/// options' description), and each that talks to a server says which token it needs;
/// `--server` names its environment variable once.
#[test]
fn every_subcommand_says_what_it_does_and_which_token_it_needs() {
    let s = Scratch::new();
    let help = |args: &[&str]| -> String {
        let out = s.weir(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for group in ["plugin", "tenant", "pipeline", "cluster"] {
        let text = help(&[group, "--help"]);
        let commands = text
            .split("Commands:")
            .nth(1)
            .and_then(|rest| rest.split("Options:").next())
            .unwrap();
        for line in commands.lines().filter(|l| !l.trim().is_empty()) {
            let (name, about) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let about = about.trim();
            if name == "help" {
                continue;
            }
            assert!(
                !about.is_empty(),
                "`weir {group} {name}` has no description"
            );
            assert!(
                !about.starts_with("Where the server is"),
                "`weir {group} {name}` borrows its options' description"
            );
            if !(group == "plugin" && name == "inspect") {
                assert!(about.contains("token"), "`weir {group} {name}`: {about}");
            }
        }
    }
    let list = help(&["pipeline", "list", "--help"]);
    assert_eq!(list.matches("WEIR_SERVER").count(), 1, "{list}");
}

/// README's walkthrough (admin → tenant → push → pipeline with absolute paths and a file
/// secret → watch → update → checkpoint reset), run as it stands in the README.
#[test]
fn the_readme_walkthrough_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script = readme
        .split("<!-- walkthrough -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- /walkthrough -->").next())
        .expect("README has the walkthrough block");
    let s = Scratch::new();
    s.write("walkthrough.sh", script);
    std::fs::create_dir_all(s.path("dist/bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_weir"), s.path("dist/bin/weir")).unwrap();
    std::os::unix::fs::symlink(
        plugin("file_sink").parent().unwrap(),
        s.path("dist/plugins"),
    )
    .unwrap();
    let mut run = Command::new("bash")
        .args(["-euo", "pipefail", "walkthrough.sh"])
        .current_dir(s.path(""))
        .env("WEIR_DIST", s.path("dist"))
        .env("PORT", crate::fixtures::ports::free_port().to_string())
        .env_remove("WEIR_TOKEN")
        .env_remove("WEIR_SERVER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while run.try_wait().unwrap().is_none() {
        if started.elapsed() > LONG {
            let _ = run.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the walkthrough failed:\n{said}");
    assert!(said.contains("walkthrough: done"), "{said}");
}
