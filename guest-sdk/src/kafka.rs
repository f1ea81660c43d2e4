//! Kafka through the host (`weir:connector/kafka`): brokers and group come from the
//! pipeline's grant; a plugin names only the topics, and only granted ones.

pub use crate::wit::weir::connector::kafka::{Consumer, Origin, Polled, Position, Producer};

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A group consumer and the offsets it delivered: what a Kafka-fed stream source holds.
pub struct Subscription {
    consumer: Consumer,
    offsets: Offsets,
    /// Whether the consumer has caught up once with what its partitions held.
    caught_up: bool,
}

/// How long a new subscription's empty polls wait for the group to assign partitions and
/// for the consumer to reach what they held (within the host's call deadline).
const JOIN: Duration = Duration::from_secs(15);

impl Subscription {
    /// Joins the pipeline's group on `topics`, resuming at the checkpoint's offsets.
    pub fn open(topics: &[String], checkpoint: Option<Offsets>) -> Result<Subscription> {
        let offsets = checkpoint.unwrap_or_default();
        let consumer = Consumer::open(topics, &offsets.positions()?)?;
        Ok(Subscription {
            consumer,
            offsets,
            caught_up: false,
        })
    }

    /// Up to `max` records, waiting up to `wait` for the first, with the offsets moved
    /// past them. Until the consumer has caught up once with what its partitions held, an
    /// empty poll waits on (at most `JOIN`): a run that stops when the source is idle
    /// reads what the topics hold, not only what arrived after the group had joined.
    pub fn poll(&mut self, max: u32, wait: Duration) -> Result<Polled> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let started = Instant::now();
        loop {
            let polled = self.consumer.poll(max, wait_ms)?;
            self.offsets.advance(&polled);
            if !polled.records.is_empty() || self.caught_up {
                return Ok(polled);
            }
            match self.consumer.backlog()? {
                Some(0) => self.caught_up = true,
                held if started.elapsed() >= JOIN => {
                    crate::log::warn(&format!(
                        "not caught up {JOIN:?} after opening ({}): answering empty",
                        match held {
                            None => "the group has assigned no partition".to_string(),
                            Some(n) => format!("{n} records still ahead"),
                        }
                    ));
                    self.caught_up = true;
                }
                _ => continue,
            }
            return Ok(polled);
        }
    }

    /// The checkpoint: the next offset of every partition read.
    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    /// Commits a checkpoint the host acknowledged to the group.
    pub fn ack(&self, checkpoint: &Offsets) -> Result<()> {
        self.consumer.commit(&checkpoint.positions()?)
    }
}

/// A Kafka source's checkpoint: `"topic/partition"` → the offset of the next record to read.
/// Advance it with each poll; hand its positions to `Consumer::open` and `Consumer::commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Offsets(BTreeMap<String, i64>);

impl Offsets {
    /// Moves past every record of `polled`.
    pub fn advance(&mut self, polled: &Polled) {
        for origin in &polled.origins {
            let topic = &polled.topics[origin.topic as usize];
            self.0
                .insert(format!("{topic}/{}", origin.partition), origin.offset + 1);
        }
    }

    pub fn positions(&self) -> Result<Vec<Position>> {
        self.0
            .iter()
            .map(|(key, &offset)| {
                let (topic, partition) = key
                    .rsplit_once('/')
                    .and_then(|(t, p)| Some((t, p.parse().ok()?)))
                    .ok_or_else(|| {
                        Error::Fatal(format!("checkpoint key `{key}` is not topic/partition"))
                    })?;
                Ok(Position {
                    topic: topic.to_string(),
                    partition,
                    offset,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Records;

    #[test]
    fn advance_then_positions() {
        let polled = Polled {
            records: Records::new(),
            origins: vec![
                Origin {
                    topic: 0,
                    partition: 2,
                    offset: 41,
                },
                Origin {
                    topic: 1,
                    partition: 0,
                    offset: 7,
                },
                Origin {
                    topic: 0,
                    partition: 2,
                    offset: 42,
                },
            ],
            topics: vec!["orders".into(), "my.dotted.topic".into()],
        };
        let mut offsets = Offsets::default();
        offsets.advance(&polled);
        let positions = offsets.positions().unwrap();
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[0].topic, "my.dotted.topic");
        assert_eq!((positions[0].partition, positions[0].offset), (0, 8));
        assert_eq!(
            (
                positions[1].topic.as_str(),
                positions[1].partition,
                positions[1].offset
            ),
            ("orders", 2, 43)
        );
        let json = serde_json::to_string(&offsets).unwrap();
        assert_eq!(json, r#"{"my.dotted.topic/0":8,"orders/2":43}"#);
    }
}
