//! A PostgreSQL table → a JSON Lines file, three ways in the same run: weir
//! (postgres-source → file-sink), `psql \copy` (the server's own export: the limit), and
//! dlt's sql_database source → filesystem destination (a Python peer from PyPI). Each runs
//! as its own process; the table prints wall time, rows/s and peak RSS (sampled).
//!
//! Needs the plugins (`scripts/build.sh`), PostgreSQL's server binaries and, for the dlt
//! row, a Python with dlt, SQLAlchemy and psycopg2 as `$WEIR_DLT_PYTHON` (scripts/bench.sh
//! installs one; the row is skipped without it).
//! Run: `cargo bench -p weir-pipeline --bench postgres`. `WEIR_BENCH_ROWS` sets the rows
//! (default 1,000,000).

// The throwaway cluster the end-to-end tests use.
#[path = "../../../tests/e2e/fixtures/ports.rs"]
mod ports;
#[path = "../../../tests/e2e/fixtures/postgres.rs"]
mod postgres;

mod process;

use postgres::{PASSWORD, Postgres};
use process::{count_lines, measure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const DLT: &str = r#"
import os, sys, dlt
from dlt.sources.sql_database import sql_table
url, table, out = sys.argv[1:4]
os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
pipeline = dlt.pipeline(
    pipeline_name="bench", pipelines_dir=os.path.join(out, "state"),
    destination=dlt.destinations.filesystem(bucket_url="file://" + os.path.join(out, "files")),
    dataset_name="bench",
)
pipeline.run(sql_table(credentials=url, table=table, chunk_size=5000), loader_file_format="jsonl")
"#;

fn main() {
    let rows: u64 = std::env::var("WEIR_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (weir, plugins) = process::weir_and_plugins("postgres_source.wasm");

    let pg = Postgres::start();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE bench (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL,
               name text, amount numeric(12,2), tags text[], doc jsonb);
             INSERT INTO bench SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
               'customer ' || (i % 50000), (i % 100000) / 100.0, ARRAY['a', 'b'],
               jsonb_build_object('k', i % 7)
             FROM generate_series(1, {rows}) i;"
        ))
        .unwrap();
    pg.client().batch_execute("VACUUM ANALYZE bench").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg-password"), PASSWORD).unwrap();
    // `bench`: an incremental read, ordered by its cursor column. `full`: a full refresh,
    // the same unordered scan as psql's export, so the two rows apart show what the order
    // costs the server.
    for (name, source_config) in [
        ("bench", r#"{ table = "bench", cursor_column = "id" }"#),
        ("full", r#"{ table = "bench" }"#),
    ] {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!(
                r#"
[[pipeline]]
name = "{name}"
batch_size = 5000
[pipeline.source]
plugin = "{source}"
config = {source_config}
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "{name}.jsonl" }}
grants.dirs = [{{ host = "out", guest = "/out", write = true }}]
"#,
                source = plugins.join("postgres_source.wasm").display(),
                sink = plugins.join("file_sink.wasm").display(),
                grant = pg.grant("pg-password"),
            ),
        )
        .unwrap();
    }
    // Compile the plugins into the cache first: the run measures reading, not compiling.
    process::weir_check(&weir, dir.path(), "bench.toml");

    let psql = |query: &str, file: &str, options: &str| {
        let mut cmd = Command::new("psql");
        let port = pg.port.to_string();
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "weir",
            "-d",
            "weir",
            "-q",
            "-c",
        ])
        .arg(format!(
            "\\copy ({query}) TO '{}'{options}",
            dir.path().join(file).display()
        ))
        .env("PGPASSWORD", PASSWORD);
        cmd
    };
    let dlt_ok = Command::new(dlt_python())
        .args(["-c", "import dlt, sqlalchemy, psycopg2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let script = dir.path().join("dlt_bench.py");
    std::fs::write(&script, DLT).unwrap();

    // Interleaved rounds, each tool as its own process; weir starts over each round.
    type Runs = Vec<(Duration, u64)>;
    let [
        mut weir_runs,
        mut full_runs,
        mut csv_runs,
        mut jsonl_runs,
        mut dlt_runs,
    ]: [Runs; 5] = Default::default();
    for _ in 0..ROUNDS {
        for stale in [".weir", "out"] {
            let _ = std::fs::remove_dir_all(dir.path().join(stale));
        }
        for (name, runs) in [("bench", &mut weir_runs), ("full", &mut full_runs)] {
            let mut cmd = Command::new(&weir);
            cmd.args(["run", &format!("{name}.toml"), "--once"])
                .current_dir(dir.path());
            runs.push(measure(cmd));
            assert_eq!(
                count_lines(&dir.path().join(format!("out/{name}.jsonl"))),
                rows,
                "weir {name}"
            );
        }
        csv_runs.push(measure(psql("SELECT * FROM bench", "copy.csv", " CSV")));
        assert_eq!(count_lines(&dir.path().join("copy.csv")), rows, "psql CSV");
        jsonl_runs.push(measure(psql(
            "SELECT row_to_json(b) FROM bench b",
            "copy.jsonl",
            "",
        )));
        assert_eq!(
            count_lines(&dir.path().join("copy.jsonl")),
            rows,
            "psql JSONL"
        );
        if dlt_ok {
            let out = dir.path().join("dlt");
            let _ = std::fs::remove_dir_all(&out);
            let url = format!(
                "postgresql+psycopg2://weir:{PASSWORD}@127.0.0.1:{}/weir",
                pg.port
            );
            let mut cmd = Command::new(dlt_python());
            cmd.arg(&script).arg(url).arg("bench").arg(&out);
            dlt_runs.push(measure(cmd));
            let mut files = Vec::new();
            find_jsonl(&out.join("files"), &mut files);
            let lines: u64 = files.iter().map(|f| count_lines(f)).sum();
            assert_eq!(lines, rows, "dlt wrote {lines} rows in {files:?}");
        }
    }
    // The same rows, not only as many: weir's file and psql's row_to_json, row by row.
    let by_id = |path: &Path| -> Vec<serde_json::Value> {
        let mut rows: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.sort_by_key(|r| r["id"].as_i64());
        rows
    };
    let psql_rows = by_id(&dir.path().join("copy.jsonl"));
    let same = ["bench", "full"]
        .iter()
        .all(|name| by_id(&dir.path().join(format!("out/{name}.jsonl"))) == psql_rows);
    assert!(same, "weir's rows differ from psql's row_to_json");

    println!(
        "\nPostgreSQL table ({rows} rows, 6 columns) -> one file, each tool as its own process, \
         {ROUNDS} rounds (medians)"
    );
    println!("{}", versions(dlt_ok));
    println!(
        "{:<44} {:>9} {:>12} {:>11} {:>14}",
        "", "seconds", "rows/s", "peak RSS", "min-max s"
    );
    print_row(
        "weir postgres-source -> file-sink (JSONL)",
        &weir_runs,
        rows,
    );
    print_row("weir, full refresh (unordered, as psql)", &full_runs, rows);
    print_row("psql \\copy to CSV (the limit)", &csv_runs, rows);
    print_row("psql \\copy of row_to_json (JSONL)", &jsonl_runs, rows);
    if dlt_ok {
        print_row("dlt sql_database -> filesystem (JSONL)", &dlt_runs, rows);
    } else {
        println!("dlt: not installed, skipped (scripts/bench.sh installs it)");
    }
    println!("weir's rows equal psql's row_to_json, row by row: {same}");
}

const ROUNDS: usize = 3;

/// What is compared, by version: the server, psql, and dlt when it is there.
fn versions(dlt: bool) -> String {
    let version = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| format!("{program}: not found"))
    };
    let bin = std::env::var("WEIR_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    format!(
        "versions: {}; {}; dlt {}",
        version(&format!("{bin}/postgres"), &["--version"]),
        version("psql", &["--version"]),
        if dlt {
            version(&dlt_python(), &["-c", "import dlt; print(dlt.__version__)"])
        } else {
            "not installed".into()
        },
    )
}

/// Median seconds and rows/s, the highest peak RSS, and the range of seconds.
fn print_row(name: &str, runs: &[(Duration, u64)], rows: u64) {
    let mut took: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    took.sort();
    let median = took[took.len() / 2];
    let rss_kb = runs.iter().map(|r| r.1).max().unwrap_or_default();
    println!(
        "{name:<44} {:>9.2} {:>12.0} {:>8.0} MiB {:>6.2}-{:<6.2}",
        median.as_secs_f64(),
        rows as f64 / median.as_secs_f64(),
        rss_kb as f64 / 1024.0,
        took[0].as_secs_f64(),
        took[took.len() - 1].as_secs_f64()
    );
}

/// The data files dlt wrote for the table (not its own state tables).
fn find_jsonl(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_jsonl(&path, found);
        } else if path.extension().is_some_and(|e| e == "jsonl")
            && path.components().any(|c| c.as_os_str() == "bench")
            && !path.to_string_lossy().contains("_dlt_")
        {
            found.push(path);
        }
    }
}

/// The Python with dlt installed: scripts/bench.sh keeps it in a virtualenv of its own.
fn dlt_python() -> String {
    std::env::var("WEIR_DLT_PYTHON").unwrap_or_else(|_| "python3".into())
}
