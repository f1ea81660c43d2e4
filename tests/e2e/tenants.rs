//! The hostile-plugin suite: every attack runs in tenant `evil` while tenant `good` runs a
//! normal pipeline in the same `weir serve`. Each must be contained, `good`'s records must
//! all arrive, and the host must stay up.

use crate::fixtures::server::*;
use crate::serve::copy_pipeline;
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

/// `name`: a batch source `plugin` with `config` and `source` grants (inline TOML) → a
/// file-sink writing `<dir>/out/<name>.jsonl`, with `extra` tables after.
fn evil_pipeline(name: &str, dir: &std::path::Path, source: &str, extra: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
name = "{name}"
[source]
{source}
[sink]
plugin = "file-sink"
config = {{ dir = "/out", file = "{name}.jsonl" }}
grants.dirs = [{{ host = "{dir}/out", guest = "/out", write = true }}]
{extra}"#
    )
}

/// Links one tenant's plugin plants in its own directory, relative and absolute, lead the
/// server nowhere: not to read another tenant's files through the directory object store,
/// nor to write them through a dead-letter directory or file. A log flood is held to its
/// budget and counted in the metrics, while the other tenant's records all arrive.
#[test]
fn a_tenants_plugin_cannot_steer_the_servers_files_or_flood_its_log() {
    let s = Scratch::new();
    s.write("good/victim.log", "untouched\n");
    s.write(
        "good/secret/passwords.jsonl",
        "{\"hash\":\"secret-hash\"}\n",
    );
    s.write("good/in/a.jsonl", &numbered(0..5000));
    s.write("evil/input/bad.jsonl", "not json\n{\"n\":1}\n");
    s.write("evil/shared/real.jsonl", "{\"n\":7}\n");
    std::fs::create_dir_all(s.path("evil/shared/dlq-file")).unwrap();
    let evil_dir = s.path("evil");
    let mut server = Server::start(&s.path("data"), &[]);
    let evil = server.tenant(
        "evil",
        json!({
            "grants": { "dirs": [{ "host": evil_dir, "write": true }], "objects": { "dir": evil_dir } },
            "quotas": { "max_failures": 1 },
        }),
    );
    let good = server.tenant("good", tenant_with_dir(&s.path("good"), json!({})));
    for token in [&evil, &good] {
        server.push_plugin(token, "file-sink", "file_sink");
    }
    server.push_plugin(&good, "file-source", "file_source");
    server.push_plugin(&evil, "hostile", "hostile");
    server.push_plugin(&evil, "object-source", "object_source");
    server.create_ok(
        &good,
        &copy_pipeline("copy", &s.path("good"), "copy.jsonl", 100),
    );

    // Relative links from the plugin (WASI refuses absolute ones), absolute ones from the
    // test, as another process could leave them.
    let links = [
        "/shared/up=../../good/secret",
        "/shared/leak.jsonl=../../good/secret/passwords.jsonl",
        "/shared/dlq-dir=../../good",
        "/shared/dlq-file/dead-letters.jsonl=../../../good/victim.log",
    ];
    let e = evil_dir.display();
    let plant = evil_pipeline(
        "plant",
        &evil_dir,
        &format!(
            "plugin = \"hostile\"\nconfig = {{ mode = \"plant-link\", target = \"{}\" }}\n\
             grants.dirs = [{{ host = \"{e}/shared\", guest = \"/shared\", write = true }}]",
            links.join(";")
        ),
        "",
    );
    server.create_ok(&evil, &plant);
    server.wait_for(&evil, "plant", LONG, |st| st["state"] == "finished");
    assert!(
        std::fs::symlink_metadata(s.path("evil/shared/up"))
            .unwrap()
            .is_symlink()
    );
    std::os::unix::fs::symlink(s.path("good/secret"), s.path("evil/shared/abs")).unwrap();

    let objects = |dir: &str| {
        format!(
            "plugin = \"object-source\"\nconfig = {{ prefix = \"\" }}\ngrants.objects = {{ dir = \"{e}/{dir}\" }}"
        )
    };
    server.create_ok(
        &evil,
        &evil_pipeline("reader", &evil_dir, &objects("shared"), ""),
    );
    server.wait_for(&evil, "reader", LONG, |st| st["state"] == "finished");
    assert_eq!(s.read("evil/out/reader.jsonl"), "{\"n\":7}\n");

    // A dead-letter directory that is a link is refused at create, naming the field.
    let (status, reply) = server.create(
        &evil,
        &evil_pipeline(
            "dlq-dir",
            &evil_dir,
            &objects("input"),
            &format!("[dead_letter]\ndir = \"{e}/shared/dlq-dir\"\n"),
        ),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("dead_letter.dir"),
        "{reply}"
    );
    // A dead-letter file that is a link is not written through: the pipeline fails first.
    server.create_ok(
        &evil,
        &evil_pipeline(
            "dlq-file",
            &evil_dir,
            &objects("input"),
            &format!("[dead_letter]\ndir = \"{e}/shared/dlq-file\"\n"),
        ),
    );
    let st = server.wait_for(&evil, "dlq-file", LONG, |st| st["state"] == "failed");
    assert!(
        st["last_error"].as_str().unwrap().contains("symbolic link"),
        "{st}"
    );
    assert!(st["checkpoint"].is_null(), "{st}");

    // A log flood: held to the budget, counted by tenant and pipeline.
    server.create_ok(
        &evil,
        &evil_pipeline(
            "flood",
            &evil_dir,
            "plugin = \"hostile\"\nconfig = { mode = \"log-flood\", count = 20000 }",
            "",
        ),
    );
    server.wait_for(&evil, "flood", LONG, |st| st["state"] == "finished");
    let metrics = server.metrics();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("weir_log_dropped_total{tenant=\"evil\",pipeline=\"flood\"} "))
        .unwrap_or_else(|| panic!("no dropped count in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped >= 20_000 - 1000, "{dropped} dropped");

    let copied = server.wait_for(&good, "copy", LONG, |st| st["state"] == "finished");
    assert_eq!(copied["records_out"], 5000);
    assert_eq!(s.read("good/victim.log"), "untouched\n");
    assert!(!s.path("good/dead-letters.jsonl").exists());
    for entry in std::fs::read_dir(s.path("evil/out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("secret-hash"), "{text}");
    }
    assert!(server.is_up());
    let log = server.stop();
    let flood_lines = log.lines().filter(|l| l.contains("flood=")).count();
    assert!(
        flood_lines <= 1000,
        "{flood_lines} flood lines reached the server's log"
    );
    assert!(log.contains("plugin log over its budget"), "{log}");
}

/// Settings that reach native clients are the operator's: a tenant's pipeline asking for
/// one that loads code, names a host file, runs a command, redirects the client or changes
/// what it logs is refused, naming it; so is a store endpoint the tenant was not granted,
/// and a tenant directory over the server's own.
#[test]
fn client_settings_a_tenant_may_not_set_are_refused_naming_them() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme/in")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let acme = server.tenant(
        "acme",
        json!({
            "grants": {
                "dirs": [{ "host": s.path("acme"), "write": true }],
                "kafka": { "brokers": "127.0.0.1:9", "topics": ["acme.*"] },
                "sql": { "url": "postgres://acme@127.0.0.1:9/acme" },
                "objects": [{ "url": "s3://acme/in", "endpoint": "http://127.0.0.1:9" }],
            },
        }),
    );
    server.push_plugin(&acme, "file-sink", "file_sink");
    server.push_plugin(&acme, "kafka-source", "kafka_source");
    server.push_plugin(&acme, "postgres-source", "postgres_source");
    server.push_plugin(&acme, "object-source", "object_source");
    let a = s.path("acme");
    std::fs::write(a.join("evil.so"), b"\x7fELF").unwrap();
    let kafka = |property: &str, value: &str| {
        format!(
            "plugin = \"kafka-source\"\nconfig = {{ topics = [\"acme.orders\"] }}\n\
             grants.kafka = {{ brokers = \"127.0.0.1:9\", topics = [\"acme.orders\"], \
             properties = {{ \"{property}\" = \"{value}\" }} }}"
        )
    };
    let evil_so = a.join("evil.so").display().to_string();
    let cases = [
        (
            kafka("plugin.library.paths", &evil_so),
            "`plugin.library.paths`",
        ),
        (kafka("ssl.ca.location", "/etc/shadow"), "`ssl.ca.location`"),
        (
            kafka("sasl.kerberos.kinit.cmd", "touch /tmp/pwned"),
            "`sasl.kerberos.kinit.cmd`",
        ),
        (
            kafka("bootstrap.servers", "10.0.0.1:9092"),
            "`bootstrap.servers`",
        ),
        (kafka("debug", "all"), "`debug`"),
        (
            "plugin = \"postgres-source\"\nconfig = { table = \"t\" }\n\
             grants.sql = { url = \"postgres://acme@127.0.0.1:9/acme?host=/var/run/postgresql\" }"
                .to_string(),
            "`host`",
        ),
        (
            "plugin = \"object-source\"\nconfig = { prefix = \"\" }\n\
             grants.objects = { url = \"s3://acme/in\", endpoint = \"http://169.254.169.254\" }"
                .to_string(),
            "objects.endpoint",
        ),
    ];
    for (i, (source, expected)) in cases.iter().enumerate() {
        let (status, reply) =
            server.create(&acme, &evil_pipeline(&format!("p{i}"), &a, source, ""));
        assert_eq!(status, 422, "{expected}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(expected), "{expected} not in {error}");
    }
    let (_, listed) = server.call(Some(&acme), "GET", "/v1/pipelines", None);
    assert_eq!(listed, json!([]), "nothing was created");

    // A tenant directory holding the server's data directory is refused.
    let greedy =
        json!({ "name": "greedy", "grants": { "dirs": [{ "host": s.path(""), "write": true }] } });
    let (status, reply) = server.call(
        Some(ADMIN),
        "POST",
        "/v1/tenants",
        Some(("application/json", greedy.to_string().into_bytes())),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("overlaps the server's own directory"),
        "{reply}"
    );
}

/// Each tenant reads its own pipelines' recent log lines (the plugin's `log` calls and its
/// stdout and stderr), paged, and never another tenant's, even under the same pipeline
/// name.
#[test]
fn a_tenant_reads_its_own_pipelines_logs_and_no_one_elses() {
    let s = Scratch::new();
    let server = Server::start(&s.path("data"), &[]);
    let mut tokens = Vec::new();
    for (tenant, mode) in [("printer", "print"), ("logger", "log-flood")] {
        std::fs::create_dir_all(s.path(&format!("{tenant}/in"))).unwrap();
        let token = server.tenant(tenant, tenant_with_dir(&s.path(tenant), json!({})));
        server.push_plugin(&token, "hostile", "hostile");
        server.push_plugin(&token, "file-sink", "file_sink");
        server.create_ok(&token, &attack("p", &s.path(tenant), mode, "", ""));
        server.wait_for(&token, "p", LONG, |st| st["state"] == "finished");
        tokens.push(token);
    }
    let page = |token: &str, after: u64, limit: usize| {
        let path = format!("/v1/pipelines/p/logs?after={after}&limit={limit}");
        let (status, reply) = server.call(Some(token), "GET", &path, None);
        assert_eq!(status, 200, "{reply}");
        let lines: Vec<String> = reply["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_string())
            .collect();
        (lines, reply["next"].as_u64().unwrap())
    };
    // The printer's 10 stdout and 10 stderr lines, in pages of 7, none twice.
    let (mut printed, mut after) = (Vec::new(), 0);
    loop {
        let (lines, next) = page(&tokens[0], after, 7);
        assert!(lines.len() <= 7);
        if lines.is_empty() {
            break;
        }
        printed.extend(lines);
        after = next;
    }
    for i in 0..10 {
        for stream in ["stdout", "stderr"] {
            let line = format!("{stream} line {i}");
            let times = printed.iter().filter(|l| l.starts_with(&line)).count();
            assert_eq!(times, 1, "{line}: {printed:?}");
        }
    }
    assert!(
        !printed.iter().any(|l| l.contains("xxxxxxxx")),
        "{printed:?}"
    );
    let (logged, _) = page(&tokens[1], 0, 1000);
    assert!(logged.iter().any(|l| l.contains("xxxxxxxx")), "{logged:?}");
    assert!(
        !logged.iter().any(|l| l.contains("stdout line")),
        "{logged:?}"
    );
    // No token, or a pipeline the tenant does not have: nothing.
    let (status, _) = server.call(None, "GET", "/v1/pipelines/p/logs", None);
    assert_eq!(status, 401);
    let (status, _) = server.call(Some(&tokens[0]), "GET", "/v1/pipelines/q/logs", None);
    assert_eq!(status, 404);
}
