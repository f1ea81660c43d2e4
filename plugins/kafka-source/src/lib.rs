//! `kafka-source` (stream): consumes topics through the host's Kafka client as a member of
//! the pipeline's consumer group. The checkpoint is the next offset of every partition
//! read; the group's offsets are committed only when the host acknowledges a checkpoint,
//! that is, after the sink flushed.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use weir_guest::kafka::{Consumer, Position};
use weir_guest::{Batch, Connector, Error, Result, StreamSource};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Topics to consume; each must be granted to the pipeline.
    topics: Vec<String>,
}

/// `"topic/partition"` → the offset of the next record to read.
type Checkpoint = BTreeMap<String, i64>;

pub struct KafkaSource {
    consumer: Consumer,
    positions: Checkpoint,
}

impl Connector for KafkaSource {
    const NAME: &'static str = "kafka-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Consumes Kafka topics as a consumer group; commits offsets after the sink flushed.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        if config.topics.is_empty() {
            return Err(Error::Config(
                "config field `topics`: name at least one topic".into(),
            ));
        }
        Ok(())
    }
}

impl StreamSource for KafkaSource {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        Self::check(&config)?;
        let positions = checkpoint.unwrap_or_default();
        let consumer = Consumer::open(&config.topics, &to_positions(&positions)?)?;
        Ok(KafkaSource {
            consumer,
            positions,
        })
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Checkpoint>> {
        let wait = u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX);
        let polled = self.consumer.poll(max_records, wait)?;
        for origin in &polled.origins {
            let topic = &polled.topics[origin.topic as usize];
            self.positions
                .insert(format!("{topic}/{}", origin.partition), origin.offset + 1);
        }
        Ok(Batch {
            records: polled.records,
            cursor: self.positions.clone(),
        })
    }

    fn ack(&mut self, checkpoint: Checkpoint) -> Result<()> {
        self.consumer.commit(&to_positions(&checkpoint)?)
    }
}

fn to_positions(checkpoint: &Checkpoint) -> Result<Vec<Position>> {
    checkpoint
        .iter()
        .map(|(key, &offset)| {
            let (topic, partition) = key
                .rsplit_once('/')
                .and_then(|(t, p)| Some((t, p.parse().ok()?)))
                .ok_or_else(|| {
                    Error::Fatal(format!("checkpoint key `{key}` is not topic/partition"))
                })?;
            Ok(Position {
                topic: topic.to_string(),
                partition,
                offset,
            })
        })
        .collect()
}

weir_guest::export_stream_source!(KafkaSource);
