//! Records a plugin rejected, stored with the reason before the checkpoint moves past them.

use crate::config::DeadLetterTarget;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::io::Write;
use std::time::Duration;
use weir_runtime::DeadLetter;
use weir_runtime::Records;
use weir_runtime::confined::OpenOptions;
use weir_runtime::confined::open_file;
use weir_runtime::io::kafka::Producer;

const FILE: &str = "dead-letters.jsonl";

pub(crate) struct DeadLetters {
    pipeline: String,
    target: Option<Target>,
}

enum Target {
    File(File),
    Kafka { producer: Producer, topic: String },
}

impl DeadLetters {
    pub(crate) fn open(pipeline: &str, target: Option<&DeadLetterTarget>) -> Result<DeadLetters> {
        let target = match target {
            None => None,
            Some(DeadLetterTarget::Dir(dir)) => {
                let cannot = || {
                    let path = dir.path().join(FILE);
                    format!("cannot open dead-letter file {}", path.display())
                };
                // Beneath the directory's handle, never through a link: a plugin that can
                // write near it must not turn the host's append into a write elsewhere.
                let file = open_file(
                    &dir.create().with_context(cannot)?,
                    FILE,
                    OpenOptions::new().create(true).append(true),
                )
                .with_context(cannot)?;
                Some(Target::File(file.into_std()))
            }
            Some(DeadLetterTarget::Kafka { grant, topic }) => Some(Target::Kafka {
                producer: Producer::open(grant)
                    .map_err(|e| anyhow!("cannot open the dead-letter producer: {e:?}"))?,
                topic: topic.clone(),
            }),
        };
        Ok(DeadLetters {
            pipeline: pipeline.to_string(),
            target,
        })
    }

    /// Stores `letters` durably, or fails: a pipeline without a destination cannot drop them.
    pub(crate) async fn store(&mut self, plugin: &str, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        match &mut self.target {
            None => bail!(
                "plugin `{plugin}` rejected {} record(s) and the pipeline has no dead_letter \
                 destination; the first: {}",
                letters.len(),
                letters[0].reason
            ),
            Some(Target::File(file)) => {
                let mut lines = Vec::new();
                for letter in letters {
                    let line = serde_json::json!({
                        "pipeline": self.pipeline,
                        "plugin": plugin,
                        "reason": letter.reason,
                        "key": letter.key.as_deref().map(text_or_hex),
                        "value": letter.value.as_deref().map(text_or_hex),
                    });
                    serde_json::to_writer(&mut lines, &line)?;
                    lines.push(b'\n');
                }
                file.write_all(&lines).context("writing dead letters")?;
                file.sync_data().context("syncing dead letters")?;
            }
            Some(Target::Kafka { producer, topic }) => {
                let mut records = Records::new();
                for letter in letters {
                    let headers = [
                        ("weir.dlq.reason", letter.reason.as_bytes()),
                        ("weir.dlq.pipeline", self.pipeline.as_bytes()),
                        ("weir.dlq.plugin", plugin.as_bytes()),
                    ];
                    records.push(
                        letter.key.as_deref(),
                        letter.value.as_deref(),
                        &headers,
                        None,
                    );
                }
                let (producer, to) = (producer.clone(), topic.clone());
                // librdkafka only blocks: off the runtime's workers.
                tokio::task::spawn_blocking(move || {
                    producer.send(&to, &records)?;
                    producer.flush(Duration::from_secs(30))
                })
                .await
                .context("the dead-letter producer panicked")?
                .map_err(|e| anyhow!("dead-letter topic `{topic}`: {e:?}"))?;
            }
        }
        Ok(())
    }
}

/// Text stays readable; other bytes are written as `hex:...`.
fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => format!("hex:{}", hex::encode(bytes)),
    }
}
