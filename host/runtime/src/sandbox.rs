//! What one connector instance may touch and use: directories, memory, time per call.
//! Nothing is ambient: no environment, no network, no directories but the granted ones.

use crate::confined::{HostDir, fd_path};
use crate::console::ConsoleTail;
use crate::host::{Key, KeysCtx, LogBudget, LogCtx, MetricsCtx};
use crate::io::http::{HttpCtx, HttpGrant};
#[cfg(feature = "kafka")]
use crate::io::kafka::KafkaCtx;
use crate::io::kafka::KafkaGrant;
use crate::io::kinesis::{KinesisCtx, KinesisGrant};
use crate::io::objects::{ObjectsCtx, ObjectsGrant};
#[cfg(feature = "sql")]
use crate::io::sql::SqlCtx;
use crate::io::sql::SqlGrant;
use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// A host directory a plugin may use, and the path it sees it under.
#[derive(Debug, Clone)]
pub struct DirGrant {
    pub host: HostDir,
    pub guest: String,
    pub writable: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory per instance, in bytes.
    pub memory: u64,
    /// How long one call into the guest may run before it is interrupted.
    pub call_timeout: Duration,
    /// The most bytes of record data one batch may carry; a larger one fails the call.
    pub max_batch_bytes: u64,
    /// The instance's log budget: lines and bytes per second (ten seconds' worth may come
    /// at once); past it lines are dropped and counted.
    pub log_lines_per_second: u32,
    pub log_bytes_per_second: u64,
    /// Host resources the instance may hold at once: SQL connections, Kafka consumers and
    /// producers together, Kinesis shard readers. Past them an open fails with a `config`
    /// error.
    pub sql_connections: u32,
    pub kafka_clients: u32,
    pub kinesis_readers: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            call_timeout: Duration::from_secs(30),
            max_batch_bytes: 64 << 20,
            log_lines_per_second: 100,
            log_bytes_per_second: 64 << 10,
            sql_connections: 4,
            kafka_clients: 4,
            // A reader is a token and a little state in the host, one per shard read.
            kinesis_readers: 1024,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub dirs: Vec<DirGrant>,
    pub kafka: Option<KafkaGrant>,
    pub http: Option<HttpGrant>,
    pub sql: Option<SqlGrant>,
    pub objects: Option<ObjectsGrant>,
    pub kinesis: Option<KinesisGrant>,
    /// Secrets the plugin may hash under (`weir:connector/keys`), by the name it uses.
    pub keys: std::collections::BTreeMap<String, Key>,
    pub limits: Limits,
}

/// When the guest call in progress must end. Each call into the guest sets it; host calls
/// that block outside the guest (HTTP, SQL), where the epoch deadline cannot reach, end before
/// it, so the guest still has time to take the error and answer.
#[derive(Clone, Default)]
pub(crate) struct CallDeadline(Arc<Mutex<Option<Instant>>>);

/// What a blocking host call leaves the guest to handle its outcome and return.
const GUEST_MARGIN: Duration = Duration::from_millis(100);

impl CallDeadline {
    pub(crate) fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// Whether the call in progress is past its deadline.
    pub(crate) fn passed(&self) -> bool {
        let deadline = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        deadline.is_some_and(|at| Instant::now() >= at)
    }

    #[cfg(feature = "sql")]
    /// When a blocking host call must be cancelled: the call's deadline less the guest's
    /// margin; none outside a call.
    pub(crate) fn cancel_at(&self) -> Option<Instant> {
        let deadline = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        deadline.map(|at| at.checked_sub(GUEST_MARGIN).unwrap_or(at))
    }

    /// How long a blocking host call may take: `at_most`, or less if the call's deadline
    /// (less the guest's margin) comes sooner; never zero, so the call fails as a timeout.
    pub(crate) fn left(&self, at_most: Duration) -> Duration {
        let deadline = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        let left = match deadline {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .saturating_sub(GUEST_MARGIN),
            None => at_most,
        };
        left.min(at_most).max(Duration::from_millis(1))
    }
}

/// Whose instance this is, for logs and errors.
#[derive(Debug, Clone)]
pub struct Labels {
    pub pipeline: String,
    pub plugin: String,
    /// `source`, `transform` or `sink`.
    pub role: &'static str,
}

/// The store data of one instance: WASI, and each capability in its own context (as
/// wasmtime-wasi keeps its own), so that each `io/` module sees only its part.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) http: HttpCtx,
    #[cfg(feature = "kafka")]
    pub(crate) kafka: KafkaCtx,
    #[cfg(feature = "sql")]
    pub(crate) sql: SqlCtx,
    pub(crate) objects: ObjectsCtx,
    pub(crate) kinesis: KinesisCtx,
    pub(crate) keys: KeysCtx,
    pub(crate) log: LogCtx,
    pub(crate) metrics: MetricsCtx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) console: ConsoleTail,
    pub(crate) deadline: CallDeadline,
}

impl Drop for HostState {
    fn drop(&mut self) {
        // A flood that ended with the instance still gets its line.
        let mut budget = self.log.budget.lock().unwrap_or_else(|e| e.into_inner());
        budget.report(&self.log.labels);
    }
}

impl HostState {
    pub(crate) fn new(sandbox: &Sandbox, labels: Labels) -> Result<Self> {
        let budget = Arc::new(Mutex::new(LogBudget::new(&sandbox.limits)));
        let (console, stderr) = ConsoleTail::pair(&labels, &budget);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(console.clone()).stderr(stderr);
        // A guest's file I/O runs on the thread that called the guest, not on a pool of
        // tokio threads: it counts in that thread's CPU time (the tenant's CPU share
        // charges it) and skips a thread hop per read and write.
        wasi.allow_blocking_current_thread(true);
        for grant in &sandbox.dirs {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let cannot = || {
                format!(
                    "cannot grant directory {} to {} as {}",
                    grant.host.path().display(),
                    labels.plugin,
                    grant.guest
                )
            };
            // WASI opens preopens by path: hand it the directory the host opened without
            // following links, not a name a plugin could have relinked since. A directory
            // to write is made here, at the start, not when the pipeline was read.
            let dir = if grant.writable {
                grant.host.create()
            } else {
                grant.host.open()
            }
            .with_context(cannot)?;
            wasi.preopened_dir(fd_path(&dir), &grant.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(cannot)?;
        }
        let limits = &sandbox.limits;
        let deadline = CallDeadline::default();
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: HttpCtx {
                grant: sandbox.http.clone(),
                deadline: deadline.clone(),
            },
            #[cfg(feature = "kafka")]
            kafka: KafkaCtx {
                grant: sandbox.kafka.clone(),
                table: ResourceTable::new(),
                held: 0,
                limit: limits.kafka_clients,
            },
            #[cfg(feature = "sql")]
            sql: SqlCtx {
                grant: sandbox.sql.clone(),
                table: ResourceTable::new(),
                held: 0,
                limit: limits.sql_connections,
                call_timeout: limits.call_timeout,
                deadline: deadline.clone(),
            },
            objects: ObjectsCtx {
                grant: sandbox.objects.clone(),
                store: None,
            },
            kinesis: KinesisCtx::new(
                sandbox.kinesis.clone(),
                limits.kinesis_readers,
                deadline.clone(),
            ),
            keys: KeysCtx {
                keys: sandbox.keys.clone(),
            },
            log: LogCtx { budget, labels },
            metrics: MetricsCtx::default(),
            limiter: MemoryLimiter {
                limit: usize::try_from(limits.memory).unwrap_or(usize::MAX),
                denied: None,
                granted: 0,
            },
            console,
            deadline,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory per instance, and remembers a refusal so the error can say so
/// instead of showing whatever the guest did when its allocation failed.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) denied: Option<usize>,
    /// The largest linear memory granted so far: what the instance costs.
    pub(crate) granted: usize,
}

impl MemoryLimiter {
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.denied = Some(desired);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (asked for {desired})",
                self.limit
            ));
        }
        self.granted = self.granted.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
