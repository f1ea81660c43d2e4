//! A sink with the redelivery bug `weir test` exists to catch: appends each record's value
//! as a line to `dir/out.jsonl`, and with `fail_on_redelivery`, refuses a batch holding a
//! value it already wrote (a plain INSERT where an upsert was needed). A value that is not
//! a JSON object is a dead letter in either mode.

use schemars::JsonSchema;
use serde::Deserialize;
use std::io::{BufRead, Write};
use weir_guest::{Connector, DeadLetter, Error, Records, Result, Sink};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A directory the pipeline grants writable (its guest path).
    pub dir: String,
    #[serde(default)]
    pub fail_on_redelivery: bool,
}

pub struct Lines {
    path: String,
    out: std::fs::File,
    fail_on_redelivery: bool,
}

impl Connector for Lines {
    const NAME: &'static str = "broken-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Appends values as lines; fails on redelivery if told to (tests only).";
    type Config = Config;
}

impl Sink for Lines {
    fn open(config: Config) -> Result<Self> {
        let path = format!("{}/out.jsonl", config.dir);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Config(format!("cannot open {path}: {e}")))?;
        Ok(Lines {
            path,
            out,
            fail_on_redelivery: config.fail_on_redelivery,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let written: Vec<Vec<u8>> = if self.fail_on_redelivery {
            let file =
                std::fs::File::open(&self.path).map_err(|e| Error::Transient(e.to_string()))?;
            std::io::BufReader::new(file)
                .split(b'\n')
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::Transient(e.to_string()))?
        } else {
            Vec::new()
        };
        let mut buf = Vec::new();
        let mut dead = Vec::new();
        for r in records.iter() {
            let value = r.value().unwrap_or_default();
            if !serde_json::from_slice::<serde_json::Value>(value).is_ok_and(|v| v.is_object()) {
                dead.push(DeadLetter {
                    key: r.key().map(<[u8]>::to_vec),
                    value: r.value().map(<[u8]>::to_vec),
                    reason: "the value is not a JSON object".into(),
                });
                continue;
            }
            if written.iter().any(|w| w == value) {
                return Err(Error::Fatal(format!(
                    "duplicate: {} is already written",
                    String::from_utf8_lossy(value)
                )));
            }
            buf.extend_from_slice(value);
            buf.push(b'\n');
        }
        self.out
            .write_all(&buf)
            .map_err(|e| Error::Transient(format!("write: {e}")))?;
        Ok(dead)
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .sync_data()
            .map_err(|e| Error::Transient(format!("fsync: {e}")))
    }
}

weir_guest::export_sink!(Lines);
