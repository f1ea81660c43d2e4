//! Kafka → weir (kafka-source → kafka-sink, Rust guests) → Kafka, next to a native rdkafka
//! consume → produce loop with the same client settings, on two brokers started here:
//! librdkafka's mock cluster (in memory, served on loopback from this process: fast enough
//! that the clients, not the broker, set the pace) and tansu (a real broker on SQLite). Both are timed until the output topic holds every record, in interleaved
//! rounds with warm plugin caches and empty output topics. Then end-to-end
//! latency at a fixed moderate rate, from each record's create time (kept end to end) to
//! when a reader sees it in the output topic.
//!
//! Needs `scripts/build.sh` and `scripts/tansu.sh`. `WEIR_BENCH_RECORDS` (default 1,000,000).

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_pipeline::{PipelineFile, RunOptions, Shutdown};
use weir_runtime::{Runtime, RuntimeConfig};

const BATCH: usize = 5000;
const PARTITIONS: i32 = 3;
const ROUNDS: usize = 3;

fn median(took: &[Duration]) -> Duration {
    let mut sorted = took.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let runtime = std::sync::Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        })
        .unwrap(),
    );
    // Compiled and cached before anything is timed.
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    for plugin in ["kafka_source", "kafka_sink"] {
        runtime
            .load(&plugins.join(format!("{plugin}.wasm")))
            .unwrap();
    }
    bench(&Broker::mock(), &runtime, dir.path(), n);
    bench(&Broker::start(dir.path()), &runtime, dir.path(), n);
}

/// Throughput in interleaved rounds, then latency at a fixed rate, on one broker.
fn bench(broker: &Broker, runtime: &std::sync::Arc<Runtime>, dir: &Path, n: usize) {
    let label = broker.label;
    for topic in ["in", "lat-in", "lat-native", "lat-weir"] {
        broker.topic(topic);
    }
    let started = Instant::now();
    produce(&broker.addr, "in", n, None);
    let load = started.elapsed();
    // Interleaved rounds, so both see the same machine and broker; each writes to empty
    // topics and reads `in` whole with a new consumer group.
    let (mut native, mut weir) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (out_native, out_weir) = (format!("out-native-{round}"), format!("out-weir-{round}"));
        broker.topic(&out_native);
        broker.topic(&out_weir);
        let group = format!("native-{label}-{round}");
        let addr = broker.addr.clone();
        native.push(timed(broker, &out_native, n, || {
            native_loop(&addr, "in", &out_native, &group, n)
        }));
        weir.push(timed_weir(
            runtime,
            broker,
            dir,
            "in",
            &out_weir,
            &format!("throughput-{label}-{round}"),
            n,
        ));
    }

    println!(
        "\nKafka -> Kafka, {n} records of 100 bytes, {PARTITIONS} partitions, batch {BATCH}, \
         {} on loopback, {ROUNDS} rounds",
        broker.description
    );
    println!(
        "(loading the input with one producer took {:.1}s)",
        load.as_secs_f64()
    );
    println!(
        "{:<40} {:>12} {:>10} {:>22}",
        "", "records/s", "vs native", "min-max records/s"
    );
    let baseline = median(&native);
    for (name, took) in [
        ("native rdkafka consume -> produce", &native),
        ("weir kafka-source -> kafka-sink", &weir),
    ] {
        let rate = |d: &Duration| n as f64 / d.as_secs_f64();
        println!(
            "{name:<40} {:>12.0} {:>9.2}x {:>10.0}-{:<11.0}",
            rate(&median(took)),
            baseline.as_secs_f64() / median(took).as_secs_f64(),
            took.iter().max().map(rate).unwrap_or_default(),
            took.iter().min().map(rate).unwrap_or_default(),
        );
    }

    // Latency at a fixed moderate rate: both pipelines run while records trickle in.
    const RATE: usize = 2000;
    const SECONDS: usize = 10;
    let total = RATE * SECONDS;
    let stop_native = Shutdown::default();
    let native_addr = broker.addr.clone();
    let native_thread = {
        let stop = stop_native.clone();
        std::thread::spawn(move || {
            native_until(
                &native_addr,
                "lat-in",
                "lat-native",
                &format!("native-lat-{label}"),
                &stop,
            )
        })
    };
    let stop_weir = Shutdown::default();
    let weir_thread = {
        let stop = stop_weir.clone();
        let file = pipeline(
            dir,
            &broker.addr,
            "lat-in",
            "lat-weir",
            &format!("lat-{label}"),
        );
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                weir_runtime::block_on(weir_pipeline::run(
                    runtime,
                    &file,
                    &RunOptions::default(),
                    &stop,
                ))
            });
            std::thread::sleep(Duration::from_secs(5)); // both consumers join their groups
            let readers = [
                reader(&broker.addr, "lat-native"),
                reader(&broker.addr, "lat-weir"),
            ];
            produce(&broker.addr, "lat-in", total, Some(RATE));
            let latencies: Vec<Vec<i64>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
            stop_weir.trigger();
            stop_native.trigger();
            handle.join().unwrap().unwrap();
            latencies
        })
    };
    native_thread.join().unwrap();
    println!(
        "\nend-to-end latency at {RATE} records/s for {SECONDS}s on {label} (create time -> seen in the output topic)"
    );
    println!("{:<40} {:>8} {:>8}", "", "p50 ms", "p99 ms");
    for (name, mut lat) in [
        "native rdkafka consume -> produce",
        "weir kafka-source -> kafka-sink",
    ]
    .into_iter()
    .zip(weir_thread)
    {
        lat.sort();
        let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        println!("{name:<40} {:>8} {:>8}", at(0.50), at(0.99));
    }
}

fn client(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr);
    c
}

/// The settings weir's host uses, so the native loop is a like-for-like baseline.
fn producer(addr: &str) -> BaseProducer {
    client(addr)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

fn consumer(addr: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = client(addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range,roundrobin")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn produce(addr: &str, topic: &str, n: usize, rate: Option<usize>) {
    let p = producer(addr);
    let value = [b'x'; 100];
    let started = Instant::now();
    for i in 0..n {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let key = format!("k{}", i % 1000);
        let mut r = BaseRecord::<str, [u8]>::to(topic)
            .key(&key)
            .payload(&value)
            .timestamp(now_ms());
        while let Err((_, back)) = p.send(r) {
            p.poll(Duration::from_millis(5));
            r = back;
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120)).unwrap();
}

/// Consume → produce → flush → commit, a batch at a time: what weir does, natively.
fn native_loop(addr: &str, from: &str, to: &str, group: &str, n: usize) {
    let stop = Shutdown::default();
    native_batches(addr, from, to, group, &stop, Some(n));
}

fn native_until(addr: &str, from: &str, to: &str, group: &str, stop: &Shutdown) {
    native_batches(addr, from, to, group, stop, None);
}

fn native_batches(
    addr: &str,
    from: &str,
    to: &str,
    group: &str,
    stop: &Shutdown,
    n: Option<usize>,
) {
    let c = consumer(addr, group, from);
    let p = producer(addr);
    let mut done = 0;
    while !stop.is_triggered() && n.is_none_or(|n| done < n) {
        let mut in_batch = 0;
        let deadline = Instant::now() + Duration::from_millis(500);
        while in_batch < BATCH {
            let wait = if in_batch == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let Some(Ok(m)) = c.poll(wait) else { break };
            let mut r = BaseRecord::<[u8], [u8]>::to(to);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(v) = m.payload() {
                r = r.payload(v);
            }
            if let Some(ts) = m.timestamp().to_millis() {
                r = r.timestamp(ts);
            }
            while let Err((_, back)) = p.send(r) {
                p.poll(Duration::from_millis(5));
                r = back;
            }
            in_batch += 1;
        }
        if in_batch == 0 {
            continue;
        }
        p.flush(Duration::from_secs(60)).unwrap();
        c.commit_consumer_state(CommitMode::Sync).ok();
        done += in_batch;
    }
}

/// Reads `topic` from the start until `n` records arrived; each record's latency in ms.
fn reader(addr: &str, topic: &str) -> std::thread::JoinHandle<Vec<i64>> {
    let (addr, topic) = (addr.to_string(), topic.to_string());
    std::thread::spawn(move || {
        let c: BaseConsumer = client(&addr)
            .set("group.id", format!("reader-{topic}"))
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut lat = Vec::new();
        let started = Instant::now();
        while lat.len() < 2000 * 10 && started.elapsed() < Duration::from_secs(120) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                lat.push(now_ms() - m.timestamp().to_millis().unwrap_or(0));
            }
        }
        lat
    })
}

fn high_watermarks(addr: &str, topic: &str) -> i64 {
    let c: BaseConsumer = client(addr).create().unwrap();
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(5))
                .map(|w| w.1)
                .unwrap_or(0)
        })
        .sum()
}

fn timed(broker: &Broker, out: &str, n: usize, work: impl FnOnce() + Send) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(work);
        while high_watermarks(&broker.addr, out) < n as i64 {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    started.elapsed()
}

fn timed_weir(
    runtime: &std::sync::Arc<Runtime>,
    broker: &Broker,
    dir: &Path,
    from: &str,
    to: &str,
    name: &str,
    n: usize,
) -> Duration {
    let stop = &Shutdown::default();
    let file = pipeline(dir, &broker.addr, from, to, name);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            weir_runtime::block_on(weir_pipeline::run(
                runtime,
                &file,
                &RunOptions::default(),
                stop,
            ))
        });
        while high_watermarks(&broker.addr, to) < n as i64 {
            assert!(!handle.is_finished(), "the weir pipeline stopped early");
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = started.elapsed();
        stop.trigger();
        let summary = &handle.join().unwrap().unwrap()[0];
        assert!(summary.error.is_none(), "{:?}", summary.error);
        took
    })
}

fn pipeline(dir: &Path, addr: &str, from: &str, to: &str, name: &str) -> PipelineFile {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    assert!(
        plugins.join("kafka_source.wasm").exists(),
        "build the plugins first: scripts/build.sh"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
state_dir = "state-{name}"
[[pipeline]]
name = "{name}"
batch_size = {BATCH}
[pipeline.source]
plugin = "{source}"
config = {{ topics = ["{from}"] }}
poll_wait = "100ms"
grants.kafka = {{ brokers = "{addr}", topics = ["{from}"] }}
[pipeline.sink]
plugin = "{sink}"
config = {{ topic = "{to}" }}
grants.kafka = {{ brokers = "{addr}", topics = ["{to}"] }}
"#,
            source = plugins.join("kafka_source.wasm").display(),
            sink = plugins.join("kafka_sink.wasm").display(),
        ),
    )
    .unwrap();
    PipelineFile::load(&path).unwrap()
}

struct Broker {
    addr: String,
    label: &'static str,
    description: &'static str,
    kind: Kind,
}

enum Kind {
    Tansu { child: Child, tansu: PathBuf },
    Mock(MockCluster<'static, DefaultProducerContext>),
}

impl Broker {
    /// librdkafka's mock cluster: one broker, in memory, on a loopback port.
    fn mock() -> Broker {
        let cluster = MockCluster::new(1).unwrap();
        Broker {
            addr: cluster.bootstrap_servers(),
            label: "mock",
            description: "librdkafka's mock cluster (in memory)",
            kind: Kind::Mock(cluster),
        }
    }

    fn start(dir: &Path) -> Broker {
        let tansu = std::env::var_os("WEIR_TANSU")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap())
                    .join(".cache/weir/tools/tansu-0.6.0-libsql/bin/tansu")
            });
        assert!(
            tansu.exists(),
            "no broker at {}: run scripts/tansu.sh",
            tansu.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            addr: format!("127.0.0.1:{port}"),
            label: "tansu",
            description: "tansu (SQLite)",
            kind: Kind::Tansu { child, tansu },
        }
    }

    fn topic(&self, name: &str) {
        match &self.kind {
            Kind::Mock(cluster) => cluster.create_topic(name, PARTITIONS, 1).unwrap(),
            Kind::Tansu { tansu, .. } => {
                let ok = Command::new(tansu)
                    .args([
                        "topic",
                        "create",
                        "--broker",
                        &format!("tcp://{}", self.addr),
                        "--partitions",
                        &PARTITIONS.to_string(),
                        name,
                    ])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "cannot create topic {name}");
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Kind::Tansu { child, .. } = &mut self.kind {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
