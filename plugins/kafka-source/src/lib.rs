//! `kafka-source` (stream): consumes topics through the host's Kafka client as a member of
//! the pipeline's consumer group. The checkpoint is the next offset of every partition
//! read; the group's offsets are committed only when the host acknowledges a checkpoint,
//! that is, after the sink flushed.

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use weir_guest::kafka::{Offsets, Subscription};
use weir_guest::{Batch, Connector, Error, Result, StreamSource};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Topics to consume, or `^regex` patterns; only topics the pipeline's grant names
    /// are consumed.
    topics: Vec<String>,
}

pub struct KafkaSource {
    subscription: Subscription,
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
        Ok(KafkaSource {
            subscription: Subscription::open(&config.topics, checkpoint)?,
        })
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Offsets>> {
        let polled = self.subscription.poll(max_records, max_wait)?;
        Ok(Batch::new(
            polled.records,
            self.subscription.offsets().clone(),
        ))
    }

    fn ack(&mut self, checkpoint: Offsets) -> Result<()> {
        self.subscription.ack(&checkpoint)
    }
}

weir_guest::export_stream_source!(KafkaSource);
