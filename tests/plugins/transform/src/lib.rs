//! The benchmark's transform, in Rust: parse each value, upper-case `name`, mark it
//! `seen`, re-serialise. The output is counted (`bytes_out`), not stored, so the benchmark
//! measures the language rather than a disk.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use weir_guest::{Connector, DeadLetter, Error, Records, Result, Sink, metrics};

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Sleeps this long in each flush: a slow sink, for the backpressure test.
    #[serde(default)]
    flush_sleep_ms: u64,
    /// Also appends each output line to this file (in a granted directory): a sink with a
    /// wide window between writing and committing, for the cluster's hand-over tests.
    #[serde(default)]
    append_to: Option<String>,
}

pub struct Transform {
    flush_sleep: std::time::Duration,
    append_to: Option<std::fs::File>,
}

impl Connector for Transform {
    const NAME: &'static str = "transform";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "The benchmark transform (tests only).";
    type Config = Config;
}

impl Sink for Transform {
    fn open(config: Config) -> Result<Self> {
        let append_to = config
            .append_to
            .map(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| Error::Fatal(format!("cannot open {path}: {e}")))
            })
            .transpose()?;
        Ok(Transform {
            flush_sleep: std::time::Duration::from_millis(config.flush_sleep_ms),
            append_to,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let mut size = 0;
        let mut out = Vec::new();
        let mut lines = Vec::new();
        for r in records.iter() {
            let mut obj: Value = serde_json::from_slice(r.value().unwrap_or_default())
                .map_err(|e| Error::Fatal(format!("not JSON: {e}")))?;
            if let Some(Value::String(name)) = obj.get_mut("name") {
                *name = name.to_uppercase();
            }
            obj["seen"] = Value::Bool(true);
            out.clear();
            serde_json::to_writer(&mut out, &obj).expect("a Value serialises");
            size += out.len() as u64 + 1;
            if self.append_to.is_some() {
                lines.extend_from_slice(&out);
                lines.push(b'\n');
            }
        }
        if let Some(file) = &mut self.append_to {
            use std::io::Write;
            file.write_all(&lines)
                .map_err(|e| Error::Transient(format!("cannot append: {e}")))?;
        }
        metrics::counter_add("bytes_out", size);
        Ok(Vec::new())
    }

    fn flush(&mut self) -> Result<()> {
        std::thread::sleep(self.flush_sleep);
        Ok(())
    }
}

weir_guest::export_sink!(Transform);
