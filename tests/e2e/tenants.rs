//! The hostile-plugin suite: every attack runs in tenant `evil` while tenant `good` runs a
//! normal pipeline in the same `weir serve`. Each must be contained, `good`'s records must
//! all arrive, and the host must stay up.

use crate::serve::copy_pipeline;
use crate::server::*;
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// A hostile batch source in `mode` → file-sink, in the evil tenant's directory.
fn attack(name: &str, evil: &std::path::Path, mode: &str, target: &str, grants: &str) -> String {
    let dir = evil.display();
    format!(
        r#"
name = "{name}"
[source]
plugin = "hostile"
config = {{ mode = "{mode}", count = 10, target = "{target}" }}
grants.dirs = [{{ host = "{dir}/in", guest = "/in" }}]
{grants}
[sink]
plugin = "file-sink"
config = {{ dir = "/out", file = "{name}.jsonl" }}
grants.dirs = [{{ host = "{dir}/out", guest = "/out", write = true }}]
"#
    )
}

#[test]
fn hostile_plugins_are_contained_and_other_tenants_unaffected() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("evil/in")).unwrap();
    std::fs::create_dir_all(s.path("good/in")).unwrap();
    s.write("good/in/a.jsonl", &numbered(0..20_000));
    s.write("good/secret.txt", "the good tenant's secret\n");
    // A symlink in evil's own directory pointing into good's.
    std::os::unix::fs::symlink(s.path("good/secret.txt"), s.path("evil/in/link")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut server = Server::start(&s.path("data"), &[]);
    let evil = server.tenant(
        "evil",
        tenant_with_dir(
            &s.path("evil"),
            json!({
                "memory": "160 MiB",
                "call_timeout": "1s",
                "max_batch_bytes": "8 MiB",
                "max_failures": 3,
                "restart_backoff": "100ms",
            }),
        ),
    );
    let good = server.tenant("good", tenant_with_dir(&s.path("good"), json!({})));
    for token in [&evil, &good] {
        server.push_plugin(token, "file-source", "file_source");
        server.push_plugin(token, "file-sink", "file_sink");
    }
    server.push_plugin(&evil, "hostile", "hostile");
    server.push_plugin(&evil, "counter", "counter_stream");

    server.create_ok(
        &good,
        &copy_pipeline("copy", &s.path("good"), "copy.jsonl", 100),
    );
    let secret = s.path("good/secret.txt").display().to_string();
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "loop",
            attack("loop", &s.path("evil"), "loop", "", ""),
            "ran past its deadline",
        ),
        (
            "oom",
            attack("oom", &s.path("evil"), "oom", "", ""),
            "ran out of its memory limit",
        ),
        (
            "stack",
            attack("stack", &s.path("evil"), "stack-overflow", "", ""),
            "stack overflow",
        ),
        (
            "trap",
            attack("trap", &s.path("evil"), "trap", "", ""),
            "panics on purpose",
        ),
        (
            "dotdot",
            attack(
                "dotdot",
                &s.path("evil"),
                "read-path",
                "/in/../../good/secret.txt",
                "",
            ),
            "cannot read",
        ),
        (
            "absolute",
            attack("absolute", &s.path("evil"), "read-path", &secret, ""),
            "cannot read",
        ),
        (
            "symlink",
            attack("symlink", &s.path("evil"), "read-path", "/in/link", ""),
            "cannot read",
        ),
        (
            "socket",
            attack(
                "socket",
                &s.path("evil"),
                "socket",
                &format!("127.0.0.1:{port}"),
                "",
            ),
            "cannot connect",
        ),
        (
            "http",
            attack(
                "http",
                &s.path("evil"),
                "http",
                &format!("http://127.0.0.1:{port}/"),
                "",
            ),
            "no HTTP grant",
        ),
        (
            "huge",
            attack("huge", &s.path("evil"), "huge", "", ""),
            "the limit is 8388608",
        ),
    ];
    for (_, toml, _) in &attacks {
        server.create_ok(&evil, toml);
    }
    let spin = format!(
        r#"
name = "spin"
[source]
plugin = "counter"
config = {{ total = 10, spin = true }}
[sink]
plugin = "file-sink"
config = {{ dir = "/out", file = "spin.jsonl" }}
grants.dirs = [{{ host = "{}/out", guest = "/out", write = true }}]
"#,
        s.path("evil").display()
    );
    server.create_ok(&evil, &spin);

    // Asking for more than the tenant has is refused up front.
    let (status, reply) = server.create(
        &evil,
        &attack("steal", &s.path("evil"), "ok", "", "").replace(
            &format!("{}/in", s.path("evil").display()),
            &s.path("good/in").display().to_string(),
        ),
    );
    assert_eq!(status, 422, "{reply}");
    let (status, reply) = server.create(
        &evil,
        &attack(
            "web",
            &s.path("evil"),
            "http",
            "",
            "grants.http = { hosts = [\"127.0.0.1\"] }",
        ),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("not granted to the tenant")
    );

    // A component importing an interface the host does not provide.
    let alien = wat::parse_str(
        r#"(component (import "evil:net/raw-socket@1.0.0" (instance (export "connect" (func)))))"#,
    )
    .unwrap();
    let (status, reply) = server.push(&evil, "alien", alien);
    assert_eq!(status, 422, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("needs an import the weir host does not provide"),
        "{error}"
    );
    assert!(error.contains("evil:net/raw-socket"), "{error}");

    // Forging the other tenant's pipeline: it does not exist for the caller.
    for (method, path) in [
        ("GET", "/v1/pipelines/copy"),
        ("POST", "/v1/pipelines/copy/pause"),
        ("POST", "/v1/pipelines/copy/upgrade"),
        ("DELETE", "/v1/pipelines/copy"),
        ("GET", "/v1/pipelines/good%2Fcopy"),
        ("DELETE", "/v1/pipelines/..%2Fgood%2Fcopy"),
    ] {
        let (status, reply) = server.call(Some(&evil), method, path, None);
        assert!(
            status == 404 || status == 400,
            "{method} {path}: {status} {reply}"
        );
        assert_eq!(
            reply.as_object().map(|o| o.len()),
            Some(1),
            "no data: {reply}"
        );
    }
    let (_, listed) = server.call(Some(&evil), "GET", "/v1/pipelines", None);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "copy")
    );

    // Every attack ends failed after its restarts; good's pipeline completes untouched.
    let mut report = Vec::new();
    for (name, _, expected) in attacks.iter().map(|(n, t, e)| (*n, t, *e)).chain([(
        "spin",
        &spin,
        "ran past its deadline",
    )]) {
        let st = server.wait_for(&evil, name, LONG, |st| st["state"] == "failed");
        let error = st["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{name}: {expected:?} not in {error}"
        );
        if name == "http" {
            // A config error fails the same way every time: no restarts.
            assert_eq!(st["failures"], 1, "{name}: {st}");
            assert_eq!(st["restarts"], 0, "{name}: {st}");
        } else {
            assert_eq!(st["failures"], 3, "{name}: {st}");
            assert_eq!(
                st["restarts"], 2,
                "{name}: backoff restarts, then stop: {st}"
            );
        }
        assert_eq!(st["records_out"], 0, "{name}: nothing delivered: {st}");
        assert!(st["checkpoint"].is_null(), "{name}: nothing committed");
        report.push(format!("{name}: contained ({error})"));
    }
    let copied = server.wait_for(&good, "copy", LONG, |st| st["state"] == "finished");
    assert_eq!(copied["records_out"], 20_000);
    let out = numbers_in(&s.read("good/out/copy.jsonl"));
    assert!(
        out.iter().copied().eq(0..20_000),
        "all of good's records, in order"
    );
    assert_eq!(server.status(&good, "copy")["state"], "finished");

    // Nothing leaked, nothing connected.
    for entry in std::fs::read_dir(s.path("evil/out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("secret") && !text.contains("connected") && !text.contains("status"),
            "{text}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "a hostile plugin reached the listener"
    );
    assert!(server.is_up(), "the host stays up");
    let metrics = server.metrics();
    for line in [
        "weir_epoch_stops_total{tenant=\"evil\",pipeline=\"loop\"} 3",
        "weir_epoch_stops_total{tenant=\"evil\",pipeline=\"spin\"} 3",
        "weir_memory_stops_total{tenant=\"evil\",pipeline=\"oom\"} 3",
        "weir_restarts_total{tenant=\"evil\",pipeline=\"trap\"} 2",
        "weir_traps_total{tenant=\"evil\",pipeline=\"trap\"} 3",
        "weir_records_out_total{tenant=\"good\",pipeline=\"copy\"} 20000",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    // A failed pipeline stays failed across a restart, until resumed.
    let log = server.stop();
    let server = Server::start(&s.path("data"), &[]);
    let trap = server.status(&evil, "trap");
    assert_eq!(trap["state"], "failed", "{trap}");
    assert!(
        trap["last_error"]
            .as_str()
            .unwrap()
            .contains("panics on purpose")
    );
    assert!(log.contains("pipeline failed too often; stopped"), "{log}");
    eprintln!("{}", report.join("\n"));
    let resumed: Value = server.action(&evil, "trap", "resume");
    assert_eq!(resumed["desired"], "running");
    server.wait_for(&evil, "trap", LONG, |st| st["errors"].as_u64() > Some(0));
}
