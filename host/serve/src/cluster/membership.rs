//! The node's membership of the group: a consumer of the slot topic that never reads a
//! record, only receives assignments. Its rebalance callbacks move pipelines: a revoked
//! slot's pipelines stop between batches (each committing its batch in flight) *before*
//! the slot is given up, so the node that gets it next starts exactly where they stopped.

use super::{Settings, Slots};
use crate::supervisor::Supervisor;
use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a clean leave waits for the broker.
const LEAVE_WAIT: Duration = Duration::from_secs(30);

struct Rebalancer {
    slots: Arc<Slots>,
    supervisor: Arc<Supervisor>,
}

impl Rebalancer {
    fn moved(&self, add: bool, tpl: &TopicPartitionList) {
        let slots: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        tracing::info!(
            slots = ?slots,
            "{}",
            if add { "slots assigned" } else { "slots revoked" }
        );
        self.slots.change(add, slots);
        // On failure (the database away) the periodic sync retries.
        if let Err(e) = self.supervisor.sync_all() {
            tracing::warn!(error = %format!("{e:#}"), "cannot bring pipelines in line after a rebalance");
        }
    }
}

impl ClientContext for Rebalancer {}

impl ConsumerContext for Rebalancer {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.moved(false, tpl);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.moved(true, tpl);
        }
    }
}

/// The membership thread; dropping it does not leave the group: [`Membership::leave`] does.
pub struct Membership {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn client_config(settings: &Settings, node: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", format!("weir-{node}"))
        .set("socket.timeout.ms", "10000");
    config
}

/// Creates the slot topic if it is missing, and checks its partitions are the slots.
pub async fn ensure_slot_topic(settings: &Settings, node: &str) -> Result<()> {
    let topic = settings.slot_topic();
    let admin: AdminClient<DefaultClientContext> = client_config(settings, node)
        .create()
        .context("cannot create the Kafka admin client")?;
    // It carries no records (only its partition count matters), so one replica will do.
    let new = NewTopic::new(&topic, settings.slots as i32, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = admin
        .create_topics([&new], &options)
        .await
        .with_context(|| format!("cannot create the slot topic `{topic}`"))?;
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!("cannot create the slot topic `{topic}`: {code}"),
        }
    }
    let metadata = tokio::task::spawn_blocking({
        let admin = admin;
        let topic = topic.clone();
        move || {
            admin
                .inner()
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
        }
    })
    .await?
    .with_context(|| format!("cannot read the slot topic `{topic}`"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if partitions != settings.slots as usize {
        bail!(
            "the slot topic `{topic}` has {partitions} partitions but the settings say {} slots: every node must use the topic's count",
            settings.slots
        );
    }
    Ok(())
}

impl Membership {
    /// Joins the group; assignments start pipelines as they come.
    pub fn join(
        settings: &Settings,
        slots: Arc<Slots>,
        supervisor: Arc<Supervisor>,
    ) -> Result<Membership> {
        let node = slots.node.clone();
        let consumer: BaseConsumer<Rebalancer> = client_config(settings, &node)
            .set("group.id", &settings.group)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                settings.heartbeat_interval.as_millis().to_string(),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A stop of a node's pipelines in a revoke may take a batch's flush.
            .set("max.poll.interval.ms", "300000")
            .create_with_context(Rebalancer { slots, supervisor })
            .context("cannot create the cluster's group consumer")?;
        consumer
            .subscribe(&[&settings.slot_topic()])
            .context("cannot join the cluster's group")?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir-membership".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    // No record ever arrives: polling serves heartbeats and rebalances.
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                        tracing::warn!(error = %e, "cluster membership");
                    }
                }
                // Leaves the group at once, so the others rebalance without waiting out the
                // session (the caller stopped the pipelines first).
                consumer.unsubscribe();
                let _ = consumer.poll(Duration::from_millis(100));
                drop(consumer);
            })
            .context("cannot start the membership thread")?;
        Ok(Membership {
            stop,
            thread: Some(thread),
        })
    }

    /// Leaves the group (after the caller stopped this node's pipelines), waiting at most
    /// `LEAVE_WAIT` for the broker: a node whose leave goes unanswered still exits, and
    /// the group notices when its session runs out.
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let started = std::time::Instant::now();
        while !thread.is_finished() {
            if started.elapsed() > LEAVE_WAIT {
                tracing::warn!(waited = ?LEAVE_WAIT, "the broker did not confirm this node's leave; exiting without it (the group drops the node when its session times out)");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = thread.join();
    }
}
