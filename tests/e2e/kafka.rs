//! Kafka through the host, against a real broker started per test.

use crate::fixtures::broker::{Broker, Consumed, Produced};
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
{sink}"#,
        source = plugin("kafka_source").display(),
        sink = file_sink("out.jsonl", ""),
        grant = kafka_grant(broker, &[topic]),
    )
}

fn numbered_records(range: std::ops::Range<u64>) -> Vec<Produced> {
    range
        .map(|i| {
            (
                Some(format!("k{}", i % 50)),
                Some(format!("{{\"n\":{i}}}")),
                vec![],
            )
        })
        .collect()
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

    // Rerun after the group's committed offsets were moved back to the start: weir
    // resumes from its own checkpoint, so only the records produced since arrive, once.
    // (Had it trusted the group, 0..N would come first, again.)
    broker.set_group_offsets("weir-k2f", "events", 3, 0);
    assert_eq!(broker.group_offsets("weir-k2f", "events", 3), [0, 0, 0]);
    const M: u64 = 500;
    broker.produce("events", &numbered_records(N..N + M));
    let mut child = s.spawn_run(&[]);
    wait_for_lines(&s, (N + M) as usize, &mut child);
    let rerun = terminate(child);
    assert_eq!(
        rerun.summary("k2f")["records_written"],
        M,
        "{}",
        rerun.stderr
    );
    let out: Vec<u64> = numbers_in(&s.read("out/out.jsonl"));
    assert_eq!(out.len() as u64, N + M, "nothing delivered twice");
    assert_eq!(
        out.iter().copied().collect::<BTreeSet<_>>(),
        (0..N + M).collect()
    );
}

/// A sink left without batches lets its instance go (`release_when_idle`), and the
/// records that come after arrive once, through a new instance, round after round.
#[test]
fn records_after_the_sink_rested_arrive_once_through_a_new_instance() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    let s = Scratch::new();
    let pipeline = kafka_to_file(&broker, "events", 100).replace(
        "[pipeline.sink]",
        "[pipeline.sink]\nrelease_when_idle = \"1s\"",
    );
    s.pipelines(&[pipeline]);
    let mut child = s.spawn_run(&["-v"]);
    for round in 0..3u64 {
        broker.produce("events", &numbered_records(round * 100..(round + 1) * 100));
        wait_for_lines(&s, ((round + 1) * 100) as usize, &mut child);
        child.wait_for_sink_to_rest();
    }
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let summary = run.summary("k2f");
    assert!(summary["sink_rests"].as_u64().unwrap() >= 3, "{summary}");
    assert_eq!(summary["records_written"], 300);
    let out = numbers_in(&s.read("out/out.jsonl"));
    assert_eq!(out.len(), 300, "nothing twice");
    assert_eq!(out.into_iter().collect::<BTreeSet<_>>(), (0..300).collect());
}

/// `--once` reads what the topics hold now, then stops: the records produced before the
/// run all arrive though the group has not joined when the first poll comes (it came back
/// empty, and the run ended with 0 of 20). A second `--once` finds nothing new and stops
/// too. The same for debezium-source.
#[test]
fn once_reads_what_the_topic_holds_then_stops() {
    let broker = Broker::start();
    broker.create_topic("events", 3);
    broker.produce("events", &numbered_records(0..20));
    let s = Scratch::new();
    // A first poll that waits 10 ms comes back long before the group has joined.
    let quick = |pipeline: String| {
        pipeline.replace(
            "[pipeline.source]\n",
            "[pipeline.source]\npoll_wait = \"10ms\"\n",
        )
    };
    s.pipelines(&[quick(kafka_to_file(&broker, "events", 400))]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("k2f")["records_written"], 20, "{}", run.stderr);
    let again = s.run_once();
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.summary("k2f")["records_written"], 0);
    broker.produce("events", &numbered_records(20..25));
    assert_eq!(s.run_once().summary("k2f")["records_written"], 5);
    assert_eq!(
        numbers_in(&s.read("out/out.jsonl"))
            .into_iter()
            .collect::<BTreeSet<_>>(),
        (0..25).collect()
    );

    broker.create_topic("inventory.public.customers", 1);
    let events: Vec<Produced> = (0..20)
        .map(|i| {
            let event =
                serde_json::json!({"op": "c", "after": {"id": i}, "ts_ms": 1_700_000_000_000i64});
            (
                Some(format!("{{\"id\":{i}}}")),
                Some(event.to_string()),
                vec![],
            )
        })
        .collect();
    broker.produce("inventory.public.customers", &events);
    s.pipelines(&[quick(debezium_to_file(
        &broker,
        "cdc",
        "inventory.public.customers",
        "dir = \"/out\", file = \"changes.jsonl\", format = \"record\"",
        "",
    ))]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("cdc")["records_written"], 20, "{}", run.stderr);
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
                Some(format!("{{\"n\":{i}}}")),
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

/// Recorded Debezium events (snapshot read, create, update, delete, tombstone; both JSON
/// converter forms) become flat change records; malformed ones become dead letters and the
/// stream goes on.
#[test]
fn debezium_events_become_flat_change_records() {
    let broker = Broker::start();
    broker.create_topic("inventory.public.customers", 1);
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/e2e/fixtures/debezium.jsonl"),
    )
    .unwrap();
    let events: Vec<Produced> = fixture
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            let value = match &e["value"] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (e["key"].as_str().map(str::to_string), value, vec![])
        })
        .collect();
    broker.produce("inventory.public.customers", &events);
    let s = Scratch::new();
    s.pipelines(&[debezium_to_file(
        &broker,
        "cdc",
        "inventory.public.customers",
        "dir = \"/out\", file = \"changes.jsonl\", format = \"record\"",
        "dir = \"dlq\"",
    )]);
    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while s.read("out/changes.jsonl").lines().count() < 5 {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "changes missing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("cdc")["dead_letters"], 2);

    let changes: Vec<serde_json::Value> = s
        .read("out/changes.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flat: Vec<(String, String, serde_json::Value)> = changes
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_string(),
                c["key"].as_str().unwrap().to_string(),
                c["value"].clone(),
            )
        })
        .collect();
    use serde_json::json;
    assert_eq!(
        flat,
        vec![
            (
                "snapshot".into(),
                r#"{"id":1}"#.into(),
                json!({"id": 1, "first_name": "Anne", "email": "anne@example.com"})
            ),
            (
                "create".into(),
                r#"{"id":2}"#.into(),
                json!({"id": 2, "first_name": "Bo", "email": "bo@example.com"})
            ),
            (
                "update".into(),
                r#"{"id":2}"#.into(),
                json!({"id": 2, "first_name": "Bo", "email": "bo@new.example.com"})
            ),
            (
                "delete".into(),
                r#"{"id":1}"#.into(),
                json!({"id": 1, "first_name": "Anne", "email": "anne@example.com"})
            ),
            (
                "delete".into(),
                r#"{"id":1}"#.into(),
                serde_json::Value::Null
            ),
        ]
    );
    assert_eq!(
        changes[1]["timestamp_ms"], 1700000000002i64,
        "ts_ms becomes the timestamp"
    );

    let dead: Vec<serde_json::Value> = s
        .read("dlq/dead-letters.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["key"], r#"{"id":3}"#);
    assert_eq!(dead[0]["value"], "this is not a change event");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("invalid JSON"),
        "{}",
        dead[0]
    );
    assert!(
        dead[1]["reason"]
            .as_str()
            .unwrap()
            .contains("no `op` field"),
        "{}",
        dead[1]
    );
    assert_eq!(dead[1]["plugin"], "debezium_source");
    assert_eq!(dead[1]["pipeline"], "cdc");
}

/// Without a dead-letter destination a rejected record stops the pipeline before its
/// checkpoint: nothing is dropped silently.
#[test]
fn rejects_without_a_dead_letter_destination_stop_the_pipeline() {
    let broker = Broker::start();
    broker.create_topic("cdc", 1);
    broker.produce("cdc", &[(None, Some("garbage".to_string()), vec![])]);
    let s = Scratch::new();
    s.pipelines(&[debezium_to_file(
        &broker,
        "strict",
        "cdc",
        "dir = \"/out\"",
        "",
    )]);
    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while child.is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pipeline did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = terminate_exited(child);
    let summary = run.summary("strict");
    assert_eq!(summary["status"], "failed");
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("rejected 1 record(s) and the pipeline has no dead_letter destination"),
        "{error}"
    );
    // An idle first poll may commit `{}`; what must not be committed is the reject's offset.
    let checkpoint = summary["checkpoint"].as_str().unwrap_or("");
    assert!(
        !checkpoint.contains("cdc/0"),
        "nothing committed past the reject: {checkpoint}"
    );
}

/// A `^` pattern subscribes to matching topics, but only granted ones are consumed.
#[test]
fn a_pattern_consumes_only_granted_topics() {
    let broker = Broker::start();
    for topic in ["orders-eu", "orders-us", "secret-x"] {
        broker.create_topic(topic, 1);
        let records: Vec<Produced> = (0..10u64)
            .map(|i| {
                (
                    None,
                    Some(format!("{{\"topic\":\"{topic}\",\"n\":{i}}}")),
                    vec![],
                )
            })
            .collect();
        broker.produce(topic, &records);
    }
    let s = Scratch::new();
    let table = kafka_to_file(&broker, "orders-eu", 100)
        .replace(
            "config = { topics = [\"orders-eu\"] }",
            "config = { topics = [\"^.*\"] }",
        )
        .replace("topics = [\"orders-eu\"] }", "topics = [\"orders-*\"] }");
    s.pipelines(&[table]);
    let mut child = s.spawn_run(&[]);
    let started = Instant::now();
    while s.read("out/out.jsonl").lines().count() < 20 {
        child.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "granted topics missing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    let out = s.read("out/out.jsonl");
    assert_eq!(out.lines().count(), 20, "{out}");
    assert!(!out.contains("secret-x"), "an ungranted topic was consumed");
}

/// Dead letters to a Kafka topic carry the reason, pipeline and plugin in headers.
#[test]
fn dead_letters_go_to_a_kafka_topic_with_the_reason_in_headers() {
    let broker = Broker::start();
    broker.create_topic("changes", 1);
    broker.create_topic("weir-dlq", 1);
    let good = r#"{"op":"c","after":{"id":1}}"#.to_string();
    broker.produce(
        "changes",
        &[
            (Some("k1".into()), Some("oops".into()), vec![]),
            (Some("k2".into()), Some(good), vec![]),
        ],
    );
    let s = Scratch::new();
    s.pipelines(&[debezium_to_file(
        &broker,
        "cdc",
        "changes",
        "dir = \"/out\", file = \"out.jsonl\"",
        &format!(
            "kafka = {{ brokers = \"{}\", topic = \"weir-dlq\" }}",
            broker.brokers()
        ),
    )]);
    let child = s.spawn_run(&[]);
    let dead = broker.consume("weir-dlq", 1, 1);
    let run = terminate(child);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(dead[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(dead[0].value.as_deref(), Some(&b"oops"[..]));
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert!(
        header("weir.dlq.reason").contains("invalid JSON"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(header("weir.dlq.pipeline"), "cdc");
    assert_eq!(header("weir.dlq.plugin"), "debezium_source");
    assert_eq!(
        s.read("out/out.jsonl").trim(),
        r#"{"id":1}"#,
        "the good event went on"
    );
}

/// Two weirs in one consumer group: one joins mid-stream, then the other leaves. Every
/// record is delivered by one or the other (at least once) through both rebalances.
#[test]
fn rebalances_lose_nothing() {
    let broker = Broker::start();
    broker.create_topic("shared", 3);
    broker.produce("shared", &numbered_records(0..3000));
    let (a, b) = (Scratch::new(), Scratch::new());
    for s in [&a, &b] {
        s.pipelines(&[kafka_to_file(&broker, "shared", 200)]);
    }
    let union = || -> BTreeSet<u64> {
        let mut all: BTreeSet<u64> = numbers_in(&a.read("out/out.jsonl")).into_iter().collect();
        all.extend(numbers_in(&b.read("out/out.jsonl")));
        all
    };
    let wait_for = |n: u64, running: &mut [&mut Running]| {
        let started = Instant::now();
        while (union().len() as u64) < n {
            for r in running.iter_mut() {
                r.assert_running();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "only {} of {n}",
                union().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let mut first = a.spawn_run(&[]);
    wait_for(500, &mut [&mut first]);
    let mut second = b.spawn_run(&[]);
    broker.produce("shared", &numbered_records(3000..6000));
    wait_for(6000, &mut [&mut first, &mut second]);

    let first_run = terminate(first);
    assert!(first_run.ok, "{}", first_run.stderr);
    broker.produce("shared", &numbered_records(6000..7000));
    wait_for(7000, &mut [&mut second]);
    let second_run = terminate(second);
    assert!(second_run.ok, "{}", second_run.stderr);
    assert_eq!(
        union(),
        (0..7000).collect(),
        "nothing lost across rebalances"
    );
    assert!(
        second_run.summary("k2f")["records_written"]
            .as_u64()
            .unwrap()
            > 0,
        "the second member took part"
    );
}

/// debezium-source on `topic` → file-sink with `sink_config` (inline TOML), with an optional
/// `[pipeline.dead_letter]` line.
fn debezium_to_file(
    broker: &Broker,
    name: &str,
    topic: &str,
    sink_config: &str,
    dead_letter: &str,
) -> String {
    let dead_letter = if dead_letter.is_empty() {
        String::new()
    } else {
        format!("[pipeline.dead_letter]\n{dead_letter}\n")
    };
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ topics = ["{topic}"] }}
{grant}
[pipeline.sink]
plugin = "{sink}"
config = {{ {sink_config} }}
grants.dirs = [{{ host = "out", guest = "/out", write = true }}]
{dead_letter}"#,
        source = plugin("debezium_source").display(),
        sink = plugin("file_sink").display(),
        grant = kafka_grant(broker, &[topic]),
    )
}

/// A plugin opening producer after producer against a real broker is stopped at its cap
/// with a `config` error naming the limit, while another pipeline carries on.
#[test]
fn a_plugin_cannot_hoard_kafka_clients() {
    let broker = Broker::start();
    broker.create_topic("orders", 1);
    let s = Scratch::new();
    s.write("data/a.jsonl", &numbered(0..300));
    let hoard = hostile_pipeline(
        "hoard",
        "hoard-kafka",
        "",
        &kafka_grant(&broker, &["orders"]),
        "[pipeline.limits]\nkafka_clients = 3\n",
    );
    s.pipelines(&[hoard, file_pipeline("healthy", 100, "healthy.jsonl")]);
    let run = s.run_once();
    let error = run.summary("hoard")["error"].as_str().unwrap().to_string();
    assert_contains_all(
        &error,
        &[
            "held 3, then: this plugin already holds 3 Kafka clients",
            "limits.kafka_clients",
        ],
    );
    assert_eq!(run.summary("healthy")["records_written"], 300);
}
