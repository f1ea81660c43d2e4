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
    #[serde(default)]
    ack_log: Option<String>,
    /// Loops forever inside `poll` without returning (a hostile source).
    #[serde(default)]
    spin: bool,
    /// Sleeps this long in each poll: a source with a steady rate.
    #[serde(default)]
    sleep_ms: u64,
    /// Pads each record with this many bytes (`"pad": "xx…"`): large batches.
    #[serde(default)]
    pad: usize,
}

pub struct CounterStream {
    next: u64,
    total: u64,
    ack_log: Option<String>,
    spin: bool,
    sleep: Duration,
    pad: usize,
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
            spin: config.spin,
            sleep: Duration::from_millis(config.sleep_ms),
            pad: config.pad,
        })
    }

    /// Answers at once even when there is nothing, as a badly written source would.
    fn poll(&mut self, max_records: u32, _max_wait: Duration) -> Result<Batch<u64>> {
        weir_guest::metrics::counter_add("polls", 1);
        if self.spin {
            let mut spins: u64 = 0;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        if !self.sleep.is_zero() && self.next < self.total {
            std::thread::sleep(self.sleep);
        }
        let end = (self.next + u64::from(max_records)).min(self.total);
        let mut records = Records::new();
        let pad = if self.pad == 0 {
            String::new()
        } else {
            format!(",\"pad\":\"{}\"", "x".repeat(self.pad))
        };
        for n in self.next..end {
            if cfg!(feature = "marked") {
                records.push_value(format!("{{\"n\":{n},\"marked\":true}}").as_bytes());
            } else {
                records.push_value(format!("{{\"n\":{n}{pad}}}").as_bytes());
            }
        }
        self.next = end;
        Ok(Batch::new(records, end))
    }

    fn ack(&mut self, checkpoint: u64) -> Result<()> {
        let Some(ack_log) = &self.ack_log else {
            return Ok(());
        };
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ack_log)
            .map_err(|e| Error::Fatal(format!("{ack_log}: {e}")))?;
        writeln!(log, "{checkpoint}").map_err(|e| Error::Fatal(e.to_string()))
    }
}

weir_guest::export_stream_source!(CounterStream);
