//! PostgreSQL change data capture, in the same run and on the same server:
//! - a backlog of pgbench-style updates (one account's balance per transaction) read from
//!   a replication slot by `pg_recvlogical` into /dev/null (the server's decoding limit),
//!   by weir's postgres-cdc into a JSON Lines file, and by postgres-cdc into a replica table
//!   through postgres-sink (checked equal to the table afterwards);
//! - the lag while weir runs and the table takes a steady rate of updates: the slot's
//!   unconfirmed WAL, sampled, and how long the replica takes to equal the table after the
//!   last write;
//! - one transaction of 200,000 inserts, from its commit to the replica holding all of it.
//!
//! Needs the plugins (`scripts/build.sh`), PostgreSQL's server binaries and wal2json.
//! Run: `cargo bench -p weir-pipeline --bench cdc`. `WEIR_BENCH_CHANGES` sets the backlog
//! (default 100,000), `WEIR_BENCH_RATE` the steady rate (default 2,000 updates/s for 10 s).

// The throwaway cluster the end-to-end tests use.
#[path = "../../../tests/e2e/fixtures/ports.rs"]
mod ports;
#[path = "../../../tests/e2e/fixtures/postgres.rs"]
mod postgres;
mod process;

use postgres::{PASSWORD, Postgres};
use process::{count_lines, measure};
use std::process::Command;
use std::time::{Duration, Instant};

const ACCOUNTS: i64 = 100_000;
const BIG: i64 = 200_000;

fn main() {
    let env = |name: &str, default: i64| -> i64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let changes = env("WEIR_BENCH_CHANGES", 100_000);
    let rate = env("WEIR_BENCH_RATE", 2_000);
    let (weir, plugins) = process::weir_and_plugins("postgres_cdc.wasm");

    let pg = Postgres::start();
    let mut db = pg.client();
    db.batch_execute(&format!(
        "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
         INSERT INTO accounts SELECT i, i / 1000, 0, '' FROM generate_series(1, {ACCOUNTS}) i;
         CREATE TABLE replica (LIKE accounts INCLUDING ALL);
         INSERT INTO replica TABLE accounts;"
    ))
    .unwrap();
    for slot in ["to_file", "to_table", "recv"] {
        db.batch_execute(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'wal2json')"
        ))
        .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg-password"), PASSWORD).unwrap();
    let pipeline = |name: &str, sink: &str| {
        format!(
            r#"
[[pipeline]]
name = "{name}"
batch_size = 2000
[pipeline.source]
plugin = "{source}"
config = {{ slot = "{name}", tables = ["public.accounts"], snapshot = "never" }}
poll_wait = "200ms"
{grant}
{sink}"#,
            source = plugins.join("postgres_cdc.wasm").display(),
            grant = pg.grant("pg-password"),
        )
    };
    let to_file = pipeline(
        "to_file",
        &format!(
            "[pipeline.sink]\nplugin = \"{}\"\nconfig = {{ dir = \"/out\", file = \"changes.jsonl\" }}\n\
             grants.dirs = [{{ host = \"out\", guest = \"/out\", write = true }}]\n",
            plugins.join("file_sink.wasm").display()
        ),
    );
    let to_table = pipeline(
        "to_table",
        &format!(
            "[pipeline.sink]\nplugin = \"{}\"\nconfig = {{ table = \"replica\", key = [\"aid\"] }}\n{}\n",
            plugins.join("postgres_sink.wasm").display(),
            pg.grant("pg-password")
        ),
    );
    std::fs::write(dir.path().join("file.toml"), &to_file).unwrap();
    std::fs::write(dir.path().join("table.toml"), &to_table).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    // Compile the plugins into the cache first (and open the slots once): the runs measure
    // streaming, not compiling.
    for file in ["file.toml", "table.toml"] {
        process::weir_check(&weir, dir.path(), file);
    }

    // The backlog: one update per transaction, as pgbench's accounts see them.
    let started = Instant::now();
    db.batch_execute(&format!(
        "DO $$ BEGIN FOR i IN 1..{changes} LOOP \
           UPDATE accounts SET abalance = abalance + 1 WHERE aid = (i * 7919) % {ACCOUNTS} + 1; \
           COMMIT; END LOOP; END $$;"
    ))
    .unwrap();
    let written = started.elapsed();
    let end: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);

    let mut recv = Command::new("pg_recvlogical");
    recv.args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "weir"])
        .args(["-d", "weir", "--slot", "recv", "--start", "--endpos", &end])
        .args(["-f", "/dev/null"])
        .args(["-o", "format-version=2", "-o", "include-transaction=1"])
        .args(["-o", "include-lsn=1", "-o", "include-xids=1"])
        .args(["-o", "include-timestamp=1", "-o", "include-pk=1"])
        .args(["-o", "add-tables=public.accounts"])
        .env("PGPASSWORD", PASSWORD);
    let decoded = measure(recv);

    let once = |file: &str| {
        let mut cmd = Command::new(&weir);
        cmd.args(["run", file, "--once"]).current_dir(dir.path());
        cmd
    };
    let filed = measure(once("file.toml"));
    let lines = count_lines(&dir.path().join("out/changes.jsonl"));
    assert_eq!(lines, changes as u64, "weir → file");
    let tabled = measure(once("table.toml"));
    let differing = |db: &mut ::postgres::Client| -> i64 {
        db.query_one(
            "SELECT count(*) FROM ((TABLE accounts EXCEPT TABLE replica) \
             UNION ALL (TABLE replica EXCEPT TABLE accounts)) d",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(differing(&mut db), 0, "the replica equals the table");

    // A steady rate into a running weir: 100 transactions at a time, on schedule.
    let mut running = Command::new(&weir)
        .args(["run", "table.toml"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seconds = 10;
    let writer = {
        let mut db = pg.client();
        std::thread::spawn(move || {
            let started = Instant::now();
            let steps = rate * seconds / 100;
            for step in 0..steps {
                db.batch_execute(&format!(
                    "DO $$ BEGIN FOR i IN 1..100 LOOP \
                       UPDATE accounts SET abalance = abalance - 1 \
                       WHERE aid = ({step} * 100 + i) * 104729 % {ACCOUNTS} + 1; \
                       COMMIT; END LOOP; END $$;"
                ))
                .unwrap();
                let due = Duration::from_secs_f64((step + 1) as f64 * 100.0 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            started.elapsed()
        })
    };
    let mut lag = Vec::new();
    while !writer.is_finished() {
        lag.push(
            db.query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
                 FROM pg_replication_slots WHERE slot_name = 'to_table'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let steady = writer.join().unwrap();
    let last_write = Instant::now();
    while differing(&mut db) != 0 {
        assert!(
            last_write.elapsed() < Duration::from_secs(120),
            "no catch-up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let caught_up = last_write.elapsed();
    lag.sort();

    // One transaction of 200,000 inserts, from its commit to the last row in the replica.
    db.batch_execute(&format!(
        "INSERT INTO accounts SELECT i, 0, 0, '' FROM generate_series({}, {}) i",
        ACCOUNTS + 1,
        ACCOUNTS + BIG
    ))
    .unwrap();
    let committed = Instant::now();
    while differing(&mut db) != 0 {
        assert!(committed.elapsed() < Duration::from_secs(600), "no landing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let landed = committed.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status();
    let _ = running.wait();

    let row = |name: &str, (took, rss): (Duration, u64)| {
        println!(
            "{name:<52} {:>8.2} {:>12.0} {:>8.0} MiB",
            took.as_secs_f64(),
            changes as f64 / took.as_secs_f64(),
            rss as f64 / 1024.0
        );
    };
    println!(
        "\nPostgreSQL CDC: a backlog of {changes} one-update transactions (written in {:.1} s), \
         read from a wal2json slot each",
        written.as_secs_f64()
    );
    println!(
        "{:<52} {:>8} {:>12} {:>12}",
        "", "seconds", "changes/s", "peak RSS"
    );
    row("pg_recvlogical -> /dev/null (decoding limit)", decoded);
    row("weir postgres-cdc -> file-sink (JSONL)", filed);
    row("weir postgres-cdc -> postgres-sink (replica)", tabled);
    println!(
        "weir/pg_recvlogical: {:.2}x to a file, {:.2}x to a replica table",
        decoded.0.as_secs_f64() / filed.0.as_secs_f64(),
        decoded.0.as_secs_f64() / tabled.0.as_secs_f64()
    );
    println!(
        "steady {rate} updates/s for {:.1} s into a running weir -> replica: slot lag median {} KiB, \
         max {} KiB; replica equal {} ms after the last write",
        steady.as_secs_f64(),
        lag.get(lag.len() / 2).copied().unwrap_or_default() / 1024,
        lag.last().copied().unwrap_or_default() / 1024,
        caught_up.as_millis()
    );
    println!(
        "one transaction of {BIG} inserts: in the replica {:.2} s after its commit ({:.0} changes/s)",
        landed.as_secs_f64(),
        BIG as f64 / landed.as_secs_f64()
    );
}
