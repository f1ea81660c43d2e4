//! `weir serve --cluster`: several nodes form one service.
//!
//! - Membership and placement (`membership.rs`): every node joins one Kafka consumer
//!   group on a *slot topic* of `slots` partitions, with the cooperative-sticky assignor.
//!   The partitions a node is assigned are the slots it runs; a pipeline's slot is a stable
//!   hash of its key. Kafka's group coordinator notices a dead node (session timeout) and
//!   hands its slots to the others; no consensus of our own.
//! - Shared state: the registry and the checkpoints in PostgreSQL (`PgRegistry`,
//!   `PgCheckpoints`); a change on any node is announced with `NOTIFY` and every node
//!   brings its workers in line (`nodes.rs`), which also keeps the node table for
//!   `GET /v1/cluster`.
//! - Fencing: each run takes the pipeline under a new epoch, and every commit is
//!   conditional on it (see `weir_checkpoint::postgres`).

mod membership;
mod nodes;

use crate::supervisor::Placement;
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_checkpoint::postgres::Pg;

pub use membership::{Membership, ensure_slot_topic};
pub use nodes::{NodeStatus, Nodes};

/// The `--cluster` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This node's name, unique in the cluster (default: the host name and API port).
    pub node: Option<String>,
    /// Kafka bootstrap servers for the group (`host:port,...`).
    pub brokers: String,
    /// The shared PostgreSQL database (`postgres://user:password@host:port/db`); the
    /// environment variable `WEIR_CLUSTER_POSTGRES` takes precedence, to keep the password
    /// out of the file.
    pub postgres: Option<String>,
    /// The consumer group, and the slot topic's name (`<group>.slots`).
    #[serde(default = "default_group")]
    pub group: String,
    /// Partitions of the slot topic: the most nodes that can share the work. Fixed when
    /// the topic is created.
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// How long the group waits for a silent node before moving its pipelines.
    #[serde(default = "default_session", with = "humantime_serde")]
    pub session_timeout: Duration,
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
}

fn default_group() -> String {
    "weir".into()
}
fn default_slots() -> u32 {
    64
}
fn default_session() -> Duration {
    Duration::from_secs(6)
}
fn default_heartbeat() -> Duration {
    Duration::from_millis(500)
}

impl Settings {
    pub fn read(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster settings {}", path.display()))?;
        let mut settings: Settings = toml::from_str(&text)
            .with_context(|| format!("cluster settings {}", path.display()))?;
        if let Ok(url) = std::env::var("WEIR_CLUSTER_POSTGRES") {
            settings.postgres = Some(url);
        }
        ensure!(
            settings.postgres.is_some(),
            "cluster settings {}: `postgres` is not set (nor WEIR_CLUSTER_POSTGRES)",
            path.display()
        );
        ensure!(
            (1..=10_000).contains(&settings.slots),
            "cluster settings {}: `slots` must be between 1 and 10000",
            path.display()
        );
        ensure!(
            settings.heartbeat_interval < settings.session_timeout,
            "cluster settings {}: `heartbeat_interval` must be shorter than `session_timeout`",
            path.display()
        );
        Ok(settings)
    }

    pub fn slot_topic(&self) -> String {
        format!("{}.slots", self.group)
    }
}

/// A pipeline's slot: the first 8 bytes of the SHA-256 of its key, modulo the slot count,
/// so every node and every version of weir places it alike.
pub fn slot_of(key: &str, slots: u32) -> i32 {
    let digest = Sha256::digest(key.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % u64::from(slots)) as i32
}

/// The slots this node holds now, as the group's assignments say.
pub struct Slots {
    node: String,
    count: u32,
    /// Where to see whether a pipeline's previous owner has let go (none in unit tests).
    pg: Option<Arc<Pg>>,
    owned: Mutex<BTreeSet<i32>>,
    /// Set when the node stops: it runs nothing more, whatever it still holds.
    leaving: AtomicBool,
    rebalances: AtomicU64,
}

impl Slots {
    pub fn new(node: String, count: u32, pg: Option<Arc<Pg>>) -> Arc<Slots> {
        Arc::new(Slots {
            node,
            count,
            pg,
            owned: Mutex::new(BTreeSet::new()),
            leaving: AtomicBool::new(false),
            rebalances: AtomicU64::new(0),
        })
    }

    fn change(&self, add: bool, slots: impl IntoIterator<Item = i32>) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        for s in slots {
            if add {
                owned.insert(s);
            } else {
                owned.remove(&s);
            }
        }
        self.rebalances.fetch_add(1, Ordering::Relaxed);
    }

    pub fn owned(&self) -> Vec<i32> {
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.iter().copied().collect()
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// From now on nothing runs here; the caller stops the workers, then leaves the group.
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }
}

impl Placement for Slots {
    fn node(&self) -> &str {
        &self.node
    }

    fn runs_here(&self, key: &str) -> bool {
        !self.leaving.load(Ordering::SeqCst)
            && self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&slot_of(key, self.count))
    }

    /// Polls the pipeline's row until its holder has released it, is this node, or has
    /// gone silent (its node row not renewed for [`nodes::SILENT`]). Bounded by
    /// [`HANDOVER_WAIT`], after which fencing alone keeps the old holder's commits out.
    fn handover<'a>(
        &'a self,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Some(pg) = &self.pg else { return };
            let started = std::time::Instant::now();
            loop {
                let holder = async {
                    pg.client()
                        .await?
                        .query_opt(
                            "SELECT c.node, COALESCE(n.seen_at, 0) FROM weir_checkpoints c
                             LEFT JOIN weir_nodes n ON n.node = c.node
                             WHERE c.pipeline = $1 AND c.held AND c.node <> $2",
                            &[&key, &self.node],
                        )
                        .await
                        .map_err(anyhow::Error::from)
                }
                .await;
                let (node, seen_at): (String, i64) = match holder {
                    Ok(Some(row)) => (row.get(0), row.get(1)),
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot see who held the pipeline; taking it over");
                        return;
                    }
                };
                let silent = weir_checkpoint::now_ms() - seen_at > nodes::SILENT.as_millis() as i64;
                if silent {
                    tracing::info!(previous = %node, "the pipeline's previous node is silent; taking it over");
                    return;
                }
                if started.elapsed() > HANDOVER_WAIT {
                    tracing::warn!(previous = %node, "the pipeline's previous node has not let go; taking it over (its commits are fenced)");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// The longest a node waits for a live previous holder to let a pipeline go.
const HANDOVER_WAIT: Duration = Duration::from_secs(30);

/// What `GET /v1/cluster` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: String,
    pub clustered: bool,
    pub slots: u32,
    pub nodes: Vec<NodeStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_spread() {
        // The placement every node computes must not change between versions of weir.
        assert_eq!(slot_of("acme/orders", 64), slot_of("acme/orders", 64));
        let mut seen = BTreeSet::new();
        for i in 0..1000 {
            let s = slot_of(&format!("t/p{i}"), 64);
            assert!((0..64).contains(&s));
            seen.insert(s);
        }
        assert_eq!(seen.len(), 64, "1000 keys reach every slot");
    }

    #[test]
    fn a_leaving_node_runs_nothing() {
        let slots = Slots::new("a".into(), 4, None);
        slots.change(true, 0..4);
        assert!(slots.runs_here("t/p"));
        slots.leave();
        assert!(!slots.runs_here("t/p"));
    }
}
