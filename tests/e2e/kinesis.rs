//! Kinesis through the host: kinesis-source and kinesis-sink against a real emulator
//! (kinesis-mock) started per test, with a fault-injecting proxy where the emulator has
//! no failure of its own to offer.

use crate::fixtures::kinesis::{KEY_ID, Kinesis, Proxy};
use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write("aws-key", KEY_ID);
    s.write("aws-secret", "weir-test-secret");
    s
}

/// kinesis-source reading `stream` (through `endpoint`) → file-sink writing whole records
/// (key, value, timestamp) to `out/out.jsonl`.
fn kinesis_to_file(endpoint: &str, stream: &str, config: &str, batch: u32) -> String {
    format!(
        r#"
[[pipeline]]
name = "k2f"
batch_size = {batch}
[pipeline.source]
plugin = "{source}"
config = {{ stream = "{stream}", shard_refresh_ms = 300{config} }}
poll_wait = "200ms"
{grant}
{sink}"#,
        source = plugin("kinesis_source").display(),
        grant = Kinesis::grant_at(endpoint, &[stream]),
        sink = file_sink("out.jsonl", r#", format = "record""#),
    )
}

/// Records `{"n": i}` for i in `range`, keyed `k<i % keys>`.
fn numbered_records(range: std::ops::Range<u64>, keys: u64) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            (
                format!("k{}", i % keys),
                format!("{{\"n\":{i}}}").into_bytes(),
            )
        })
        .collect()
}

/// Each output record: (key, n, timestamp_ms). A line still being appended is not one.
fn delivered(s: &Scratch) -> Vec<(String, u64, i64)> {
    let text = s.read("out/out.jsonl");
    text[..text.rfind('\n').map_or(0, |end| end + 1)]
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            let value: Value = match &v["value"] {
                Value::String(text) => serde_json::from_str(text).unwrap(),
                other => other.clone(),
            };
            (
                v["key"].as_str().unwrap().to_string(),
                value["n"].as_u64().unwrap(),
                v["timestamp_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn wait_for(s: &Scratch, n: usize, weir: &mut Running) {
    let have = || match s.path("out/out.jsonl").exists() {
        true => {
            let ns: BTreeSet<u64> = delivered(s).iter().map(|(_, n, _)| *n).collect();
            ns.len()
        }
        false => 0,
    };
    weir.wait_until(&format!("{n} records"), Duration::from_secs(120), |_| {
        have() >= n
    });
}

/// Every record of 0..n arrived, and within each key in the order it was put (a record
/// delivered twice counts where it first arrived). Returns the duplicates.
fn assert_complete_and_ordered(out: &[(String, u64, i64)], n: u64) -> usize {
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut duplicates = 0;
    for (key, i, _) in out {
        if !seen.insert(*i) {
            duplicates += 1;
            continue;
        }
        if let Some(before) = last.insert(key, *i) {
            assert!(before < *i, "key {key}: {i} arrived after {before}");
        }
    }
    let missing: Vec<u64> = (0..n).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{} records missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert_eq!(seen.len() as u64, n, "nothing beyond what was put");
    duplicates
}

#[test]
fn kinesis_source_keeps_order_keys_and_times_and_resumes_after_kill_9() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("orders", 3);
    let before_put = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    kinesis.put("orders", &numbered_records(0..3000, 40));
    let s = scratch();
    s.pipelines(&[kinesis_to_file(&kinesis.endpoint, "orders", "", 200)]);

    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 1000, &mut weir);
    weir.kill_9();
    kinesis.put("orders", &numbered_records(3000..5000, 40));
    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 5000, &mut weir);
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);

    let out = delivered(&s);
    let duplicates = assert_complete_and_ordered(&out, 5000);
    // Only what was in flight when it was killed comes again: a batch or two.
    assert!(duplicates <= 400, "{duplicates} duplicates");
    for (key, n, ts) in &out {
        assert_eq!(
            *key,
            format!("k{}", n % 40),
            "the partition key is the record key"
        );
        assert!(*ts >= before_put - 1000, "record {n}: arrival time {ts}");
    }
    // A position for each of the three shards.
    let checkpoint: Value =
        serde_json::from_str(run.summary("k2f")["checkpoint"].as_str().unwrap()).unwrap();
    assert_eq!(
        checkpoint["shards"].as_object().unwrap().len(),
        3,
        "{checkpoint}"
    );
}

#[test]
fn a_split_and_a_merge_while_reading_lose_nothing_and_keep_each_keys_order() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("events", 2);
    let s = scratch();
    // Small batches (each read asks for at most one): the source is still reading a
    // parent when its children fill, which is when reading a child early would reorder.
    s.pipelines(&[kinesis_to_file(&kinesis.endpoint, "events", "", 25)]);
    let mut weir = s.spawn_run(&[]);

    // Put in rounds while the stream is resharded under the running source.
    let mut next = 0;
    let mut put_round = |count: u64| {
        kinesis.put("events", &numbered_records(next..next + count, 25));
        next += count;
    };
    put_round(600);
    wait_for(&s, 50, &mut weir);
    let first = kinesis.shards("events");
    let first_id = first[0]["ShardId"].as_str().unwrap().to_string();
    kinesis.split("events", &first_id);
    put_round(600);
    // Merge the upper child of the split with the second original shard: adjacent ranges.
    let shards = kinesis.shards("events");
    let open: Vec<&Value> = shards
        .iter()
        .filter(|s| s["SequenceNumberRange"]["EndingSequenceNumber"].is_null())
        .collect();
    assert_eq!(open.len(), 3, "{shards:?}");
    let by_start = |s: &&Value| -> u128 {
        s["HashKeyRange"]["StartingHashKey"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut open = open;
    open.sort_by_key(by_start);
    let (upper_child, second) = (
        open[1]["ShardId"].as_str().unwrap().to_string(),
        open[2]["ShardId"].as_str().unwrap().to_string(),
    );
    kinesis.merge("events", &upper_child, &second);
    put_round(600);
    let total = next;
    wait_for(&s, total as usize, &mut weir);
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);

    let duplicates = assert_complete_and_ordered(&delivered(&s), total);
    assert_eq!(duplicates, 0, "a clean run delivers each record once");
    // Every shard, parents and children, is in the checkpoint; the closed ones as ended.
    let checkpoint: Value =
        serde_json::from_str(run.summary("k2f")["checkpoint"].as_str().unwrap()).unwrap();
    let shards = kinesis.shards("events");
    assert_eq!(shards.len(), 5, "2 + split into 2 + merged into 1");
    for shard in &shards {
        let id = shard["ShardId"].as_str().unwrap();
        let closed = !shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null();
        let position = &checkpoint["shards"][id];
        assert_eq!(
            position == "ended",
            closed,
            "{id}: {position} in {checkpoint}"
        );
    }
}

#[test]
fn an_ungranted_stream_is_refused_and_bad_credentials_are_a_config_error() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("granted", 1);
    kinesis.create_stream("secret", 1);
    kinesis.put("secret", &numbered_records(0..10, 2));
    let s = scratch();
    let pipeline = kinesis_to_file(&kinesis.endpoint, "granted", "", 100)
        .replace(r#"stream = "granted""#, r#"stream = "secret""#);
    s.pipelines(&[pipeline]);
    let run = s.run_once();
    assert_contains_all(
        &run.error("k2f"),
        &["Kinesis stream `secret` is not granted to this plugin (granted: granted)"],
    );
    assert!(!s.path("out/out.jsonl").exists() || s.read("out/out.jsonl").is_empty());

    // The service refuses the keys: a config error naming the service's reason, and
    // the secret itself nowhere in what weir says.
    let proxy = Proxy::start(&kinesis.endpoint);
    *proxy.faults.refused_key.lock().unwrap() = Some(KEY_ID.into());
    s.pipelines(&[kinesis_to_file(&proxy.endpoint, "granted", "", 100)]);
    let run = s.run_once();
    let error = run.error("k2f");
    assert_contains_all(
        &error,
        &[
            "UnrecognizedClientException",
            "ListShards of stream `granted`",
        ],
    );
    assert!(
        error.contains("rejected its config"),
        "a config error: {error}"
    );
    assert!(!format!("{error}{}", run.stderr).contains("weir-test-secret"));
}

#[test]
fn expired_iterators_and_throttled_reads_are_survived_without_loss() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("clicks", 2);
    kinesis.put("clicks", &numbered_records(0..2000, 10));
    let proxy = Proxy::start(&kinesis.endpoint);
    proxy.faults.expired_iterators.store(3, Ordering::Relaxed);
    proxy.faults.throttled_reads.store(5, Ordering::Relaxed);
    let s = scratch();
    s.pipelines(&[kinesis_to_file(&proxy.endpoint, "clicks", "", 150)]);
    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 2000, &mut weir);
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(assert_complete_and_ordered(&delivered(&s), 2000), 0);
    assert_eq!(proxy.faults.expired_iterators.load(Ordering::Relaxed), 0);
    assert_eq!(proxy.faults.throttled_reads.load(Ordering::Relaxed), 0);
    let counters = &run.summary("k2f")["metrics"];
    assert!(
        counters["source.kinesis_throttled"].as_u64() >= Some(5),
        "{counters}"
    );
    assert!(
        counters
            .get("source.kinesis_millis_behind_latest")
            .is_some(),
        "the lag is reported: {counters}"
    );
}

/// `--once` reads what the stream holds, then stops, though the first reads come back
/// throttled (empty): it reads on until every shard has been at the tip. (Before, the
/// first empty poll ended the run with nothing read.)
#[test]
fn once_reads_the_stream_to_its_tip_through_throttled_first_reads() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("clicks", 2);
    kinesis.put("clicks", &numbered_records(0..300, 10));
    let proxy = Proxy::start(&kinesis.endpoint);
    proxy.faults.throttled_reads.store(8, Ordering::Relaxed);
    let s = scratch();
    s.pipelines(&[kinesis_to_file(&proxy.endpoint, "clicks", "", 1000)]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("k2f")["records_written"], 300, "{}", run.stderr);
    assert_eq!(assert_complete_and_ordered(&delivered(&s), 300), 0);
    assert_eq!(s.run_once().summary("k2f")["records_written"], 0);
}

#[test]
fn kinesis_sink_puts_again_only_what_was_not_taken_and_round_trips() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("out", 2);
    let proxy = Proxy::start(&kinesis.endpoint);
    proxy.faults.partial_puts.store(4, Ordering::Relaxed);
    let s = scratch();
    s.write("data/a.jsonl", &numbered(0..1200));
    s.pipelines(&[format!(
        r#"
[[pipeline]]
name = "f2k"
batch_size = 700
{source}
[pipeline.sink]
plugin = "{sink}"
config = {{ stream = "out", partition_key_field = "n" }}
{grant}
"#,
        source = file_source(),
        sink = plugin("kinesis_sink").display(),
        grant = Kinesis::grant_at(&proxy.endpoint, &["out"]),
    )]);
    let run = s.run_once();
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.summary("f2k")["records_written"], 1200);
    assert_eq!(proxy.faults.partial_puts.load(Ordering::Relaxed), 0);
    let dropped = proxy.faults.dropped.load(Ordering::Relaxed) as u64;
    assert!(dropped >= 4, "{dropped}");
    assert_eq!(
        run.summary("f2k")["metrics"]["sink.kinesis_put_retried"].as_u64(),
        Some(dropped)
    );

    // Each record is in the stream once, under its partition key.
    let stored = kinesis.read_all("out");
    assert_eq!(stored.len(), 1200, "nothing put twice, nothing lost");
    let mut ns = BTreeSet::new();
    for (key, data) in &stored {
        let v: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(*key, v["n"].to_string());
        ns.insert(v["n"].as_u64().unwrap());
    }
    assert_eq!(ns, (0..1200).collect());

    // And back out through kinesis-source.
    let back = scratch();
    back.pipelines(&[kinesis_to_file(&kinesis.endpoint, "out", "", 500)]);
    let mut weir = back.spawn_run(&[]);
    wait_for(&back, 1200, &mut weir);
    terminate(weir);
    assert_eq!(assert_complete_and_ordered(&delivered(&back), 1200), 0);
}

#[test]
fn kpl_aggregated_records_arrive_as_their_user_records() {
    use weir_guest::kinesis::kpl::{UserRecord, aggregate};
    let kinesis = Kinesis::start();
    kinesis.create_stream("kpl", 1);
    let users: Vec<(String, String)> = (0..30)
        .map(|i| (format!("k{}", i % 4), format!("{{\"n\":{i}}}")))
        .collect();
    let records: Vec<UserRecord<'_>> = users
        .iter()
        .map(|(k, v)| UserRecord {
            partition_key: k,
            data: v.as_bytes(),
        })
        .collect();
    kinesis.put(
        "kpl",
        &[
            ("agg-1".to_string(), aggregate(&records[..20])),
            ("agg-2".to_string(), aggregate(&records[20..])),
        ],
    );
    let s = scratch();
    s.pipelines(&[kinesis_to_file(&kinesis.endpoint, "kpl", "", 100)]);
    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 30, &mut weir);
    terminate(weir);
    let out = delivered(&s);
    assert_eq!(assert_complete_and_ordered(&out, 30), 0);
    assert!(out.iter().all(|(key, n, _)| *key == format!("k{}", n % 4)));
}

/// A plugin opening shard reader after shard reader is stopped at its cap with a `config`
/// error naming the limit, while another pipeline carries on.
#[test]
fn a_plugin_cannot_hoard_shard_readers() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("orders", 1);
    let s = scratch();
    s.write("data/a.jsonl", &numbered(0..300));
    let hoard = hostile_pipeline(
        "hoard",
        "hoard-kinesis",
        r#", target = "orders""#,
        &Kinesis::grant_at(&kinesis.endpoint, &["orders"]),
        "[pipeline.limits]\nkinesis_readers = 3\n",
    );
    s.pipelines(&[hoard, file_pipeline("healthy", 100, "healthy.jsonl")]);
    let run = s.run_once();
    assert_contains_all(
        &run.error("hoard"),
        &[
            "held 3, then: this plugin already holds 3 Kinesis shard readers",
            "limits.kinesis_readers",
        ],
    );
    assert_eq!(run.summary("healthy")["records_written"], 300);
}

/// A resume whose checkpointed record has aged out of the stream reads on from the oldest
/// record kept, and says so: a warning and a counter, never silently.
#[test]
fn a_resume_past_the_streams_retention_is_reported() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("aging", 1);
    kinesis.put("aging", &numbered_records(0..500, 5));
    let s = scratch();
    s.pipelines(&[kinesis_to_file(&kinesis.endpoint, "aging", "", 100)]);
    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 500, &mut weir);
    assert!(terminate(weir).ok);

    kinesis.put("aging", &numbered_records(500..600, 5));
    let proxy = Proxy::start(&kinesis.endpoint);
    proxy.faults.trimmed_resumes.store(1, Ordering::Relaxed);
    s.pipelines(&[kinesis_to_file(&proxy.endpoint, "aging", "", 100)]);
    let mut weir = s.spawn_run(&[]);
    wait_for(&s, 598, &mut weir);
    let run = terminate(weir);
    assert!(run.ok, "{}", run.stderr);
    let got: BTreeSet<u64> = delivered(&s).iter().map(|(_, n, _)| *n).collect();
    let lost: Vec<u64> = (0..600).filter(|n| !got.contains(n)).collect();
    assert_eq!(
        lost,
        [500, 501],
        "what the retention took, and nothing else"
    );
    assert_eq!(
        run.summary("k2f")["metrics"]["source.kinesis_resumed_at_trim_horizon"],
        1
    );
    assert!(
        run.stderr.contains("past the stream's retention"),
        "{}",
        run.stderr
    );
}
