//! `kinesis-sink`: puts records into a Kinesis stream through the host, in PutRecords calls
//! within the API's limits (500 records, 5 MiB). The partition key is the record's key, or
//! a field of its JSON value. Only the entries the service did not take are put again, with
//! backoff; `write` returns once the service took every record, so a flush finds nothing
//! left to wait for.

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use weir_guest::kinesis::put_records;
use weir_guest::log::{self, LogLevel};
use weir_guest::{
    Connector, DeadLetter, Error, RecordRef, RecordView, Records, Result, Sink, metrics,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stream to put into; the pipeline's `grants.kinesis` must name it.
    stream: String,
    /// A top-level field of each record's JSON value to use as the partition key instead
    /// of the record's key.
    #[serde(default)]
    partition_key_field: Option<String>,
    /// How many times a batch's failed entries are put again before the write fails (and
    /// the host retries it).
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    10
}

const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 5 << 20;
const MAX_RECORD_BYTES: usize = 1 << 20;
const MAX_KEY_CHARS: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct KinesisSink {
    config: Config,
}

impl Connector for KinesisSink {
    const NAME: &'static str = "kinesis-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Puts records into a Kinesis stream, retrying only the entries the service did not take.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        if config.stream.is_empty() {
            return Err(Error::Config("config field `stream`: name a stream".into()));
        }
        if config.max_attempts == 0 {
            return Err(Error::Config(
                "config field `max_attempts`: at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl KinesisSink {
    /// The partition key of `record`, or why it has none.
    fn partition_key(&self, record: &RecordView<'_>) -> std::result::Result<String, String> {
        let key = match &self.config.partition_key_field {
            Some(field) => {
                let value: serde_json::Value =
                    serde_json::from_slice(record.value().unwrap_or_default())
                        .map_err(|e| format!("the value is not JSON: {e}"))?;
                match value.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        v.to_string()
                    }
                    _ => return Err(format!("the value has no string or number field `{field}`")),
                }
            }
            None => {
                let key = record
                    .key()
                    .ok_or("the record has no key to use as partition key")?;
                String::from_utf8(key.to_vec()).map_err(|_| "the key is not UTF-8".to_string())?
            }
        };
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(format!(
                "a partition key is 1 to {MAX_KEY_CHARS} characters; this one is {}",
                key.chars().count()
            ));
        }
        Ok(key)
    }

    /// Puts `batch` until the service took every record.
    fn put(&self, mut batch: Records) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1.. {
            let failed = put_records(&self.config.stream, &batch)?;
            if failed.is_empty() {
                return Ok(());
            }
            metrics::counter_add("kinesis_put_retried", failed.len() as u64);
            let codes = failed
                .iter()
                .map(|f| f.code.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ");
            if attempt >= self.config.max_attempts {
                return Err(Error::Transient(format!(
                    "{} of {} records were not taken after {attempt} attempts ({codes})",
                    failed.len(),
                    batch.len()
                )));
            }
            log::with_fields(
                LogLevel::Debug,
                "the service did not take every record; putting those again",
                &[("failed", &failed.len().to_string()), ("codes", &codes)],
            );
            let mut again = Records::new();
            let records: Vec<RecordView<'_>> = batch.iter().collect();
            for f in &failed {
                if let Some(r) = records.get(f.index as usize) {
                    again.push(RecordRef {
                        key: r.key(),
                        value: r.value(),
                        headers: &[],
                        timestamp_ms: None,
                        op: None,
                    });
                }
            }
            drop(records);
            batch = again;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the loop returns")
    }
}

impl Sink for KinesisSink {
    fn open(config: Config) -> Result<Self> {
        Self::check(&config)?;
        Ok(KinesisSink { config })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let mut dead = Vec::new();
        let mut call = Records::new();
        let mut bytes = 0;
        for record in records.iter() {
            let value = record.value();
            let key = match value.map(|_| self.partition_key(&record)) {
                None => Err("a tombstone (no value) cannot be put into Kinesis".to_string()),
                Some(key) => key,
            };
            let size = key.as_ref().map_or(0, |k| k.len()) + value.map_or(0, <[u8]>::len);
            let key = key.and_then(|k| {
                if size > MAX_RECORD_BYTES {
                    Err(format!(
                        "{size} bytes; a Kinesis record holds at most {MAX_RECORD_BYTES}"
                    ))
                } else {
                    Ok(k)
                }
            });
            let key = match key {
                Ok(key) => key,
                Err(reason) => {
                    dead.push(DeadLetter {
                        key: record.key().map(<[u8]>::to_vec),
                        value: value.map(<[u8]>::to_vec),
                        reason,
                    });
                    continue;
                }
            };
            if call.len() == MAX_RECORDS || bytes + size > MAX_BYTES {
                self.put(std::mem::take(&mut call))?;
                bytes = 0;
            }
            call.push(RecordRef {
                key: Some(key.as_bytes()),
                value,
                headers: &[],
                timestamp_ms: None,
                op: None,
            });
            bytes += size;
        }
        if !call.is_empty() {
            self.put(call)?;
        }
        Ok(dead)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

weir_guest::export_sink!(KinesisSink);
