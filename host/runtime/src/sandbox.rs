//! What one connector instance may touch and use: directories, memory, time per call.
//! Nothing is ambient: no environment, no network, no directories but the granted ones.

use crate::console::ConsoleTail;
use crate::io::http::HttpGrant;
use crate::io::kafka::KafkaGrant;
use crate::io::objects::ObjectsGrant;
use crate::io::sql::SqlGrant;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// A host directory a plugin may use, and the path it sees it under.
#[derive(Debug, Clone)]
pub struct DirGrant {
    pub host: PathBuf,
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
}

pub const DEFAULT_MAX_BATCH_BYTES: u64 = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            call_timeout: Duration::from_secs(30),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
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
    pub limits: Limits,
}

/// Whose instance this is, for logs and errors.
#[derive(Debug, Clone)]
pub struct Labels {
    pub pipeline: String,
    pub plugin: String,
    /// `source` or `sink`.
    pub role: &'static str,
}

/// The store data of one instance.
pub(crate) struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) kafka: Option<KafkaGrant>,
    pub(crate) http: Option<HttpGrant>,
    pub(crate) sql: Option<SqlGrant>,
    pub(crate) objects: Option<ObjectsGrant>,
    /// Opened on first use and kept: one client (and its connection pool) per instance.
    pub(crate) object_store: Option<std::sync::Arc<dyn object_store::ObjectStore>>,
    /// Host calls that block (HTTP) must end within the deadline of the call that made them.
    pub(crate) call_timeout: Duration,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) console: ConsoleTail,
    pub(crate) labels: Labels,
    pub(crate) counters: BTreeMap<String, u64>,
}

impl HostState {
    pub(crate) fn new(sandbox: &Sandbox, labels: Labels) -> Result<Self> {
        let console = ConsoleTail::default();
        let mut wasi = WasiCtx::builder();
        wasi.stdout(console.clone()).stderr(console.clone());
        for grant in &sandbox.dirs {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "cannot grant directory {} to {} as {}",
                        grant.host.display(),
                        labels.plugin,
                        grant.guest
                    )
                })?;
        }
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            kafka: sandbox.kafka.clone(),
            http: sandbox.http.clone(),
            sql: sandbox.sql.clone(),
            objects: sandbox.objects.clone(),
            object_store: None,
            call_timeout: sandbox.limits.call_timeout,
            limiter: MemoryLimiter {
                limit: usize::try_from(sandbox.limits.memory).unwrap_or(usize::MAX),
                denied: None,
                granted: 0,
            },
            console,
            labels,
            counters: BTreeMap::new(),
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
