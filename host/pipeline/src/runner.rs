//! Runs the pipelines of a file: prepares each side, then schedules delivery runs.

use crate::config::{Endpoint, Pipeline, PipelineFile};
use crate::dead_letter::DeadLetters;
use crate::delivery::{self, Chain, Delivery, Push, Step, StreamPull, chain_memory};
use crate::fit::{Misfit, Side, fit};
use crate::meter::{Meter, MeterReading};
use crate::shutdown::Shutdown;
use anyhow::{Context, Result};
use chrono::Local;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tracing::Instrument;
use weir_checkpoint::{CheckpointStore, Owner, SqliteCheckpoints};
use weir_runtime::{
    BatchSourceInstance, ConnectorSpec, DeadLetter, GuestError, GuestErrorKind, Instance, Labels,
    Plugin, Records, Runtime, SinkInstance, SourceInstance, Stamp, TransformInstance,
};

/// A pipeline's transforms: one chain (an instance of each, in order) per worker.
type Chains = Vec<Chain<TransformInstance>>;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// One run, now, whatever the schedule; a stream source reads until it is idle.
    pub once: bool,
    /// Charged with the CPU of every batch, on both sides; none is unlimited.
    pub cpu: Option<std::sync::Arc<dyn crate::cpu_budget::CpuBudget>>,
    /// Whose commits these are: this process, unless a cluster says otherwise.
    pub owner: Owner,
    /// Shown each durable batch's records and dead letters.
    pub tap: Option<Arc<dyn crate::delivery::Tap>>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// What one pipeline did: printed by `weir run`, one JSON object per line with `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub pipeline: String,
    pub status: Status,
    pub records_read: u64,
    pub records_written: u64,
    pub batches: u64,
    /// Records a plugin rejected, stored at the pipeline's dead-letter destination.
    pub dead_letters: u64,
    pub runs: u64,
    /// Times the sink's instance was let go for want of batches (`release_when_idle`), and
    /// made again for the next.
    pub sink_rests: u64,
    /// The last committed checkpoint, after this invocation.
    pub checkpoint: Option<String>,
    pub source: String,
    /// The transforms' plugins, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<String>,
    pub sink: String,
    /// Host directories the sink may write to: where the records went.
    pub sink_dirs: Vec<String>,
    /// The connectors' own counters, `source.*`, `transform1.*` (counted from 1) and
    /// `sink.*`.
    pub metrics: BTreeMap<String, u64>,
    /// Guest log lines dropped over the instances' log budgets.
    pub log_dropped: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
    /// How a guest stopped the pipeline, when one did (a trap, a deadline, memory...).
    #[serde(skip)]
    pub failure: Option<GuestErrorKind>,
    /// Stopped because another owner took the pipeline over: not to be restarted here.
    #[serde(skip)]
    pub fenced: bool,
}

/// Runs every pipeline of `file` side by side, each its own task; one failing does not
/// stop the others.
pub async fn run(
    runtime: &Arc<Runtime>,
    file: &PipelineFile,
    options: &RunOptions,
    stop: &Shutdown,
) -> Result<Vec<Summary>> {
    let meters: Vec<Arc<Meter>> = file.pipelines.iter().map(|_| Arc::default()).collect();
    run_metered(runtime, file, options, stop, &meters).await
}

/// [`run`], each pipeline counting into its meter in `meters` (same order), for whoever
/// watches them run.
pub async fn run_metered(
    runtime: &Arc<Runtime>,
    file: &PipelineFile,
    options: &RunOptions,
    stop: &Shutdown,
    meters: &[Arc<Meter>],
) -> Result<Vec<Summary>> {
    anyhow::ensure!(meters.len() == file.pipelines.len(), "a meter per pipeline");
    let store: Arc<dyn CheckpointStore> = Arc::new(SqliteCheckpoints::open(&file.state_dir)?);
    let tasks: Vec<_> = file
        .pipelines
        .iter()
        .zip(meters)
        .map(|(p, meter)| {
            let (runtime, store, p) = (runtime.clone(), store.clone(), p.clone());
            let (options, stop, meter) = (options.clone(), stop.clone(), meter.clone());
            tokio::spawn(async move {
                retrying(&runtime, store.as_ref(), &p, &options, &stop, &meter).await
            })
        })
        .collect();
    let mut summaries = Vec::with_capacity(tasks.len());
    for (task, p) in tasks.into_iter().zip(&file.pipelines) {
        summaries.push(task.await.unwrap_or_else(|_| {
            let mut s = Summary::new(p);
            s.fail("the pipeline task panicked".into());
            s
        }));
    }
    Ok(summaries)
}

/// After a scheduled run fails, the next try waits this long (doubling with each failure
/// in a row, up to the most), then for the schedule's next tick.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MOST: Duration = Duration::from_secs(300);

/// [`run_one`], and for a scheduled pipeline (not `--once`) whose run failed, again at its
/// next tick after a backoff, with fresh instances: a database away at 2 a.m. does not end
/// the 3 a.m. run. The summary covers every try; its status and error are the last one's.
async fn retrying(
    runtime: &Runtime,
    store: &dyn CheckpointStore,
    p: &Pipeline,
    options: &RunOptions,
    stop: &Shutdown,
    meter: &Arc<Meter>,
) -> Summary {
    let started = Instant::now();
    let mut total = run_one(runtime, store, p, options, stop, meter).await;
    let (mut failures, mut last_runs) = (0, total.runs);
    while total.status == Status::Failed
        && p.schedule.is_some()
        && !options.once
        && !total.fenced
        && !stop.is_triggered()
    {
        // A try that ran well before it failed starts the backoff over.
        if last_runs > 1 {
            failures = 0;
        }
        failures += 1;
        let backoff = RETRY_FIRST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(RETRY_MOST);
        tracing::warn!(pipeline = %p.name, failures, retry_after = ?backoff, "the scheduled run failed; trying again at the first tick after the backoff");
        if stop.sleep(backoff).await {
            break;
        }
        let next = run_one(runtime, store, p, options, stop, meter).await;
        last_runs = next.runs;
        total.absorb(next);
    }
    total.elapsed_ms = started.elapsed().as_millis() as u64;
    total
}

impl Summary {
    /// Adds a later try's counts; its status, error and checkpoint replace these.
    fn absorb(&mut self, next: Summary) {
        self.records_read += next.records_read;
        self.records_written += next.records_written;
        self.batches += next.batches;
        self.dead_letters += next.dead_letters;
        self.runs += next.runs;
        self.sink_rests += next.sink_rests;
        for (name, value) in next.metrics {
            *self.metrics.entry(name).or_default() += value;
        }
        self.log_dropped = next.log_dropped;
        self.status = next.status;
        self.error = next.error;
        self.failure = next.failure;
        self.fenced = next.fenced;
        self.checkpoint = next.checkpoint;
    }

    fn new(p: &Pipeline) -> Summary {
        let name = plugin_name;
        Summary {
            pipeline: p.name.clone(),
            status: Status::Ok,
            records_read: 0,
            records_written: 0,
            batches: 0,
            dead_letters: 0,
            runs: 0,
            sink_rests: 0,
            checkpoint: None,
            source: name(&p.source),
            transforms: p.transforms.iter().map(name).collect(),
            sink: name(&p.sink),
            sink_dirs: p
                .sink
                .sandbox
                .dirs
                .iter()
                .filter(|d| d.writable)
                .map(|d| d.host.path().display().to_string())
                .collect(),
            metrics: BTreeMap::new(),
            log_dropped: 0,
            elapsed_ms: 0,
            error: None,
            failure: None,
            fenced: false,
        }
    }

    fn fail(&mut self, error: String) {
        self.status = Status::Failed;
        self.error = Some(error);
    }

    /// Adds what the meter counted between two readings: one run's share.
    fn count(&mut self, before: &MeterReading, after: &MeterReading) {
        self.records_read += after.records_in - before.records_in;
        self.records_written += after.records_out - before.records_out;
        self.batches += after.batches - before.batches;
        self.dead_letters += after.dead_letters - before.dead_letters;
        self.runs += 1;
    }
}

/// Runs one pipeline until its source ends (or its schedule, `stop` or a failure does),
/// counting into `meter` as it goes.
pub async fn run_one(
    runtime: &Runtime,
    store: &dyn CheckpointStore,
    p: &Pipeline,
    options: &RunOptions,
    stop: &Shutdown,
    meter: &Arc<Meter>,
) -> Summary {
    let span = tracing::info_span!("pipeline", pipeline = %p.name);
    async move {
        let started = Instant::now();
        let rests_before = meter.read().sink_rests;
        let mut summary = Summary::new(p);
        let run = Run {
            store,
            p,
            options,
            stop,
            meter,
        };
        if let Err(e) = run.drive(runtime, &mut summary).await {
            summary.failure = e
                .chain()
                .find_map(|c| c.downcast_ref::<GuestError>())
                .map(|g| g.kind);
            summary.fenced = e.chain().any(|c| c.is::<weir_checkpoint::Fenced>());
            let message = format!("{e:#}");
            tracing::error!(error = %message, "pipeline failed");
            summary.fail(message);
        }
        summary.log_dropped = meter.log_dropped.load(std::sync::atomic::Ordering::Relaxed);
        summary.sink_rests = meter.read().sink_rests - rests_before;
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        summary
    }
    .instrument(span)
    .await
}

/// What one pipeline's runs share: where they commit, what they run, how, when to stop,
/// and the counters they keep.
struct Run<'a> {
    store: &'a dyn CheckpointStore,
    p: &'a Pipeline,
    options: &'a RunOptions,
    stop: &'a Shutdown,
    meter: &'a Arc<Meter>,
}

impl Run<'_> {
    async fn drive(&self, runtime: &Runtime, summary: &mut Summary) -> Result<()> {
        // The one read of the committed position: each run after the first starts where
        // the previous one committed, which the summary follows.
        summary.checkpoint = self.store.load(&self.p.name)?.map(|c| c.checkpoint);
        // Boxed, as the other one-off steps below: a future is as large as its largest
        // state, and this one lives as long as the pipeline, idle or not. Instantiation's
        // state is kilobytes (a guest call's is boxed where every call goes through).
        let (source, chains, mut sink) = Box::pin(async {
            let source = prepare_source(runtime, self.p).await?;
            let chains = prepare_transforms(runtime, self.p).await?;
            let sink = SinkSide::prepare(runtime, self.p, self.meter.log_dropped.clone()).await?;
            anyhow::Ok((source, chains, sink))
        })
        .await?;
        let (mut source, mut chains) = (Some(source), Some(chains));
        if let Some(source) = &mut source {
            let transforms = chains.iter().flatten().map(|c| chain_memory(c)).sum();
            self.meter
                .instantiated(source.memory_bytes(), transforms, sink.memory_bytes());
            source.count_dropped_logs_in(self.meter.log_dropped.clone());
        }
        for step in chains.iter_mut().flatten().flatten() {
            step.transform
                .count_dropped_logs_in(self.meter.log_dropped.clone());
        }
        let result = self
            .deliver(summary, &mut source, &mut chains, &mut sink)
            .await;
        let source_counters = source.as_ref().map(|s| s.counters().clone());
        let mut counters = vec![("source".to_string(), source_counters.unwrap_or_default())];
        // A transform's counters, summed over its instances in the workers.
        for i in 0..self.p.transforms.len() {
            let mut sum = BTreeMap::<String, u64>::new();
            for chain in chains.iter().flatten() {
                for (name, value) in chain[i].transform.counters() {
                    *sum.entry(name.clone()).or_default() += value;
                }
            }
            counters.push((format!("transform{}", i + 1), sum));
        }
        counters.push(("sink".to_string(), sink.counters().clone()));
        for (role, counters) in counters {
            for (name, value) in counters {
                summary.metrics.insert(format!("{role}.{name}"), value);
            }
        }
        result
    }

    /// `source` and `chains` are lent to each run's tasks and come back after them (not
    /// if one panicked).
    async fn deliver(
        &self,
        summary: &mut Summary,
        source: &mut Option<SourceInstance>,
        chains: &mut Option<Chains>,
        sink: &mut SinkSide<'_>,
    ) -> Result<()> {
        let (p, options, stop) = (self.p, self.options, self.stop);
        let source_config = p.source.config.to_string();
        Box::pin(self.open_downstream(summary, chains, sink)).await?;
        let mut dead = DeadLetters::open(&p.name, p.dead_letter.as_ref())?;
        let (source_plugin, sink_plugin) = (summary.source.clone(), summary.sink.clone());
        let ctx = Delivery {
            pipeline: &p.name,
            store: self.store,
            stop,
            batch_size: p.batch_size,
            buffer: p.buffer_batches,
            group_commit: p.group_commit,
            rest_after: p.sink_release.after(),
            source_plugin: &source_plugin,
            sink_plugin: &sink_plugin,
            meter: self.meter,
            cpu: options.cpu.as_ref(),
            tap: options.tap.as_ref(),
            owner: &options.owner,
        };
        match source.take().ok_or_else(lost)? {
            SourceInstance::Batch(batch) => {
                let mut slot = Some((batch, chains.take().ok_or_else(lost)?));
                let runs = self
                    .batch_runs(&ctx, summary, &mut slot, sink, &mut dead)
                    .await;
                if let Some((batch, back)) = slot {
                    *source = Some(SourceInstance::Batch(batch));
                    *chains = Some(back);
                }
                runs?;
            }
            SourceInstance::Stream(mut stream) => {
                stream
                    .open(&source_config, summary.checkpoint.as_deref())
                    .await?;
                let before = self.meter.read();
                let pull = StreamPull {
                    source: stream,
                    wait: p.poll_wait,
                    until_idle: options.once,
                    stop: stop.clone(),
                    idle: false,
                };
                let lent = chains.take().ok_or_else(lost)?;
                let (back, outcome) =
                    delivery::run(&ctx, pull, lent, sink, &mut dead, &mut summary.checkpoint).await;
                summary.count(&before, &self.meter.read());
                let (pull, back) = back.ok_or_else(lost)?;
                *chains = Some(back);
                let mut stream = pull.source;
                let closed = match outcome {
                    Ok(()) => stream.close().await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                *source = Some(SourceInstance::Stream(stream));
                closed?;
            }
        }
        Box::pin(async {
            for step in chains.iter_mut().flatten().flatten() {
                step.transform.close().await?;
            }
            sink.close().await
        })
        .await
    }

    /// Opens the transforms and the sink, and takes the sink's own checkpoint where it
    /// keeps one.
    async fn open_downstream(
        &self,
        summary: &mut Summary,
        chains: &mut Option<Chains>,
        sink: &mut SinkSide<'_>,
    ) -> Result<()> {
        let p = self.p;
        let steps = chains
            .iter_mut()
            .flatten()
            .flat_map(|c| c.iter_mut().zip(&p.transforms));
        for (step, endpoint) in steps {
            step.transform
                .open(&endpoint.config.to_string())
                .await
                .with_context(|| format!("pipeline `{}` {}", p.name, step.name))?;
        }
        sink.open().await?;
        // A transactional sink's own checkpoint is the truth: it was committed with the
        // data, and the host's store is only written after (a crash in between leaves the
        // host's behind). None from the sink: the host's, if any.
        // Unless an operator moved the position since the last commit: then the move is.
        let moved = self.store.moved(&p.name)?;
        if let Some(moved) = &moved {
            tracing::warn!(checkpoint = ?moved.checkpoint, at_ms = moved.moved_at_ms, "starting where an operator moved the pipeline");
        }
        if let Some(stored) = sink.live()?.stored(&p.name).await?
            && moved.is_none()
        {
            if summary.checkpoint.as_deref() != Some(stored.as_str()) {
                // The sink's string is a plugin's: the log shows its start, not all of it.
                let start: String = stored.chars().take(200).collect();
                tracing::warn!(sink = %start, sink_bytes = stored.len(), "resuming from the checkpoint the sink committed with its data");
            }
            summary.checkpoint = Some(stored);
        }
        Ok(())
    }
}

impl Run<'_> {
    /// A batch source's runs: one, or one per scheduled time until stopped.
    async fn batch_runs(
        &self,
        ctx: &Delivery<'_>,
        summary: &mut Summary,
        slot: &mut Option<(BatchSourceInstance, Chains)>,
        sink: &mut SinkSide<'_>,
        dead: &mut DeadLetters,
    ) -> Result<()> {
        let (p, options, stop) = (self.p, self.options, self.stop);
        let config = p.source.config.to_string();
        loop {
            if let Some(cron) = p.schedule.as_ref().filter(|_| !options.once) {
                let wait = until_next(cron)?;
                // Between runs the sink has nothing to do; a wait past its release time
                // need not hold its instance.
                if p.sink_release.after().is_some_and(|after| wait >= after) && sink.rest().await? {
                    self.meter.sink_rested();
                }
                if stop.sleep(wait).await {
                    return Ok(());
                }
            }
            slot.as_mut()
                .ok_or_else(lost)?
                .0
                .open(&config, summary.checkpoint.as_deref())
                .await?;
            let before = self.meter.read();
            let (batch, lent) = slot.take().ok_or_else(lost)?;
            let (back, outcome) =
                delivery::run(ctx, batch, lent, sink, dead, &mut summary.checkpoint).await;
            *slot = back;
            let after = self.meter.read();
            summary.count(&before, &after);
            let records = after.records_out - before.records_out;
            tracing::info!(records, "run finished");
            outcome?;
            slot.as_mut().ok_or_else(lost)?.0.close().await?;
            if options.once || p.schedule.is_none() || stop.is_triggered() {
                return Ok(());
            }
        }
    }
}

fn lost() -> anyhow::Error {
    anyhow::anyhow!("the source task panicked")
}

/// How long until the cron schedule's next time.
fn until_next(cron: &croner::Cron) -> Result<Duration> {
    let now = Local::now();
    let next = cron
        .find_next_occurrence(&now, false)
        .context("the schedule has no next occurrence")?;
    tracing::info!(next = %next.to_rfc3339(), "waiting for the schedule");
    Ok((next - now).to_std().unwrap_or(Duration::ZERO))
}

/// Loads and instantiates one side, checks its world, and validates its config against
/// the plugin's JSON Schema; errors name the pipeline, the side and the field.
pub async fn prepare(
    runtime: &Runtime,
    p: &Pipeline,
    side: Side,
) -> Result<(Instance, ConnectorSpec)> {
    let (instance, spec, _) = prepare_plugin(runtime, p, side).await?;
    Ok((instance, spec))
}

/// [`prepare`], and the plugin it loaded, to make further instances of the same code.
async fn prepare_plugin(
    runtime: &Runtime,
    p: &Pipeline,
    side: Side,
) -> Result<(Instance, ConnectorSpec, Arc<Plugin>)> {
    let at = || format!("pipeline `{}` {}", p.name, side.name());
    let endpoint = p.endpoint(side);
    let plugin = runtime.load(&endpoint.plugin).with_context(at)?;
    let mut instance = instantiate(runtime, p, side, &plugin).await?;
    let spec = instance.spec().await.with_context(at)?;
    fit(side, plugin.world, &spec.config_schema, &endpoint.config).map_err(
        |misfit| match misfit {
            Misfit::World { world, .. } => anyhow::anyhow!(
                "{}: plugin {} is a {world}, but {} is needed here",
                at(),
                endpoint.plugin.display(),
                side.wanted()
            ),
            other => anyhow::anyhow!("{}: plugin `{}`: {other}", at(), spec.name),
        },
    )?;
    Ok((instance, spec, plugin))
}

/// A new instance of `plugin` as `side` of `p`, in that side's sandbox.
async fn instantiate(
    runtime: &Runtime,
    p: &Pipeline,
    side: Side,
    plugin: &Arc<Plugin>,
) -> Result<Instance> {
    let labels = Labels {
        pipeline: p.name.clone(),
        plugin: plugin.name.clone(),
        role: side.role(),
    };
    runtime
        .instantiate(plugin, &p.endpoint(side).sandbox, labels)
        .await
        .with_context(|| format!("pipeline `{}` {}", p.name, side.name()))
}

/// The source side, prepared: a batch or a stream source.
pub async fn prepare_source(runtime: &Runtime, p: &Pipeline) -> Result<SourceInstance> {
    let (instance, _) = prepare(runtime, p, Side::Source).await?;
    instance
        .into_source()
        .with_context(|| format!("pipeline `{}`: the source is a sink", p.name))
}

/// Whether a fresh instance of the pipeline's source opens at `checkpoint`: how an
/// operator's `checkpoint set` is checked before it is stored, so a typo cannot wedge the
/// pipeline. The source's own error says what it cannot read.
pub async fn source_opens_at(runtime: &Runtime, p: &Pipeline, checkpoint: &str) -> Result<()> {
    let mut source = prepare_source(runtime, p).await?;
    let config = p.source.config.to_string();
    let opened = match &mut source {
        SourceInstance::Batch(s) => s.open(&config, Some(checkpoint)).await,
        SourceInstance::Stream(s) => s.open(&config, Some(checkpoint)).await,
    };
    opened.map_err(|e| {
        anyhow::anyhow!(
            "pipeline `{}`: the source refuses checkpoint {checkpoint}: {e}",
            p.name
        )
    })
}

/// The transforms, prepared: a chain of them in order for each of the pipeline's
/// `transform_parallelism` workers; none without transforms.
pub async fn prepare_transforms(runtime: &Runtime, p: &Pipeline) -> Result<Chains> {
    if p.transforms.is_empty() {
        return Ok(Vec::new());
    }
    let mut chains = Vec::with_capacity(p.transform_parallelism);
    for _ in 0..p.transform_parallelism {
        let mut chain = Vec::with_capacity(p.transforms.len());
        for i in 0..p.transforms.len() {
            let side = Side::Transform(i);
            let (instance, _) = prepare(runtime, p, side).await?;
            let transform = instance.into_transform().with_context(|| {
                format!("pipeline `{}`: {} is not a transform", p.name, side.name())
            })?;
            let plugin = plugin_name(&p.transforms[i]);
            chain.push(Step {
                name: format!("{} ({plugin})", side.name()),
                plugin,
                transform,
            });
        }
        chains.push(chain);
    }
    Ok(chains)
}

/// A side's plugin as logs and dead letters name it: its file's name.
fn plugin_name(e: &Endpoint) -> String {
    e.plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The sink side of a run: its instance, or none while it rests. A resting sink holds no
/// instance, so an idle pipeline costs its source's; the next batch makes a new instance
/// of the same loaded plugin and opens it, as a restart would.
struct SinkSide<'a> {
    runtime: &'a Runtime,
    p: &'a Pipeline,
    plugin: Arc<Plugin>,
    log_dropped: Arc<AtomicU64>,
    live: Option<SinkInstance>,
    /// The last instance's counters, while none is live.
    rested: BTreeMap<String, u64>,
}

impl<'a> SinkSide<'a> {
    /// The sink, instantiated and checked as [`prepare`] does; not open yet.
    async fn prepare(
        runtime: &'a Runtime,
        p: &'a Pipeline,
        log_dropped: Arc<AtomicU64>,
    ) -> Result<SinkSide<'a>> {
        let (instance, _, plugin) = prepare_plugin(runtime, p, Side::Sink).await?;
        let mut sink = SinkSide {
            runtime,
            p,
            plugin,
            log_dropped,
            live: None,
            rested: BTreeMap::new(),
        };
        sink.live = Some(sink.adopt(instance)?);
        Ok(sink)
    }

    fn adopt(&self, instance: Instance) -> Result<SinkInstance> {
        let mut sink = instance
            .into_sink()
            .with_context(|| format!("pipeline `{}`: the sink is a source", self.p.name))?;
        sink.count_dropped_logs_in(self.log_dropped.clone());
        Ok(sink)
    }

    /// The live instance; a resting sink has none, and is not called but through [`Push`].
    fn live(&mut self) -> Result<&mut SinkInstance> {
        let name = &self.p.name;
        self.live
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("pipeline `{name}`: the sink is resting"))
    }

    async fn open(&mut self) -> Result<()> {
        let config = self.p.sink.config.to_string();
        self.live()?.open(&config).await?;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(live) = &mut self.live {
            live.close().await?;
        }
        Ok(())
    }
}

impl Push for SinkSide<'_> {
    async fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
        match &mut self.live {
            Some(live) => live.write(records).await,
            None => Err(resting(&self.plugin, "sink-write.writer.write")),
        }
    }
    async fn commit(&mut self, stamp: &Stamp) -> Result<Vec<DeadLetter>, GuestError> {
        match &mut self.live {
            Some(live) => live.commit(stamp).await,
            None => Err(resting(&self.plugin, "sink-transactional.commit")),
        }
    }
    fn memory_bytes(&self) -> usize {
        self.live.as_ref().map_or(0, SinkInstance::memory_bytes)
    }
    fn counters(&self) -> &BTreeMap<String, u64> {
        self.live
            .as_ref()
            .map_or(&self.rested, SinkInstance::counters)
    }
    async fn rest(&mut self) -> Result<bool> {
        let Some(mut live) = self.live.take() else {
            return Ok(false);
        };
        self.rested = live.counters().clone();
        live.close().await?;
        tracing::info!("the sink had no batch for a while: its instance is released");
        Ok(true)
    }
    async fn wake(&mut self) -> Result<()> {
        if self.live.is_none() {
            // Boxed: the writer's future would otherwise hold instantiation's state for
            // the pipeline's life.
            Box::pin(async {
                let instance = instantiate(self.runtime, self.p, Side::Sink, &self.plugin).await?;
                let mut live = self.adopt(instance)?;
                live.carry_counters(std::mem::take(&mut self.rested));
                self.live = Some(live);
                self.open().await?;
                tracing::info!("a batch came: the sink has a new instance");
                anyhow::Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// A sink called while it rests: a bug in the delivery loop, not in the plugin.
fn resting(plugin: &Plugin, call: &'static str) -> GuestError {
    GuestError {
        kind: GuestErrorKind::Fatal,
        plugin: plugin.name.clone(),
        call,
        message: "called while the sink rests, with no instance".into(),
    }
}

/// One stream a source can read, as its `discover` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Stream {
    pub name: String,
    /// JSON Schema of its records, where the plugin knows it.
    pub schema: Option<serde_json::Value>,
}

/// The streams the pipeline's source can read, asked with the source's config and
/// grants (tables of a database, files of a directory, topics).
pub async fn discover(runtime: &Runtime, p: &Pipeline) -> Result<Vec<Stream>> {
    let (mut instance, _) = prepare(runtime, p, Side::Source).await?;
    let streams = instance
        .discover(&p.source.config.to_string())
        .await
        .with_context(|| format!("pipeline `{}` source", p.name))?;
    Ok(streams
        .into_iter()
        .map(|s| Stream {
            name: s.name,
            schema: s
                .schema
                .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        })
        .collect())
}
