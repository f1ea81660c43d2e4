//! `weir:connector/kafka`: Kafka through rdkafka, confined to the pipeline's Kafka grant.
//! The grant is always here (pipelines name it); the clients only with the `kafka` feature.

#[cfg(feature = "kafka")]
mod consumer;
#[cfg(feature = "kafka")]
mod host;
#[cfg(feature = "kafka")]
mod producer;

#[cfg(feature = "kafka")]
pub use consumer::Consumer;
#[cfg(feature = "kafka")]
pub(crate) use host::KafkaCtx;
#[cfg(feature = "kafka")]
pub use producer::Producer;

/// Built without the `kafka` feature: the contract's resources exist, and none can be made.
#[cfg(not(feature = "kafka"))]
pub enum Consumer {}
#[cfg(not(feature = "kafka"))]
#[derive(Clone)]
pub enum Producer {}

/// The host's own producer (dead letters), in a build without Kafka: opening one says so.
#[cfg(not(feature = "kafka"))]
impl Producer {
    pub fn open(_: &KafkaGrant) -> Result<Producer, Error> {
        Err(Error::Config(
            "this weir was built without Kafka (the `kafka` feature)".into(),
        ))
    }

    pub fn send(&self, _: &str, _: &crate::Records) -> Result<(), Error> {
        match *self {}
    }

    pub fn flush(&self, _: std::time::Duration) -> Result<(), Error> {
        match *self {}
    }
}

use crate::bindings::weir::connector::types::Error;
use crate::patterns;
use std::collections::BTreeMap;

/// What a pipeline side may do with Kafka. Brokers, group and client properties are the
/// operator's; the plugin only names topics, and only these.
#[derive(Debug, Clone)]
pub struct KafkaGrant {
    pub brokers: String,
    pub group: String,
    /// Topic names, or patterns with `*` and `?`.
    pub topics: Vec<String>,
    /// librdkafka client properties (e.g. `auto.offset.reset`), applied first so the
    /// delivery guarantees below them cannot be switched off.
    pub properties: BTreeMap<String, String>,
}

impl KafkaGrant {
    /// Whether every topic `pattern` names is granted here.
    pub fn covers(&self, pattern: &str) -> bool {
        patterns::topic_covers(&self.topics, pattern)
    }

    /// Whether `topic` is granted here.
    pub fn allows(&self, topic: &str) -> bool {
        patterns::topic_allows(&self.topics, topic)
    }

    /// Names must be granted; `^` patterns are allowed here and enforced at assignment,
    /// where a partition of a topic the grant does not name is never taken.
    #[cfg(feature = "kafka")]
    pub(crate) fn check_topics<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        for topic in topics.into_iter().filter(|t| !t.starts_with('^')) {
            if !self.allows(topic) {
                return Err(Error::Config(format!(
                    "topic `{topic}` is not granted to this plugin (granted: {})",
                    self.topics.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "kafka")]
fn transient(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Transient(format!("{what}: {e}"))
}
