//! The HTTP connectors, each written in another language than Rust, against a real HTTP
//! server: http-source (Python) and http-sink (JavaScript).

use crate::fixtures::web::Web;
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// http-source → file-sink, paging 40 at a time and asking for what changed since the cursor.
fn source_pipeline(name: &str, web: &Web, granted: &str, extra: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ url = "{url}", records = "data", page_size_param = "per_page", page_size = 40, cursor_field = "updated_at", cursor_param = "updated_since", key_field = "id" {extra} }}
grants.http = {{ hosts = ["{granted}"] }}
{sink}"#,
        source = plugin("http_source").display(),
        sink = file_sink(&format!("{name}.jsonl"), ", format = \"record\""),
        url = web.url("/items"),
    )
}

/// `(id, updated_at)` of every record written, in order.
fn delivered(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            let v = &r["value"];
            assert_eq!(r["key"], v["id"].to_string(), "key_field sets the key");
            (v["id"].as_u64().unwrap(), v["updated_at"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn python_http_source_pages_and_resumes_from_its_cursor() {
    let web = Web::start();
    web.upsert(0..250, 100);
    let s = Scratch::new();
    s.pipelines(&[source_pipeline("api", &web, &web.addr, "")]);

    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.summary("api")["records_written"], 250);
    let requests_first = web.state.lock().unwrap().requests;
    assert_eq!(requests_first, 7, "250 / 40 = 6 full pages and a short one");

    let second = s.run_once();
    assert_eq!(
        second.summary("api")["records_written"],
        0,
        "nothing changed"
    );

    // Three updated, five new: the next run asks for updated_at > 100 and gets eight.
    web.upsert([3, 77, 249], 200);
    web.upsert(250..255, 201);
    let third = s.run_once();
    assert_eq!(
        third.summary("api")["records_written"],
        8,
        "{}",
        third.stderr
    );

    let all = delivered(&s.read("out/api.jsonl"));
    assert_eq!(all.len(), 258);
    let expected_tail: Vec<(u64, u64)> = [(3, 200), (77, 200), (249, 200)]
        .into_iter()
        .chain((250..255).map(|i| (i, 201)))
        .collect();
    assert_eq!(all[250..], expected_tail[..]);
    let mut first_ids: Vec<u64> = all[..250].iter().map(|(id, _)| *id).collect();
    first_ids.sort();
    assert_eq!(first_ids, (0..250).collect::<Vec<_>>());
}

/// SIGKILL half-way through a long paged read, then rerun: every item arrives, and
/// duplicates are at most one page (the batch in flight).
#[test]
fn python_http_source_kill_9_mid_run_loses_nothing() {
    const N: u64 = 12_000;
    let web = Web::start();
    web.upsert(0..N, 100);
    web.state.lock().unwrap().delay = Duration::from_millis(15);
    let s = Scratch::new();
    s.pipelines(&[source_pipeline("api", &web, &web.addr, "")]);

    let mut running = s.spawn_run(&["--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.read("out/api.jsonl").lines().count() < 2_000 {
        running.assert_running();
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.kill_9();
    let partial = s.read("out/api.jsonl").lines().count() as u64;
    assert!(
        partial < N,
        "killed too late to test anything ({partial} written)"
    );

    web.state.lock().unwrap().delay = Duration::ZERO;
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    for (id, _) in delivered(&s.read("out/api.jsonl")) {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, N, "every item arrived");
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 40,
        "{duplicates} duplicates, more than one page"
    );
}

#[test]
fn a_host_outside_the_http_grant_is_refused_and_nothing_is_committed() {
    let web = Web::start();
    web.upsert(0..10, 100);
    let s = Scratch::new();
    // The same server, but under a name the grant does not list.
    let other = web.addr.replace("127.0.0.1", "localhost");
    s.pipelines(&[source_pipeline("api", &web, &other, "")]);
    let run = s.run_once();
    assert!(!run.ok);
    let summary = run.summary("api");
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("is not granted") && error.contains(&web.addr),
        "{error}"
    );
    assert!(summary["checkpoint"].is_null(), "{summary}");
    assert_eq!(
        web.state.lock().unwrap().requests,
        0,
        "no request left the host"
    );
}

/// A granted server cannot forward a request to a host the grant does not name: the host
/// hands the plugin the redirect instead of following it.
#[test]
fn redirects_are_not_followed() {
    let web = Web::start();
    web.upsert(0..10, 100);
    let s = Scratch::new();
    s.pipelines(&[
        source_pipeline("api", &web, &web.addr, "").replace(&web.url("/items"), &web.url("/moved"))
    ]);
    let run = s.run_once();
    assert!(!run.ok);
    let error = run.summary("api")["error"].as_str().unwrap().to_string();
    assert!(error.contains("HTTP 302"), "{error}");
    assert_eq!(
        web.state.lock().unwrap().requests,
        1,
        "only the granted URL was asked"
    );
}

/// An uncaught Python exception reaches the host as a typed error with its traceback.
#[test]
fn a_python_exception_is_reported_with_its_traceback() {
    let web = Web::start();
    web.upsert(0..3, 100);
    // A string cursor among integers: `>` between them raises TypeError in the guest.
    web.state.lock().unwrap().items[1]["updated_at"] = Value::from("yesterday");
    let s = Scratch::new();
    s.pipelines(&[source_pipeline("api", &web, &web.addr, "")]);
    let run = s.run_once();
    assert!(!run.ok);
    let error = run.summary("api")["error"].as_str().unwrap().to_string();
    assert_contains_all(
        &error,
        &[
            "batch-read.reader.next",
            "TypeError",
            "Traceback (most recent call last)",
            "app.py",
        ],
    );
}

fn sink_pipeline(web: &Web, batch: u32) -> String {
    format!(
        r#"
[[pipeline]]
name = "hook"
batch_size = {batch}
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ url = "{url}" }}
grants.http = {{ hosts = ["{addr}"] }}
[pipeline.dead_letter]
dir = "dlq"
"#,
        source = file_source(),
        sink = plugin("http_sink").display(),
        url = web.url("/ingest"),
        addr = web.addr,
    )
}

#[test]
fn js_http_sink_posts_each_batch_and_retries_passing_failures() {
    let web = Web::start();
    // The first POST fails with 503: the host retries the batch, nothing is lost or doubled.
    web.state.lock().unwrap().answers.push_back(503);
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..1000));
    s.pipelines(&[sink_pipeline(&web, 300)]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("hook")["records_written"], 1000);
    let state_posts = web.state.lock().unwrap().posted.len();
    assert_eq!(state_posts, 4, "one request per batch of 300");
    let values: Vec<u64> = web
        .posted_values()
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    assert_eq!(values, (0..1000).collect::<Vec<_>>());
    assert_eq!(web.state.lock().unwrap().requests, 5, "4 batches + 1 retry");
}

#[test]
fn js_http_sink_sends_rejected_batches_to_the_dead_letters() {
    let web = Web::start();
    // The second batch is refused for good.
    web.state.lock().unwrap().answers.extend([200, 422]);
    let s = Scratch::new();
    s.write("data/a.csv", "n\n1\n2\n3\n4\n5\n");
    s.pipelines(&[sink_pipeline(&web, 3)]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let summary = run.summary("hook");
    assert_eq!(summary["records_written"], 3);
    assert_eq!(summary["dead_letters"], 2);
    let dead: Vec<Value> = s
        .read("dlq/dead-letters.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d["reason"].as_str().unwrap().starts_with("HTTP 422")),
        "{dead:?}"
    );
    assert_eq!(dead[0]["value"], r#"{"n":"4"}"#);
}

/// SIGKILL while batches are being posted, then rerun: the endpoint has every record, and
/// duplicates are at most the batch in flight.
#[test]
fn js_http_sink_kill_9_mid_run_loses_nothing() {
    const N: u64 = 20_000;
    let web = Web::start();
    web.state.lock().unwrap().delay = Duration::from_millis(20);
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..N));
    s.pipelines(&[sink_pipeline(&web, 200)]);

    let mut running = s.spawn_run(&["--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while web.state.lock().unwrap().posted.len() < 20 {
        running.assert_running();
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    running.kill_9();
    let partial = web.state.lock().unwrap().posted.len();
    assert!(
        partial < 100,
        "killed too late to test anything ({partial} posts)"
    );

    web.state.lock().unwrap().delay = Duration::ZERO;
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    for v in web.posted_values() {
        *counts.entry(v["n"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, N, "every record arrived");
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 200,
        "{duplicates} duplicates, more than one batch"
    );
}

// --- What a plugin cannot make the host's HTTP client do ---

/// A `hostile` source GETting `url` (mode `http`, or `mode`) with the grant `grant`.
fn http_hostile(name: &str, mode: &str, url: &str, grant: &str, tail: &str) -> String {
    hostile_pipeline(
        name,
        mode,
        &format!(", count = 1, target = \"{url}\""),
        &format!("grants.http = {{ {grant} }}"),
        tail,
    )
}

/// `Host` picks the virtual server behind an address: a plugin granted one name must not
/// reach another through the same address.
#[test]
fn a_plugin_cannot_set_the_host_header() {
    let web = Web::start();
    let s = Scratch::new();
    let grant = format!("hosts = [\"{}\"]", web.addr);
    s.pipelines(&[http_hostile(
        "hdr",
        "http-host-header",
        &web.url("/big?bytes=1"),
        &grant,
        "",
    )]);
    let error = s.run_once().error("hdr");
    assert!(error.contains("the `host` header cannot be set"), "{error}");
    assert_eq!(web.state.lock().unwrap().requests, 0, "nothing was sent");
}

/// The proxy variables of the host's environment are the operator's, for the operator's
/// tools: a plugin's request goes to the granted server and nowhere else.
#[test]
fn proxy_variables_in_the_hosts_environment_are_ignored() {
    let web = Web::start();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let s = Scratch::new();
    let grant = format!("hosts = [\"{}\"]", web.addr);
    s.pipelines(&[http_hostile(
        "get",
        "http",
        &web.url("/big?bytes=3"),
        &grant,
        "",
    )]);
    let mut weir = s.weir(&["run", "pipeline.toml", "--once", "--output", "json"]);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        weir.env(var, &proxy_url);
    }
    let run = Run::from(weir.output().unwrap());
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(web.state.lock().unwrap().requests, 1);
    assert_eq!(
        std::fs::read_to_string(s.path("out/get.jsonl"))
            .unwrap()
            .trim(),
        r#"{"leaked":"status 200"}"#
    );
    assert!(
        matches!(proxy.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the proxy was contacted"
    );
}

/// `max_response` bounds what one response may put in the host's memory.
#[test]
fn a_response_larger_than_max_response_fails_the_call() {
    let web = Web::start();
    let s = Scratch::new();
    let grant = format!("hosts = [\"{}\"], max_response = \"1 KiB\"", web.addr);
    s.pipelines(&[
        http_hostile("small", "http", &web.url("/big?bytes=1000"), &grant, ""),
        http_hostile("big", "http", &web.url("/big?bytes=65536"), &grant, ""),
    ]);
    let run = s.run_once();
    assert_eq!(run.summary("small")["status"], "ok", "{}", run.stderr);
    let error = run.error("big");
    assert!(
        error.contains("larger than the grant's limit of 1024 bytes"),
        "{error}"
    );
}

/// A host call blocks outside the guest, where the epoch deadline cannot reach it: the
/// request's own timeout is capped at the call deadline, so a slow server ends the call
/// with a timeout (retried as transient) instead of holding it past its deadline.
#[test]
fn an_http_request_cannot_outlast_the_call_deadline() {
    let web = Web::start();
    web.state.lock().unwrap().delay = Duration::from_secs(2);
    let s = Scratch::new();
    let grant = format!("hosts = [\"{}\"]", web.addr);
    let limits = "[pipeline.limits]\ncall_timeout = \"1s\"\n";
    s.pipelines(&[http_hostile(
        "slow",
        "http",
        &web.url("/big?bytes=3"),
        &grant,
        limits,
    )]);
    let error = s.run_once().error("slow").to_lowercase();
    assert!(error.contains("timeout"), "{error}");
    assert!(
        !error.contains("interrupted"),
        "the call ran past its deadline: {error}"
    );
}
