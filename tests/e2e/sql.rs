//! PostgreSQL through the host: postgres-source and postgres-sink against a real server.

use crate::fixtures::ports::free_port;
use crate::fixtures::postgres::{PASSWORD, Postgres};
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// postgres-source → file-sink (values as the source emits them).
fn pg_to_file(pg: &Postgres, name: &str, batch: u32, source_config: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
batch_size = {batch}
[pipeline.source]
plugin = "{source}"
config = {{ {source_config} }}
{grant}
{sink}"#,
        source = plugin("postgres_source").display(),
        sink = file_sink(&format!("{name}.jsonl"), ""),
        grant = pg.grant("pg-password"),
    )
}

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write("pg-password", &format!("{PASSWORD}\n"));
    s
}

#[test]
fn postgres_source_reads_incrementally_and_maps_every_type() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, \
           price numeric(12,2), doc jsonb, tags text[], blob bytea, note text);
         INSERT INTO items SELECT i, '2026-01-01T00:00:00Z'::timestamptz + (i / 10) * interval '1 hour',
           i * 1.25, jsonb_build_object('i', i, 'a', jsonb_build_array(1, 2)), ARRAY['x', 'y'],
           '\\x0102'::bytea, NULL
         FROM generate_series(1, 25) i;",
    )
    .unwrap();
    let s = scratch();
    // Batches of 4 across runs of 10 rows with one updated_at: checkpoints fall mid-tie.
    s.pipelines(&[pg_to_file(
        &pg,
        "items",
        4,
        r#"table = "items", cursor_column = "updated_at", tiebreak_column = "id""#,
    )]);
    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.summary("items")["records_written"], 25);
    let lines: Vec<String> = s
        .read("out/items.jsonl")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines[0],
        r#"{"id":1,"updated_at":"2026-01-01T00:00:00+00:00","price":1.25,"doc":{"a": [1, 2], "i": 1},"tags":["x","y"],"blob":"\\x0102","note":null}"#,
        "types as PostgreSQL prints JSON: exact numerics, RFC 3339, jsonb, arrays, bytea, NULL"
    );
    assert_eq!(
        first.summary("items")["checkpoint"],
        r#"{"after":["2026-01-01T02:00:00+00:00","25"]}"#
    );

    assert_eq!(
        s.run_once().summary("items")["records_written"],
        0,
        "nothing new"
    );

    db.batch_execute(
        "UPDATE items SET updated_at = '2026-02-01T00:00:00Z', note = 'changed' WHERE id IN (3, 14);
         INSERT INTO items (id, updated_at, price) VALUES (26, '2026-02-01T00:00:00Z', 99.99),
           (27, '2026-02-01T00:00:00Z', 0.5), (28, '2026-02-02T00:00:00Z', NULL);",
    )
    .unwrap();
    let third = s.run_once();
    assert_eq!(
        third.summary("items")["records_written"],
        5,
        "{}",
        third.stderr
    );
    let ids: Vec<u64> = s
        .read("out/items.jsonl")
        .lines()
        .skip(25)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [3, 14, 26, 27, 28], "in (updated_at, id) order");
}

/// SIGKILL in the middle of a long read where thousands of rows share each cursor value,
/// then rerun: every row arrives, duplicates are at most one batch. A checkpoint inside a
/// tie must neither skip nor repeat the rest of the tie.
#[test]
fn postgres_source_kill_9_inside_a_tie_loses_nothing() {
    const N: u64 = 200_000;
    let pg = Postgres::start();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, at date NOT NULL, body text);
             INSERT INTO events SELECT i, DATE '2026-01-01' + (i % 7), repeat('x', 40)
             FROM generate_series(1, {N}) i;"
        ))
        .unwrap();
    let s = scratch();
    s.pipelines(&[pg_to_file(
        &pg,
        "events",
        1000,
        r#"table = "events", cursor_column = "at", tiebreak_column = "id""#,
    )]);
    let mut running = s.spawn_run(&["--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.read("out/events.jsonl").lines().count() < 40_000 {
        running.assert_running();
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.kill_9();
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    for line in s.read("out/events.jsonl").lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        *counts.entry(v["id"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, N, "every row arrived");
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 1000,
        "{duplicates} duplicates, more than one batch"
    );
}

fn file_to_pg(pg: &Postgres, sink_config: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "load"
batch_size = 200
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ {sink_config} }}
{grant}
[pipeline.dead_letter]
dir = "dlq"
"#,
        source = file_source(),
        sink = plugin("postgres_sink").display(),
        grant = pg.grant("pg-password"),
    )
}

/// file → Postgres upsert, killed during the load, rerun: the table equals the input, last
/// record per key winning, however many batches were redelivered.
#[test]
fn postgres_sink_upserts_and_a_kill_9_rerun_leaves_the_table_equal_to_the_input() {
    const N: u64 = 100_000;
    const KEYS: u64 = 40_000;
    let pg = Postgres::start();
    let s = scratch();
    let lines: String = (0..N)
        .map(|i| format!("{{\"id\":{},\"v\":{i},\"tag\":\"t{}\"}}\n", i % KEYS, i % 3))
        .collect();
    s.write("data/rows.jsonl", &lines);
    s.write("data/zz-bad.jsonl", "[1,2]\n");
    s.pipelines(&[file_to_pg(
        &pg,
        r#"table = "loaded", key = ["id"], create_table = true"#,
    )]);
    let mut running = s.spawn_run(&["--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut db = pg.client();
    loop {
        running.assert_running();
        assert!(Instant::now() < deadline, "no progress");
        let loaded = db
            .query_one("SELECT to_regclass('loaded') IS NOT NULL", &[])
            .unwrap()
            .get::<_, bool>(0)
            && db
                .query_one("SELECT count(*) FROM loaded", &[])
                .unwrap()
                .get::<_, i64>(0)
                > 5_000;
        if loaded {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    running.kill_9();
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    assert_eq!(
        rerun.summary("load")["dead_letters"],
        1,
        "the array is not a row"
    );

    let rows = db
        .query("SELECT id, v, tag FROM loaded ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len() as u64, KEYS);
    for (k, row) in rows.iter().enumerate() {
        let k = k as u64;
        let last = k + ((N - 1 - k) / KEYS) * KEYS; // the last i with i % KEYS == k
        assert_eq!(row.get::<_, i64>(0) as u64, k);
        assert_eq!(
            row.get::<_, i64>(1) as u64,
            last,
            "key {k}: the last record wins"
        );
        assert_eq!(row.get::<_, String>(2), format!("t{}", last % 3));
    }
}

/// Wrong password, nothing listening, a missing table: each says what and where, names
/// no secret, and commits nothing.
#[test]
fn bad_credentials_an_unreachable_database_and_a_missing_table_are_clear() {
    let pg = Postgres::start();
    let s = scratch();
    s.write("wrong-password", "not-the-password\n");
    let unreachable = format!(
        r#"grants.sql = {{ url = "postgres://weir@127.0.0.1:{}/weir", password = {{ file = "pg-password" }} }}"#,
        free_port()
    );
    let config = r#"table = "items", cursor_column = "id""#;
    s.pipelines(&[
        pg_to_file(&pg, "password", 10, config).replace("pg-password", "wrong-password"),
        pg_to_file(&pg, "unreachable", 10, config).replace(&pg.grant("pg-password"), &unreachable),
        pg_to_file(&pg, "missing", 10, config),
    ]);
    let run = s.run_once();
    assert!(!run.ok);
    let error = |p: &str| {
        let summary = run.summary(p);
        assert!(summary["checkpoint"].is_null(), "{summary}");
        summary["error"].as_str().unwrap().to_string()
    };
    assert_contains_all(
        &error("password"),
        &[
            "postgres_source",
            "password authentication failed",
            "127.0.0.1",
        ],
    );
    assert_contains_all(
        &error("unreachable"),
        &["cannot connect", "Connection refused"],
    );
    assert_contains_all(
        &error("missing"),
        &["relation \"items\" does not exist", "42P01"],
    );
    for secret in [PASSWORD, "not-the-password"] {
        assert!(
            !run.stderr.contains(secret),
            "a password leaked into the log"
        );
        assert!(
            !run.summaries.iter().any(|s| s.to_string().contains(secret)),
            "a password leaked into a summary"
        );
    }
}

fn cdc_to_file(pg: &Postgres, batch: u32) -> String {
    format!(
        r#"
[[pipeline]]
name = "cdc"
batch_size = {batch}
[pipeline.source]
plugin = "{source}"
config = {{ slot = "weir_cdc", tables = ["public.accounts"] }}
poll_wait = "100ms"
{grant}
{sink}"#,
        source = plugin("postgres_cdc").display(),
        sink = file_sink("cdc.jsonl", ", format = \"record\""),
        grant = pg.grant("pg-password"),
    )
}

/// The slot's confirmed position, and the LSN weir committed last.
fn positions(pg: &Postgres, run: &Run) -> (String, String) {
    let confirmed: String = pg
        .client()
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'weir_cdc'",
            &[],
        )
        .unwrap()
        .get(0);
    let checkpoint: Value =
        serde_json::from_str(run.summary("cdc")["checkpoint"].as_str().unwrap()).unwrap();
    (confirmed, checkpoint["lsn"].as_str().unwrap().to_string())
}

#[test]
fn postgres_cdc_streams_changes_in_commit_order_and_acks_the_slot() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
         CREATE TABLE other (id int PRIMARY KEY);",
    )
    .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_file(&pg, 100)]);
    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(
        first.summary("cdc")["records_written"],
        0,
        "the slot starts now"
    );

    db.batch_execute(
        "INSERT INTO accounts VALUES (1, 'ada', 10.50), (2, 'grace', 0);
         INSERT INTO other VALUES (1);
         BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 1; DELETE FROM accounts WHERE id = 2; COMMIT;
         INSERT INTO accounts VALUES (3, 'linus', NULL);",
    )
    .unwrap();
    let second = s.run_once();
    assert!(second.ok, "{}", second.stderr);
    let changes: Vec<(String, Value, Value)> = s
        .read("out/cdc.jsonl")
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            assert_eq!(r["headers"]["table"], "public.accounts", "{r}");
            assert!(
                r["timestamp_ms"].as_i64().unwrap() > 1_700_000_000_000,
                "{r}"
            );
            let key: Value = serde_json::from_str(r["key"].as_str().unwrap()).unwrap();
            (
                r["op"].as_str().unwrap().to_string(),
                key,
                r["value"].clone(),
            )
        })
        .collect();
    let expected = [
        (
            "create",
            serde_json::json!({"id": 1}),
            serde_json::json!({"id": 1, "owner": "ada", "balance": 10.50}),
        ),
        (
            "create",
            serde_json::json!({"id": 2}),
            serde_json::json!({"id": 2, "owner": "grace", "balance": 0}),
        ),
        (
            "update",
            serde_json::json!({"id": 1}),
            serde_json::json!({"id": 1, "owner": "ada", "balance": 11.50}),
        ),
        (
            "delete",
            serde_json::json!({"id": 2}),
            serde_json::json!({"id": 2}),
        ),
        (
            "create",
            serde_json::json!({"id": 3}),
            serde_json::json!({"id": 3, "owner": "linus", "balance": null}),
        ),
    ];
    assert_eq!(changes.len(), expected.len(), "{changes:?}");
    for (got, want) in changes.iter().zip(expected) {
        assert_eq!((got.0.as_str(), &got.1, &got.2), (want.0, &want.1, &want.2));
    }
    let (confirmed, committed) = positions(&pg, &second);
    assert_eq!(
        confirmed, committed,
        "the slot advanced to what weir committed"
    );
    assert_eq!(s.run_once().summary("cdc")["records_written"], 0);
}

/// The server ends the replication stream (its walsender terminated, as a failover or an
/// operator would): weir opens it again from where delivery stands and the replica ends
/// equal, the pipeline still running.
#[test]
fn postgres_cdc_reopens_a_stream_the_server_ended() {
    let (pg, mut db) = accounts_and_replica();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(&pg, "reopen", "weir_reopen", 50, "")]);
    let mut weir = s.spawn_run(&[]);
    let senders = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM pg_stat_replication", &[])
            .unwrap()
            .get(0)
    };
    weir.wait_until("the stream", Duration::from_secs(60), |_| {
        senders(&mut db) == 1
    });
    for round in 0..3 {
        db.batch_execute(&format!(
            "INSERT INTO accounts SELECT i, 'r{round}', i FROM generate_series({}, {}) i;
             UPDATE accounts SET balance = balance + 1 WHERE id % 7 = {round};",
            round * 1000 + 1,
            round * 1000 + 1000
        ))
        .unwrap();
        db.batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
            .unwrap();
    }
    weir.wait_until("the replica", Duration::from_secs(120), |_| {
        differing(&mut db, "accounts", "replica") == 0
    });
    weir.wait_until("the stream again", Duration::from_secs(60), |_| {
        senders(&mut db) == 1
    });
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("reopen")["status"], "ok", "{}", run.stderr);
}

/// A column added mid-stream arrives from the first change that has it; a dropped one
/// stops appearing; the changes around them keep their types.
#[test]
fn postgres_cdc_carries_columns_added_and_dropped_mid_stream() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)")
        .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_file(&pg, 100)]);
    assert!(s.run_once().ok, "creates the slot");
    db.batch_execute(
        "INSERT INTO accounts VALUES (1, 'ada', 1.5);
         ALTER TABLE accounts ADD COLUMN tags text[] DEFAULT '{}';
         INSERT INTO accounts VALUES (2, 'grace', 2, ARRAY['a', 'b']);
         UPDATE accounts SET tags = ARRAY['c'] WHERE id = 1;
         ALTER TABLE accounts DROP COLUMN owner;
         INSERT INTO accounts VALUES (3, 3.25, ARRAY['d']);",
    )
    .unwrap();
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let values: Vec<Value> = s
        .read("out/cdc.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["value"].clone())
        .collect();
    assert_eq!(
        values,
        [
            serde_json::json!({"id": 1, "owner": "ada", "balance": 1.5}),
            serde_json::json!({"id": 2, "owner": "grace", "balance": 2, "tags": ["a", "b"]}),
            serde_json::json!({"id": 1, "owner": "ada", "balance": 1.5, "tags": ["c"]}),
            serde_json::json!({"id": 3, "balance": 3.25, "tags": ["d"]}),
        ]
    );
}

/// SIGKILL mid-stream, restart: every change arrives, duplicates at most one batch, and
/// the slot ends where weir's checkpoint is.
#[test]
fn postgres_cdc_kill_9_mid_stream_loses_no_change() {
    const N: i64 = 20_000;
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text)")
        .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_file(&pg, 200)]);
    assert!(s.run_once().ok, "creates the slot");
    for chunk in 0..20 {
        db.batch_execute(&format!(
            "INSERT INTO accounts SELECT i, 'o' || i FROM generate_series({}, {}) i",
            chunk * 1000,
            chunk * 1000 + 999
        ))
        .unwrap();
    }
    let mut running = s.spawn_run(&[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.read("out/cdc.jsonl").lines().count() < 3_000 {
        running.assert_running();
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    running.kill_9();
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
    for line in s.read("out/cdc.jsonl").lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        *counts
            .entry(r["value"]["id"].as_i64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(counts.len() as i64, N, "every change arrived");
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 200,
        "{duplicates} duplicates, more than one batch"
    );
    let (confirmed, committed) = positions(&pg, &rerun);
    assert_eq!(confirmed, committed);
}

/// Records that do not fit the table (a value of the wrong type, a missing NOT NULL
/// column) become dead letters with the database's reason; the rest of the batch lands.
#[test]
fn postgres_sink_sends_rows_the_table_refuses_to_the_dead_letters() {
    let pg = Postgres::start();
    pg.client()
        .batch_execute("CREATE TABLE typed (id bigint PRIMARY KEY, n int NOT NULL)")
        .unwrap();
    let s = scratch();
    s.write(
        "data/rows.jsonl",
        "{\"id\":1,\"n\":5}\n{\"id\":2,\"n\":\"abc\"}\n{\"id\":3}\n{\"id\":4,\"n\":7}\n",
    );
    s.pipelines(&[file_to_pg(&pg, r#"table = "typed", key = ["id"]"#)]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("load")["records_written"], 2);
    assert_eq!(run.summary("load")["dead_letters"], 2);
    let rows: Vec<(i64, i32)> = pg
        .client()
        .query("SELECT id, n FROM typed ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(1, 5), (4, 7)]);
    let dead: Vec<Value> = s
        .read("dlq/dead-letters.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert!(
        reasons[0].contains("invalid input syntax for type integer"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("null value in column \"n\""),
        "{reasons:?}"
    );
}

/// Every mapped type survives a trip out through postgres-source and back in through
/// postgres-sink: the copy equals the original, NULLs included.
#[test]
fn every_mapped_type_round_trips_through_source_and_sink() {
    let pg = Postgres::start();
    let mut db = pg.client();
    let columns = "id bigint PRIMARY KEY, at timestamptz, day date, amount numeric(20,6), \
                   ratio double precision, ok boolean, doc jsonb, tags text[], nums int[], \
                   blob bytea, note text";
    db.batch_execute(&format!(
        "CREATE TABLE original ({columns});
         CREATE TABLE copy ({columns});
         INSERT INTO original VALUES
           (1, '2026-03-04T05:06:07.123456Z', '2026-03-04', 12345678901234.567891, 0.25, true,
            '{{\"a\": [1, {{\"b\": null}}], \"s\": \"x\"}}', ARRAY['x', 'y z', ''], ARRAY[1, -2],
            '\\xdeadbeef', 'quote \" and \\ backslash'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (3, '1970-01-01T00:00:00Z', '0001-01-01', -0.000001, -1e300, false, '[]', '{{}}', '{{}}',
            '\\x', '');"
    ))
    .unwrap();
    let s = scratch();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "trip"
[pipeline.source]
plugin = "{source}"
config = {{ table = "original" }}
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ table = "copy", key = ["id"] }}
{grant}
"#,
        source = plugin("postgres_source").display(),
        sink = plugin("postgres_sink").display(),
        grant = pg.grant("pg-password"),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("trip")["records_written"], 3);
    let differ: i64 = db
        .query_one(
            "SELECT count(*) FROM ((TABLE original EXCEPT TABLE copy) UNION ALL \
             (TABLE copy EXCEPT TABLE original)) d",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(differ, 0, "the copy equals the original");
}

fn db_rows(pg: &Postgres, query: &str) -> Vec<String> {
    pg.client()
        .query(query, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A CDC pipeline made before the first write waits on its idle slot without failing (its
/// first checkpoint, from before any change, moves nothing), then every change arrives.
#[test]
fn postgres_cdc_started_on_an_idle_table_streams_the_changes_that_follow() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);")
        .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_file(&pg, 100)]);
    let mut weir = s.spawn_run_with(&[], &[("RUST_LOG", "info,weir_pipeline=debug")]);
    // The idle slot's first checkpoint is committed, and then acknowledged, before a write.
    weir.wait_until("an idle checkpoint", Duration::from_secs(60), |weir| {
        weir.stderr().contains("checkpoint committed")
    });
    db.batch_execute(
        "INSERT INTO accounts SELECT i, 'o' || i, i FROM generate_series(1, 50) i;
         UPDATE accounts SET balance = 0 WHERE id <= 10;",
    )
    .unwrap();
    let lines = |s: &Scratch| {
        let out = s.path("out/cdc.jsonl");
        if out.exists() {
            s.read("out/cdc.jsonl").lines().count()
        } else {
            0
        }
    };
    weir.wait_until("60 changes", Duration::from_secs(90), |_| lines(&s) >= 60);
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(lines(&s), 60, "50 inserts and 10 updates, once each");
    assert_eq!(
        run.summary("cdc")["runs"],
        1,
        "it never failed: {}",
        run.stderr
    );
}

/// Through CDC every type maps as postgres-source maps it (json and jsonb as documents,
/// arrays as arrays, exact numerics, timestamps in RFC 3339, bytea as hex, uuid, enums,
/// NULL), into JSON files and into a replica equal to the original.
#[test]
fn postgres_cdc_maps_every_type_as_postgres_source_does() {
    let pg = Postgres::start();
    let mut db = pg.client();
    let columns = "id bigint PRIMARY KEY, at timestamptz, day date, amount numeric(30,10), \
                   ratio double precision, ok boolean, doc jsonb, raw json, tags text[], \
                   nums int[], blob bytea, note text, uid uuid, feel mood";
    db.batch_execute(&format!(
        "CREATE TYPE mood AS ENUM ('fine', 'grumpy');
         CREATE TABLE original ({columns});
         CREATE TABLE copy ({columns});"
    ))
    .unwrap();
    let cdc = |name: &str, sink: &str| {
        format!(
            r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ slot = "{name}", tables = ["public.original"] }}
poll_wait = "100ms"
{grant}
{sink}"#,
            source = plugin("postgres_cdc").display(),
            grant = pg.grant("pg-password"),
        )
    };
    let to_copy = format!(
        "[pipeline.sink]\nplugin = \"{}\"\nconfig = {{ table = \"copy\", key = [\"id\"] }}\n{}\n",
        plugin("postgres_sink").display(),
        pg.grant("pg-password")
    );
    let s = scratch();
    s.pipelines(&[
        cdc("cdc_pg", &to_copy),
        cdc("cdc_file", &file_sink("cdc.jsonl", "")),
    ]);
    let first = s.run_once();
    assert!(first.ok, "creates the slots: {}", first.stderr);
    db.batch_execute(
        "INSERT INTO original VALUES
           (1, '2026-03-04T05:06:07.123456Z', '2026-03-04', 12345678901234567890.0123456789, 0.25,
            true, '{\"a\": [1, {\"b\": null}], \"s\": \"x\", \"n\": 1.50}', '{\"keep\":  \"as written\"}',
            ARRAY['x', 'y z', '', 'q\"uote'], ARRAY[1, -2], '\\xdeadbeef', 'quote \" and \\ backslash',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'grumpy'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (3, '1970-01-01T00:00:00Z', '0001-01-01', -0.0000000001, -1e300, false, '[]', '\"s\"',
            '{}', '{}', '\\x', '', '00000000-0000-0000-0000-000000000000', 'fine');
         UPDATE original SET doc = '{\"updated\": true}', nums = ARRAY[7] WHERE id = 3;",
    )
    .unwrap();
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let differ: i64 = db
        .query_one(
            // json has no equality (and postgres-sink stores it through jsonb): compared as
            // documents; CDC's own output keeps its text (below).
            "WITH o AS (SELECT id, at, day, amount, ratio, ok, doc, raw::jsonb, tags, nums, blob, \
               note, uid, feel FROM original), \
             c AS (SELECT id, at, day, amount, ratio, ok, doc, raw::jsonb, tags, nums, blob, \
               note, uid, feel FROM copy) \
             SELECT count(*) FROM ((TABLE o EXCEPT TABLE c) UNION ALL (TABLE c EXCEPT TABLE o)) d",
            &[],
        )
        .unwrap()
        .get(0);
    let rows = |t: &str| -> Vec<String> {
        db_rows(
            &pg,
            &format!("SELECT row_to_json(t)::text FROM {t} t ORDER BY id"),
        )
    };
    assert_eq!(
        differ,
        0,
        "the replica equals the original: {:?} vs {:?}",
        rows("original"),
        rows("copy")
    );

    // The last change of each row, as CDC emitted it, is the row as postgres-source reads it.
    s.pipelines(&[pg_to_file(&pg, "source", 100, r#"table = "original""#)]);
    let read = s.run_once();
    assert!(read.ok, "{}", read.stderr);
    let by_id = |text: &str| -> BTreeMap<u64, String> {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_u64().unwrap(), l.to_string())
            })
            .collect()
    };
    let source = by_id(&s.read("out/source.jsonl"));
    let cdc = by_id(&s.read("out/cdc.jsonl"));
    assert_eq!(cdc, source, "the same text, type by type");
    let doc: Value = serde_json::from_str(&source[&1]).unwrap();
    assert_eq!(doc["doc"]["s"], "x", "jsonb is a document: {doc}");
    assert_eq!(doc["raw"]["keep"], "as written", "json too: {doc}");
    assert!(
        source[&1].contains("12345678901234567890.0123456789"),
        "{}",
        source[&1]
    );
}

/// postgres-cdc on `slot` (with more `config`) → postgres-sink upserting `replica` by `id`.
fn cdc_to_replica(pg: &Postgres, name: &str, slot: &str, batch: u32, config: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
batch_size = {batch}
[pipeline.source]
plugin = "{source}"
config = {{ slot = "{slot}", tables = ["public.accounts"]{config} }}
poll_wait = "100ms"
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ table = "replica", key = ["id"] }}
{grant}
"#,
        source = plugin("postgres_cdc").display(),
        sink = plugin("postgres_sink").display(),
        grant = pg.grant("pg-password"),
    )
}

/// A server with an empty `accounts` table and a `replica` of the same shape, and a client.
fn accounts_and_replica() -> (Postgres, postgres::Client) {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
         CREATE TABLE replica (id int PRIMARY KEY, owner text, balance numeric);",
    )
    .unwrap();
    (pg, db)
}

/// How many rows of `a` and `b` differ (both ways).
fn differing(db: &mut postgres::Client, a: &str, b: &str) -> i64 {
    db.query_one(
        &format!("SELECT count(*) FROM ((TABLE {a} EXCEPT TABLE {b}) UNION ALL (TABLE {b} EXCEPT TABLE {a})) d"),
        &[],
    )
    .unwrap()
    .get(0)
}

/// 100,000 existing rows are snapshotted while other sessions write, then streamed; weir
/// is killed (-9) inside the snapshot and again inside the stream, and the replica still
/// ends equal to the table, row for row.
#[test]
fn postgres_cdc_snapshot_then_stream_survives_concurrent_writes_and_kill_9() {
    const N: i64 = 100_000;
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(&format!(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
         CREATE TABLE replica (id int PRIMARY KEY, owner text, balance numeric);
         INSERT INTO accounts SELECT i, 'o' || i, i FROM generate_series(1, {N}) i;"
    ))
    .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(&pg, "snap", "weir_snap", 500, "")]);
    let count = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM replica", &[])
            .unwrap()
            .get(0)
    };

    // Writes while the snapshot is read: updates, inserts and deletes, each its own
    // transaction, some on rows already read and some on rows still to come.
    let mut weir = s.spawn_run(&[]);
    let writer = {
        let mut db = pg.client();
        std::thread::spawn(move || {
            for i in 0..1500i64 {
                let id = (i * 7919) % N + 1;
                db.batch_execute(&format!(
                    "UPDATE accounts SET balance = balance + 1, owner = 'w{i}' WHERE id = {id};
                     INSERT INTO accounts VALUES ({}, 'new', {i});
                     DELETE FROM accounts WHERE id = {};",
                    N + 1 + i,
                    (i * 104_729) % N + 1
                ))
                .unwrap();
            }
        })
    };
    weir.wait_until("a third of the snapshot", Duration::from_secs(180), |_| {
        count(&mut db) >= N / 3
    });
    weir.kill_9();
    let mut weir = s.spawn_run(&[]);
    writer.join().unwrap();
    weir.wait_until(
        "the replica after the snapshot",
        Duration::from_secs(180),
        |_| differing(&mut db, "accounts", "replica") == 0,
    );

    // A kill inside the stream: one transaction of 10,000 updates, killed part way in.
    db.batch_execute("UPDATE accounts SET balance = balance * 2 WHERE id <= 10000")
        .unwrap();
    weir.wait_until("some of the updates", Duration::from_secs(180), |_| {
        differing(&mut db, "accounts", "replica") < 20_000
    });
    weir.kill_9();
    let mut weir = s.spawn_run(&[]);
    weir.wait_until(
        "the replica after the stream",
        Duration::from_secs(180),
        |_| differing(&mut db, "accounts", "replica") == 0,
    );
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(differing(&mut db, "accounts", "replica"), 0);
}

/// Transactions that ran at once come in commit order, each whole, though their changes
/// interleave in the WAL; batches end inside them; and one transaction of 200,000 changes,
/// with a kill -9 part way through it, still lands in order (a row it updates a thousand
/// times ends at the last value).
#[test]
fn concurrent_and_huge_transactions_land_whole_and_in_order() {
    let (pg, mut db) = accounts_and_replica();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(&pg, "txns", "weir_txns", 97, "")]);
    assert!(s.run_once().ok, "creates the slot");

    // A begins first and commits last; B's changes come between A's in the WAL.
    let mut a = pg.client();
    let mut b = pg.client();
    a.batch_execute("BEGIN; INSERT INTO accounts SELECT i, 'a', i FROM generate_series(1, 1000) i")
        .unwrap();
    b.batch_execute(
        "BEGIN; INSERT INTO accounts SELECT i, 'b', i FROM generate_series(1001, 2000) i; COMMIT",
    )
    .unwrap();
    a.batch_execute(
        "INSERT INTO accounts SELECT i, 'a', i FROM generate_series(2001, 2500) i; COMMIT",
    )
    .unwrap();
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("txns")["records_written"], 2500);
    assert_eq!(differing(&mut db, "accounts", "replica"), 0);

    let mut weir = s.spawn_run(&[]);
    let started = Instant::now();
    db.batch_execute(
        "BEGIN;
         INSERT INTO accounts SELECT i, 'big', i FROM generate_series(10001, 209000) i;
         DO $$ BEGIN FOR i IN 1..1000 LOOP UPDATE accounts SET balance = i WHERE id = 1; END LOOP; END $$;
         COMMIT;",
    )
    .unwrap();
    let count = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM replica", &[])
            .unwrap()
            .get(0)
    };
    weir.wait_until(
        "part of the big transaction",
        Duration::from_secs(300),
        |_| count(&mut db) >= 50_000,
    );
    weir.kill_9();
    let mut weir = s.spawn_run(&[]);
    weir.wait_until("the whole transaction", Duration::from_secs(300), |_| {
        differing(&mut db, "accounts", "replica") == 0
    });
    eprintln!(
        "200,000 changes in one transaction landed in {:?} (with a kill -9)",
        started.elapsed()
    );
    let last: String = db
        .query_one("SELECT balance::text FROM replica WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(last, "1000");
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
}

/// An update that leaves a TOASTed column alone carries no value for it (logical decoding
/// has none to give): the replica keeps the one it has, rather than a NULL.
#[test]
fn an_unchanged_toasted_column_is_kept_in_the_replica() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, big text);
         CREATE TABLE replica (id int PRIMARY KEY, owner text, big text);
         INSERT INTO accounts SELECT i, 'o' || i, (SELECT string_agg(md5(i::text || j::text), '') \
           FROM generate_series(1, 4000) j) FROM generate_series(1, 20) i;",
    )
    .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(&pg, "toast", "weir_toast", 100, "")]);
    assert!(s.run_once().ok);
    assert_eq!(differing(&mut db, "accounts", "replica"), 0, "the snapshot");
    db.batch_execute("UPDATE accounts SET owner = 'changed' WHERE id <= 10")
        .unwrap();
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("toast")["records_written"], 10);
    let nulls: i64 = db
        .query_one("SELECT count(*) FROM replica WHERE big IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(nulls, 0, "no TOASTed value overwritten with NULL");
    assert_eq!(differing(&mut db, "accounts", "replica"), 0);
}

/// A watched table that stays quiet next to a busy one does not make the server keep the
/// busy one's WAL: the slot moves past it (the heartbeat), and no record comes of it.
#[test]
fn an_idle_watched_table_does_not_pin_a_busy_neighbours_wal() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text);
         CREATE TABLE replica (id int PRIMARY KEY, owner text);
         CREATE TABLE busy (id int PRIMARY KEY, payload text);",
    )
    .unwrap();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(
        &pg,
        "beat",
        "weir_beat",
        100,
        ", heartbeat_ms = 200",
    )]);
    assert!(s.run_once().ok, "creates the slot");
    db.batch_execute(
        "INSERT INTO busy SELECT i, repeat('x', 200) FROM generate_series(1, 20000) i;",
    )
    .unwrap();
    let tip: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    let confirmed = |db: &mut postgres::Client| -> bool {
        db.query_one(
            "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots \
             WHERE slot_name = 'weir_beat'",
            &[&tip],
        )
        .unwrap()
        .get(0)
    };
    let mut weir = s.spawn_run(&[]);
    weir.wait_until(
        "the slot moves past the busy table's WAL",
        Duration::from_secs(60),
        |_| confirmed(&mut db),
    );
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("beat")["records_written"], 0);
}

/// A slot dropped under a running pipeline: with `snapshot = "initial"` a clear error
/// naming what was lost and what to do; with `when_needed` a new slot and a new snapshot.
/// And `never` reads no existing row.
#[test]
fn a_dropped_slot_is_a_clear_error_unless_snapshot_is_when_needed() {
    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text);
         CREATE TABLE replica (id int PRIMARY KEY, owner text);
         INSERT INTO accounts SELECT i, 'o' || i FROM generate_series(1, 100) i;",
    )
    .unwrap();
    let s = scratch();
    let pipelines = |mode: &str| {
        vec![
            cdc_to_replica(
                &pg,
                "gone",
                "weir_gone",
                100,
                &format!(r#", snapshot = "{mode}""#),
            ),
            format!(
                r#"
[[pipeline]]
name = "never"
[pipeline.source]
plugin = "{source}"
config = {{ slot = "weir_never", tables = ["public.accounts"], snapshot = "never" }}
poll_wait = "100ms"
{grant}
{sink}"#,
                source = plugin("postgres_cdc").display(),
                grant = pg.grant("pg-password"),
                sink = file_sink("never.jsonl", ""),
            ),
        ]
    };
    s.pipelines(&pipelines("initial"));
    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(
        first.summary("gone")["records_written"],
        100,
        "the snapshot"
    );
    assert_eq!(first.summary("never")["records_written"], 0, "no snapshot");
    assert_eq!(differing(&mut db, "accounts", "replica"), 0);

    db.batch_execute(
        "SELECT pg_drop_replication_slot('weir_gone');
         INSERT INTO accounts SELECT i, 'late' || i FROM generate_series(101, 150) i;
         UPDATE accounts SET owner = 'changed' WHERE id <= 5;",
    )
    .unwrap();
    let run = s.run_once();
    assert_contains_all(
        &run.error("gone"),
        &[
            "replication slot `weir_gone` is gone",
            "are lost",
            "snapshot = \"when_needed\"",
        ],
    );
    assert_eq!(
        run.summary("never")["records_written"],
        55,
        "the changes, not the rows"
    );

    s.pipelines(&pipelines("when_needed"));
    let again = s.run_once();
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(
        again.summary("gone")["records_written"],
        150,
        "a new snapshot"
    );
    assert_eq!(differing(&mut db, "accounts", "replica"), 0);
}

/// postgres-cdc → postgres-sink replicates a table: inserts, updates and deletes, mixed
/// inside transactions and across batches, leave the replica equal to the original.
#[test]
fn cdc_into_postgres_sink_replicates_a_table() {
    let (pg, mut db) = accounts_and_replica();
    let s = scratch();
    s.pipelines(&[cdc_to_replica(&pg, "replicate", "weir_replica", 7, "")]);
    assert!(s.run_once().ok, "creates the slot");
    db.batch_execute(
        "INSERT INTO accounts SELECT i, 'o' || i, i * 1.5 FROM generate_series(1, 40) i;
         BEGIN;
           UPDATE accounts SET balance = 0 WHERE id % 3 = 0;
           DELETE FROM accounts WHERE id % 5 = 0;
           INSERT INTO accounts VALUES (100, 'new', 7.25);
           DELETE FROM accounts WHERE id = 1;
           INSERT INTO accounts VALUES (1, 'back again', NULL);
         COMMIT;
         DELETE FROM accounts WHERE id = 2;",
    )
    .unwrap();
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        differing(&mut db, "accounts", "replica"),
        0,
        "the replica equals the original"
    );
    let rows: i64 = db
        .query_one("SELECT count(*) FROM replica", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 32, "40 - 8 (id % 5) + 1 (100) - 1 (2)");
}

/// A plugin opening connection after connection against a real database is stopped at
/// its cap with a `config` error naming the limit; the other pipeline carries on.
#[test]
fn a_plugin_cannot_hoard_database_connections() {
    let pg = Postgres::start();
    let s = scratch();
    let hoard = |name: &str, tail: &str| {
        hostile_pipeline(name, "hoard-sql", "", &pg.grant("pg-password"), tail)
    };
    s.write("data/a.jsonl", &numbered(0..500));
    s.pipelines(&[
        hoard("default", ""),
        hoard("two", "[pipeline.limits]\nsql_connections = 2\n"),
        // Replication streams are connections too.
        hostile_pipeline(
            "streams",
            "hoard-replication",
            "",
            &pg.grant("pg-password"),
            "[pipeline.limits]\nsql_connections = 3\n",
        ),
        file_pipeline("healthy", 100, "healthy.jsonl"),
    ]);
    let run = s.run_once();
    for (name, held) in [("default", 4), ("two", 2), ("streams", 3)] {
        let summary = run.summary(name);
        assert_eq!(summary["status"], "failed", "{summary}");
        let error = summary["error"].as_str().unwrap();
        assert_contains_all(
            error,
            &[
                &format!("held {held}, then: this plugin already holds {held} SQL connections"),
                "limits.sql_connections",
            ],
        );
    }
    assert_eq!(run.summary("healthy")["records_written"], 500);
}

/// A plugin that opens a replication stream and never reads it makes the host hold only
/// its bound: the server is pushed back and keeps the changes in its WAL, and weir's
/// memory does not grow with them.
#[test]
fn an_unread_replication_stream_holds_the_host_to_its_bound() {
    const ROWS: i64 = 300_000;
    let pg = Postgres::start();
    let s = scratch();
    s.pipelines(&[hostile_pipeline(
        "unread",
        "unread-replication",
        &format!(", count = {ROWS}, target = \"unread\""),
        &pg.grant("pg-password"),
        "",
    )]);
    let mut weir = s.spawn_run(&[]);
    let mut db = pg.client();
    let rss_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let written = |db: &mut postgres::Client| -> bool {
        db.query_one(
            "SELECT to_regclass('unread') IS NOT NULL AND (SELECT count(*) FROM unread) >= $1",
            &[&ROWS],
        )
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
    };
    weir.wait_until("the rows written", Duration::from_secs(120), |_| {
        written(&mut db)
    });
    // The server's sender waits on the socket: weir stopped taking what it sends.
    let blocked = |db: &mut postgres::Client| -> bool {
        db.query_one(
            "SELECT count(*) = 1 FROM pg_stat_activity \
             WHERE backend_type = 'walsender' AND wait_event = 'WalSenderWriteData'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    weir.wait_until("the server pushed back", Duration::from_secs(60), |_| {
        blocked(&mut db)
    });
    let rss = rss_kib(weir.pid()) / 1024;
    assert!(
        rss < 200,
        "weir holds {rss} MiB with the stream unread and ~330 MiB of changes waiting"
    );
    eprintln!("unread stream: the server is pushed back, weir at {rss} MiB");
    drop(weir);
}

/// postgres-source's `discover` lists the tables it can read, with each column's type.
#[test]
fn discover_lists_tables_with_their_column_types() {
    let pg = Postgres::start();
    pg.client()
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, placed timestamptz, total numeric(10,2));
             CREATE SCHEMA billing;
             CREATE TABLE billing.invoices (n integer, note text);",
        )
        .unwrap();
    let s = scratch();
    s.pipelines(&[pg_to_file(&pg, "orders", 10, r#"table = "orders""#)]);
    let streams: BTreeMap<String, Value> = s
        .weir_json(&["discover", "pipeline.toml", "--output", "json"], true)
        .into_iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap().to_string(),
                l["schema"].clone(),
            )
        })
        .collect();
    assert_eq!(
        streams.keys().collect::<Vec<_>>(),
        ["billing.invoices", "public.orders"]
    );
    let orders = &streams["public.orders"]["properties"];
    assert_eq!(orders["id"]["x-postgres-type"], "bigint");
    assert_eq!(
        orders["placed"]["x-postgres-type"],
        "timestamp with time zone"
    );
    assert_eq!(orders["total"]["x-postgres-type"], "numeric");
    assert_eq!(
        streams["billing.invoices"]["properties"]["note"]["x-postgres-type"],
        "text"
    );
}

/// A statement blocks outside the guest, where the epoch deadline cannot reach: the host
/// cancels it before the call's deadline, so a slow statement ends as a transient SQL error
/// the guest sees, not as a guest interrupted on its way back. The call spends 0.6 s on a
/// first statement, so a timeout per statement (the server's) would let it run past.
#[test]
fn a_statement_cannot_outlast_the_call_deadline() {
    let pg = Postgres::start();
    let s = scratch();
    s.pipelines(&[hostile_pipeline(
        "slow",
        "sql-sleep",
        ", count = 1, target = \"0.6,5\"",
        &pg.grant("pg-password"),
        "[pipeline.limits]\ncall_timeout = \"1s\"\n",
    )]);
    let error = s.run_once().error("slow");
    assert!(error.contains("canceling statement"), "{error}");
    assert!(
        !error.contains("interrupted"),
        "the call ran past its deadline: {error}"
    );
}

/// Whatever sizes a plugin fetches in turn, every row of a query comes once and in order,
/// the end shows as a short fetch, and a statement or a transaction after a part-read
/// query finds the connection usable.
#[test]
fn fetched_rows_come_once_in_order_whatever_sizes_the_plugin_asks_for() {
    let pg = Postgres::start();
    let s = scratch();
    s.pipelines(&[hostile_pipeline(
        "steps",
        "sql-fetch-steps",
        ", count = 1000, target = \"1,7,3,250,2\"",
        &pg.grant("pg-password"),
        "",
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let leaked: Vec<String> = s
        .read("out/steps.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["leaked"].to_string())
        .collect();
    let mut expected: Vec<String> = (1..=1000)
        .map(|n| Value::String(format!("{{\"n\":{n}}}")).to_string())
        .collect();
    expected.push("\"transaction [1]\"".into());
    assert_eq!(leaked, expected);
}
