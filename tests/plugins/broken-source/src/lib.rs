//! A batch source with the resume bugs `weir test` exists to catch: counts `{"n": i}` up to
//! `count` with the next `i` as its checkpoint, and with `fault` set, resumes one record past
//! the checkpoint (losing one) or one before it (repeating one).

use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::{Batch, BatchSource, Connector, Records, Result};

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    None,
    SkipOnResume,
    RepeatOnResume,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "bad-schema", schemars(extend("type" = "no-such-type")))]
pub struct Config {
    pub count: u64,
    #[serde(default = "none")]
    pub fault: Fault,
}

fn none() -> Fault {
    Fault::None
}

pub struct Counter {
    next: u64,
    end: u64,
}

impl Connector for Counter {
    const NAME: &'static str = "broken-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Counts to `count`, resuming wrongly if told to (tests only).";
    type Config = Config;
}

impl BatchSource for Counter {
    type Checkpoint = u64;

    fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
        let next = match (checkpoint, config.fault) {
            (None, _) => 0,
            (Some(c), Fault::None) => c,
            (Some(c), Fault::SkipOnResume) => c + 1,
            (Some(c), Fault::RepeatOnResume) => c.saturating_sub(1),
        };
        Ok(Counter {
            next,
            end: config.count,
        })
    }

    fn next(&mut self, max_records: u32) -> Result<Option<Batch<u64>>> {
        if self.next >= self.end {
            return Ok(None);
        }
        let end = (self.next + u64::from(max_records)).min(self.end);
        let mut records = Records::new();
        for n in self.next..end {
            records.push_value(format!("{{\"n\":{n}}}").as_bytes());
        }
        self.next = end;
        Ok(Some(Batch::new(records, end)))
    }
}

weir_guest::export_batch_source!(Counter);
