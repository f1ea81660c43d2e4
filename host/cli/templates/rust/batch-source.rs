//! {{name}}: a batch source. Each run emits the numbers after the last committed checkpoint,
//! up to `count`, as `{"n": N}`; the host commits the checkpoint after the sink flushed.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::{Batch, BatchSource, Connector, Records, Result};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many records to produce in all.
    pub count: u64,
}

pub struct Source {
    next: u64,
    end: u64,
}

impl Connector for Source {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Counts to `count`, resuming where the last run ended.";
    type Config = Config;
}

impl BatchSource for Source {
    type Checkpoint = u64;

    fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
        Ok(Source {
            next: checkpoint.unwrap_or(0),
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

weir_guest::export_batch_source!(Source);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_the_cursor() {
        let mut source = Source::open(Config { count: 5 }, Some(2)).unwrap();
        let batch = source.next(10).unwrap().unwrap();
        let values: Vec<&[u8]> = batch.records.iter().filter_map(|r| r.value()).collect();
        assert_eq!(values, [&b"{\"n\":2}"[..], b"{\"n\":3}", b"{\"n\":4}"]);
        assert_eq!(batch.checkpoint, 5);
        assert!(source.next(10).unwrap().is_none());
    }
}
