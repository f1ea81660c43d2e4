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

    /// Fails if `letters` could not be stored: there are some and the pipeline has no
    /// destination. Asked before a sink commits what they were rejected from, so the sink
    /// does not keep a checkpoint past records that went nowhere.
    pub(crate) fn can_take(&self, plugin: &str, letters: &[DeadLetter]) -> Result<()> {
        if self.target.is_none() && !letters.is_empty() {
            bail!(
                "plugin `{plugin}` rejected {} record(s) and the pipeline has no dead_letter \
                 destination; the first: {}",
                letters.len(),
                letters[0].reason
            );
        }
        Ok(())
    }

    /// Stores `letters` durably, or fails: a pipeline without a destination cannot drop them.
    pub(crate) async fn store(&mut self, plugin: &str, letters: &[DeadLetter]) -> Result<()> {
        self.can_take(plugin, letters)?;
        if letters.is_empty() {
            return Ok(());
        }
        match &mut self.target {
            None => {} // refused by can_take
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

/// How much of a dead-letter file one page may read, from its end: a page of a huge file
/// costs a bounded read.
const SCAN: u64 = 64 << 20;

/// A page of the dead letters `pipeline` stored in `dir`, newest first: `limit` of them
/// after the newest `skip`, and whether older ones remain (or lie beyond what one page
/// scans). Lines of other pipelines sharing the directory are passed over.
pub fn latest(
    pipeline: &str,
    dir: &weir_runtime::confined::HostDir,
    skip: usize,
    limit: usize,
) -> Result<(Vec<serde_json::Value>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.path().join(FILE);
    let cannot = || format!("cannot read dead-letter file {}", path.display());
    let mut file = match open_file(
        &dir.open().with_context(cannot)?,
        FILE,
        OpenOptions::new().read(true),
    ) {
        Ok(f) => f.into_std(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e).with_context(cannot),
    };
    let len = file.seek(SeekFrom::End(0)).with_context(cannot)?;
    let floor = len.saturating_sub(SCAN);
    let (mut end, mut carry, mut seen, mut page) = (len, Vec::new(), 0usize, Vec::new());
    while end > floor {
        let start = end.saturating_sub(64 << 10).max(floor);
        let mut chunk = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).with_context(cannot)?;
        file.read_exact(&mut chunk).with_context(cannot)?;
        chunk.extend_from_slice(&carry);
        end = start;
        // The chunk's first line may continue before it: kept for the next round, unless
        // this is the file's start.
        let first = if start == 0 {
            0
        } else {
            chunk
                .iter()
                .position(|&b| b == b'\n')
                .map_or(chunk.len(), |i| i + 1)
        };
        carry = chunk[..first].to_vec();
        for line in chunk[first..]
            .split(|&b| b == b'\n')
            .rev()
            .filter(|l| !l.is_empty())
        {
            let Ok(letter) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue; // a line torn by a crash mid-append
            };
            if letter["pipeline"] != pipeline {
                continue;
            }
            if seen >= skip + limit {
                return Ok((page, true));
            }
            if seen >= skip {
                page.push(letter);
            }
            seen += 1;
        }
    }
    Ok((page, end > 0))
}
