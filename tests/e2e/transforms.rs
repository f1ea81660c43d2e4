//! Transforms between source and sink: a chain in three languages, filtering, expansion
//! and dead letters, misbehaving steps contained and named, crashes, keys that stay in the
//! host, and hot swaps in `weir serve`.

use crate::fixtures::server::*;
use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// A `[[pipeline.transforms]]` table running `plugin` with `config` (TOML inline), then
/// `extra` lines (grants, limits).
fn step(plugin_name: &str, config: &str, extra: &str) -> String {
    format!(
        "[[pipeline.transforms]]\nplugin = \"{}\"\nconfig = {config}\n{extra}\n",
        plugin(plugin_name).display()
    )
}

/// file-source on `data/` → `steps` → file-sink `out/<name>.jsonl`, with `tail` after.
fn pipeline(name: &str, batch_size: u32, steps: &[String], tail: &str) -> String {
    format!(
        "\n[[pipeline]]\nname = \"{name}\"\nbatch_size = {batch_size}\n{}{}{}{tail}",
        file_source(),
        steps.concat(),
        file_sink(&format!("{name}.jsonl"), ""),
    )
}

/// `table` with its transforms run in `n` workers.
fn in_workers(n: usize, table: String) -> String {
    table.replacen(
        "\nbatch_size",
        &format!("\ntransform_parallelism = {n}\nbatch_size"),
        1,
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// jq (Rust) → py-step (Python) → js-step (JavaScript) over the quickstart's orders, in
/// two workers: the output is exactly what the three programs make of each order, in the
/// input's order, and a rerun moves nothing.
#[test]
fn a_chain_of_jq_python_and_js_gives_the_exact_output_and_a_rerun_moves_nothing() {
    let s = Scratch::new();
    let orders = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/quickstart/data/orders.jsonl"),
    )
    .unwrap();
    s.write("data/orders.jsonl", &orders);
    s.pipelines(&[in_workers(
        2,
        pipeline(
            "chain",
            25,
            &[
                step(
                    "jq",
                    "{ program = 'select(.amount > 300) | {order_id, customer, amount}' }",
                    "",
                ),
                step("py_step", "{}", ""),
                step("js_step", "{}", ""),
            ],
            "",
        ),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let expected: Vec<String> = lines(&orders)
        .into_iter()
        .filter(|o| o["amount"].as_f64().unwrap() > 300.0)
        .map(|o| {
            let cents = (o["amount"].as_f64().unwrap() * 100.0).round() as i64;
            let customer = o["customer"].as_str().unwrap().to_uppercase();
            format!(
                r#"{{"order_id":{},"customer":"{customer}","steps":["py","js"],"cents":{cents}}}"#,
                o["order_id"]
            )
        })
        .collect();
    assert!(expected.len() > 10 && expected.len() < lines(&orders).len());
    let out = s.read("out/chain.jsonl");
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    let summary = run.summary("chain");
    assert_eq!(summary["records_read"], lines(&orders).len());
    assert_eq!(summary["records_written"], expected.len());
    assert_eq!(summary["transforms"], json!(["jq", "py_step", "js_step"]));

    let again = s.run_once();
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.summary("chain")["records_read"], 0);
    assert_eq!(s.read("out/chain.jsonl"), out, "the rerun moved nothing");

    let checked = s.weir_json(&["check", "pipeline.toml", "--output", "json"], true);
    let sides: Vec<&str> = checked
        .iter()
        .map(|c| c["side"].as_str().unwrap())
        .collect();
    assert_eq!(
        sides,
        [
            "source",
            "transform #1",
            "transform #2",
            "transform #3",
            "sink"
        ]
    );
}

/// One output maps, none filters, several expand; a record jq fails on is a dead letter
/// with jaq's message, stored under the step's plugin; a batch filtered whole still moves
/// the checkpoint.
#[test]
fn jq_filters_expands_and_sends_what_it_fails_on_to_the_dead_letters() {
    let s = Scratch::new();
    s.write(
        "data/a.jsonl",
        "{\"id\":1,\"items\":[\"a\",\"b\"]}\n{\"id\":2,\"items\":[]}\n{\"id\":3,\"items\":7}\n{\"id\":4,\"items\":[\"c\"]}\n{\"id\":5,\"items\":[]}\n{\"id\":6,\"items\":[]}\n",
    );
    let jq = step(
        "jq",
        "{ program = '.id as $id | .items[] | {id: $id, item: .}' }",
        "",
    );
    s.pipelines(&[pipeline(
        "expand",
        2,
        &[jq],
        "[pipeline.dead_letter]\ndir = \"dead\"\n",
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let out: Vec<(i64, String)> = lines(&s.read("out/expand.jsonl"))
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().unwrap(),
                v["item"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        out,
        [(1, "a".into()), (1, "b".into()), (4, "c".into())],
        "expanded, filtered"
    );
    let summary = run.summary("expand");
    assert_eq!(summary["records_read"], 6);
    assert_eq!(summary["records_written"], 3);
    assert_eq!(summary["dead_letters"], 1);
    let dead = lines(&s.read("dead/dead-letters.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["plugin"], "jq");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("jq: ") && reason.contains("7"),
        "{reason}"
    );
    // The last batch (ids 5 and 6) was filtered whole, and still committed.
    assert!(
        summary["checkpoint"].as_str().unwrap().contains("a.jsonl"),
        "{summary}"
    );
    assert_eq!(s.run_once().summary("expand")["records_read"], 0);

    // `on_error = "fail"` stops the pipeline at that record, naming the step.
    let s = Scratch::new();
    s.write("data/a.jsonl", "{\"n\":1}\n{\"n\":\"x\"}\n");
    let jq = step("jq", "{ program = '.n + 1', on_error = 'fail' }", "");
    s.pipelines(&[pipeline("strict", 10, &[jq], "")]);
    let run = s.run_once();
    let error = run.error("strict");
    assert!(error.contains("transform #1 (jq)"), "{error}");
    assert_eq!(
        s.read("out/strict.jsonl"),
        "",
        "nothing of the failed batch"
    );

    let inspected = s.weir_json(
        &[
            "plugin",
            "inspect",
            plugin("jq").to_str().unwrap(),
            "--output",
            "json",
        ],
        true,
    );
    assert_eq!(inspected[0]["world"], "transform");
    assert_eq!(inspected[0]["name"], "jq");

    // A program that does not compile is a config error at the start, with its position.
    let s = Scratch::new();
    s.write("data/a.jsonl", "{\"n\":1}\n");
    let jq = step("jq", "{ program = \".n |\\n (\" }", "");
    s.pipelines(&[pipeline("bad", 10, &[jq], "")]);
    let error = s.run_once().error("bad");
    assert_contains_all(&error, &["transform #1", "program: line 2, column"]);
}

/// A transform that traps, spins, hogs memory, floods the host or returns a malformed
/// batch stops its own pipeline (naming the step and what it did), after the batches it
/// handled were delivered; a pipeline beside it runs to the end.
#[test]
fn a_misbehaving_transform_is_contained_and_named() {
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..100));
    let rogue = |action: &str| {
        step(
            "rogue_transform",
            &format!("{{ do = \"{action}\", from_batch = 3 }}"),
            // Its own limits, tighter than the pipeline's.
            "limits = { call_timeout = \"1s\", memory = \"64 MiB\" }",
        )
    };
    let mut tables: Vec<String> = ["trap", "spin", "hog", "flood", "malformed"]
        .iter()
        .map(|a| {
            pipeline(
                a,
                10,
                &[step("jq", "{ program = '.' }", ""), rogue(a)],
                "[pipeline.limits]\nmax_batch_bytes = \"4 MiB\"\n",
            )
        })
        .collect();
    tables.push(pipeline("fine", 10, &[rogue("tag")], ""));
    s.pipelines(&tables);
    let run = s.run_once();
    for (name, what) in [
        ("trap", "told to trap"),
        ("spin", "interrupted after 1s"),
        ("hog", "linear memory"),
        ("flood", "bytes; the limit is 4194304"),
        ("malformed", "malformed batch"),
    ] {
        let error = run.error(name);
        assert_contains_all(&error, &["transform #2 (rogue_transform)", what]);
        // Batches 1 and 2 went through before the step misbehaved, and were committed.
        assert_eq!(
            numbers_in(&s.read(&format!("out/{name}.jsonl"))),
            (0..20).collect::<Vec<_>>(),
            "{name}"
        );
    }
    let fine = run.summary("fine");
    assert_eq!(fine["status"], "ok", "{fine}");
    assert_eq!(numbers_in(&s.read("out/fine.jsonl")).len(), 100);
    assert!(
        lines(&s.read("out/fine.jsonl"))
            .iter()
            .all(|v| v["tag"] == "v1")
    );
}

/// SIGKILL in the middle of a run through two transforms in three workers, then a rerun:
/// every record that passes the filter arrives, and what repeats is at most the one batch
/// the sink was writing (batches still in the workers or the channel were never written).
#[test]
fn kill_9_mid_run_with_transforms_loses_nothing() {
    const N: u64 = 200_000;
    const BATCH: u32 = 500;
    let s = Scratch::new();
    s.write("data/big.jsonl", &numbered(0..N));
    s.pipelines(&[in_workers(
        3,
        pipeline(
            "crash",
            BATCH,
            &[
                step("jq", "{ program = 'select(.n % 3 != 0)' }", ""),
                step("rogue_transform", "{ do = \"tag\" }", ""),
            ],
            "",
        ),
    )]);
    let mut child = s.spawn_run(&["--once"]);
    let started = Instant::now();
    while s.read("out/crash.jsonl").lines().count() < 5 * BATCH as usize {
        assert!(started.elapsed() < LONG, "no progress: {}", child.stderr());
        assert!(child.is_running(), "finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill_9();
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let out = numbers_in(&s.read("out/crash.jsonl"));
    let mut seen = BTreeMap::new();
    for n in &out {
        *seen.entry(*n).or_insert(0u32) += 1;
    }
    assert!(
        seen.keys().copied().eq((0..N).filter(|n| n % 3 != 0)),
        "every record that passes the filter arrived, and no other"
    );
    let duplicates = out.len() - seen.len();
    assert!(
        duplicates <= BATCH as usize,
        "{duplicates} duplicates: more than the one batch in flight"
    );
}

/// `grants.keys`: a plugin gets HMACs under a secret it never holds. The digests are
/// right, a key not granted is a config error, and the secret is in no output or log.
#[test]
fn a_granted_key_hashes_in_the_host_and_never_reaches_the_plugin_or_the_logs() {
    const SECRET: &str = "s3cr3t-key-value-7f1c";
    let s = Scratch::new();
    s.write("data/a.jsonl", "{\"email\":\"ada@example.com\",\"n\":1}\n");
    let keys = "grants.keys = { pii = { env = \"TEST_PII_KEY\" } }";
    s.pipelines(&[
        pipeline(
            "masked",
            10,
            &[step(
                "mask",
                "{ hash = [\"email\"], redact = [\"n\"], key = \"pii\" }",
                keys,
            )],
            "",
        ),
        pipeline(
            "hashed",
            10,
            &[step(
                "rogue_transform",
                "{ do = \"hmac\", key = \"pii\" }",
                keys,
            )],
            "",
        ),
        pipeline(
            "python",
            10,
            &[step(
                "py_step",
                "{ hash = { key = \"pii\", field = \"email\" } }",
                keys,
            )],
            "",
        ),
        pipeline(
            "javascript",
            10,
            &[step(
                "js_step",
                "{ hash = { key = \"pii\", field = \"email\" } }",
                keys,
            )],
            "",
        ),
        pipeline(
            "ungranted",
            10,
            &[step(
                "rogue_transform",
                "{ do = \"hmac\", key = \"other\" }",
                keys,
            )],
            "",
        ),
    ]);
    let out = s
        .weir(&["run", "pipeline.toml", "--once", "--output", "json"])
        .env("TEST_PII_KEY", SECRET)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let run = Run::from(out);
    for name in ["masked", "hashed", "python", "javascript"] {
        let summary = run.summary(name);
        assert_eq!(summary["status"], "ok", "{name}: {summary}");
    }
    let digest = hmac_sha256_hex(SECRET, "ada@example.com");
    let masked = lines(&s.read("out/masked.jsonl"));
    assert_eq!(masked, [json!({"email": digest, "n": "[redacted]"})]);
    let hashed = lines(&s.read("out/hashed.jsonl"));
    assert_eq!(
        hashed[0]["digest"],
        hmac_sha256_hex(SECRET, s.read("data/a.jsonl").trim())
    );
    // The Python and JavaScript SDKs reach the same host function.
    for (name, step) in [("python", "py"), ("javascript", "js")] {
        let out = lines(&s.read(&format!("out/{name}.jsonl")));
        assert_eq!(
            out,
            [json!({"email": digest, "n": 1, "steps": [step]})],
            "{name}"
        );
    }
    let error = run.error("ungranted");
    assert_contains_all(&error, &["transform #1", "no key `other` is granted"]);
    let everything = format!("{}{:?}", run.stderr, run.summaries);
    assert!(
        !everything.contains(SECRET),
        "the secret leaked: {everything}"
    );
    assert!(!s.read("out/masked.jsonl").contains(SECRET));
}

/// HMAC-SHA256 in hex, by Python's standard library: an implementation that is not ours.
fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys;print(hmac.new(sys.argv[1].encode(),sys.argv[2].encode(),hashlib.sha256).hexdigest())",
            key,
            message,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `weir serve`: pushing a new version of a transform swaps it in at a checkpoint boundary
/// (the first record of the new code right after the last of the old, none lost or
/// repeated), a version whose schema rejects the pipeline's config is refused, and an
/// upgrade by command moves it back.
#[test]
fn a_new_transform_version_swaps_in_at_a_checkpoint_and_a_misfit_is_refused() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme/in")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let token = server.tenant("acme", tenant_with_dir(&s.path("acme"), json!({})));
    server.push_plugin(&token, "counter", "counter_stream");
    server.push_plugin(&token, "file-sink", "file_sink");
    server.push_plugin(&token, "tagger", "rogue_transform");
    let definition = counter_pipeline("count", &s.path("acme/out"), 10_000_000, 5, "100ms")
        .replace(
            "[sink]",
            "[[transforms]]\nplugin = \"tagger\"\nconfig = { do = \"tag\" }\n[sink]",
        );
    let created = server.create_ok(&token, &definition);
    assert_eq!(
        created["pinned"]["transforms"],
        json!([{"name": "tagger", "version": 1}])
    );
    server.wait_for(&token, "count", LONG, |st| {
        st["records_out"].as_u64() >= Some(1000)
    });
    let (status, pushed) = server.push(&token, "tagger", read_plugin("rogue_transform_v2"));
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["upgraded"], json!(["count"]));
    let v2 = server.wait_for(&token, "count", LONG, |st| {
        st["transforms"][0]["version"] == 2
            && st["records_out"].as_u64() > st["records_out_before_run"].as_u64().map(|n| n + 500)
    });
    assert_eq!(v2["state"], "running");
    assert!(v2["transform_memory"].as_u64() > Some(0), "{v2}");

    // js-step's schema has no `do`: refused, and the pipeline stays on version 2.
    let (status, refused) = server.push(&token, "tagger", read_plugin("js_step"));
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert_contains_all(
        error,
        &["pipeline `count`", "rejects its transform #1 config"],
    );
    assert_eq!(
        server.status(&token, "count")["transforms"][0]["version"],
        2
    );

    // Back to version 1 by command; a version list longer than the transforms is refused.
    let upgrade = |body: &[u8]| {
        server.call(
            Some(&token),
            "POST",
            "/v1/pipelines/count/upgrade",
            Some(("application/json", body.to_vec())),
        )
    };
    let (status, reply) = upgrade(br#"{"transform_versions": [1]}"#);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["pinned"]["transforms"][0]["version"], 1);
    server.wait_for(&token, "count", LONG, |st| {
        st["transforms"][0]["version"] == 1
            && st["records_out"].as_u64() > st["records_out_before_run"].as_u64().map(|n| n + 300)
    });
    let (status, reply) = upgrade(br#"{"transform_versions": [1, 1]}"#);
    assert_eq!(status, 422, "{reply}");

    server.action(&token, "count", "pause");
    let end = server.wait_for(&token, "count", LONG, |st| st["state"] == "paused");
    let out = lines(&s.read("acme/out/count.jsonl"));
    assert_eq!(out.len() as u64, end["records_out"].as_u64().unwrap());
    assert!(
        out.iter()
            .map(|v| v["n"].as_u64().unwrap())
            .eq(0..out.len() as u64),
        "no record lost or repeated"
    );
    let tags: Vec<&str> = out.iter().map(|v| v["tag"].as_str().unwrap()).collect();
    let runs: Vec<(&str, usize)> = tags
        .chunk_by(|a, b| a == b)
        .map(|r| (r[0], r.len()))
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        ["v1", "v2", "v1"],
        "runs of (tag, length): {runs:?}"
    );
}

/// In `weir serve` a transform is held to its tenant like a source or a sink: grants
/// beyond the tenant's, `env` secrets for its keys, limits above the quotas, and a plugin
/// of another world are refused, naming the transform's field; nothing is created.
#[test]
fn a_tenants_transform_is_held_to_the_tenants_grants_and_quotas() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("acme/in")).unwrap();
    let server = Server::start(&s.path("data"), &[]);
    let token = server.tenant(
        "acme",
        tenant_with_dir(&s.path("acme"), json!({ "memory": "128 MiB" })),
    );
    server.push_plugin(&token, "counter", "counter_stream");
    server.push_plugin(&token, "file-sink", "file_sink");
    server.push_plugin(&token, "tagger", "rogue_transform");
    let with = |transform: &str| {
        counter_pipeline("p", &s.path("acme/out"), 10, 0, "100ms").replace(
            "[sink]",
            &format!("[[transforms]]\nplugin = \"tagger\"\nconfig = {{ do = \"tag\" }}\n{transform}\n[sink]"),
        )
    };
    for (transform, expected) in [
        (
            "grants.http = { hosts = [\"evil.example.com\"] }",
            "transforms[0].grants.http: host `evil.example.com` is not granted",
        ),
        (
            "grants.keys = { k = { env = \"WEIR_ADMIN_TOKEN\" } }",
            "`env` secrets are not available",
        ),
        (
            "grants.dirs = [{ host = \"/etc\", guest = \"/etc\" }]",
            "transforms[0].grants.dirs[0].host",
        ),
        (
            "limits = { memory = \"1 GiB\" }",
            "transforms[0].limits.memory",
        ),
    ] {
        let (status, reply) = server.create(&token, &with(transform));
        assert_eq!(status, 422, "{transform}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(expected), "{expected:?} not in {error}");
    }
    let (status, reply) = server.create(
        &token,
        &with("").replace("plugin = \"tagger\"", "plugin = \"file-sink\""),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("transforms[0].plugin `file-sink`"),
        "{reply}"
    );
    let (_, listed) = server.call(Some(&token), "GET", "/v1/pipelines", None);
    assert_eq!(listed, json!([]), "nothing was created");
}
