//! `kafka-sink`: produces records to a topic through the host's idempotent, `acks=all`
//! producer, partitioned by key. A flush returns only when every record is acknowledged.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::kafka::Producer;
use weir_guest::{Connector, DeadLetter, Records, Result, Sink};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The topic to produce to; it must be granted to the pipeline.
    topic: String,
    /// How long a flush may wait for acknowledgements, in milliseconds.
    #[serde(default = "default_flush_timeout")]
    flush_timeout_ms: u32,
}

fn default_flush_timeout() -> u32 {
    30_000
}

pub struct KafkaSink {
    producer: Producer,
    topic: String,
    flush_timeout_ms: u32,
}

impl Connector for KafkaSink {
    const NAME: &'static str = "kafka-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Produces records to a Kafka topic (idempotent, acks=all, partitioned by key).";
    type Config = Config;
}

impl Sink for KafkaSink {
    fn open(config: Config) -> Result<Self> {
        Ok(KafkaSink {
            producer: Producer::open()?,
            topic: config.topic,
            flush_timeout_ms: config.flush_timeout_ms,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        self.producer.send(&self.topic, &records)?;
        Ok(Vec::new())
    }

    fn flush(&mut self) -> Result<()> {
        self.producer.flush(self.flush_timeout_ms)
    }
}

weir_guest::export_sink!(KafkaSink);
