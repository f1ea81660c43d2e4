//! `kafka-source` (stream): consumes topics through the host's Kafka client as a member of
//! the pipeline's consumer group. The checkpoint is the next offset of every partition
//! read; the group's offsets are committed only when the host acknowledges a checkpoint,
//! that is, after the sink flushed.

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use weir_guest::kafka::{Consumer, Offsets};
use weir_guest::{Batch, Connector, Error, Result, StreamSource};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Topics to consume, or `^regex` patterns; only topics the pipeline's grant names
    /// are consumed.
    topics: Vec<String>,
}

pub struct KafkaSource {
    consumer: Consumer,
    offsets: Offsets,
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
    type Checkpoint = Offsets;

    fn open(config: Config, checkpoint: Option<Offsets>) -> Result<Self> {
        Self::check(&config)?;
        let offsets = checkpoint.unwrap_or_default();
        let consumer = Consumer::open(&config.topics, &offsets.positions()?)?;
        Ok(KafkaSource { consumer, offsets })
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Offsets>> {
        let wait = u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX);
        let polled = self.consumer.poll(max_records, wait)?;
        self.offsets.advance(&polled);
        Ok(Batch::new(polled.records, self.offsets.clone()))
    }

    fn ack(&mut self, checkpoint: Offsets) -> Result<()> {
        self.consumer.commit(&checkpoint.positions()?)
    }
}

weir_guest::export_stream_source!(KafkaSource);
