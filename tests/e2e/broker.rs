//! A real Kafka-protocol broker (tansu, SQLite storage) on a free loopback port, one per
//! test, and a plain rdkafka client to feed and read its topics.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A record to produce: key, value (none: a tombstone), headers.
pub type Produced = (
    Option<String>,
    Option<String>,
    Vec<(&'static str, &'static str)>,
);

/// One consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

fn tansu() -> PathBuf {
    let path = std::env::var_os("WEIR_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/weir/tools/tansu-0.6.0-libsql/bin/tansu")
        });
    assert!(
        path.exists(),
        "the Kafka broker {} is missing: scripts/test.sh installs it (scripts/tansu.sh)",
        path.display()
    );
    path
}

impl Broker {
    pub fn start() -> Broker {
        let port = crate::ports::free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Broker {
            child: None,
            port,
            dir,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu resolves the database path against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start tansu");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the broker exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (keeping its data) and starts it again on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Produces `(key, value, headers)` records and waits until all are acknowledged.
    pub fn produce(&self, topic: &str, records: &[Produced]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for (key, value, headers) in records {
            let mut owned = OwnedHeaders::new();
            for (k, v) in headers {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = BaseRecord::<str, str>::to(topic).headers(owned);
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(key) = key {
                record = record.key(key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        producer.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    }

    /// Reads `count` records of `topic` from the beginning of every partition.
    pub fn consume(&self, topic: &str, partitions: i32, count: usize) -> Vec<Consumed> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "weir-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let started = Instant::now();
        while out.len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "only {} of {count} records in {topic}",
                out.len()
            );
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let m = message.unwrap();
                out.push(Consumed {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
