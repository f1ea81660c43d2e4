//! {{name}}: a stream source. Each poll emits up to `per_poll` records `{"n": N}` until
//! `limit`; the checkpoint is the next N, so a restart resumes after the last commit.

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use weir_guest::{Batch, Connector, Records, Result, StreamSource};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Records per poll.
    #[serde(default = "per_poll")]
    pub per_poll: u32,
    /// Stop producing after this many (the stream then stays idle).
    #[serde(default = "limit")]
    pub limit: u64,
}

fn per_poll() -> u32 {
    10
}
fn limit() -> u64 {
    100
}

pub struct Source {
    next: u64,
    config: Config,
}

impl Connector for Source {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Emits a counter, `per_poll` records a poll, up to `limit`.";
    type Config = Config;
}

impl StreamSource for Source {
    type Checkpoint = u64;

    fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
        Ok(Source {
            next: checkpoint.unwrap_or(0),
            config,
        })
    }

    fn poll(&mut self, max_records: u32, _max_wait: Duration) -> Result<Batch<u64>> {
        let end = (self.next + u64::from(max_records.min(self.config.per_poll))).min(self.config.limit);
        let mut records = Records::new();
        for n in self.next..end {
            records.push_value(format!("{{\"n\":{n}}}").as_bytes());
        }
        self.next = end;
        Ok(Batch::new(records, end))
    }
}

weir_guest::export_stream_source!(Source);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_up_to_the_limit() {
        let mut source = Source::open(Config { per_poll: 4, limit: 6 }, None).unwrap();
        assert_eq!(source.poll(100, Duration::ZERO).unwrap().records.len(), 4);
        let last = source.poll(100, Duration::ZERO).unwrap();
        assert_eq!((last.records.len(), last.checkpoint), (2, 6));
        assert!(source.poll(100, Duration::ZERO).unwrap().records.is_empty());
    }
}
