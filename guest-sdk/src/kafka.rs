//! Kafka through the host (`weir:connector/kafka`): brokers and group come from the
//! pipeline's grant; a plugin names only the topics, and only granted ones.

pub use crate::wit::weir::connector::kafka::{Consumer, Origin, Polled, Position, Producer};

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
