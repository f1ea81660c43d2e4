//! object-sink: writes each batch as one JSON Lines object (gzip if asked) under a prefix,
//! on S3-compatible storage or in a directory, whichever the pipeline grants.
//!
//! Exactly once: an object's name is derived from the pipeline and the checkpoint its batch
//! starts at (`part-<sha256 prefix>.jsonl[.gz]`), and after each object the sink replaces a
//! commit record (`<prefix without its last slash>.weir/<sha256 of the pipeline>.json`:
//! pipeline, epoch, checkpoint). After a crash the host resumes from the recorded
//! checkpoint, and the batch written again from there replaces the object an uncommitted
//! attempt left, whatever its size: no record twice, none lost. (Without the host's
//! commits, as a plain sink, names come from the content, and a repeated batch replaces
//! its own object.)

use flate2::Compression;
use flate2::write::GzEncoder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use weir_guest::objects;
use weir_guest::{
    Connector, DeadLetter, Error, Records, Result, Sink, Stamp, TransactionalSink, metrics,
};

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
    /// The commit record read by `stored`, then the last one written.
    committed: Option<Committed>,
}

/// What the commit record holds: the last batch of `pipeline` committed, under `epoch`,
/// ended at `checkpoint`.
#[derive(Serialize, Deserialize, Clone)]
struct Committed {
    pipeline: String,
    epoch: u64,
    checkpoint: String,
}

impl Connector for ObjectSink {
    const NAME: &'static str = "object-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Writes each batch as a JSON Lines object (gzip optional), exactly once (a commit record beside the objects).";
    type Config = Config;
}

impl Sink for ObjectSink {
    fn open(config: Config) -> Result<Self> {
        Ok(ObjectSink {
            config,
            buffer: Vec::new(),
            committed: None,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        for value in records.iter().filter_map(|r| r.value()) {
            self.buffer.extend_from_slice(value);
            self.buffer.push(b'\n');
        }
        Ok(Vec::new())
    }

    /// As a plain sink: named by content.
    fn flush(&mut self) -> Result<()> {
        let digest = hex::encode(&Sha256::digest(&self.buffer)[..8]);
        self.put(&digest)
    }
}

impl TransactionalSink for ObjectSink {
    fn stored(&mut self, pipeline: &str) -> Result<Option<String>> {
        let key = self.record_key(pipeline);
        let found = objects::list(&key, None, 1)?;
        let Some(info) = found.into_iter().find(|o| o.key == key) else {
            return Ok(None);
        };
        let bytes = objects::read(&key, 0, info.size as u32)?;
        let committed: Committed = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Fatal(format!(
                "{key} is not a commit record this sink wrote ({e}): remove it to start over"
            ))
        })?;
        let checkpoint = committed.checkpoint.clone();
        self.committed = Some(committed);
        Ok(Some(checkpoint))
    }

    fn commit(&mut self, stamp: Stamp) -> Result<Vec<DeadLetter>> {
        let start = match &self.committed {
            Some(c) if c.epoch > stamp.epoch => {
                return Err(Error::Fatal(format!(
                    "pipeline `{}` was committed under epoch {}, this run holds epoch {}: another node owns it now",
                    c.pipeline, c.epoch, stamp.epoch
                )));
            }
            Some(c) => c.checkpoint.as_str(),
            None => "",
        };
        // Named by where the batch starts: the same start, the same object.
        let digest = hex::encode(&Sha256::digest(format!("{}\n{start}", stamp.pipeline))[..8]);
        self.put(&digest)?;
        let committed = Committed {
            pipeline: stamp.pipeline,
            epoch: stamp.epoch,
            checkpoint: stamp.checkpoint,
        };
        let record = serde_json::to_vec(&committed).map_err(|e| Error::Fatal(e.to_string()))?;
        objects::write(&self.record_key(&committed.pipeline), &record)?;
        self.committed = Some(committed);
        Ok(Vec::new())
    }
}

impl ObjectSink {
    /// Beside the prefix, not under it, so that a reader of the prefix sees only data.
    fn record_key(&self, pipeline: &str) -> String {
        let digest = hex::encode(&Sha256::digest(pipeline.as_bytes())[..8]);
        format!(
            "{}.weir/{digest}.json",
            self.config.prefix.trim_end_matches('/')
        )
    }

    /// Writes the buffer as `part-<digest>` (nothing when it is empty).
    fn put(&mut self, digest: &str) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
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

weir_guest::export_transactional_sink!(ObjectSink);
