//! One worker task per pipeline (no thread of its own: an idle pipeline is a timer): runs it, restarts it with exponential backoff when it
//! fails, gives up after the tenant's `max_failures`, and restarts it between batches when
//! asked (pause, resume, a new plugin version).
//!
//! A swap is a graceful stop followed by a start: the delivery loop finishes and commits
//! the batch in flight, so the new instance opens at exactly the checkpoint the old one
//! left, and nothing is delivered twice.

use crate::registry::{Desired, Pins, PipelineRow, Registry, key};
use crate::restart::{self, Next};
use crate::tenant::Grants;
use crate::tenant_cpu::TenantCpu;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::Instrument;
use weir_checkpoint::CheckpointStore;
use weir_pipeline::{
    CpuBudget, Meter, MeterReading, Pipeline, RunOptions, Shutdown, Side, Status, now_ms,
};
use weir_runtime::{GuestErrorKind, Runtime};

/// Which pipelines this process runs, and under what name it commits.
pub trait Placement: Send + Sync {
    /// The node's name, as its commits and the cluster's status show it.
    fn node(&self) -> &str;
    /// Whether the pipeline with this key (`tenant/name`) runs here now.
    fn runs_here(&self, key: &str) -> bool;
    /// Resolves once no other live node still runs the pipeline: a node that lost it in a
    /// rebalance stops it (committing its batch in flight) before it lets go.
    fn handover<'a>(
        &'a self,
        _key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(std::future::ready(()))
    }
}

/// One process runs everything.
pub struct Alone;

impl Placement for Alone {
    fn node(&self) -> &str {
        ""
    }
    fn runs_here(&self, _: &str) -> bool {
        true
    }
}

pub struct Supervisor {
    runtime: Arc<Runtime>,
    placement: Arc<dyn Placement>,
    /// Where the workers run.
    tasks: tokio::runtime::Handle,
    checkpoints: Arc<dyn CheckpointStore>,
    registry: Arc<dyn Registry>,
    workers: Mutex<HashMap<String, Arc<Worker>>>,
    /// One CPU budget per tenant with a CPU quota, shared by its pipelines.
    budgets: Mutex<HashMap<String, Arc<TenantCpu>>>,
    /// Held by [`Supervisor::sync_all`].
    syncing: Mutex<()>,
}

/// What a worker is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Run,
    /// Paused, or failed for good: wait for a resume.
    Hold,
    /// The pipeline was deleted, or the process is stopping: end the thread.
    Exit,
}

struct Control {
    command: Command,
    /// The plugin versions last asked for: a registry change that moves them swaps.
    versions: Pins,
    /// The definition last asked for (its digest, as stored): an update to it restarts the
    /// run too.
    definition: Definition,
    /// Bumped to restart the current run (a new plugin version, a resume).
    generation: u64,
    /// Stops the run in progress, between batches.
    run_stop: Option<Shutdown>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    Paused,
    /// Waiting to restart after a failure.
    Backoff,
    /// Gave up after too many failures; `resume` tries again.
    Failed,
    /// A batch source without a schedule read everything once.
    Finished,
}

/// What the status call and `/metrics` show about one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub state: State,
    pub last_error: Option<String>,
    /// Failed runs in a row (reset by a run that commits a batch).
    pub failures: u32,
    pub restarts: u64,
    /// Failed runs, all told.
    pub errors: u64,
    /// Runs stopped by a guest: trapped, past its deadline, out of memory.
    pub traps: u64,
    pub deadline_stops: u64,
    pub memory_stops: u64,
    /// The versions the current run uses: `source`, `transforms`, `sink`.
    #[serde(flatten)]
    pub running: Option<Pins>,
    /// When the current run started, ms since the Unix epoch.
    pub run_started_ms: u64,
    /// Records written before the current run started (so a run's own count is the
    /// difference).
    pub records_out_before_run: u64,
}

pub struct Worker {
    pub tenant: String,
    pub name: String,
    control: Mutex<Control>,
    wake: Notify,
    pub meter: Arc<Meter>,
    stats: Mutex<Stats>,
    /// Triggered when the worker's task has ended.
    done: Shutdown,
}

/// A pipeline's status: its stats, counters and checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Shown by the API beside the definition, not twice.
    #[serde(skip)]
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
    #[serde(flatten)]
    pub counters: MeterReading,
    pub checkpoint: Option<String>,
    /// How long ago the last checkpoint was committed: the pipeline's lag behind its
    /// source, as far as the host can tell.
    pub checkpoint_age_ms: Option<u64>,
    /// The connectors' own counters, by side and plugin.
    pub guest_counters: Vec<weir_pipeline::GuestCounter>,
}

/// A digest of a pipeline's stored definition, to tell an update from no change: every
/// pipeline's worker holds one, and a copy of the definition itself is a kilobyte or so.
type Definition = [u8; 32];

fn definition(row: &PipelineRow) -> Definition {
    Sha256::digest(serde_json::to_vec(&row.spec).unwrap_or_default()).into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    pub fn new(
        runtime: Arc<Runtime>,
        tasks: tokio::runtime::Handle,
        checkpoints: Arc<dyn CheckpointStore>,
        registry: Arc<dyn Registry>,
        placement: Arc<dyn Placement>,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            runtime,
            placement,
            tasks,
            checkpoints,
            registry,
            workers: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            syncing: Mutex::new(()),
        })
    }

    /// This node's name in a cluster; empty alone.
    pub fn node(&self) -> &str {
        self.placement.node()
    }

    pub fn checkpoints(&self) -> &dyn CheckpointStore {
        self.checkpoints.as_ref()
    }

    /// Starts a worker for every stored pipeline, in the state it was left in.
    pub fn start_all(self: &Arc<Self>) -> Result<usize> {
        let rows = self.registry.all_pipelines()?;
        for row in &rows {
            self.spawn(row)?;
        }
        Ok(rows.len())
    }

    /// Starts the worker of a pipeline just stored, if it runs here.
    pub fn spawn(self: &Arc<Self>, row: &PipelineRow) -> Result<()> {
        if !self.placement.runs_here(&row.key()) {
            return Ok(());
        }
        // Checked and inserted under one lock: two workers of one pipeline would each
        // write its batches (the second fencing the first, but only at its commit).
        let mut workers = lock(&self.workers);
        if workers.contains_key(&row.key()) {
            return Ok(());
        }
        let command = match row.desired {
            Desired::Running => Command::Run,
            Desired::Paused | Desired::Failed => Command::Hold,
        };
        let state = match row.desired {
            Desired::Running => State::Starting,
            Desired::Paused => State::Paused,
            Desired::Failed => State::Failed,
        };
        let worker = Arc::new(Worker {
            tenant: row.tenant.clone(),
            name: row.name.clone(),
            control: Mutex::new(Control {
                command,
                versions: row.pins.clone(),
                definition: definition(row),
                generation: 0,
                run_stop: None,
            }),
            wake: Notify::new(),
            meter: Arc::default(),
            stats: Mutex::new(Stats {
                state,
                last_error: row.last_error.clone(),
                failures: 0,
                restarts: 0,
                errors: 0,
                traps: 0,
                deadline_stops: 0,
                memory_stops: 0,
                running: None,
                run_started_ms: 0,
                records_out_before_run: 0,
            }),
            done: Shutdown::default(),
        });
        let (sup, w) = (self.clone(), worker.clone());
        let span = tracing::info_span!("pipeline", tenant = %w.tenant, pipeline = %w.name);
        self.tasks.spawn(
            async move {
                sup.work(&w).await;
                w.done.trigger();
            }
            .instrument(span),
        );
        workers.insert(row.key(), worker);
        Ok(())
    }

    fn worker(&self, tenant: &str, name: &str) -> Option<Arc<Worker>> {
        lock(&self.workers).get(&key(tenant, name)).cloned()
    }

    pub fn workers(&self) -> Vec<Arc<Worker>> {
        let mut all: Vec<_> = lock(&self.workers).values().cloned().collect();
        all.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        all
    }

    fn tell(&self, tenant: &str, name: &str, command: Command, restart: bool) {
        if let Some(w) = self.worker(tenant, name) {
            if restart && let Ok(Some(row)) = self.registry.pipeline(tenant, name) {
                lock(&w.control).definition = definition(&row);
                lock(&w.control).versions = row.pins;
            }
            w.tell(command, restart);
        }
    }

    pub fn pause(&self, tenant: &str, name: &str) {
        self.tell(tenant, name, Command::Hold, false);
    }

    pub fn resume(&self, tenant: &str, name: &str) {
        if let Some(w) = self.worker(tenant, name) {
            lock(&w.stats).failures = 0;
        }
        self.tell(tenant, name, Command::Run, true);
    }

    /// Restarts the pipeline between batches, with whatever versions the registry now pins.
    pub fn swap(&self, tenant: &str, name: &str) {
        if let Some(w) = self.worker(tenant, name) {
            let running = lock(&w.control).command == Command::Run;
            if running {
                self.tell(tenant, name, Command::Run, true);
            }
        }
    }

    /// Stops the worker and waits for it to finish its batch in flight.
    pub fn remove(&self, tenant: &str, name: &str) {
        self.tell(tenant, name, Command::Exit, false);
        if let Some(w) = lock(&self.workers).remove(&key(tenant, name)) {
            w.join();
        }
    }

    /// Stops every worker between batches, leaving the stored states as they are so the
    /// next `weir serve` resumes them.
    pub fn shutdown(&self) {
        let workers: Vec<_> = lock(&self.workers).drain().map(|(_, w)| w).collect();
        for w in &workers {
            w.tell(Command::Exit, false);
        }
        for w in workers {
            w.join();
        }
    }

    /// Brings the workers in line with the registry and the placement: starts the
    /// pipelines that run here and have no worker, stops (between batches, each
    /// committing its batch in flight) those that no longer run here, and tells the others
    /// what changed (paused, resumed, new versions). What one node changes reaches the
    /// others this way. Blocks until the stopped ones have stopped: call it from a thread.
    pub fn sync_all(self: &Arc<Self>) -> Result<()> {
        // One at a time (a rebalance and a notification may ask at once): a worker being
        // stopped by one must not look missing to the other.
        let _one = lock(&self.syncing);
        let wanted: HashMap<String, PipelineRow> = self
            .registry
            .all_pipelines()?
            .into_iter()
            .map(|row| (row.key(), row))
            .filter(|(key, _)| self.placement.runs_here(key))
            .collect();
        let leaving: Vec<Arc<Worker>> = {
            let mut workers = lock(&self.workers);
            let gone: Vec<String> = workers
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .cloned()
                .collect();
            gone.iter().filter_map(|k| workers.remove(k)).collect()
        };
        for w in &leaving {
            w.tell(Command::Exit, false);
        }
        for w in &leaving {
            w.join();
        }
        if !leaving.is_empty() {
            tracing::info!(pipelines = leaving.len(), "pipelines handed over");
        }
        for row in wanted.values() {
            match self.worker(&row.tenant, &row.name) {
                None => self.spawn(row)?,
                Some(w) => w.align(row),
            }
        }
        Ok(())
    }

    pub fn snapshot(&self, tenant: &str, name: &str) -> Option<Snapshot> {
        self.worker(tenant, name).map(|w| self.snapshot_of(&w))
    }

    pub fn snapshot_of(&self, w: &Worker) -> Snapshot {
        let committed = self
            .checkpoints
            .load(&key(&w.tenant, &w.name))
            .ok()
            .flatten();
        let now = now_ms() as i64;
        Snapshot {
            name: w.name.clone(),
            stats: lock(&w.stats).clone(),
            counters: w.meter.read(),
            guest_counters: w.meter.guest_counters(),
            checkpoint_age_ms: committed
                .as_ref()
                .map(|c| (now - c.committed_at_ms).max(0) as u64),
            checkpoint: committed.map(|c| c.checkpoint),
        }
    }

    async fn work(&self, w: &Worker) {
        loop {
            // Wait until told to run (or to exit).
            let (generation, stop) = loop {
                let told = w.wake.notified();
                let mut told = std::pin::pin!(told);
                // Registered before the command is read: a command in between wakes it.
                told.as_mut().enable();
                {
                    let mut c = lock(&w.control);
                    match c.command {
                        Command::Exit => return,
                        Command::Run => {
                            let stop = Shutdown::default();
                            c.run_stop = Some(stop.clone());
                            break (c.generation, stop);
                        }
                        Command::Hold => {
                            let mut s = lock(&w.stats);
                            if s.state != State::Failed {
                                s.state = State::Paused;
                            }
                        }
                    }
                }
                told.await;
            };
            let summary = self.run(w, &stop).await;
            lock(&w.control).run_stop = None;
            if summary.as_ref().is_ok_and(|s| s.fenced) {
                // Another node owns the pipeline now: this one stops it for good and
                // forgets its worker; a later assignment may start it here again.
                tracing::error!("pipeline taken over by another node; stopped here");
                let mut workers = lock(&self.workers);
                if workers
                    .get(&key(&w.tenant, &w.name))
                    .is_some_and(|mine| std::ptr::eq(Arc::as_ptr(mine), w))
                {
                    workers.remove(&key(&w.tenant, &w.name));
                }
                return;
            }
            if stop.is_triggered() {
                // Asked to stop (pause, swap, delete, shutdown): not a failure. The loop
                // above decides what comes next.
                continue;
            }
            let failed = summary.as_ref().err().cloned().or_else(|| {
                summary
                    .as_ref()
                    .ok()
                    .and_then(|s| (s.status == Status::Failed).then(|| s.error.clone()))
                    .flatten()
            });
            let Some(error) = failed else {
                {
                    let mut s = lock(&w.stats);
                    s.state = State::Finished;
                    s.failures = 0;
                }
                self.wait_for_change(w, generation, None).await;
                continue;
            };
            let how = restart::Failed {
                progressed: summary.as_ref().is_ok_and(|s| s.batches > 0),
                // A config the plugin rejects, or a pipeline that cannot be built, fails
                // the same way every time.
                permanent: summary
                    .as_ref()
                    .map_or(true, |s| s.failure == Some(GuestErrorKind::Config)),
            };
            let quotas = self
                .registry
                .tenant(&w.tenant)
                .ok()
                .flatten()
                .map(|t| t.quotas)
                .unwrap_or_default();
            let (next, failures) = {
                let mut s = lock(&w.stats);
                let (next, failures) = restart::decide(how, s.failures, &quotas);
                s.failures = failures;
                s.errors += 1;
                s.last_error = Some(error.clone());
                if let Ok(summary) = &summary {
                    match summary.failure {
                        Some(GuestErrorKind::Trap) => s.traps += 1,
                        Some(GuestErrorKind::Deadline) => s.deadline_stops += 1,
                        Some(GuestErrorKind::Memory) => s.memory_stops += 1,
                        _ => {}
                    }
                }
                (next, failures)
            };
            match next {
                Next::Stop { permanent } => {
                    if permanent {
                        tracing::error!(error = %error, "pipeline cannot run as configured; stopped");
                    } else {
                        tracing::error!(failures, error = %error, "pipeline failed too often; stopped");
                    }
                    lock(&w.stats).state = State::Failed;
                    let _ = self.registry.set_desired(
                        &w.tenant,
                        &w.name,
                        Desired::Failed,
                        Some(&error),
                    );
                    let mut c = lock(&w.control);
                    if c.command == Command::Run && c.generation == generation {
                        c.command = Command::Hold;
                    }
                }
                Next::Restart { after } => {
                    tracing::warn!(failures, backoff = ?after, error = %error, "pipeline failed; restarting after backoff");
                    lock(&w.stats).state = State::Backoff;
                    self.wait_for_change(w, generation, Some(after)).await;
                    lock(&w.stats).restarts += 1;
                }
            }
        }
    }

    /// Sleeps until the worker is told something new, or `timeout` passes.
    async fn wait_for_change(&self, w: &Worker, generation: u64, timeout: Option<Duration>) {
        let until = timeout.map(|t| Instant::now() + t);
        loop {
            let told = w.wake.notified();
            let mut told = std::pin::pin!(told);
            told.as_mut().enable();
            {
                let c = lock(&w.control);
                if c.command != Command::Run || c.generation != generation {
                    return;
                }
            }
            match until {
                Some(at) => {
                    if tokio::time::timeout_at(at.into(), told).await.is_err() {
                        return;
                    }
                }
                None => told.await,
            }
        }
    }

    /// One run of the pipeline with the versions the registry pins now.
    async fn run(&self, w: &Worker, stop: &Shutdown) -> Result<weir_pipeline::Summary, String> {
        // The stored row and tenant are read here and dropped before the run: this future
        // lives as long as the pipeline, and should not carry them all that time.
        let (pipeline, share, pins) = {
            let row = self
                .registry
                .pipeline(&w.tenant, &w.name)
                .map_err(|e| format!("{e:#}"))?
                .ok_or("the pipeline was deleted")?;
            // Checked against the tenant's grants as they are now: they may have narrowed.
            let tenant = self
                .registry
                .tenant(&row.tenant)
                .map_err(|e| format!("{e:#}"))?
                .ok_or_else(|| format!("tenant `{}` no longer exists", row.tenant))?;
            let pipeline = build(self.registry.as_ref(), &tenant.grants, &row)
                .map_err(|e| format!("{e:#}"))?;
            (pipeline, tenant.quotas.cpu, row.pins)
        };
        {
            let mut s = lock(&w.stats);
            s.state = State::Running;
            s.running = Some(pins.clone());
            s.run_started_ms = now_ms();
            s.records_out_before_run = w.meter.read().records_out;
        }
        let key = key(&w.tenant, &w.name);
        tokio::select! {
            () = self.placement.handover(&key) => {}
            () = stop.triggered() => return Err("stopped before it started".into()),
        }
        // A new epoch per run: whatever ran this pipeline before (elsewhere, or here
        // before a pause) can no longer commit.
        let owner = self
            .checkpoints
            .acquire(&key, self.placement.node())
            .map_err(|e| format!("{e:#}"))?;
        tracing::info!(pins = ?pins, epoch = owner.epoch, "pipeline starting");
        let options = RunOptions {
            once: false,
            cpu: share.map(|share| self.budget(&w.tenant, share) as Arc<dyn CpuBudget>),
            owner,
            tap: None,
        };
        let summary = weir_pipeline::run_one(
            &self.runtime,
            self.checkpoints.as_ref(),
            &pipeline,
            &options,
            stop,
            &w.meter,
        )
        .await;
        if let Err(e) = self.checkpoints.release(&key, &options.owner) {
            tracing::warn!(error = %format!("{e:#}"), "cannot release the pipeline");
        }
        Ok(summary)
    }

    /// The tenant's CPU budget; a changed quota starts a new one.
    fn budget(&self, tenant: &str, share: f64) -> Arc<TenantCpu> {
        let mut budgets = lock(&self.budgets);
        match budgets.get(tenant) {
            Some(b) if b.share == share => b.clone(),
            _ => {
                let b = Arc::new(TenantCpu::new(share));
                budgets.insert(tenant.to_string(), b.clone());
                b
            }
        }
    }
}

impl Worker {
    /// Waits for the worker's task to end. From a thread, not from a task.
    fn join(&self) {
        while !self.done.wait(Duration::from_secs(3600)) {}
    }

    fn tell(&self, command: Command, restart: bool) {
        let mut c = lock(&self.control);
        c.command = command;
        if restart {
            c.generation += 1;
        }
        if let Some(stop) = &c.run_stop {
            stop.trigger();
        }
        self.wake.notify_waiters();
    }

    /// Tells the worker what the stored row asks that it was not told yet.
    fn align(&self, row: &PipelineRow) {
        let versions = row.pins.clone();
        let definition = definition(row);
        let wanted = match row.desired {
            Desired::Running => Command::Run,
            Desired::Paused | Desired::Failed => Command::Hold,
        };
        let restart = {
            let mut c = lock(&self.control);
            if c.command == Command::Exit
                || (c.command == wanted
                    && (wanted == Command::Hold
                        || (c.versions == versions && c.definition == definition)))
            {
                return;
            }
            c.versions = versions;
            c.definition = definition;
            wanted == Command::Run
        };
        if restart && lock(&self.control).command == Command::Hold {
            lock(&self.stats).failures = 0;
        }
        self.tell(wanted, restart);
    }
}

/// Resolves a stored definition: plugin references to their pinned files, the name to
/// `tenant/name` (the checkpoint key), and checks it stays inside the tenant's grants.
pub fn build(registry: &dyn Registry, grants: &Grants, row: &PipelineRow) -> Result<Pipeline> {
    let mut spec = row.spec.clone();
    spec.name = row.key();
    let plugin = |side: Side, _: &str| {
        let Some(pinned) = row.pins.sides().contains(&side).then(|| row.pins.get(side)) else {
            bail!("{} has no pinned plugin", side.name());
        };
        let v = registry
            .plugin(&row.tenant, &pinned.name, pinned.version)?
            .with_context(|| {
                format!(
                    "plugin `{}` version {} is gone",
                    pinned.name, pinned.version
                )
            })?;
        registry.plugin_file(&v.sha256, &v.name)
    };
    grants
        .resolve(&spec, &plugin)
        .with_context(|| format!("pipeline `{}`", row.name))
}
