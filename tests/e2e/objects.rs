//! Object storage through the host: object-source and object-sink against a real
//! S3-compatible server, into and out of a real PostgreSQL.

use crate::fixtures::postgres::{PASSWORD, Postgres};
use crate::fixtures::s3::{S3, gunzip, gzip};
use crate::support::*;
use serde_json::Value;

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write("pg-password", PASSWORD);
    s.write("s3-key", "weir-test");
    s.write("s3-secret", "weir-test-secret");
    s
}

/// S3 (gzip JSON Lines and CSV) → Postgres, run by run: only new or changed objects move.
#[test]
fn s3_objects_to_postgres_incrementally_with_gzip_and_csv() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let s = scratch();
    let jsonl: String = (0..3000)
        .map(|i| format!("{{\"id\":\"{i}\",\"name\":\"n{i}\"}}\n"))
        .collect();
    s3.put("landing/a.jsonl.gz", &gzip(jsonl.as_bytes()));
    s3.put(
        "landing/b.csv",
        b"id,name\n5000,\"Smith, Jo\"\n5001,plain\n",
    );
    s3.put(
        "elsewhere/c.jsonl",
        b"{\"id\":\"9999\",\"name\":\"not under the prefix\"}\n",
    );
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "s3pg"
batch_size = 700
[pipeline.source]
plugin = "{source}"
config = {{ prefix = "landing/" }}
{objects}
[pipeline.sink]
plugin = "{sink}"
config = {{ table = "people", key = ["id"], create_table = true }}
{sql}
[pipeline.dead_letter]
dir = "dlq"
"#,
        source = plugin("object_source").display(),
        sink = plugin("postgres_sink").display(),
        objects = s3.grant(""),
        sql = pg.grant("pg-password"),
    )]);
    let first = s.run_once();
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.summary("s3pg")["records_written"], 3002);
    assert_eq!(
        s.run_once().summary("s3pg")["records_written"],
        0,
        "nothing new"
    );

    // A new object and a replaced one: both are read again, nothing else.
    s3.put("landing/b.csv", b"id,name\n5001,changed\n");
    s3.put("landing/d.jsonl", b"{\"id\":\"6000\",\"name\":\"new\"}\n");
    let third = s.run_once();
    assert_eq!(
        third.summary("s3pg")["records_written"],
        2,
        "{}",
        third.stderr
    );

    let mut db = pg.client();
    let count: i64 = db
        .query_one("SELECT count(*) FROM people", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 3003);
    let mut name = |id: &str| -> String {
        db.query_one("SELECT name FROM people WHERE id = $1", &[&id])
            .unwrap()
            .get(0)
    };
    assert_eq!(name("5000"), "Smith, Jo");
    assert_eq!(name("5001"), "changed");
    assert_eq!(name("2999"), "n2999");
    let outside: i64 = db
        .query_one("SELECT count(*) FROM people WHERE id = '9999'", &[])
        .unwrap()
        .get(0);
    assert_eq!(outside, 0, "objects outside the prefix are not read");
}

/// Postgres → S3 as gzip objects. Run again from scratch (the checkpoint reset), the same
/// batches land under the same names: replaced, not duplicated.
#[test]
fn postgres_to_s3_writes_deterministic_gzip_objects() {
    let s3 = S3::start();
    let pg = Postgres::start();
    pg.client()
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2));
             INSERT INTO orders SELECT i, i * 0.5 FROM generate_series(1, 2500) i;",
        )
        .unwrap();
    let s = scratch();
    s.pipelines(&[format!(
        r#"
state_dir = "state"
[[pipeline]]
name = "pgs3"
batch_size = 1000
[pipeline.source]
plugin = "{source}"
config = {{ table = "orders", cursor_column = "id" }}
{sql}
[pipeline.sink]
plugin = "{sink}"
config = {{ prefix = "orders/", gzip = true }}
{objects}
"#,
        source = plugin("postgres_source").display(),
        sink = plugin("object_sink").display(),
        objects = s3.grant("export"),
        sql = pg.grant("pg-password"),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let keys = s3.keys("export/orders/");
    assert_eq!(keys.len(), 3, "one object per batch: {keys:?}");
    let mut ids = Vec::new();
    for key in &keys {
        assert!(key.ends_with(".jsonl.gz"), "{key}");
        for line in String::from_utf8(gunzip(&s3.get(key))).unwrap().lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                row["total"].as_f64().unwrap(),
                row["id"].as_f64().unwrap() * 0.5
            );
            ids.push(row["id"].as_u64().unwrap());
        }
    }
    ids.sort();
    assert_eq!(ids, (1..=2500).collect::<Vec<_>>());

    std::fs::remove_dir_all(s.path("state")).unwrap();
    assert!(s.run_once().ok);
    assert_eq!(s3.keys("export/orders/"), keys, "the same names, replaced");
}

/// The same plugin on a local directory grant: gzip objects in, nothing outside the
/// directory reachable.
#[test]
fn object_source_reads_a_granted_directory() {
    let s = scratch();
    std::fs::create_dir_all(s.path("landing/2026")).unwrap();
    std::fs::write(
        s.path("landing/2026/a.jsonl.gz"),
        gzip(numbered(0..500).as_bytes()),
    )
    .unwrap();
    s.write("landing/2026/b.jsonl", &numbered(500..600));
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "dir"
batch_size = 128
[pipeline.source]
plugin = "{source}"
config = {{ prefix = "2026/" }}
grants.objects = {{ dir = "landing" }}
{sink}"#,
        source = plugin("object_source").display(),
        sink = file_sink("dir.jsonl", ""),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        numbers_in(&s.read("out/dir.jsonl")),
        (0..600).collect::<Vec<_>>()
    );
    assert_eq!(
        s.run_once().summary("dir")["records_written"],
        0,
        "the checkpoint held"
    );
}

/// CSV options on object-source: `;` between fields, `NA` as null, numbers and booleans
/// inferred, a column typed; a row whose value does not fit its column's type becomes a
/// dead letter with why, and the rows around it arrive.
#[test]
fn object_source_reads_csv_with_its_options() {
    let s = scratch();
    std::fs::create_dir_all(s.path("landing")).unwrap();
    s.write(
        "landing/flights.csv",
        "year;carrier;dep_delay;late;tailnum\n2013;UA;2;false;N14228\n2013;AA;NA;true;NA\n2013;B6;soon;false;N3\n2013;DL;-4.5;false;'N;1'\n",
    );
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "csv"
[pipeline.source]
plugin = "{source}"
config = {{ csv = {{ delimiter = ";", quote = "'", null_values = ["NA"], infer_types = true, types = {{ dep_delay = "number" }} }} }}
grants.objects = {{ dir = "landing" }}
{sink}
[pipeline.dead_letter]
dir = "dlq"
"#,
        source = plugin("object_source").display(),
        sink = file_sink("csv.jsonl", ""),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    let out: Vec<serde_json::Value> = s
        .read("out/csv.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        out,
        [
            serde_json::json!({"year": 2013, "carrier": "UA", "dep_delay": 2, "late": false, "tailnum": "N14228"}),
            serde_json::json!({"year": 2013, "carrier": "AA", "dep_delay": null, "late": true, "tailnum": null}),
            serde_json::json!({"year": 2013, "carrier": "DL", "dep_delay": -4.5, "late": false, "tailnum": "N;1"}),
        ]
    );
    let dead = s.read("dlq/dead-letters.jsonl");
    assert!(
        dead.contains("column `dep_delay`: `soon` is not a number"),
        "{dead}"
    );
}
