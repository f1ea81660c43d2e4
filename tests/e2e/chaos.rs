//! Chaos: `weir` killed with SIGKILL at random moments, over and over, with new input
//! arriving between kills; then one run to the end, and a count of every input record at
//! the destination.
//!
//! - In the test command: 20 kills into each transactional sink (file-sink, postgres-sink
//!   from files and from Kafka): every record exactly once.
//! - Not in CI (minutes long): `scripts/chaos.sh` runs file → PostgreSQL, file → file-sink,
//!   file → object-sink, Kafka → Kafka and postgres-cdc → PostgreSQL 100 times each and
//!   prints the table README quotes.
//!
//! `WEIR_CHAOS_KILLS` (default 100 per pipeline), `WEIR_CHAOS_SEED` and `WEIR_CHAOS_ONLY`
//! (`file`, `kafka` or `cdc`) steer it.

use crate::fixtures::broker::Broker;
use crate::fixtures::postgres::{PASSWORD, Postgres};
use crate::support::*;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Records per batch: at most one batch is in flight (flushed, not yet committed) when a
/// kill lands, so a kill may repeat at most this many.
const BATCH: u64 = 200;
/// New input between two kills (file-source reads it so fast that it gets more).
const FEED: u64 = 300;
const FILE_FEED: u64 = 20_000;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*: enough to spread kill moments, and repeatable from a seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What one pipeline went through, and what arrived.
struct Outcome {
    pipeline: &'static str,
    runs: usize,
    kills: usize,
    records: u64,
    lost: u64,
    duplicated: u64,
    /// Into a transactional sink: nothing may be duplicated.
    exactly_once: bool,
}

/// Counts of each number delivered → (lost, duplicated) against 0..total.
fn tally(delivered: &[u64], total: u64) -> (u64, u64) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for n in delivered {
        *seen.entry(*n).or_default() += 1;
    }
    let lost = (0..total).filter(|n| !seen.contains_key(n)).count() as u64;
    let duplicated = seen.values().map(|c| c - 1).sum();
    (lost, duplicated)
}

/// Feeds, starts `weir run`, kills it at a random moment up to `max_ms`; `kills` times.
/// Returns how many runs were started and how many of them the kill caught running.
fn kill_loop(
    s: &Scratch,
    rng: &mut Rng,
    kills: usize,
    max_ms: u64,
    mut feed: impl FnMut(u64),
) -> (usize, usize) {
    let (mut runs, mut killed) = (0, 0);
    for round in 0..kills as u64 {
        feed(round);
        let mut weir = s.spawn_run(&[]);
        runs += 1;
        std::thread::sleep(Duration::from_millis(rng.below(max_ms)));
        if weir.is_running() {
            killed += 1;
        }
        weir.kill_9();
    }
    (runs, killed)
}

/// Polls `delivered` until it covers 0..total (or five minutes pass).
fn wait_until_whole(total: u64, mut delivered: impl FnMut() -> Vec<u64>) -> Vec<u64> {
    let started = Instant::now();
    loop {
        let now = delivered();
        if tally(&now, total).0 == 0 || started.elapsed() > Duration::from_secs(300) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn numbers(db: &mut postgres::Client, table: &str) -> Vec<u64> {
    db.query(&format!("SELECT n::bigint FROM {table}"), &[])
        .map(|rows| rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
        .unwrap_or_default()
}

/// file → file-sink (`sink` = "file") or → object-sink on a directory (`sink` = "objects").
fn file_to_files(sink: &str, rng: &mut Rng, kills: usize) -> Outcome {
    let s = Scratch::new();
    let table = match sink {
        "file" => file_pipeline("file-file", BATCH as u32, "out.jsonl"),
        _ => {
            std::fs::create_dir_all(s.path("objects")).unwrap();
            file_to_object_sink("file-objects", "chaos")
        }
    };
    s.pipelines(&[table]);
    let (runs, killed) = kill_loop(&s, rng, kills, 250, feed_files(&s, FILE_FEED));
    let total = kills as u64 * FILE_FEED;
    let last = s.run_once();
    assert!(last.ok, "{}", last.stderr);
    let delivered = match sink {
        "file" => numbers_in(&s.read("out/out.jsonl")),
        _ => objects_in(&s.path("objects/chaos")),
    };
    let (lost, duplicated) = tally(&delivered, total);
    Outcome {
        pipeline: if sink == "file" {
            "file → file-sink"
        } else {
            "file → object-sink (directory)"
        },
        runs: runs + 1,
        kills: killed,
        records: total,
        lost,
        duplicated,
        exactly_once: true,
    }
}

/// The numbers in every object a listing shows under `dir` (not the host's temporary
/// `.weir-tmp-*` files a kill inside a write leaves).
fn objects_in(dir: &std::path::Path) -> Vec<u64> {
    let mut delivered = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("part-") {
            delivered.extend(numbers_in(&std::fs::read_to_string(entry.path()).unwrap()));
        }
    }
    delivered
}

/// Pipeline `name`: the `source` table(s) → postgres-sink with `config` (TOML inline
/// table fields), logged in with the password in `pg-password`.
fn to_postgres_sink(name: &str, source: &str, config: &str, pg: &Postgres) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
batch_size = {BATCH}
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ {config} }}
{grant}
"#,
        sink = plugin("postgres_sink").display(),
        grant = pg.grant("pg-password"),
    )
}

/// Pipeline `name`: file-source → object-sink on the directory `objects`, under `prefix`.
fn file_to_object_sink(name: &str, prefix: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
batch_size = {BATCH}
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ prefix = "{prefix}/" }}
grants.objects = {{ dir = "objects" }}
"#,
        source = file_source(),
        sink = plugin("object_sink").display(),
    )
}

fn file_to_postgres(pg: &Postgres, rng: &mut Rng, kills: usize) -> Outcome {
    let s = Scratch::new();
    s.write("pg-password", PASSWORD);
    s.pipelines(&[to_postgres_sink(
        "file-pg",
        &file_source(),
        r#"table = "chaos_file", create_table = true"#,
        pg,
    )]);
    let (runs, killed) = kill_loop(&s, rng, kills, 250, feed_files(&s, FILE_FEED));
    let total = kills as u64 * FILE_FEED;
    let last = s.run_once();
    assert!(last.ok, "{}", last.stderr);
    let (lost, duplicated) = tally(&numbers(&mut pg.client(), "chaos_file"), total);
    Outcome {
        pipeline: "file → PostgreSQL",
        runs: runs + 1,
        kills: killed,
        records: total,
        lost,
        duplicated,
        exactly_once: true,
    }
}

/// The `[pipeline.source]` table of a kafka-source reading `topic` from the start, in a
/// group whose session (6 s) outlives a kill.
fn kafka_source(broker: &Broker, topic: &str) -> String {
    format!(
        r#"[pipeline.source]
plugin = "{}"
config = {{ topics = ["{topic}"] }}
poll_wait = "100ms"
grants.kafka = {{ brokers = "{}", topics = ["{topic}"], properties = {{ "auto.offset.reset" = "earliest", "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }} }}
"#,
        plugin("kafka_source").display(),
        broker.brokers()
    )
}

fn kafka_to_kafka(rng: &mut Rng, kills: usize) -> Outcome {
    let broker = Broker::start();
    broker.create_topic("chaos-in", 3);
    broker.create_topic("chaos-out", 3);
    let s = Scratch::new();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "kafka-kafka"
batch_size = {BATCH}
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ topic = "chaos-out" }}
grants.kafka = {{ brokers = "{b}", topics = ["chaos-out"] }}
"#,
        source = kafka_source(&broker, "chaos-in"),
        sink = plugin("kafka_sink").display(),
        b = broker.brokers(),
    )]);
    let feed = |round: u64| {
        let records: Vec<_> = (round * FEED..(round + 1) * FEED)
            .map(|n| {
                (
                    Some(format!("k{}", n % 7)),
                    Some(format!("{{\"n\":{n}}}")),
                    vec![],
                )
            })
            .collect();
        broker.produce("chaos-in", &records);
    };
    // A killed member holds its partitions until its session (6 s here) times out and the
    // group rebalances: kills are spread past that, so many land mid-stream.
    let (runs, killed) = kill_loop(&s, rng, kills, 9000, feed);
    let total = kills as u64 * FEED;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", "weir-chaos-reader")
        .create()
        .unwrap();
    let out = || {
        let count: i64 = (0..3)
            .map(|p| {
                let (low, high) = reader
                    .fetch_watermarks("chaos-out", p, Duration::from_secs(10))
                    .unwrap();
                high - low
            })
            .sum();
        broker
            .consume("chaos-out", 3, count as usize)
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.value.as_ref()?).ok())
            .filter_map(|v| v["n"].as_u64())
            .collect::<Vec<_>>()
    };
    let weir = s.spawn_run(&[]);
    let delivered = wait_until_whole(total, out);
    let stopped = terminate(weir);
    assert!(stopped.ok, "{}", stopped.stderr);
    let (lost, duplicated) = tally(&delivered, total);
    Outcome {
        pipeline: "Kafka → Kafka",
        runs: runs + 1,
        kills: killed,
        records: total,
        lost,
        duplicated,
        exactly_once: false,
    }
}

fn cdc_to_postgres(pg: &Postgres, rng: &mut Rng, kills: usize) -> Outcome {
    let mut db = pg.client();
    db.batch_execute("CREATE TABLE chaos_src (id bigint PRIMARY KEY, n bigint NOT NULL)")
        .unwrap();
    let s = Scratch::new();
    s.write("pg-password", PASSWORD);
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "cdc-pg"
batch_size = {BATCH}
[pipeline.source]
plugin = "{source}"
config = {{ slot = "weir_chaos", tables = ["public.chaos_src"] }}
poll_wait = "100ms"
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ table = "chaos_cdc", create_table = true }}
{grant}
"#,
        source = plugin("postgres_cdc").display(),
        sink = plugin("postgres_sink").display(),
        grant = pg.grant("pg-password"),
    )]);
    // The slot is made on the first start: rows from before it are not changes it sees.
    let mut first = s.spawn_run(&[]);
    let started = Instant::now();
    while db
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'weir_chaos'",
            &[],
        )
        .unwrap()
        .is_empty()
    {
        first.assert_running();
        assert!(started.elapsed() < Duration::from_secs(60), "no slot");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill_9();
    let (runs, killed) = kill_loop(&s, rng, kills, 2000, |round| {
        // Two transactions a round, so kills land between and inside them.
        for half in 0..2 {
            let from = round * FEED + half * FEED / 2;
            db.execute(
                "INSERT INTO chaos_src SELECT n, n FROM generate_series($1::bigint, $2::bigint) n",
                &[&(from as i64), &((from + FEED / 2 - 1) as i64)],
            )
            .unwrap();
        }
    });
    let total = kills as u64 * FEED;
    let weir = s.spawn_run(&[]);
    let mut reader = pg.client();
    let delivered = wait_until_whole(total, || numbers(&mut reader, "chaos_cdc"));
    let stopped = terminate(weir);
    assert!(stopped.ok, "{}", stopped.stderr);
    let (lost, duplicated) = tally(&delivered, total);
    Outcome {
        pipeline: "postgres-cdc → PostgreSQL",
        runs: runs + 2,
        kills: killed + 1,
        records: total,
        lost,
        duplicated,
        exactly_once: true,
    }
}

#[test]
#[ignore = "minutes long: scripts/chaos.sh runs it"]
fn sigkill_at_random_moments_loses_nothing() {
    let kills: usize = std::env::var("WEIR_CHAOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("WEIR_CHAOS_SEED")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 | 1);
    let mut rng = Rng(seed);
    let pg = Postgres::start();
    let only = std::env::var("WEIR_CHAOS_ONLY").unwrap_or_default();
    let mut outcomes = Vec::new();
    if only.is_empty() || only == "file" {
        outcomes.push(file_to_postgres(&pg, &mut rng, kills));
        outcomes.push(file_to_files("file", &mut rng, kills));
        outcomes.push(file_to_files("objects", &mut rng, kills));
    }
    if only.is_empty() || only == "kafka" {
        outcomes.push(kafka_to_kafka(&mut rng, kills));
    }
    if only.is_empty() || only == "cdc" {
        outcomes.push(cdc_to_postgres(&pg, &mut rng, kills));
    }
    println!("chaos seed {seed}, {kills} rounds per pipeline, batch size {BATCH}");
    println!(
        "| pipeline | runs | killed while running | records | lost | duplicated | duplicated per kill (bound: {BATCH}) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            o.pipeline,
            o.runs,
            o.kills,
            o.records,
            o.lost,
            o.duplicated,
            o.duplicated as f64 / o.kills.max(1) as f64
        );
    }
    for o in &outcomes {
        assert_eq!(o.lost, 0, "{}: records lost", o.pipeline);
        if o.exactly_once {
            assert_eq!(
                o.duplicated, 0,
                "{}: duplicates into a transactional sink",
                o.pipeline
            );
        }
        assert!(
            o.duplicated <= o.kills as u64 * BATCH,
            "{}: {} duplicates from {} kills is more than the batch in flight each",
            o.pipeline,
            o.duplicated,
            o.kills
        );
    }
}

/// Kills per exactly-once test: each lands at a random moment of a run, with new input
/// written before each run.
const EXACT_KILLS: usize = 20;

fn seeded() -> Rng {
    Rng(std::env::var("WEIR_CHAOS_SEED")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15))
}

/// Writes `data/<round>.jsonl` with `feed` numbered records per round.
fn feed_files(s: &Scratch, feed: u64) -> impl FnMut(u64) + '_ {
    move |round| {
        s.write(
            &format!("data/{round:05}.jsonl"),
            &numbered(round * feed..(round + 1) * feed),
        )
    }
}

fn exactly_once(what: &str, killed: usize, delivered: &[u64], total: u64) {
    let (lost, duplicated) = tally(delivered, total);
    // Runs are short: some end before their kill. Enough must land mid-run to mean much.
    assert!(
        killed >= EXACT_KILLS / 4,
        "{what}: only {killed} of {EXACT_KILLS} kills caught a run"
    );
    assert_eq!(
        (lost, duplicated),
        (0, 0),
        "{what}: {lost} lost, {duplicated} duplicated after {killed} kills"
    );
}

/// file → file-sink, SIGKILL at random moments: every record in the file exactly once
/// (the sink cuts what was not committed, and the host resumes from the sink's checkpoint).
#[test]
fn file_sink_holds_every_record_exactly_once_through_kills() {
    const FEED: u64 = 20_000;
    let s = Scratch::new();
    s.pipelines(&[file_pipeline("exact-file", BATCH as u32, "out.jsonl")]);
    let (_, killed) = kill_loop(&s, &mut seeded(), EXACT_KILLS, 250, feed_files(&s, FEED));
    let last = s.run_once();
    assert!(last.ok, "{}", last.stderr);
    let delivered = numbers_in(&s.read("out/out.jsonl"));
    exactly_once(
        "file → file-sink",
        killed,
        &delivered,
        EXACT_KILLS as u64 * FEED,
    );
}

/// file → postgres-sink into an insert-only table (no key, nothing to upsert away a
/// duplicate): every record exactly once.
#[test]
fn postgres_sink_inserts_every_record_exactly_once_through_kills() {
    const FEED: u64 = 20_000;
    let pg = Postgres::start();
    let s = Scratch::new();
    s.write("pg-password", PASSWORD);
    s.pipelines(&[to_postgres_sink(
        "exact-pg",
        &file_source(),
        r#"table = "exact_file", create_table = true, checkpoint_table = "weir.commits""#,
        &pg,
    )]);
    pg.client().batch_execute("CREATE SCHEMA weir").unwrap();
    let (_, killed) = kill_loop(&s, &mut seeded(), EXACT_KILLS, 250, feed_files(&s, FEED));
    let last = s.run_once();
    assert!(last.ok, "{}", last.stderr);
    let mut db = pg.client();
    let delivered = numbers(&mut db, "exact_file");
    exactly_once(
        "file → postgres-sink",
        killed,
        &delivered,
        EXACT_KILLS as u64 * FEED,
    );
    let stored: String = db
        .query_one(
            "SELECT checkpoint FROM weir.commits WHERE pipeline = 'exact-pg'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        Some(stored.as_str()),
        last.summary("exact-pg")["checkpoint"].as_str(),
        "the sink's checkpoint is the host's"
    );
}

/// kafka-source → postgres-sink (insert-only), SIGKILL at random moments while records
/// arrive: every record exactly once.
#[test]
fn kafka_to_postgres_sink_is_exactly_once_through_kills() {
    let pg = Postgres::start();
    let broker = Broker::start();
    broker.create_topic("exact-in", 2);
    let s = Scratch::new();
    s.write("pg-password", PASSWORD);
    s.pipelines(&[to_postgres_sink(
        "exact-kafka",
        &kafka_source(&broker, "exact-in"),
        r#"table = "exact_kafka", create_table = true"#,
        &pg,
    )]);
    let feed = |round: u64| {
        let records: Vec<_> = (round * FEED..(round + 1) * FEED)
            .map(|n| (None, Some(format!("{{\"n\":{n}}}")), vec![]))
            .collect();
        broker.produce("exact-in", &records);
    };
    let (_, killed) = kill_loop(&s, &mut seeded(), EXACT_KILLS, 3000, feed);
    let total = EXACT_KILLS as u64 * FEED;
    let weir = s.spawn_run(&[]);
    let mut reader = pg.client();
    let delivered = wait_until_whole(total, || numbers(&mut reader, "exact_kafka"));
    let stopped = terminate(weir);
    assert!(stopped.ok, "{}", stopped.stderr);
    exactly_once("Kafka → postgres-sink", killed, &delivered, total);
}

/// The sink committed a batch the host's store never heard of (a crash between the two
/// commits, here a host store rolled back): the next run resumes from the sink's
/// checkpoint and repeats nothing. A sink record that cannot be read stops the pipeline,
/// naming it.
#[test]
fn a_sink_ahead_of_the_host_is_resumed_from_and_a_damaged_one_is_refused() {
    let s = Scratch::new();
    s.pipelines(&[file_pipeline("ahead", 100, "out.jsonl")]);
    s.write("data/a.jsonl", &numbered(0..1000));
    assert!(s.run_once().ok);
    let host_then = s.path("host-then");
    copy_dir(&s.path(".weir"), &host_then);
    s.write("data/b.jsonl", &numbered(1000..2000));
    assert!(s.run_once().ok);
    // The host forgets the second run; the sink remembers it.
    std::fs::remove_dir_all(s.path(".weir")).unwrap();
    copy_dir(&host_then, &s.path(".weir"));
    let rerun = s.run_once();
    assert!(rerun.ok, "{}", rerun.stderr);
    assert!(
        rerun
            .stderr
            .contains("resuming from the checkpoint the sink committed with its data"),
        "{}",
        rerun.stderr
    );
    assert_eq!(rerun.summary("ahead")["records_written"], 0);
    let (lost, duplicated) = tally(&numbers_in(&s.read("out/out.jsonl")), 2000);
    assert_eq!((lost, duplicated), (0, 0));

    s.write("out/out.jsonl.weir", "{not json");
    let refused = s.run_once();
    assert!(!refused.ok);
    let error = refused.summary("ahead")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("out.jsonl.weir is not a commit record this sink wrote"),
        "{error}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// file → object-sink (a directory grant), SIGKILL at random moments: every record in
/// exactly one object (an uncommitted attempt's object is replaced by the batch written
/// again from the same checkpoint).
#[test]
fn object_sink_holds_every_record_exactly_once_through_kills() {
    const FEED: u64 = 20_000;
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("objects")).unwrap();
    s.pipelines(&[file_to_object_sink("exact-objects", "exact")]);
    let (_, killed) = kill_loop(&s, &mut seeded(), EXACT_KILLS, 250, feed_files(&s, FEED));
    let last = s.run_once();
    assert!(last.ok, "{}", last.stderr);
    let delivered = objects_in(&s.path("objects/exact"));
    exactly_once(
        "file → object-sink",
        killed,
        &delivered,
        EXACT_KILLS as u64 * FEED,
    );
}
