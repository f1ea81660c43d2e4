//! `weir test`: the conformance suite passes on the plugins weir ships, and fails, naming
//! the check and showing the evidence, on connectors built to break one promise each
//! (`tests/plugins/broken-*`).

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// `weir test PLUGIN --config CONFIG [--grants GRANTS]` in `s`, with `--output json`: its
/// exit status and each check's status and evidence by name.
fn weir_test(s: &Scratch, plugin_name: &str, config: &str, grants: Option<&str>) -> Checks {
    let tag = plugin_name.replace(['/', '.'], "_");
    s.write(&format!("{tag}.config.json"), config);
    let path = plugin(plugin_name);
    let config_file = format!("{tag}.config.json");
    let mut args = vec!["test", path.to_str().unwrap(), "--config", &config_file];
    let grants_file = format!("{tag}.grants.toml");
    if let Some(grants) = grants {
        s.write(&grants_file, grants);
        args.extend(["--grants", &grants_file]);
    }
    // A loaded machine may make a stream's reads (a consumer group joining at each reopen)
    // slow: a budget well over what they need here, so a cut read never decides a check.
    args.extend(["--stream-budget", "90s", "--output", "json"]);
    let out = s.weir(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "weir test {plugin_name}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["evidence"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    (out.status.success(), checks)
}

type Checks = (bool, BTreeMap<String, (String, String)>);

/// Every check passed (none skipped) and the exit status says so.
fn all_pass(plugin: &str, (ok, checks): &Checks) {
    for (name, (status, evidence)) in checks {
        assert_eq!(status, "pass", "{plugin}: {name}: {evidence}");
    }
    assert!(*ok, "{plugin}: weir test exited with failure: {checks:?}");
}

/// `weir test` on a shipped plugin passes every check; for a source, its full read held
/// `records` records.
fn passes(s: &Scratch, plugin: &str, config: &str, grants: Option<&str>, records: Option<usize>) {
    let result = weir_test(s, plugin, config, grants);
    all_pass(plugin, &result);
    if let Some(n) = records {
        let read = &result.1["read"].1;
        assert!(
            read.contains(&format!("gave {n} records")),
            "{plugin}: {read}"
        );
    }
}

/// The check `name` failed, the run exited with failure, and the evidence says `shows`.
fn fails(checks: &Checks, name: &str, shows: &str) {
    let (ok, checks) = checks;
    let (status, evidence) = &checks[name];
    assert_eq!(status, "fail", "{name}: {evidence}");
    assert!(evidence.contains(shows), "{name}: {evidence}");
    assert!(!ok, "weir test exited with success despite {name} failing");
}

#[test]
fn the_suite_names_the_broken_promise_of_each_broken_connector() {
    let s = Scratch::new();
    let counted = r#"{"count": 100}"#;
    let good = weir_test(&s, "broken_source", counted, None);
    all_pass("broken_source", &good);
    assert!(
        good.1["resume"].1.contains("the same 100 records"),
        "{:?}",
        good.1["resume"]
    );

    let skips = weir_test(
        &s,
        "broken_source",
        r#"{"count": 100, "fault": "skip-on-resume"}"#,
        None,
    );
    fails(
        &skips,
        "resume",
        "missing (gaps), the first is record 7: `{\"n\":7}`",
    );
    assert_eq!(skips.1["read"].0, "pass");

    let repeats = weir_test(
        &s,
        "broken_source",
        r#"{"count": 100, "fault": "repeat-on-resume"}"#,
        None,
    );
    fails(&repeats, "resume", "(duplicates), the first: `{\"n\":6}`");
    fails(&repeats, "reread", "again from the final checkpoint");

    let bad_schema = weir_test(&s, "broken_source_bad_schema", counted, None);
    fails(&bad_schema, "spec", "not a valid JSON Schema");

    let out = r#"dirs = [{ host = "out", guest = "/out", write = true }]"#;
    std::fs::create_dir_all(s.path("out")).unwrap();
    let sink = weir_test(&s, "broken_sink", r#"{"dir": "/out"}"#, Some(out));
    all_pass("broken_sink", &sink);
    assert!(
        sink.1["dead-letters"].1.contains(
            "3 of 3 odd records came back as dead letters: the value is not a JSON object"
        )
    );
    // A second run writes new records: only the redelivery repeats any.
    let refusing = r#"{"dir": "/out", "fail_on_redelivery": true}"#;
    let redelivered = weir_test(&s, "broken_sink", refusing, Some(out));
    fails(
        &redelivered,
        "redelivery",
        "the redelivered batch was refused",
    );
    assert_eq!(redelivered.1["write"].0, "pass");
}

/// The shipped connectors that need no server, each on a config like its README's.
#[test]
fn the_suite_passes_on_the_shipped_file_object_and_transform_plugins() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..250));
    s.write("data/b.csv", "id,name\n1,ada\n2,grace\n");
    std::fs::create_dir_all(s.path("landing/2026")).unwrap();
    s.write("landing/2026/a.jsonl", &numbered(0..120));
    s.write("landing/2026/b.jsonl", &numbered(120..130));
    std::fs::create_dir_all(s.path("out")).unwrap();
    std::fs::create_dir_all(s.path("export")).unwrap();
    let read = r#"dirs = [{ host = "data", guest = "/data" }]"#;
    let write = r#"dirs = [{ host = "out", guest = "/out", write = true }]"#;
    let cases = [
        ("file_source", r#"{"dir": "/data"}"#, Some(read)),
        (
            "file_sink",
            r#"{"dir": "/out", "file": "t.jsonl"}"#,
            Some(write),
        ),
        (
            "object_source",
            r#"{"prefix": "2026/"}"#,
            Some(r#"objects = { dir = "landing" }"#),
        ),
        (
            "object_sink",
            r#"{"prefix": "t/"}"#,
            Some(r#"objects = { dir = "export" }"#),
        ),
        ("jq", r#"{"program": "select(.id % 2 == 0)"}"#, None),
        ("mask", r#"{"redact": ["name"]}"#, None),
    ];
    for (name, config, grants) in cases {
        passes(&s, name, config, grants, None);
    }
}

/// `grants.x = …` lines of the fixtures, as a grants file's `x = …`.
fn grants_file(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.trim_start_matches("grants.").to_string() + "\n")
        .collect()
}

#[test]
fn the_suite_passes_on_the_shipped_kafka_plugins() {
    use crate::fixtures::broker::Broker;
    let broker = Broker::start();
    broker.create_topic("conf-in", 1);
    broker.create_topic("conf-out", 1);
    broker.create_topic("conf-cdc", 1);
    let records: Vec<_> = (0..30)
        .map(|i| {
            (
                Some(format!("k{i}")),
                Some(format!("{{\"n\":{i}}}")),
                vec![],
            )
        })
        .collect();
    broker.produce("conf-in", &records);
    let events: Vec<_> = (0..30)
        .map(|i| {
            let value = format!(
                r#"{{"before":null,"after":{{"id":{i}}},"source":{{"table":"t","lsn":{i}}},"op":"c","ts_ms":1}}"#
            );
            (Some(format!("{{\"id\":{i}}}")), Some(value), vec![])
        })
        .collect();
    broker.produce("conf-cdc", &events);
    let s = Scratch::new();
    let grant = |topics: &str| {
        format!(
            "kafka = {{ brokers = \"{}\", topics = [{topics}] }}",
            broker.brokers()
        )
    };
    passes(
        &s,
        "kafka_source",
        r#"{"topics": ["conf-in"]}"#,
        Some(&grant("\"conf-in\"")),
        Some(30),
    );
    passes(
        &s,
        "kafka_sink",
        r#"{"topic": "conf-out"}"#,
        Some(&grant("\"conf-out\"")),
        None,
    );
    passes(
        &s,
        "debezium_source",
        r#"{"topics": ["conf-cdc"]}"#,
        Some(&grant("\"conf-cdc\"")),
        Some(30),
    );
}

#[test]
fn the_suite_passes_on_the_shipped_postgres_plugins() {
    use crate::fixtures::postgres::{PASSWORD, Postgres};
    let pg = Postgres::start();
    pg.client()
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 60) i;
             CREATE TABLE conf_out (id bigint PRIMARY KEY, name text, run bigint);",
        )
        .unwrap();
    let s = Scratch::new();
    s.write("pg-password", &format!("{PASSWORD}\n"));
    let grants = grants_file(&[pg.grant("pg-password")]);
    passes(
        &s,
        "postgres_source",
        r#"{"table": "items", "cursor_column": "id"}"#,
        Some(&grants),
        Some(60),
    );
    passes(
        &s,
        "postgres_sink",
        r#"{"table": "conf_out", "key": ["id"]}"#,
        Some(&grants),
        None,
    );
    passes(
        &s,
        "postgres_cdc",
        r#"{"slot": "conf", "tables": ["public.items"]}"#,
        Some(&grants),
        None,
    );
}

#[test]
fn the_suite_passes_on_the_shipped_kinesis_plugins() {
    use crate::fixtures::kinesis::{KEY_ID, Kinesis};
    let kinesis = Kinesis::start();
    kinesis.create_stream("conf-in", 2);
    kinesis.create_stream("conf-out", 1);
    let records: Vec<_> = (0..40)
        .map(|i| (format!("k{i}"), format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    kinesis.put("conf-in", &records);
    let s = Scratch::new();
    s.write("aws-key", KEY_ID);
    s.write("aws-secret", "weir-test-secret");
    let grant = |stream: &str| grants_file(&[Kinesis::grant_at(&kinesis.endpoint, &[stream])]);
    passes(
        &s,
        "kinesis_source",
        r#"{"stream": "conf-in", "shard_refresh_ms": 300}"#,
        Some(&grant("conf-in")),
        Some(40),
    );
    passes(
        &s,
        "kinesis_sink",
        r#"{"stream": "conf-out"}"#,
        Some(&grant("conf-out")),
        None,
    );
}

/// The Python and JavaScript connectors weir ships: http-source and http-sink.
#[test]
fn the_suite_passes_on_the_shipped_http_plugins() {
    use crate::fixtures::web::Web;
    let web = Web::start();
    web.upsert(1..=90, 1000);
    let s = Scratch::new();
    let grants = format!("http = {{ hosts = [\"{}\"] }}", web.addr);
    let config = format!(
        r#"{{"url": "{}", "records": "data", "page_size_param": "per_page", "page_size": 40, "cursor_field": "updated_at", "cursor_param": "updated_since", "key_field": "id"}}"#,
        web.url("/items")
    );
    passes(&s, "http_source", &config, Some(&grants), Some(90));
    passes(
        &s,
        "http_sink",
        &format!(r#"{{"url": "{}"}}"#, web.url("/ingest")),
        Some(&grants),
        None,
    );
}
