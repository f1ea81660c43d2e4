//! A stream source for the delivery tests: emits `{"n": i}` for i below `total`, with the
//! next `i` as its checkpoint, and appends every acknowledged checkpoint to `ack_log` so a
//! test can see when the host acknowledged what.

use schemars::JsonSchema;
use serde::Deserialize;
use std::io::Write;
use std::time::Duration;
use weir_guest::{Batch, Connector, Error, Records, Result, StreamSource};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    total: u64,
    /// A file in a writable grant; each acknowledged checkpoint is appended as a line.
    ack_log: String,
}

pub struct CounterStream {
    next: u64,
    total: u64,
    ack_log: String,
}

impl Connector for CounterStream {
    const NAME: &'static str = "counter-stream";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Counts up to `total` as a stream (tests only).";
    type Config = Config;
}

impl StreamSource for CounterStream {
    type Checkpoint = u64;

    fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
        Ok(CounterStream {
            next: checkpoint.unwrap_or(0),
            total: config.total,
            ack_log: config.ack_log,
        })
    }

    /// Answers at once even when there is nothing, as a badly written source would.
    fn poll(&mut self, max_records: u32, _max_wait: Duration) -> Result<Batch<u64>> {
        weir_guest::metrics::counter_add("polls", 1);
        let end = (self.next + u64::from(max_records)).min(self.total);
        let mut records = Records::new();
        for n in self.next..end {
            records.push_value(format!("{{\"n\":{n}}}").as_bytes());
        }
        self.next = end;
        Ok(Batch::new(records, end))
    }

    fn ack(&mut self, checkpoint: u64) -> Result<()> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ack_log)
            .map_err(|e| Error::Fatal(format!("{}: {e}", self.ack_log)))?;
        writeln!(log, "{checkpoint}").map_err(|e| Error::Fatal(e.to_string()))
    }
}

weir_guest::export_stream_source!(CounterStream);
