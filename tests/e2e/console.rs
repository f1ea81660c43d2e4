//! The operator console `weir serve` serves at `/`, driven in a real headless Chromium
//! (Debian's, through tests/console/drive.mjs), and the API it adds.

use crate::fixtures::server::*;
use crate::support::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// Where the console's screenshots go: kept after the run, as the tests' artefacts.
fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// counter-stream counting to 30 → a jq step that rejects multiples of three → file-sink,
/// its dead letters in `<dir>/dlq`.
fn rejecting(dir: &std::path::Path) -> String {
    // Apart from the sink's directory, which a plugin may write.
    std::fs::create_dir_all(dir.join("out")).unwrap();
    counter_pipeline("letters", &dir.join("out"), 30, 0, "100ms").replace(
        "[sink]",
        &format!(
            r#"[[transforms]]
plugin = "jq"
config = {{ program = 'if .n % 3 == 0 then error("multiple of three <img src=x onerror=window.pwned=1>") else . end' }}
[dead_letter]
dir = "{}/dlq"
[sink]"#,
            dir.display()
        ),
    )
}

/// Runs one scenario of drive.mjs against `server`; fails the test with what the browser saw.
fn drive(server: &Server, scenario: &str, env: &[(&str, &str)]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/console/drive.mjs");
    assert!(
        script
            .with_file_name("node_modules/puppeteer-core")
            .is_dir(),
        "puppeteer-core is missing: scripts/setup.sh installs it (tests/console)"
    );
    let out = Command::new("node")
        .arg(&script)
        .arg(scenario)
        .env("WEIR_URL", &server.url)
        .env("WEIR_SHOTS", shots())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{scenario}: {said}\n{}", server.log());
    said
}

/// Two tenants, each with pipelines; one of acme's runs steadily, one fails at once.
/// Signed in as acme, the page shows acme's pipelines only, their counters move without a
/// reload, the failed one's page shows its error, and Pause on a pipeline's page pauses it
/// (the API says so, and its history records it). A bad token is refused; the admin sees
/// the tenants.
#[test]
fn an_operator_watches_and_pauses_pipelines_in_the_console() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme")).unwrap();
    std::fs::create_dir_all(s.path("globex")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    let globex = server.tenant("globex", tenant_with_dir(&s.path("globex"), json!({})));
    for token in [&acme, &globex] {
        server.push_plugin(token, "counter", "counter_stream");
        server.push_plugin(token, "file-sink", "file_sink");
    }
    server.push_plugin(&acme, "jq", "jq");
    server.create_ok(
        &acme,
        &counter_pipeline("steady", &s.path("acme"), 10_000_000, 20, "100ms"),
    );
    let broken = counter_pipeline("broken", &s.path("acme"), 10, 0, "100ms")
        .replace("file = \"broken.jsonl\"", "file = \"../broken.jsonl\"");
    server.create_ok(&acme, &broken);
    server.create_ok(
        &globex,
        &counter_pipeline("theirs", &s.path("globex"), 10, 0, "100ms"),
    );
    server.create_ok(&acme, &rejecting(&s.path("acme")));
    server.wait_for(&acme, "broken", LONG, |st| st["state"] == "failed");
    server.wait_for(&acme, "letters", LONG, |st| st["dead_letters"] == 10);

    drive(&server, "refused", &[]);
    drive(
        &server,
        "tenant",
        &[
            ("WEIR_TOKEN", &acme),
            ("WEIR_MINE", "steady,broken,letters"),
            ("WEIR_REJECTING", "letters"),
            ("WEIR_THEIRS", "theirs"),
            ("WEIR_RUNNING", "steady"),
            ("WEIR_FAILING", "broken"),
            ("WEIR_ERROR", "must be a plain file name"),
        ],
    );
    let paused = server.status(&acme, "steady");
    assert_eq!(paused["desired"], "paused", "{paused}");
    let (_, history) = server.call(Some(&acme), "GET", "/v1/pipelines/steady/history", None);
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "paused"]);
    drive(
        &server,
        "admin",
        &[("WEIR_ADMIN", ADMIN), ("WEIR_TENANTS", "acme,globex")],
    );
    for shot in [
        "console-pipelines.png",
        "console-pipeline.png",
        "console-failed-pipeline.png",
        "console-tenants.png",
    ] {
        let png = std::fs::read(shots().join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }
}

/// The page is public and holds no data; it runs only its own script (a content security
/// policy without inline script), and the API it calls still asks for a token.
#[test]
fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let s = Scratch::new();
    let server = Server::start(&s.path("data"), &[]);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    for (path, kind) in [
        ("/", "text/html"),
        ("/console.js", "text/javascript"),
        ("/console.css", "text/css"),
    ] {
        let mut r = agent.get(&format!("{}{path}", server.url)).call().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = r.body_mut().read_to_string().unwrap();
        if path == "/" {
            assert!(!body.contains("<script>"), "no inline script");
        }
    }
    let (status, _) = server.call(None, "GET", "/v1/events", None);
    assert_eq!(status, 401, "the events need a token");
}

/// `GET /v1/pipelines/{name}/series`: a running pipeline's counters, sampled every 5 s,
/// growing; another tenant's pipeline is not found. `GET /v1/events` streams the caller's
/// pipelines, and ends when its token is rotated.
#[test]
fn series_and_events_serve_the_console() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    let other = server.tenant("other", tenant_with_dir(&s.path("acme"), json!({})));
    server.push_plugin(&acme, "counter", "counter_stream");
    server.push_plugin(&acme, "file-sink", "file_sink");
    server.create_ok(
        &acme,
        &counter_pipeline("steady", &s.path("acme"), 10_000_000, 20, "100ms"),
    );
    let started = Instant::now();
    let samples = loop {
        let (status, reply) = server.call(Some(&acme), "GET", "/v1/pipelines/steady/series", None);
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["every_ms"], 5000);
        let samples = reply["samples"].as_array().unwrap().clone();
        if samples.len() >= 2 {
            break samples;
        }
        assert!(started.elapsed() < LONG, "{reply}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out: Vec<u64> = samples
        .iter()
        .map(|s| s["records_out"].as_u64().unwrap())
        .collect();
    assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
    assert!(
        samples[1]["at_ms"].as_u64() > samples[0]["at_ms"].as_u64(),
        "{samples:?}"
    );
    let (status, _) = server.call(Some(&other), "GET", "/v1/pipelines/steady/series", None);
    assert_eq!(status, 404, "another tenant's pipeline");

    // Who a token is, for the console to pick its view.
    let (_, me) = server.call(Some(&acme), "GET", "/v1/whoami", None);
    assert_eq!(me, json!({ "role": "tenant", "tenant": "acme" }));
    let (_, me) = server.call(Some(ADMIN), "GET", "/v1/whoami", None);
    assert_eq!(me, json!({ "role": "admin" }));
    assert_eq!(server.call(Some("nope"), "GET", "/v1/whoami", None).0, 401);

    // The event stream: two events with acme's pipeline, then nothing once the token is
    // rotated. (A read that waits past 15 s fails the test rather than hanging it.)
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_recv_body(Some(Duration::from_secs(15)))
        .build()
        .new_agent();
    let mut r = agent
        .get(&format!("{}/v1/events", server.url))
        .header("authorization", &format!("Bearer {acme}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut reader = std::io::BufReader::new(r.body_mut().as_reader());
    let mut events = 0;
    let mut line = String::new();
    while events < 2 {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0);
        if let Some(data) = line.strip_prefix("data:") {
            let event: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            let names: Vec<&str> = event["pipelines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["steady"]);
            events += 1;
        }
    }
    let (status, _) = server.call(Some(ADMIN), "POST", "/v1/tenants/acme/token", None);
    assert_eq!(status, 200);
    // At most the event already on its way, then the stream ends.
    let ended = Instant::now();
    let mut after = 0;
    loop {
        line.clear();
        match std::io::BufRead::read_line(&mut reader, &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        after += usize::from(line.starts_with("data:"));
        assert!(after <= 1, "the stream went on after the token was rotated");
        assert!(
            ended.elapsed() < Duration::from_secs(10),
            "the stream did not end"
        );
    }
}

/// `GET /v1/pipelines/{name}/dead-letters`: a page of the pipeline's dead letters from its
/// directory, newest first, with whether older ones remain; another tenant's pipeline is
/// not found.
#[test]
fn dead_letters_are_paged_newest_first() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    let other = server.tenant("other", tenant_with_dir(&s.path("acme"), json!({})));
    for (name, file) in [
        ("counter", "counter_stream"),
        ("file-sink", "file_sink"),
        ("jq", "jq"),
    ] {
        server.push_plugin(&acme, name, file);
    }
    server.create_ok(&acme, &rejecting(&s.path("acme")));
    server.wait_for(&acme, "letters", LONG, |st| st["dead_letters"] == 10);
    let page = |skip: usize, limit: usize| {
        let path = format!("/v1/pipelines/letters/dead-letters?skip={skip}&limit={limit}");
        let (status, reply) = server.call(Some(&acme), "GET", &path, None);
        assert_eq!(status, 200, "{reply}");
        let ns: Vec<u64> = reply["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert!(
                    l["reason"].as_str().unwrap().contains("multiple of three"),
                    "{l}"
                );
                assert_eq!(l["plugin"], "jq");
                serde_json::from_str::<serde_json::Value>(l["value"].as_str().unwrap()).unwrap()
                        ["n"]
                        .as_u64()
                        .unwrap()
            })
            .collect();
        (ns, reply["more"].as_bool().unwrap())
    };
    assert_eq!(page(0, 4), (vec![27, 24, 21, 18], true));
    assert_eq!(page(8, 4), (vec![3, 0], false));
    assert_eq!(page(0, 100).0.len(), 10);
    let (status, _) = server.call(
        Some(&other),
        "GET",
        "/v1/pipelines/letters/dead-letters",
        None,
    );
    assert_eq!(status, 404);

    // What the console's plugins and tenants tables show: sizes, usage.
    let (_, plugins) = server.call(Some(&acme), "GET", "/v1/plugins", None);
    let jq = std::fs::metadata(plugin("jq")).unwrap().len();
    let sizes: Vec<(String, u64)> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(sizes.contains(&("jq".to_string(), jq)), "{sizes:?}");
    let (_, tenants) = server.call(Some(ADMIN), "GET", "/v1/tenants", None);
    let acme_row = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme_row["pipelines"], 1, "{acme_row}");
    assert!(
        acme_row["cpu_seconds"].as_f64().unwrap() > 0.0,
        "{acme_row}"
    );
}

/// The server going away while the console is open: a banner says it cannot be reached.
#[test]
fn the_console_says_when_the_server_is_gone() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    server.push_plugin(&acme, "counter", "counter_stream");
    server.push_plugin(&acme, "file-sink", "file_sink");
    server.create_ok(
        &acme,
        &counter_pipeline("steady", &s.path("acme"), 10_000_000, 20, "100ms"),
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/console/drive.mjs");
    let mut browser = Command::new("node")
        .arg(&script)
        .arg("offline")
        .env("WEIR_URL", &server.url)
        .env("WEIR_SHOTS", shots())
        .env("WEIR_TOKEN", &acme)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(browser.stdout.take().unwrap());
    let mut said = String::new();
    while !said.contains("ok live") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            panic!("the browser ended before the page was live: {said}");
        }
        said += &line;
    }
    server.kill_9();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let ended = browser.wait_with_output().unwrap();
    assert!(
        ended.status.success() && rest.contains("ok offline banner"),
        "{said}{rest}{}",
        String::from_utf8_lossy(&ended.stderr)
    );
}

/// What a tenant can make the host hold, and read, through the console's API: at most
/// eight open event streams (the ninth is refused with 429, and a closed one frees its
/// place); and a dead-letter file or directory that is a link leading out of the tenant's
/// directory is not followed, so its target is not served.
#[test]
fn event_streams_are_capped_and_dead_letters_do_not_follow_links() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_recv_body(Some(Duration::from_secs(15)))
        .build()
        .new_agent();
    let open = || {
        agent
            .get(&format!("{}/v1/events", server.url))
            .header("authorization", &format!("Bearer {acme}"))
            .call()
            .unwrap()
    };
    let mut held: Vec<_> = (0..8).map(|_| open()).collect();
    assert!(held.iter().all(|r| r.status() == 200));
    assert_eq!(open().status(), 429, "a ninth stream");
    drop(held.pop());
    let freed = Instant::now();
    while open().status() != 200 {
        assert!(
            freed.elapsed() < LONG,
            "a closed stream's place was never freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Dead letters: a link named dead-letters.jsonl, then a dead-letter directory that is a
    // link, each to a file of lines that would pass as the pipeline's.
    let outside = s.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = r#"{"pipeline":"acme/letters","plugin":"jq","reason":"secret","key":null,"value":"{\"n\":1}"}"#;
    std::fs::write(outside.join("dead-letters.jsonl"), format!("{secret}\n")).unwrap();
    for (name, file) in [
        ("counter", "counter_stream"),
        ("file-sink", "file_sink"),
        ("jq", "jq"),
    ] {
        server.push_plugin(&acme, name, file);
    }
    std::fs::create_dir_all(s.path("acme/dlq")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("dead-letters.jsonl"),
        s.path("acme/dlq/dead-letters.jsonl"),
    )
    .unwrap();
    let pipeline = rejecting(&s.path("acme")).replace("total = 30", "total = 0");
    server.create_ok(&acme, &pipeline);
    let read = || {
        let (status, reply) = server.call(
            Some(&acme),
            "GET",
            "/v1/pipelines/letters/dead-letters",
            None,
        );
        assert!(!reply.to_string().contains("secret"), "{reply}");
        status
    };
    assert_eq!(read(), 500, "the link is refused, not followed");
    std::fs::remove_dir_all(s.path("acme/dlq")).unwrap();
    std::os::unix::fs::symlink(&outside, s.path("acme/dlq")).unwrap();
    assert_ne!(read(), 200, "a linked directory is refused too");
}
