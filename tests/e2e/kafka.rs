//! Kafka through the host, against a real broker started per test.

use crate::broker::{Broker, Consumed, Produced};
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn kafka_grant(broker: &Broker, topics: &[&str]) -> String {
    format!(
        "grants.kafka = {{ brokers = \"{}\", topics = {topics:?} }}",
        broker.brokers()
    )
}

fn kafka_to_file(broker: &Broker, topic: &str, batch: u32) -> String {
    format!(
        r#"
[[pipeline]]
name = "k2f"
batch_size = {batch}
[pipeline.source]
plugin = "{source}"
config = {{ topics = ["{topic}"] }}
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ dir = "/out", file = "out.jsonl" }}
grants.dirs = [{{ host = "out", guest = "/out", write = true }}]
"#,
        source = plugin("kafka_source").display(),
        sink = plugin("file_sink").display(),
        grant = kafka_grant(broker, &[topic]),
    )
}

fn numbered_records(range: std::ops::Range<u64>) -> Vec<Produced> {
    range
        .map(|i| {
            (
                Some(format!("k{}", i % 50)),
                format!("{{\"n\":{i}}}"),
                vec![],
            )
        })
        .collect()
}

/// Waits until the output file holds at least `n` records (and weir is still running).
fn wait_for_lines(s: &Scratch, n: usize, weir: &mut Running) {
    let started = Instant::now();
    while numbers_in(&s.read("out/out.jsonl")).len() < n {
        weir.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {} of {n} records arrived",
            numbers_in(&s.read("out/out.jsonl")).len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kafka_to_file_delivers_every_record_once() {
    const N: u64 = 3000;
    let broker = Broker::start();
    broker.create_topic("events", 3);
    broker.produce("events", &numbered_records(0..N));
    let s = Scratch::new();
    s.pipelines(&[kafka_to_file(&broker, "events", 400)]);

    let mut child = s.spawn_run(&[]);
    wait_for_lines(&s, N as usize, &mut child);
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("k2f")["records_written"], N);
    let out: Vec<u64> = numbers_in(&s.read("out/out.jsonl"));
    assert_eq!(out.len() as u64, N, "no duplicates in a clean run");
    assert_eq!(
        out.iter().copied().collect::<BTreeSet<_>>(),
        (0..N).collect()
    );
    // The checkpoint holds a position for each of the three partitions.
    let checkpoint: BTreeMap<String, i64> =
        serde_json::from_str(run.summary("k2f")["checkpoint"].as_str().unwrap()).unwrap();
    assert_eq!(checkpoint.len(), 3, "{checkpoint:?}");
    assert_eq!(checkpoint.values().sum::<i64>(), N as i64);

    // Rerun: nothing new.
    let child = s.spawn_run(&[]);
    std::thread::sleep(Duration::from_secs(3));
    let rerun = terminate(child);
    assert_eq!(
        rerun.summary("k2f")["records_written"],
        0,
        "{}",
        rerun.stderr
    );
}

#[test]
fn kafka_to_kafka_keeps_keys_headers_and_order() {
    let broker = Broker::start();
    broker.create_topic("src", 3);
    broker.create_topic("dst", 3);
    let input: Vec<_> = (0..600u64)
        .map(|i| {
            let key = if i % 100 == 7 {
                None
            } else {
                Some(format!("user-{}", i % 13))
            };
            (
                key,
                format!("{{\"n\":{i}}}"),
                vec![("trace", "t-1"), ("source", "test")],
            )
        })
        .collect();
    broker.produce("src", &input);
    let s = Scratch::new();
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "k2k"
batch_size = 128
[pipeline.source]
plugin = "{source}"
config = {{ topics = ["src"] }}
{source_grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ topic = "dst" }}
{sink_grant}
"#,
        source = plugin("kafka_source").display(),
        sink = plugin("kafka_sink").display(),
        source_grant = kafka_grant(&broker, &["src"]),
        sink_grant = kafka_grant(&broker, &["dst"]),
    )]);
    let child = s.spawn_run(&[]);
    let out = broker.consume("dst", 3, input.len());
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);

    let values = |key: &Option<String>, records: &[Consumed]| -> Vec<Vec<u8>> {
        records
            .iter()
            .filter(|m| m.key.as_deref() == key.as_deref().map(str::as_bytes))
            .filter_map(|m| m.value.clone())
            .collect()
    };
    let src = broker.consume("src", 3, input.len());
    let keys: BTreeSet<Option<String>> = input.iter().map(|(k, _, _)| k.clone()).collect();
    for key in keys.iter().filter(|k| k.is_some()) {
        assert_eq!(
            values(key, &out),
            values(key, &src),
            "order for key {key:?}"
        );
    }
    assert_eq!(out.len(), input.len());
    assert!(out.iter().all(|m| m.headers
        == vec![
            ("trace".to_string(), b"t-1".to_vec()),
            ("source".to_string(), b"test".to_vec())
        ]));
    // A key always lands on one partition.
    let mut partition_of: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for m in out.iter().filter(|m| m.key.is_some()) {
        let p = *partition_of
            .entry(m.key.clone().unwrap())
            .or_insert(m.partition);
        assert_eq!(p, m.partition, "key {:?} split across partitions", m.key);
    }
}

#[test]
fn kill_9_mid_stream_loses_nothing() {
    const N: u64 = 20_000;
    const BATCH: u32 = 500;
    let broker = Broker::start();
    broker.create_topic("big", 3);
    broker.produce("big", &numbered_records(0..N));
    let s = Scratch::new();
    s.pipelines(&[kafka_to_file(&broker, "big", BATCH)]);

    let mut child = s.spawn_run(&[]);
    wait_for_lines(&s, 2000, &mut child);
    child.kill_9();
    assert!(
        numbers_in(&s.read("out/out.jsonl")).len() < N as usize,
        "killed mid-stream"
    );

    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while numbers_in(&s.read("out/out.jsonl"))
        .iter()
        .collect::<BTreeSet<_>>()
        .len()
        < N as usize
    {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "records missing after restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let out = numbers_in(&s.read("out/out.jsonl"));
    let distinct: BTreeSet<u64> = out.iter().copied().collect();
    assert_eq!(distinct, (0..N).collect(), "every record arrived");
    let duplicates = out.len() - distinct.len();
    assert!(
        duplicates <= BATCH as usize,
        "{duplicates} duplicates: more than the batch in flight"
    );
}

#[test]
fn a_broker_restart_is_waited_out() {
    let mut broker = Broker::start();
    broker.create_topic("flaky", 3);
    broker.produce("flaky", &numbered_records(0..1000));
    let s = Scratch::new();
    s.pipelines(&[kafka_to_file(&broker, "flaky", 200)]);
    let mut child = s.spawn_run(&[]);
    wait_for_lines(&s, 1000, &mut child);

    broker.restart();
    broker.produce("flaky", &numbered_records(1000..2000));
    wait_for_lines(&s, 2000, &mut child);
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let distinct: BTreeSet<u64> = numbers_in(&s.read("out/out.jsonl")).into_iter().collect();
    assert_eq!(
        distinct,
        (0..2000).collect(),
        "nothing lost across the restart"
    );
}

#[test]
fn a_topic_outside_the_grant_is_refused() {
    let broker = Broker::start();
    broker.create_topic("public", 1);
    broker.create_topic("secret", 1);
    let s = Scratch::new();
    let table = kafka_to_file(&broker, "public", 10).replace(
        "topics = [\"public\"] }\ngrants",
        "topics = [\"secret\"] }\ngrants",
    );
    s.pipelines(&[table]);
    let run = s.run_once();
    let error = run.summary("k2f")["error"].as_str().unwrap().to_string();
    assert!(error.contains("topic `secret` is not granted"), "{error}");
}
