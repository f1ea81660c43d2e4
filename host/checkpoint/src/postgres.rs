//! The store a cluster shares: checkpoints in PostgreSQL, every commit fenced.
//!
//! Each row carries the epoch and node of the pipeline's current owner. Taking a pipeline
//! over bumps the epoch in one statement; a commit is one `UPDATE ... WHERE epoch = $e AND
//! node = $n`, so PostgreSQL's row lock orders it against a takeover: a commit either
//! lands before the takeover (and the new owner reads it) or finds the epoch moved and
//! changes nothing. No transaction spans a network round trip.

use crate::{CheckpointStore, Committed, Event, Fenced, HISTORY_KEPT, Moved, Owner, now_ms};
use anyhow::{Context, Result, anyhow};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// How long one statement may take before the caller is told the database is away.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to the shared database, made again when it drops. Its methods block the
/// calling thread (the stores' traits are synchronous), so they are called from plain
/// threads or from tasks of a multi-thread runtime.
pub struct Pg {
    config: tokio_postgres::Config,
    /// Where the connection's driver task runs.
    tasks: tokio::runtime::Handle,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl Pg {
    /// Parses `url` (`postgres://user:password@host:port/db` or key=value pairs) and
    /// connects once, so a wrong URL or an unreachable server is an error at start.
    pub fn connect(url: &str, tasks: tokio::runtime::Handle) -> Result<Arc<Pg>> {
        let mut config: tokio_postgres::Config =
            url.parse().context("the PostgreSQL URL cannot be parsed")?;
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("weir");
        let pg = Arc::new(Pg {
            config,
            tasks,
            client: tokio::sync::Mutex::new(None),
        });
        pg.run(async |_| Ok(()))
            .context("cannot connect to the cluster's PostgreSQL")?;
        Ok(pg)
    }

    /// The shared client, connecting first if there is none or it has closed.
    pub async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .context("cannot connect to PostgreSQL")?;
        self.tasks.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "connection to the cluster's PostgreSQL lost");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A second connection of its own (for `LISTEN`, whose notifications arrive on the
    /// connection that listens), with the driver handed back to the caller.
    pub async fn dedicated(
        &self,
    ) -> Result<(
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        self.config
            .connect(NoTls)
            .await
            .context("cannot connect to PostgreSQL")
    }

    /// Runs `f` with the client, waiting for it on this thread, within the statement
    /// timeout.
    pub fn run<T>(&self, f: impl AsyncFnOnce(&Client) -> Result<T>) -> Result<T> {
        self.block_on(async {
            let client = self.client().await?;
            tokio::time::timeout(STATEMENT_TIMEOUT, f(&client))
                .await
                .map_err(|_| anyhow!("PostgreSQL did not answer within {STATEMENT_TIMEOUT:?}"))?
        })
    }

    /// Runs `future` to completion on this thread: inside a multi-thread runtime's task
    /// the worker hands its other tasks off first.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.tasks.block_on(future)),
            Err(_) => self.tasks.block_on(future),
        }
    }

    /// Runs `ddl` once across every node starting at the same moment (concurrent `CREATE
    /// TABLE IF NOT EXISTS` can collide in PostgreSQL's catalogue).
    pub fn migrate(&self, ddl: &'static str) -> Result<()> {
        self.run(async |client| {
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(7412359); {ddl}; COMMIT;"
                ))
                .await
                .context("cannot set up weir's tables")
        })
    }
}

/// Checkpoints in the `weir_checkpoints` table, shared by every node.
pub struct PgCheckpoints {
    pg: Arc<Pg>,
}

impl PgCheckpoints {
    pub fn open(pg: Arc<Pg>) -> Result<PgCheckpoints> {
        pg.migrate(
            "CREATE TABLE IF NOT EXISTS weir_checkpoints (
                pipeline     TEXT PRIMARY KEY,
                checkpoint   TEXT,
                committed_at BIGINT NOT NULL DEFAULT 0,
                commits      BIGINT NOT NULL DEFAULT 0,
                epoch        BIGINT NOT NULL DEFAULT 0,
                node         TEXT NOT NULL DEFAULT '',
                -- Whether the owner's run is still going: a node taking the pipeline
                -- over waits for a live owner to let go.
                held         BOOLEAN NOT NULL DEFAULT false
            );
            -- When an operator moved the position (weir checkpoint): until the next commit.
            ALTER TABLE weir_checkpoints ADD COLUMN IF NOT EXISTS moved_at BIGINT;
            -- What operators did to each pipeline (CheckpointStore::record).
            CREATE TABLE IF NOT EXISTS weir_history (
                id       BIGSERIAL PRIMARY KEY,
                pipeline TEXT NOT NULL,
                at       BIGINT NOT NULL,
                action   TEXT NOT NULL,
                detail   TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS weir_history_by_pipeline ON weir_history (pipeline, id)",
        )?;
        Ok(PgCheckpoints { pg })
    }
}

/// Adds a history entry and drops the pipeline's oldest past [`HISTORY_KEPT`].
async fn append(c: &Client, pipeline: &str, at: i64, action: &str, detail: &str) -> Result<()> {
    c.execute(
        "INSERT INTO weir_history (pipeline, at, action, detail) VALUES ($1, $2, $3, $4)",
        &[&pipeline, &at, &action, &detail],
    )
    .await?;
    trim(c, pipeline).await
}

async fn trim(c: &Client, pipeline: &str) -> Result<()> {
    c.execute(
        "DELETE FROM weir_history WHERE pipeline = $1 AND id <= (
             SELECT id FROM weir_history WHERE pipeline = $1 ORDER BY id DESC
             LIMIT 1 OFFSET $2)",
        &[&pipeline, &HISTORY_KEPT],
    )
    .await?;
    Ok(())
}

fn committed(row: &tokio_postgres::Row) -> Committed {
    Committed {
        checkpoint: row.get("checkpoint"),
        committed_at_ms: row.get("committed_at"),
        commits: row.get("commits"),
    }
}

impl CheckpointStore for PgCheckpoints {
    fn load(&self, pipeline: &str) -> Result<Option<Committed>> {
        self.pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        "SELECT checkpoint, committed_at, commits FROM weir_checkpoints
                         WHERE pipeline = $1 AND checkpoint IS NOT NULL",
                        &[&pipeline],
                    )
                    .await?;
                Ok(row.as_ref().map(committed))
            })
            .with_context(|| format!("cannot read the checkpoint of pipeline `{pipeline}`"))
    }

    fn commit(&self, pipeline: &str, checkpoint: &str, owner: &Owner) -> Result<()> {
        let epoch = owner.epoch as i64;
        let updated = self
            .pg
            .run(async |c| {
                Ok(c.execute(
                    "UPDATE weir_checkpoints
                     SET checkpoint = $2, committed_at = $3, commits = commits + 1,
                         moved_at = NULL
                     WHERE pipeline = $1 AND epoch = $4 AND node = $5",
                    &[&pipeline, &checkpoint, &now_ms(), &epoch, &owner.node],
                )
                .await?)
            })
            .with_context(|| format!("cannot commit the checkpoint of pipeline `{pipeline}`"))?;
        if updated == 1 {
            return Ok(());
        }
        let current = match self.owner(pipeline) {
            Ok(Some(o)) if !o.node.is_empty() => format!("node `{}` (epoch {})", o.node, o.epoch),
            Ok(_) => "no one (the pipeline was reset)".to_string(),
            Err(e) => format!("another owner ({e:#})"),
        };
        Err(Fenced {
            pipeline: pipeline.to_string(),
            epoch: owner.epoch,
            current,
        }
        .into())
    }

    fn acquire(&self, pipeline: &str, node: &str) -> Result<Owner> {
        let epoch: i64 = self
            .pg
            .run(async |c| {
                Ok(c.query_one(
                    "INSERT INTO weir_checkpoints (pipeline, epoch, node, held)
                     VALUES ($1, 1, $2, true)
                     ON CONFLICT (pipeline) DO UPDATE
                     SET epoch = weir_checkpoints.epoch + 1, node = excluded.node, held = true
                     RETURNING epoch",
                    &[&pipeline, &node],
                )
                .await?
                .get(0))
            })
            .with_context(|| format!("cannot take over pipeline `{pipeline}`"))?;
        Ok(Owner {
            node: node.to_string(),
            epoch: epoch as u64,
        })
    }

    fn release(&self, pipeline: &str, owner: &Owner) -> Result<()> {
        let epoch = owner.epoch as i64;
        self.pg
            .run(async |c| {
                c.execute(
                    "UPDATE weir_checkpoints SET held = false
                     WHERE pipeline = $1 AND epoch = $2 AND node = $3",
                    &[&pipeline, &epoch, &owner.node],
                )
                .await?;
                Ok(())
            })
            .with_context(|| format!("cannot release pipeline `{pipeline}`"))
    }

    fn owner(&self, pipeline: &str) -> Result<Option<Owner>> {
        self.pg.run(async |c| {
            let row = c
                .query_opt(
                    "SELECT node, epoch FROM weir_checkpoints WHERE pipeline = $1",
                    &[&pipeline],
                )
                .await?;
            Ok(row.map(|r| Owner {
                node: r.get(0),
                epoch: r.get::<_, i64>(1) as u64,
            }))
        })
    }

    /// Forgets the position but keeps the row and moves its epoch on: epochs only grow,
    /// so whoever still runs the old pipeline is fenced out, and a transactional sink that
    /// stored an epoch of the old one accepts the new one's commits.
    fn reset(&self, pipeline: &str) -> Result<bool> {
        self.pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        "WITH old AS (SELECT checkpoint FROM weir_checkpoints
                                      WHERE pipeline = $1 FOR UPDATE),
                              forgotten AS (DELETE FROM weir_history WHERE pipeline = $1)
                         UPDATE weir_checkpoints
                         SET checkpoint = NULL, committed_at = 0, commits = 0,
                             epoch = epoch + 1, node = '', held = false, moved_at = NULL
                         WHERE pipeline = $1
                         RETURNING (SELECT checkpoint IS NOT NULL FROM old)",
                        &[&pipeline],
                    )
                    .await?;
                Ok(row.is_some_and(|r| r.get::<_, Option<bool>>(0) == Some(true)))
            })
            .with_context(|| format!("cannot reset pipeline `{pipeline}`"))
    }

    fn list(&self) -> Result<Vec<(String, Committed)>> {
        self.pg
            .run(async |c| {
                let rows = c
                    .query(
                        "SELECT pipeline, checkpoint, committed_at, commits FROM weir_checkpoints
                         WHERE checkpoint IS NOT NULL ORDER BY pipeline",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| (r.get(0), committed(r))).collect())
            })
            .context("cannot list checkpoints")
    }

    /// Leaves the owner and its epoch as they are: the move is made while the pipeline is
    /// paused, and whoever runs it next reads it.
    /// One statement, so the move and its history entry are one step.
    fn move_to(&self, pipeline: &str, checkpoint: Option<&str>) -> Result<()> {
        self.pg
            .run(async |c| {
                let now = now_ms();
                c.execute(
                    "WITH old AS (SELECT checkpoint FROM weir_checkpoints
                                  WHERE pipeline = $1 FOR UPDATE),
                          logged AS (
                            INSERT INTO weir_history (pipeline, at, action, detail)
                            VALUES ($1, $3,
                                    CASE WHEN $2::text IS NULL THEN 'checkpoint reset'
                                         ELSE 'checkpoint set' END,
                                    json_build_object('from', (SELECT checkpoint FROM old),
                                                      'to', $2::text)::text))
                     INSERT INTO weir_checkpoints (pipeline, checkpoint, committed_at, moved_at)
                     VALUES ($1, $2, $3, $3)
                     ON CONFLICT (pipeline) DO UPDATE
                     SET checkpoint = $2, committed_at = $3, moved_at = $3",
                    &[&pipeline, &checkpoint, &now],
                )
                .await?;
                trim(c, pipeline).await
            })
            .with_context(|| format!("cannot move the checkpoint of pipeline `{pipeline}`"))
    }

    fn record(&self, pipeline: &str, action: &str, detail: &str) -> Result<()> {
        self.pg
            .run(async |c| append(c, pipeline, now_ms(), action, detail).await)
            .with_context(|| {
                format!("cannot record `{action}` in the history of pipeline `{pipeline}`")
            })
    }

    fn history(&self, pipeline: &str) -> Result<Vec<Event>> {
        self.pg
            .run(async |c| {
                let rows = c
                    .query(
                        "SELECT at, action, detail FROM weir_history
                         WHERE pipeline = $1 ORDER BY id",
                        &[&pipeline],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| Event {
                        at_ms: r.get(0),
                        action: r.get(1),
                        detail: r.get(2),
                    })
                    .collect())
            })
            .with_context(|| format!("cannot read the history of pipeline `{pipeline}`"))
    }

    fn moved(&self, pipeline: &str) -> Result<Option<Moved>> {
        self.pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        "SELECT checkpoint, moved_at FROM weir_checkpoints
                         WHERE pipeline = $1 AND moved_at IS NOT NULL",
                        &[&pipeline],
                    )
                    .await?;
                Ok(row.map(|r| Moved {
                    checkpoint: r.get(0),
                    moved_at_ms: r.get(1),
                }))
            })
            .with_context(|| format!("cannot read the moves of pipeline `{pipeline}`"))
    }
}
