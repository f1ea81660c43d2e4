//! An idempotent `acks=all` producer whose flush fails if any delivery failed.

use super::{KafkaGrant, transient};
use crate::bindings::weir::connector::types::{Error, Records};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Cheap to clone: clones share one librdkafka client, so a send or flush can be handed
/// to a blocking thread.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<BaseProducer<Deliveries>>,
}

/// The first delivery failure since the last flush.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

impl Producer {
    pub fn open(grant: &KafkaGrant) -> Result<Producer, Error> {
        let mut config = grant.config();
        config.set("enable.idempotence", "true").set("acks", "all");
        if !grant.properties.contains_key("linger.ms") {
            config.set("linger.ms", "5");
        }
        let inner = config
            .create_with_context(Deliveries::default())
            .map_err(|e| Error::Config(format!("cannot create a Kafka producer: {e}")))?;
        Ok(Producer {
            inner: Arc::new(inner),
        })
    }

    /// Queues every record (waiting while librdkafka's queue is full).
    pub fn send(&self, topic: &str, records: &Records) -> Result<(), Error> {
        for record in records.iter() {
            let mut headers = OwnedHeaders::new();
            for (key, value) in record.headers() {
                headers = headers.insert(Header {
                    key: &key,
                    value: Some(value),
                });
            }
            let mut message = BaseRecord::<[u8], [u8]>::to(topic).headers(headers);
            if let Some(key) = record.key() {
                message = message.key(key);
            }
            if let Some(value) = record.value() {
                message = message.payload(value);
            }
            if let Some(ts) = record.timestamp_ms() {
                message = message.timestamp(ts);
            }
            loop {
                match self.inner.send(message) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        self.inner.poll(Duration::from_millis(10));
                        message = back;
                    }
                    Err((e, _)) => return Err(transient("kafka send", e)),
                }
            }
        }
        self.inner.poll(Duration::ZERO);
        Ok(())
    }

    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.inner
            .flush(timeout)
            .map_err(|e| transient("kafka flush", e))?;
        let failed = self
            .inner
            .context()
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match failed {
            Some(e) => Err(Error::Transient(format!("kafka delivery failed: {e}"))),
            None => Ok(()),
        }
    }
}
