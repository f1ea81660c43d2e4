//! A group consumer whose assigned partitions start at weir's committed positions.

use super::{KafkaGrant, transient};
use crate::bindings::weir::connector::kafka::{Origin, Polled, Position};
use crate::bindings::weir::connector::types::{Error, Records};
use futures::FutureExt;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A poll waits on librdkafka's queue as a future (no thread is held while a pipeline
/// waits for messages); commits, which only block, go to the blocking pool.
pub struct Consumer {
    inner: Arc<StreamConsumer<Seek>>,
}

/// Positions to start partitions at when the group assigns them: the checkpoint's, then
/// whatever was committed since. Partitions not listed start at the group's offsets.
struct Seek {
    positions: Mutex<HashMap<(String, i32), i64>>,
    grant: KafkaGrant,
}

impl ClientContext for Seek {}

impl ConsumerContext for Seek {
    // Eager rebalancing only (the client is configured so): on assignment, move each
    // partition we hold a position for to it; on revocation, drop the assignment.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
                let mut granted = TopicPartitionList::new();
                for element in tpl.elements() {
                    let (topic, partition) = (element.topic(), element.partition());
                    if !self.grant.allows(topic) {
                        // A `^` pattern matched a topic the grant does not name.
                        tracing::warn!(topic, "not consuming a topic outside the grant");
                        continue;
                    }
                    let offset = positions
                        .get(&(topic.to_string(), partition))
                        .map_or(Offset::Invalid, |&o| Offset::Offset(o));
                    let _ = granted.add_partition_offset(topic, partition, offset);
                }
                tracing::info!(partitions = granted.count(), "kafka partitions assigned");
                if let Err(e) = consumer.assign(&granted) {
                    tracing::error!(error = %e, "kafka assignment failed");
                }
            }
            _ => {
                tracing::info!(reason = ?err, "kafka partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "kafka unassignment failed");
                }
            }
        }
    }
}

impl Consumer {
    pub fn open(
        grant: &KafkaGrant,
        topics: &[String],
        positions: Vec<Position>,
    ) -> Result<Consumer, Error> {
        let mut config = grant.config();
        config
            .set("group.id", &grant.group)
            // weir commits, and only after the sink flushed.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "range,roundrobin");
        if !grant.properties.contains_key("auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        let seek = Seek {
            positions: Mutex::new(
                positions
                    .into_iter()
                    .map(|p| ((p.topic, p.partition), p.offset))
                    .collect(),
            ),
            grant: grant.clone(),
        };
        let inner: StreamConsumer<Seek> = config
            .create_with_context(seek)
            .map_err(|e| Error::Config(format!("cannot create a Kafka consumer: {e}")))?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        inner
            .subscribe(&topics)
            .map_err(|e| Error::Config(format!("cannot subscribe to {topics:?}: {e}")))?;
        Ok(Consumer {
            inner: Arc::new(inner),
        })
    }

    /// Up to `max` records, waiting at most `timeout` for the first. Broker errors are
    /// logged and end the poll early: librdkafka reconnects by itself, and the records
    /// not yet read are read by a later poll.
    pub async fn poll(&self, max: u32, timeout: Duration) -> Polled {
        let deadline = Instant::now() + timeout;
        let mut records = Records::new();
        let mut origins = Vec::new();
        let mut topics: Vec<String> = Vec::new();
        while records.len() < max as usize {
            // Wait for the first message only; then take what is already queued.
            let next = if records.is_empty() {
                tokio::time::timeout_at(deadline.into(), self.inner.recv())
                    .await
                    .ok()
            } else {
                self.inner.recv().now_or_never()
            };
            match next {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer");
                    break;
                }
                Some(Ok(message)) => {
                    let topic = match topics.iter().position(|t| t == message.topic()) {
                        Some(i) => i,
                        None => {
                            topics.push(message.topic().to_string());
                            topics.len() - 1
                        }
                    };
                    let headers = message.headers().map(|h| {
                        h.iter()
                            .map(|h| (h.key, h.value.unwrap_or_default()))
                            .collect::<Vec<_>>()
                    });
                    records.push(
                        message.key(),
                        message.payload(),
                        headers.as_deref().unwrap_or_default(),
                        message.timestamp().to_millis(),
                    );
                    origins.push(Origin {
                        topic: topic as u32,
                        partition: message.partition(),
                        offset: message.offset(),
                    });
                }
            }
        }
        Polled {
            records,
            origins,
            topics,
        }
    }

    /// Records between each assigned partition's position and its high watermark, asked
    /// of the brokers; none with no partition assigned. A partition not read from yet in
    /// this session starts where the checkpoint, the group's committed offset or
    /// `auto.offset.reset` puts it, in that order.
    pub async fn backlog(&self) -> Result<Option<u64>, Error> {
        let inner = self.inner.clone();
        crate::io::blocking(move || {
            const ASK: Duration = Duration::from_secs(5);
            let positions = inner
                .position()
                .map_err(|e| transient("kafka positions", e))?;
            if positions.count() == 0 {
                return Ok(None);
            }
            let mut committed = None;
            let mut total = 0u64;
            for p in positions.elements() {
                let (topic, partition) = (p.topic(), p.partition());
                let (low, high) = inner
                    .fetch_watermarks(topic, partition, ASK)
                    .map_err(|e| transient("kafka watermarks", e))?;
                let start = match p.offset() {
                    Offset::Offset(at) => at,
                    _ => {
                        let from_checkpoint = inner
                            .context()
                            .positions
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&(topic.to_string(), partition))
                            .copied();
                        let committed = committed
                            .get_or_insert_with(|| inner.committed(ASK).unwrap_or_default());
                        let from_group = committed.find_partition(topic, partition).and_then(|c| {
                            match c.offset() {
                                Offset::Offset(at) => Some(at),
                                _ => None,
                            }
                        });
                        let reset = inner.context().grant.properties.get("auto.offset.reset");
                        let latest = matches!(reset.map(String::as_str), Some("latest" | "end"));
                        from_checkpoint
                            .or(from_group)
                            .unwrap_or(if latest { high } else { low })
                    }
                };
                total += u64::try_from(high - start.max(low)).unwrap_or(0);
            }
            Ok(Some(total))
        })
        .await
    }

    /// Commits to the group, and remembers the positions for partitions assigned later.
    pub async fn commit(&self, positions: Vec<Position>) -> Result<(), Error> {
        let mut tpl = TopicPartitionList::new();
        for p in &positions {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))
                .map_err(|e| Error::Fatal(format!("bad position {p:?}: {e}")))?;
        }
        {
            let mut known = self
                .inner
                .context()
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for p in positions {
                known.insert((p.topic, p.partition), p.offset);
            }
        }
        let inner = self.inner.clone();
        match crate::io::blocking(move || inner.commit(&tpl, CommitMode::Sync)).await {
            // librdkafka's answer when no partition moved since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            other => other.map_err(|e| transient("kafka commit", e)),
        }
    }
}
