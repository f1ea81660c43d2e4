//! Every node's row in `weir_nodes` (what it runs, when it was last seen), and the loop
//! that keeps it fresh and brings this node's workers in line whenever the registry
//! announces a change (`LISTEN weir_registry`), or every few seconds in case a
//! notification was lost with a connection.

use super::Slots;
use crate::supervisor::{Placement, Supervisor};
use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use weir_checkpoint::now_ms;
use weir_checkpoint::postgres::Pg;
use weir_pipeline::Shutdown;

/// How often a node renews its row and syncs without being told.
const BEAT: Duration = Duration::from_secs(1);
/// A node whose row is older than this is taken for gone.
pub const SILENT: Duration = Duration::from_secs(3);

/// One node as the cluster's status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// Where its API listens.
    pub api: String,
    /// `up`, or `silent` when its row has not been renewed for three beats.
    pub health: &'static str,
    pub slots: Vec<i32>,
    /// The pipelines it runs, `tenant/name`.
    pub pipelines: Vec<String>,
    pub rebalances: u64,
    pub seen_ms_ago: u64,
}

pub struct Nodes {
    pg: Arc<Pg>,
    slots: Arc<Slots>,
    /// Where this node's API listens, once it does.
    api: std::sync::Mutex<String>,
}

impl Nodes {
    pub fn open(pg: Arc<Pg>, slots: Arc<Slots>, api: String) -> Result<Arc<Nodes>> {
        pg.migrate(
            "CREATE TABLE IF NOT EXISTS weir_nodes (
                node       TEXT PRIMARY KEY,
                api        TEXT NOT NULL,
                slots      TEXT NOT NULL,
                pipelines  TEXT NOT NULL,
                rebalances BIGINT NOT NULL,
                seen_at    BIGINT NOT NULL
            )",
        )?;
        Ok(Arc::new(Nodes {
            pg,
            slots,
            api: api.into(),
        }))
    }

    async fn renew(&self, supervisor: &Supervisor) -> Result<()> {
        let pipelines: Vec<String> = supervisor
            .workers()
            .iter()
            .map(|w| crate::registry::key(&w.tenant, &w.name))
            .collect();
        let api = self.api.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let client = self.pg.client().await?;
        client
            .execute(
                "INSERT INTO weir_nodes (node, api, slots, pipelines, rebalances, seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (node) DO UPDATE SET api = excluded.api, slots = excluded.slots,
                    pipelines = excluded.pipelines, rebalances = excluded.rebalances,
                    seen_at = excluded.seen_at",
                &[
                    &self.slots.node(),
                    &api,
                    &serde_json::to_string(&self.slots.owned())?,
                    &serde_json::to_string(&pipelines)?,
                    &(self.slots.rebalances() as i64),
                    &now_ms(),
                ],
            )
            .await
            .context("cannot renew this node's row")?;
        Ok(())
    }

    pub fn set_api(&self, address: String) {
        *self.api.lock().unwrap_or_else(|e| e.into_inner()) = address;
    }

    /// Forgets this node's row: it left cleanly.
    pub fn forget(&self) -> Result<()> {
        let node = self.slots.node().to_string();
        self.pg.run(async |c| {
            c.execute("DELETE FROM weir_nodes WHERE node = $1", &[&node])
                .await?;
            Ok(())
        })
    }

    /// Every node's row, this one's included.
    pub fn status(&self) -> Result<super::ClusterStatus> {
        let now = now_ms();
        let nodes = self.pg.run(async |c| {
            let rows = c
                .query(
                    "SELECT node, api, slots, pipelines, rebalances, seen_at FROM weir_nodes
                     ORDER BY node",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let seen_ms_ago = (now - r.get::<_, i64>(5)).max(0) as u64;
                    Ok(NodeStatus {
                        node: r.get(0),
                        api: r.get(1),
                        health: if seen_ms_ago < SILENT.as_millis() as u64 {
                            "up"
                        } else {
                            "silent"
                        },
                        slots: serde_json::from_str(r.get(2))?,
                        pipelines: serde_json::from_str(r.get(3))?,
                        rebalances: r.get::<_, i64>(4) as u64,
                        seen_ms_ago,
                    })
                })
                .collect()
        })?;
        Ok(super::ClusterStatus {
            node: self.slots.node().to_string(),
            clustered: true,
            slots: self.slots.count(),
            nodes,
        })
    }

    /// Until `stop`: listens for registry changes and syncs on each, renews this node's
    /// row every beat. Reconnects when the database goes away.
    pub async fn run(self: Arc<Self>, supervisor: Arc<Supervisor>, stop: Shutdown) {
        let sync = || {
            let supervisor = supervisor.clone();
            async move {
                match tokio::task::spawn_blocking(move || supervisor.sync_all()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot sync pipelines with the registry")
                    }
                    Err(e) => tracing::error!(error = %e, "the registry sync panicked"),
                }
            }
        };
        while !stop.is_triggered() {
            let (client, mut connection) = match self.pg.dedicated().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot listen for registry changes; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(BEAT) => continue,
                        _ = stop.triggered() => return,
                    }
                }
            };
            let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(|cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                            let _ = changed.send(());
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "registry listener connection lost");
                            return;
                        }
                    }
                }
            });
            if let Err(e) = client
                .batch_execute(&format!("LISTEN {}", crate::registry::CHANNEL))
                .await
            {
                tracing::warn!(error = %e, "cannot listen for registry changes");
                driver.abort();
                continue;
            }
            // Whatever changed while no one listened.
            sync().await;
            let mut beat = tokio::time::interval(BEAT);
            loop {
                tokio::select! {
                    got = changes.recv() => {
                        if got.is_none() {
                            break;
                        }
                        // One sync for a burst of changes.
                        while changes.try_recv().is_ok() {}
                        sync().await;
                    }
                    _ = beat.tick() => {
                        if let Err(e) = self.renew(&supervisor).await {
                            tracing::warn!(error = %format!("{e:#}"), "cluster heartbeat");
                        }
                        sync().await;
                    }
                    _ = stop.triggered() => {
                        driver.abort();
                        return;
                    }
                }
            }
            driver.abort();
        }
    }
}
