//! The host side of `weir:connector/kafka`: consumers and producers an instance holds.

use super::{Consumer, KafkaGrant, Producer};
use crate::bindings::weir::connector::kafka::{Host, HostConsumer, HostProducer, Polled, Position};
use crate::bindings::weir::connector::types::{Error, Records};
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};

impl KafkaGrant {
    pub(crate) fn config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config.set("bootstrap.servers", &self.brokers);
        config
    }
}

/// The Kafka capability of one instance: its grant, and the clients it holds (each holds
/// broker connections and threads, so only so many).
pub(crate) struct KafkaCtx {
    pub(crate) grant: Option<KafkaGrant>,
    pub(crate) table: ResourceTable,
    pub(crate) held: u32,
    pub(crate) limit: u32,
}

impl KafkaCtx {
    fn granted(&self) -> Result<&KafkaGrant, Error> {
        self.grant
            .as_ref()
            .ok_or_else(|| Error::Config("this plugin has no Kafka grant".into()))
    }

    fn room(&self) -> Result<(), Error> {
        if self.held >= self.limit {
            return Err(Error::Config(format!(
                "this plugin already holds {} Kafka clients (consumers and producers), its \
                 limit (limits.kafka_clients); drop one before opening another",
                self.limit
            )));
        }
        Ok(())
    }

    fn hold<T: Send + 'static>(&mut self, client: T) -> Result<Resource<T>, Error> {
        let client = self
            .table
            .push(client)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        self.held += 1;
        Ok(client)
    }
}

impl KafkaCtx {
    fn producer(&self, producer: &Resource<Producer>) -> Result<Producer, Error> {
        self.table
            .get(producer)
            .cloned()
            .map_err(|e| Error::Fatal(e.to_string()))
    }
}

impl Host for KafkaCtx {}

impl HostConsumer for KafkaCtx {
    async fn open(
        &mut self,
        topics: Vec<String>,
        positions: Vec<Position>,
    ) -> Result<Resource<Consumer>, Error> {
        self.room()?;
        let grant = self.granted()?;
        grant.check_topics(topics.iter().map(String::as_str))?;
        let consumer = Consumer::open(grant, &topics, positions)?;
        self.hold(consumer)
    }

    async fn poll(
        &mut self,
        consumer: Resource<Consumer>,
        max_records: u32,
        timeout_ms: u32,
    ) -> Result<Polled, Error> {
        let consumer = self
            .table
            .get(&consumer)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        Ok(consumer
            .poll(max_records, Duration::from_millis(timeout_ms.into()))
            .await)
    }

    async fn commit(
        &mut self,
        consumer: Resource<Consumer>,
        positions: Vec<Position>,
    ) -> Result<(), Error> {
        let consumer = self
            .table
            .get(&consumer)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        consumer.commit(positions).await
    }

    async fn backlog(&mut self, consumer: Resource<Consumer>) -> Result<Option<u64>, Error> {
        let consumer = self
            .table
            .get(&consumer)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        consumer.backlog().await
    }

    async fn drop(&mut self, consumer: Resource<Consumer>) -> wasmtime::Result<()> {
        let consumer = self.table.delete(consumer)?;
        self.held -= 1;
        // Closing leaves the group, a round trip to the broker.
        crate::io::blocking(move || drop(consumer)).await;
        Ok(())
    }
}

impl HostProducer for KafkaCtx {
    async fn open(&mut self) -> Result<Resource<Producer>, Error> {
        self.room()?;
        let producer = Producer::open(self.granted()?)?;
        self.hold(producer)
    }

    async fn send(
        &mut self,
        producer: Resource<Producer>,
        topic: String,
        records: Records,
    ) -> Result<(), Error> {
        self.granted()?.check_topics([topic.as_str()])?;
        records
            .check()
            .map_err(|e| Error::Fatal(format!("malformed records: {e}")))?;
        let producer = self.producer(&producer)?;
        // A full queue makes a send wait for deliveries.
        crate::io::blocking(move || producer.send(&topic, &records)).await
    }

    async fn flush(&mut self, producer: Resource<Producer>, timeout_ms: u32) -> Result<(), Error> {
        let producer = self.producer(&producer)?;
        crate::io::blocking(move || producer.flush(Duration::from_millis(timeout_ms.into()))).await
    }

    async fn drop(&mut self, producer: Resource<Producer>) -> wasmtime::Result<()> {
        let producer = self.table.delete(producer)?;
        self.held -= 1;
        crate::io::blocking(move || drop(producer)).await;
        Ok(())
    }
}
