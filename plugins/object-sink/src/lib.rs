//! object-sink: writes each batch as one JSON Lines object (gzip if asked) under a prefix,
//! on S3-compatible storage or in a directory, whichever the pipeline grants.
//!
//! An object's name is derived from its content (`part-<sha256 prefix>.jsonl[.gz]`): a
//! batch written again after a crash or a retried flush replaces its own object instead of
//! adding a second copy. (Two batches with byte-identical content are one object.)

use flate2::Compression;
use flate2::write::GzEncoder;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use weir_guest::objects;
use weir_guest::{Connector, DeadLetter, Error, Records, Result, Sink, metrics};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prepended to every object name (e.g. `orders/`).
    #[serde(default)]
    prefix: String,
    /// Compress each object with gzip.
    #[serde(default)]
    gzip: bool,
}

pub struct ObjectSink {
    config: Config,
    buffer: Vec<u8>,
}

impl Connector for ObjectSink {
    const NAME: &'static str = "object-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Writes each batch as a JSON Lines object (gzip optional) with a content-derived name.";
    type Config = Config;
}

impl Sink for ObjectSink {
    fn open(config: Config) -> Result<Self> {
        Ok(ObjectSink {
            config,
            buffer: Vec::new(),
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        for value in records.iter().filter_map(|r| r.value()) {
            self.buffer.extend_from_slice(value);
            self.buffer.push(b'\n');
        }
        Ok(Vec::new())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let digest = hex::encode(&Sha256::digest(&self.buffer)[..8]);
        let (name, body) = if self.config.gzip {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&self.buffer)
                .and_then(|_| gz.finish())
                .map(|body| {
                    (
                        format!("{}part-{digest}.jsonl.gz", self.config.prefix),
                        body,
                    )
                })
                .map_err(|e| Error::Fatal(format!("gzip: {e}")))?
        } else {
            (
                format!("{}part-{digest}.jsonl", self.config.prefix),
                std::mem::take(&mut self.buffer),
            )
        };
        objects::write(&name, &body)?;
        metrics::counter_add("objects", 1);
        self.buffer.clear();
        Ok(())
    }
}

weir_guest::export_sink!(ObjectSink);
