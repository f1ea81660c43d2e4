//! Source → transforms → bounded channel → sink write → flush → commit → acknowledge.
//!
//! At-least-once: a checkpoint is committed only after the sink flushed every record up to
//! it, so a crash anywhere redelivers at most the batches that were in flight. The channel
//! is bounded, so a slow sink slows the source and memory stays at `buffer` batches.
//!
//! Each side is a task: the source's runs beside the sink's (on another core when there
//! is one), and neither holds a thread while it waits. A pipeline with transforms has a
//! stage between them: `parallelism` workers, each with its own instance of every
//! transform, take batches in turn, and a collector hands their output to the sink in the
//! order the source read it. Memory stays bounded: `buffer` batches to the sink, and two
//! per worker.

use crate::cpu_budget::{CpuBudget, CpuClock};
use crate::dead_letter::DeadLetters;
use crate::meter::Meter;
use crate::shutdown::Shutdown;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use weir_checkpoint::{CheckpointStore, Owner};
use weir_runtime::{
    Batch, BatchSourceInstance, DeadLetter, GuestError, Records, SinkInstance, Stamp,
    StreamSourceInstance, TransformInstance, Transformed,
};

/// What a delivery run needs to know besides the two instances.
pub(crate) struct Delivery<'a> {
    pub pipeline: &'a str,
    pub store: &'a dyn CheckpointStore,
    /// Whose commits these are (a shared store refuses an owner that is no longer current).
    pub owner: &'a Owner,
    pub stop: &'a Shutdown,
    pub batch_size: u32,
    pub buffer: usize,
    /// Batches one commit may cover.
    pub group_commit: usize,
    /// How long the sink waits for a batch before it rests (none: it never does).
    pub rest_after: Option<Duration>,
    /// Plugin names, for dead letters.
    pub source_plugin: &'a str,
    pub sink_plugin: &'a str,
    pub meter: &'a Arc<Meter>,
    pub cpu: Option<&'a Arc<dyn CpuBudget>>,
    pub tap: Option<&'a Arc<dyn Tap>>,
}

/// Sees each batch once it is durable: the records as the sink took them, and every dead
/// letter with the plugin that rejected it. `weir dev` prints them as they happen.
pub trait Tap: Send + Sync + std::fmt::Debug {
    fn delivered(&self, pipeline: &str, records: &Records, dead: &[(&str, &[DeadLetter])]);
}

/// What one side needs to count its CPU and wait for its budget, owned, so the source's
/// task can take it along.
#[derive(Clone)]
struct Charge {
    meter: Arc<Meter>,
    cpu: Option<Arc<dyn CpuBudget>>,
    stop: Shutdown,
    clock: CpuClock,
}

impl Charge {
    /// Counts the CPU the side used since the last charge, and waits if the budget says
    /// so: between batches, so a swap or stop is never held up by it.
    async fn charge(&self, last: &mut u64) {
        let used = self.clock.lap(last);
        self.meter
            .cpu_ns
            .fetch_add(used.as_nanos() as u64, Ordering::Relaxed);
        if let Some(budget) = &self.cpu {
            let wait = budget.charge(used);
            if !wait.is_zero() {
                let started = Instant::now();
                self.stop.sleep(wait).await;
                self.meter
                    .throttled_ns
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// A source, seen by the delivery loop. It moves into its own task for the run.
pub(crate) trait Pull: Send + 'static {
    /// The next batch; `None` ends this run.
    fn pull(
        &mut self,
        max_records: u32,
    ) -> impl Future<Output = Result<Option<Batch>, GuestError>> + Send;
    /// `checkpoint` (and everything before it) is committed.
    fn acknowledge(
        &mut self,
        checkpoint: &str,
    ) -> impl Future<Output = Result<(), GuestError>> + Send;
    fn memory_bytes(&self) -> usize;
    /// The connector's own counters so far (none for a stand-in).
    fn counters(&self) -> &BTreeMap<String, u64> {
        static NONE: BTreeMap<String, u64> = BTreeMap::new();
        &NONE
    }
}

impl Pull for BatchSourceInstance {
    async fn pull(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError> {
        self.next(max_records).await
    }
    async fn acknowledge(&mut self, _: &str) -> Result<(), GuestError> {
        Ok(())
    }
    fn memory_bytes(&self) -> usize {
        BatchSourceInstance::memory_bytes(self)
    }
    fn counters(&self) -> &BTreeMap<String, u64> {
        BatchSourceInstance::counters(self)
    }
}

/// A sink, seen by the delivery loop.
pub(crate) trait Push: Send {
    /// Writes the records; the ones the sink rejects come back as dead letters.
    fn write(
        &mut self,
        records: &Records,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, GuestError>> + Send;
    /// Makes everything written so far durable: a transactional sink stores `stamp` with
    /// it, in the same step; any other flushes.
    /// Returns the records refused at commit.
    fn commit(
        &mut self,
        stamp: &Stamp,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, GuestError>> + Send;
    fn memory_bytes(&self) -> usize;
    /// The connector's own counters so far (none for a stand-in).
    fn counters(&self) -> &BTreeMap<String, u64> {
        static NONE: BTreeMap<String, u64> = BTreeMap::new();
        &NONE
    }
    /// No batch came for a while, and everything written is committed: a sink that can
    /// lets its instance go. Whether it did (not if it rests already).
    fn rest(&mut self) -> impl Future<Output = Result<bool>> + Send {
        async { Ok(false) }
    }
    /// A batch is here: a resting sink gets a new instance, open, before it is written.
    fn wake(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

impl Push for SinkInstance {
    async fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
        SinkInstance::write(self, records).await
    }
    async fn commit(&mut self, stamp: &Stamp) -> Result<Vec<DeadLetter>, GuestError> {
        SinkInstance::commit(self, stamp).await
    }
    fn memory_bytes(&self) -> usize {
        SinkInstance::memory_bytes(self)
    }
    fn counters(&self) -> &BTreeMap<String, u64> {
        SinkInstance::counters(self)
    }
}

/// A transform, seen by the delivery loop.
pub(crate) trait Process: Send + 'static {
    fn process(
        &mut self,
        records: &Records,
    ) -> impl Future<Output = Result<Transformed, GuestError>> + Send;
    fn memory_bytes(&self) -> usize;
    /// The connector's own counters so far (none for a stand-in).
    fn counters(&self) -> &BTreeMap<String, u64> {
        static NONE: BTreeMap<String, u64> = BTreeMap::new();
        &NONE
    }
}

impl Process for TransformInstance {
    async fn process(&mut self, records: &Records) -> Result<Transformed, GuestError> {
        TransformInstance::process(self, records).await
    }
    fn memory_bytes(&self) -> usize {
        TransformInstance::memory_bytes(self)
    }
    fn counters(&self) -> &BTreeMap<String, u64> {
        TransformInstance::counters(self)
    }
}

/// What a chain's instances hold in linear memory.
pub(crate) fn chain_memory<T: Process>(chain: &[Step<T>]) -> usize {
    chain.iter().map(|s| s.transform.memory_bytes()).sum()
}

/// One transform of a pipeline, with how errors and dead letters name it.
pub(crate) struct Step<T> {
    /// `transform #2 (jq)`.
    pub name: String,
    pub plugin: String,
    pub transform: T,
}

/// One instance of each of a pipeline's transforms, in order: what one worker runs.
pub(crate) type Chain<T> = Vec<Step<T>>;

/// A batch on its way to the sink: its records after every transform, the source's
/// checkpoint, and what each step rejected, by plugin.
pub(crate) struct Delivered {
    records: Records,
    checkpoint: String,
    rejected: Vec<(String, Vec<DeadLetter>)>,
}

impl Delivered {
    /// A batch as the source returned it. Boxed: the channels to the sink hold a block of
    /// 32 slots from the start, which an idle pipeline keeps too.
    fn pulled(batch: Batch, source_plugin: &str) -> Box<Delivered> {
        Box::new(Delivered {
            records: batch.records,
            checkpoint: batch.checkpoint,
            rejected: rejected_by(source_plugin, batch.dead_letters),
        })
    }
}

/// Runs `batch` through the steps in order. A step that rejects every record ends the
/// chain: the rest are not called for nothing, and the checkpoint still moves.
async fn transform<T: Process>(
    steps: &mut [Step<T>],
    source_plugin: &str,
    batch: Batch,
) -> Result<Box<Delivered>> {
    let mut out = Delivered::pulled(batch, source_plugin);
    for step in steps {
        if out.records.is_empty() {
            break;
        }
        let transformed = retry!(step.transform.process(&out.records).await)
            .with_context(|| step.name.clone())?;
        out.records = transformed.records;
        out.rejected
            .extend(rejected_by(&step.plugin, transformed.dead_letters));
    }
    Ok(out)
}

/// `letters` under `plugin`'s name; nothing (and no copy of the name) when there are none,
/// as in most batches.
fn rejected_by(plugin: &str, letters: Vec<DeadLetter>) -> Vec<(String, Vec<DeadLetter>)> {
    if letters.is_empty() {
        Vec::new()
    } else {
        vec![(plugin.to_string(), letters)]
    }
}

/// A stream source polled with a wait bound; with `until_idle`, an empty poll ends the run
/// (`--once`: read what is there now, then stop).
pub(crate) struct StreamPull {
    pub source: StreamSourceInstance,
    pub wait: Duration,
    pub until_idle: bool,
    pub stop: Shutdown,
    /// `until_idle` met an empty poll: the next pull ends the run.
    pub idle: bool,
}

impl Pull for StreamPull {
    async fn pull(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError> {
        if self.idle {
            return Ok(None);
        }
        let started = Instant::now();
        let batch = self.source.poll(max_records, self.wait).await?;
        if batch.records.is_empty() {
            if self.until_idle {
                // Its checkpoint may still have moved (a shard read to its end, a snapshot
                // of empty tables): it is delivered, and the run ends at the next pull.
                self.idle = true;
                return Ok(Some(batch));
            }
            // A guest that answers "nothing" at once instead of waiting must not make the
            // host spin: the rest of the wait is slept here.
            if let Some(rest) = self.wait.checked_sub(started.elapsed()) {
                self.stop.sleep(rest).await;
            }
        }
        Ok(Some(batch))
    }
    async fn acknowledge(&mut self, checkpoint: &str) -> Result<(), GuestError> {
        self.source.ack(checkpoint).await
    }
    fn memory_bytes(&self) -> usize {
        self.source.memory_bytes()
    }
    fn counters(&self) -> &BTreeMap<String, u64> {
        self.source.counters()
    }
}

/// A position whose records the sink has flushed. Only [`flush`] makes one, and only a
/// `Durable` can be committed.
struct Durable {
    checkpoint: String,
}

/// Runs until the source ends the run, the shutdown is triggered, or any side fails.
/// `committed` is the checkpoint the source was opened at, and follows each commit (also
/// when the run fails half-way); the counts go to the meter. `chains` holds one chain of
/// transforms per worker (none: no transforms). The source and the chains come back for
/// the caller to close (unless a task panicked).
pub(crate) async fn run<P: Pull, T: Process>(
    ctx: &Delivery<'_>,
    source: P,
    chains: Vec<Chain<T>>,
    sink: &mut impl Push,
    dead: &mut DeadLetters,
    committed: &mut Option<String>,
) -> (Option<(P, Vec<Chain<T>>)>, Result<()>) {
    let from = committed.clone();
    let (batches, inbox) = mpsc::channel::<Box<Delivered>>(ctx.buffer.max(1));
    // The reader only ever needs the newest committed checkpoint: a watch holds that one.
    let (acks, acked) = watch::channel::<Option<String>>(None);
    // Set when the sink or a transform failed: stops a reader polling an idle stream.
    let downstream_failed = Arc::new(AtomicBool::new(false));
    let charge = |clock| Charge {
        meter: ctx.meter.clone(),
        cpu: ctx.cpu.cloned(),
        stop: ctx.stop.clone(),
        clock,
    };
    let (feed, stage) = if chains.iter().all(Vec::is_empty) {
        let feed = Feed::Direct {
            to: batches,
            source_plugin: ctx.source_plugin.to_string(),
        };
        (feed, Stage::Empty(chains))
    } else {
        Stage::start(
            chains,
            batches,
            &charge,
            ctx.source_plugin,
            &downstream_failed,
        )
    };
    let reading = Reading {
        charge: charge(CpuClock::default()),
        source_plugin: ctx.source_plugin.to_string(),
        batch_size: ctx.batch_size,
        downstream_failed: downstream_failed.clone(),
    };
    let reader_clock = reading.charge.clock.clone();
    let reader = tokio::spawn(reader_clock.meter(reading.read(source, feed, acked, from)));
    // On a sink failure `inbox` is dropped here, which unblocks a task blocked in send.
    let writer = charge(CpuClock::default());
    let written = writer
        .clock
        .clone()
        .meter(write(ctx, &writer, sink, dead, inbox, acks, committed))
        .await;
    if written.is_err() {
        downstream_failed.store(true, Ordering::Relaxed);
    }
    let (chains, transformed) = stage.finish().await;
    let (source, pulled) = match reader.await {
        Ok((source, pulled)) => (Some(source), pulled),
        Err(_) => (None, Err(anyhow!("the source task panicked"))),
    };
    // The sink's error is the cause when several failed: the others only saw it go. A
    // transform's comes before the source's for the same reason.
    let back = source.zip(chains);
    (back, written.and(transformed).and(pulled))
}

/// Where the reader sends what it pulled: to the sink, or to the transform workers in turn.
enum Feed {
    Direct {
        to: mpsc::Sender<Box<Delivered>>,
        source_plugin: String,
    },
    Stage {
        workers: Vec<mpsc::Sender<Box<Batch>>>,
        next: usize,
    },
}

impl Feed {
    /// False once what it feeds has stopped (its error is reported there).
    async fn send(&mut self, batch: Batch) -> bool {
        match self {
            Feed::Direct { to, source_plugin } => to
                .send(Delivered::pulled(batch, source_plugin))
                .await
                .is_ok(),
            Feed::Stage { workers, next } => {
                let worker = &workers[*next];
                *next = (*next + 1) % workers.len();
                worker.send(Box::new(batch)).await.is_ok()
            }
        }
    }
}

/// The transform workers and their collector, between the reader and the sink.
enum Stage<T: Process> {
    /// No transforms: the reader feeds the sink.
    Empty(Vec<Chain<T>>),
    Running {
        workers: Vec<tokio::task::JoinHandle<Chain<T>>>,
        collector: tokio::task::JoinHandle<Result<()>>,
    },
}

impl<T: Process> Stage<T> {
    /// One worker per chain; batch `k` goes to worker `k mod n`, and the collector takes
    /// the outputs in the same turn, so the sink gets them in the order they were read.
    fn start(
        chains: Vec<Chain<T>>,
        to_sink: mpsc::Sender<Box<Delivered>>,
        charge: &impl Fn(CpuClock) -> Charge,
        source_plugin: &str,
        failed: &Arc<AtomicBool>,
    ) -> (Feed, Stage<T>) {
        let mut feeds = Vec::new();
        let mut outputs = Vec::new();
        let mut workers = Vec::new();
        for (index, chain) in chains.into_iter().enumerate() {
            let (feed, inbox) = mpsc::channel::<Box<Batch>>(1);
            let (output, results) = mpsc::channel::<Result<Box<Delivered>>>(1);
            let worker = charge(CpuClock::default());
            let clock = worker.clock.clone();
            let plugin = source_plugin.to_string();
            workers.push(tokio::spawn(
                clock.meter(work(chain, inbox, output, worker, plugin, index)),
            ));
            feeds.push(feed);
            outputs.push(results);
        }
        let collector = tokio::spawn(collect(outputs, to_sink, failed.clone()));
        let feed = Feed::Stage {
            workers: feeds,
            next: 0,
        };
        (feed, Stage::Running { workers, collector })
    }

    /// Waits for the stage to end; its chains come back (none if a worker panicked).
    async fn finish(self) -> (Option<Vec<Chain<T>>>, Result<()>) {
        match self {
            Stage::Empty(chains) => (Some(chains), Ok(())),
            Stage::Running { workers, collector } => {
                let collected = collector
                    .await
                    .unwrap_or_else(|_| Err(anyhow!("the transform stage panicked")));
                let mut chains = Some(Vec::with_capacity(workers.len()));
                for worker in workers {
                    match (worker.await, &mut chains) {
                        (Ok(chain), Some(all)) => all.push(chain),
                        (Err(_), _) => chains = None,
                        _ => {}
                    }
                }
                match chains {
                    Some(chains) => (Some(chains), collected),
                    None => (
                        None,
                        collected.and(Err(anyhow!("a transform task panicked"))),
                    ),
                }
            }
        }
    }
}

/// One transform worker: each batch through its chain, in the order they come.
async fn work<T: Process>(
    mut chain: Chain<T>,
    mut inbox: mpsc::Receiver<Box<Batch>>,
    output: mpsc::Sender<Result<Box<Delivered>>>,
    charge: Charge,
    source_plugin: String,
    worker: usize,
) -> Chain<T> {
    let mut cpu = 0;
    let mut memory = chain_memory(&chain);
    while let Some(batch) = inbox.recv().await {
        let done = transform(&mut chain, &source_plugin, *batch).await;
        charge.meter.transformed(&mut memory, chain_memory(&chain));
        for (i, step) in chain.iter().enumerate() {
            let side = format!("transform{}", i + 1);
            let counters = step.transform.counters();
            charge.meter.guest(&side, &step.plugin, worker, counters);
        }
        charge.charge(&mut cpu).await;
        let failed = done.is_err();
        if output.send(done).await.is_err() || failed {
            break;
        }
    }
    chain
}

/// Takes the workers' outputs in turn and passes them to the sink, until one fails (then
/// nothing after it in the source's order reaches the sink) or they all end.
async fn collect(
    mut outputs: Vec<mpsc::Receiver<Result<Box<Delivered>>>>,
    to_sink: mpsc::Sender<Box<Delivered>>,
    failed: Arc<AtomicBool>,
) -> Result<()> {
    for turn in (0..outputs.len()).cycle() {
        match outputs[turn].recv().await {
            // The reader stopped feeding after the batch before this one.
            None => return Ok(()),
            Some(Err(e)) => {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            Some(Ok(delivered)) => {
                if to_sink.send(delivered).await.is_err() {
                    return Ok(()); // the sink stopped; its error is reported by the writer
                }
            }
        }
    }
    Ok(())
}

/// The source's side of a run.
struct Reading {
    charge: Charge,
    source_plugin: String,
    batch_size: u32,
    downstream_failed: Arc<AtomicBool>,
}

impl Reading {
    async fn read<P: Pull>(
        self,
        mut source: P,
        mut feed: Feed,
        mut acked: watch::Receiver<Option<String>>,
        from: Option<String>,
    ) -> (P, Result<()>) {
        let mut last = from;
        let mut cpu = 0;
        let stop = self.charge.stop.clone();
        let pulled: Result<()> = async {
            while !stop.is_triggered() && !self.downstream_failed.load(Ordering::Relaxed) {
                if let Some(latest) = unseen(&mut acked) {
                    acknowledge(&mut source, &latest).await?;
                }
                let pulled = retry!(source.pull(self.batch_size).await)?;
                self.charge.charge(&mut cpu).await;
                let Some(batch) = pulled else {
                    break;
                };
                // An idle poll that did not move the position has nothing to deliver.
                if batch.records.is_empty()
                    && batch.dead_letters.is_empty()
                    && last.as_deref() == Some(batch.checkpoint.as_str())
                {
                    continue;
                }
                let n = batch.records.len() as u64;
                let bytes = batch.records.data.len() as u64;
                last = Some(batch.checkpoint.clone());
                if !feed.send(batch).await {
                    break; // the stage or the sink stopped, and reports why
                }
                self.charge.meter.pulled(n, bytes, source.memory_bytes());
                let plugin = &self.source_plugin;
                self.charge
                    .meter
                    .guest("source", plugin, 0, source.counters());
            }
            Ok(())
        }
        .await;
        drop(feed);
        // Acknowledge what the sink commits after the last pull, until the sink is done.
        // `changed` still yields a last commit the reader has not seen once the writer is gone.
        let mut latest_ack = None;
        while acked.changed().await.is_ok() {
            latest_ack = acked.borrow_and_update().clone();
        }
        let acknowledged = match latest_ack {
            Some(latest) => acknowledge(&mut source, &latest).await,
            None => Ok(()),
        };
        (source, pulled.and(acknowledged))
    }
}

/// The newest committed checkpoint, if the reader has not acknowledged it yet. Once the
/// writer is gone the reader's last loop takes what is left.
fn unseen(acked: &mut watch::Receiver<Option<String>>) -> Option<String> {
    if acked.has_changed().unwrap_or(false) {
        acked.borrow_and_update().clone()
    } else {
        None
    }
}

/// Tells the source a checkpoint is committed. weir's own commit already made it durable,
/// so a transient failure upstream (a group commit) only delays that copy: the next
/// acknowledgement carries a newer position.
async fn acknowledge(source: &mut impl Pull, checkpoint: &str) -> Result<()> {
    match source.acknowledge(checkpoint).await {
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "acknowledgement failed; the next one will carry it");
            Ok(())
        }
        other => other.map_err(Into::into),
    }
}

async fn write(
    ctx: &Delivery<'_>,
    charge: &Charge,
    sink: &mut impl Push,
    dead: &mut DeadLetters,
    mut inbox: mpsc::Receiver<Box<Delivered>>,
    acks: watch::Sender<Option<String>>,
    committed: &mut Option<String>,
) -> Result<()> {
    let mut cpu = 0;
    while let Some(first) = next(ctx, sink, &mut inbox).await? {
        sink.wake().await?;
        let group = waiting(*first, &mut inbox, ctx.group_commit);
        let batches = group.len() as u64;
        let n: u64 = group.iter().map(|b| b.records.len() as u64).sum();
        // Boxed, as a new instance is: the writer waits in `next` most of its life, and
        // should hold no more than that state needs.
        let (durable, rejected) = Box::pin(flush(ctx, sink, dead, group)).await?;
        ctx.store
            .commit(ctx.pipeline, &durable.checkpoint, ctx.owner)
            .context("the sink flushed but the checkpoint could not be committed")?;
        tracing::debug!(checkpoint = %durable.checkpoint, "checkpoint committed");
        ctx.meter.committed(
            batches,
            n - rejected.by_sink,
            rejected.upstream + rejected.by_sink,
            sink.memory_bytes(),
        );
        ctx.meter.guest("sink", ctx.sink_plugin, 0, sink.counters());
        *committed = Some(durable.checkpoint.clone());
        // The reader may have finished already; then nothing is left to acknowledge.
        acks.send_replace(Some(durable.checkpoint));
        charge.charge(&mut cpu).await;
    }
    Ok(())
}

/// The sink's next batch. After [`Delivery::rest_after`] without one, the sink rests
/// first: every batch it took is committed by then, so it holds nothing a new instance
/// would need.
async fn next(
    ctx: &Delivery<'_>,
    sink: &mut impl Push,
    inbox: &mut mpsc::Receiver<Box<Delivered>>,
) -> Result<Option<Box<Delivered>>> {
    if let Some(after) = ctx.rest_after {
        match tokio::time::timeout(after, inbox.recv()).await {
            Ok(next) => return Ok(next),
            Err(_) => {
                if sink.rest().await? {
                    ctx.meter.sink_rested();
                }
            }
        }
    }
    Ok(inbox.recv().await)
}

/// Record bytes past which a group takes no further batch.
const GROUP_BYTES: usize = 8 << 20;

/// `first` and, up to `most` in all, the batches already waiting behind it, to go under
/// one commit (group commit): one sink commit and one checkpoint commit, with their
/// fsyncs, for all of them. It never waits for a batch, so it adds no latency; it groups
/// only when the sink is slower than what feeds it. No more join past [`GROUP_BYTES`], so
/// a sink holds a few batches at most before it commits.
fn waiting(
    first: Delivered,
    inbox: &mut mpsc::Receiver<Box<Delivered>>,
    most: usize,
) -> Vec<Delivered> {
    let mut bytes = first.records.data.len();
    let mut group = vec![first];
    while group.len() < most
        && bytes < GROUP_BYTES
        && let Ok(next) = inbox.try_recv()
    {
        bytes += next.records.data.len();
        group.push(*next);
    }
    group
}

struct Rejected {
    /// By the source and the transforms.
    upstream: u64,
    by_sink: u64,
}

/// Writes the batches in order and commits the sink at the last one's checkpoint, then
/// stores their dead letters: only then is that checkpoint [`Durable`].
async fn flush(
    ctx: &Delivery<'_>,
    sink: &mut impl Push,
    dead: &mut DeadLetters,
    group: Vec<Delivered>,
) -> Result<(Durable, Rejected)> {
    let mut by_sink = Vec::with_capacity(group.len());
    for batch in &group {
        // A batch its transforms emptied is not written, but it is committed: its input
        // was handled, and the source must not read it again.
        by_sink.push(if batch.records.is_empty() {
            Vec::new()
        } else {
            retry!(sink.write(&batch.records).await)?
        });
    }
    // Refused before the sink commits: a sink that keeps its own checkpoint would resume
    // past records that reached no destination.
    for (batch, by_sink) in group.iter().zip(&by_sink) {
        for (plugin, letters) in &batch.rejected {
            dead.can_take(plugin, letters)?;
        }
        dead.can_take(ctx.sink_plugin, by_sink)?;
    }
    let checkpoint = group
        .last()
        .expect("a group has a batch")
        .checkpoint
        .clone();
    let stamp = Stamp {
        pipeline: ctx.pipeline.to_string(),
        epoch: ctx.owner.epoch,
        checkpoint,
    };
    let at_commit = retry!(sink.commit(&stamp).await)?;
    by_sink.last_mut().expect("one per batch").extend(at_commit);
    let mut rejected = Rejected {
        upstream: 0,
        by_sink: 0,
    };
    for (batch, by_sink) in group.iter().zip(&by_sink) {
        for (plugin, letters) in &batch.rejected {
            dead.store(plugin, letters).await?;
            rejected.upstream += letters.len() as u64;
        }
        dead.store(ctx.sink_plugin, by_sink).await?;
        rejected.by_sink += by_sink.len() as u64;
        if let Some(tap) = ctx.tap {
            let mut letters: Vec<(&str, &[DeadLetter])> = batch
                .rejected
                .iter()
                .map(|(plugin, l)| (plugin.as_str(), l.as_slice()))
                .collect();
            letters.push((ctx.sink_plugin, by_sink));
            tap.delivered(ctx.pipeline, &batch.records, &letters);
        }
    }
    let durable = Durable {
        checkpoint: stamp.checkpoint,
    };
    Ok((durable, rejected))
}

const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Exponential backoff for transient guest errors; anything else fails at once.
struct Backoff {
    attempt: u32,
    delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempt: 1,
            delay: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    /// Whether to try again after `error`; if so, after sleeping the next delay.
    async fn again(&mut self, error: &GuestError) -> bool {
        if !error.is_transient() || self.attempt >= ATTEMPTS {
            return false;
        }
        let (attempt, delay) = (self.attempt, self.delay);
        tracing::warn!(%error, attempt, "transient error, retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        self.attempt += 1;
        self.delay *= 2;
        true
    }
}

/// Evaluates a guest call (an `.await`ed expression) until it succeeds, fails for good,
/// or runs out of attempts.
macro_rules! retry {
    ($call:expr) => {{
        let mut backoff = Backoff::default();
        loop {
            match $call {
                Err(e) if backoff.again(&e).await => {}
                other => break other,
            }
        }
    }};
}
use retry;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use weir_checkpoint::Committed;
    use weir_runtime::GuestErrorKind;

    /// The records' values, in order.
    fn values(records: &Records) -> impl Iterator<Item = &[u8]> {
        (0..records.len())
            .filter_map(|i| weir_wire::Item::read(&records.items, i).value)
            .map(|(at, len)| &records.data[at as usize..(at + len) as usize])
    }

    /// What happened, in order, on both sides and in the store.
    type Log = Arc<Mutex<Vec<String>>>;

    fn note(log: &Log, event: String) {
        log.lock().unwrap().push(event);
    }

    fn error(kind: GuestErrorKind) -> GuestError {
        GuestError {
            kind,
            plugin: "fake".into(),
            call: "fake",
            message: format!("{kind:?}"),
        }
    }

    fn batch(checkpoint: &str, values: &[&str]) -> Batch {
        let mut records = Records::new();
        for v in values {
            records.push(None, Some(v.as_bytes()), &[], None);
        }
        Batch {
            records,
            dead_letters: Vec::new(),
            checkpoint: checkpoint.into(),
        }
    }

    struct Source {
        batches: VecDeque<Batch>,
        log: Log,
        pulled: usize,
        gates: Option<Arc<Gates>>,
        /// The second pull waits for this: the sink resting.
        rested: Option<Arc<tokio::sync::Notify>>,
    }

    /// Orders a run's events where the test needs them in one order: the source's second
    /// pull waits for the sink's first write, and the sink's first commit waits until the
    /// source has handed over every batch.
    #[derive(Default)]
    struct Gates {
        written: tokio::sync::Notify,
        drained: tokio::sync::Notify,
    }

    impl Pull for Source {
        async fn pull(&mut self, _: u32) -> Result<Option<Batch>, GuestError> {
            self.pulled += 1;
            if let Some(rested) = self.rested.as_ref().filter(|_| self.pulled == 2) {
                let wait = Duration::from_secs(10);
                let rested = tokio::time::timeout(wait, rested.notified()).await;
                rested.expect("the sink never rested");
            }
            if let Some(gates) = &self.gates {
                if self.pulled == 2 {
                    gates.written.notified().await;
                }
                if self.batches.is_empty() {
                    gates.drained.notify_one();
                }
            }
            Ok(self.batches.pop_front())
        }
        async fn acknowledge(&mut self, checkpoint: &str) -> Result<(), GuestError> {
            note(&self.log, format!("ack {checkpoint}"));
            Ok(())
        }
        fn memory_bytes(&self) -> usize {
            0
        }
    }

    /// A sink that fails as told: `write_errors` before each write succeeds, a fatal flush
    /// at the `fail_flush`-th flush, every record valued `bad` rejected.
    #[derive(Default)]
    struct Sink {
        log: Log,
        write_errors: VecDeque<GuestErrorKind>,
        fail_flush: Option<usize>,
        flushes: usize,
        gates: Option<Arc<Gates>>,
        /// Told when the sink rests; a resting sink refuses writes, as the real one does.
        rested: Option<Arc<tokio::sync::Notify>>,
        resting: bool,
    }

    impl Push for Sink {
        async fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
            if self.resting {
                note(&self.log, "write while resting".into());
                return Err(error(GuestErrorKind::Fatal));
            }
            if let Some(kind) = self.write_errors.pop_front() {
                note(&self.log, format!("write failed {kind:?}"));
                return Err(error(kind));
            }
            let values: Vec<String> = values(records)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            note(&self.log, format!("write {}", values.join(",")));
            if let Some(gates) = &self.gates {
                gates.written.notify_one();
            }
            Ok(values
                .iter()
                .filter(|v| *v == "bad")
                .map(|v| DeadLetter {
                    key: None,
                    value: Some(v.as_bytes().to_vec()),
                    reason: "bad".into(),
                })
                .collect())
        }
        async fn commit(&mut self, _: &Stamp) -> Result<Vec<DeadLetter>, GuestError> {
            self.flushes += 1;
            if let Some(gates) = self.gates.as_ref().filter(|_| self.flushes == 1) {
                gates.drained.notified().await;
            }
            if self.fail_flush == Some(self.flushes) {
                note(&self.log, "flush failed".into());
                return Err(error(GuestErrorKind::Fatal));
            }
            note(&self.log, "flush".into());
            Ok(Vec::new())
        }
        fn memory_bytes(&self) -> usize {
            0
        }
        async fn rest(&mut self) -> Result<bool> {
            note(&self.log, "rest".into());
            self.resting = true;
            if let Some(rested) = &self.rested {
                rested.notify_one();
            }
            Ok(true)
        }
        async fn wake(&mut self) -> Result<()> {
            if std::mem::take(&mut self.resting) {
                note(&self.log, "wake".into());
            }
            Ok(())
        }
    }

    struct Store {
        log: Log,
    }

    impl CheckpointStore for Store {
        fn load(&self, _: &str) -> Result<Option<Committed>> {
            Ok(None)
        }
        fn commit(&self, _: &str, checkpoint: &str, _: &Owner) -> Result<()> {
            note(&self.log, format!("commit {checkpoint}"));
            Ok(())
        }
        fn reset(&self, _: &str) -> Result<bool> {
            Ok(false)
        }
        fn list(&self) -> Result<Vec<(String, Committed)>> {
            Ok(Vec::new())
        }
    }

    /// Keeps the records not valued `drop`, doubles those valued `twice`, rejects those
    /// valued `reject`, and fails on `fail`.
    struct Filter {
        log: Log,
    }

    impl Process for Filter {
        async fn process(&mut self, records: &Records) -> Result<Transformed, GuestError> {
            let mut out = Records::new();
            let mut dead_letters = Vec::new();
            for value in values(records) {
                match value {
                    b"drop" => {}
                    b"twice" => {
                        out.push(None, Some(value), &[], None);
                        out.push(None, Some(value), &[], None);
                    }
                    b"reject" => dead_letters.push(DeadLetter {
                        key: None,
                        value: Some(value.to_vec()),
                        reason: "rejected".into(),
                    }),
                    b"fail" => return Err(error(GuestErrorKind::Fatal)),
                    _ => out.push(None, Some(value), &[], None),
                }
            }
            note(&self.log, format!("transform {}", records.len()));
            Ok(Transformed {
                records: out,
                dead_letters,
            })
        }
        fn memory_bytes(&self) -> usize {
            0
        }
    }

    /// Runs `batches` into `sink`; what happened, the last commit and the outcome.
    fn deliver(batches: Vec<Batch>, sink: Sink) -> (Vec<String>, Option<String>, Result<()>) {
        deliver_through(batches, 0, sink, None)
    }

    /// As [`deliver`], `buffer` batches between source and sink, up to `group_commit` under
    /// one commit, the run ordered by `gates`.
    fn deliver_grouped(
        batches: Vec<Batch>,
        buffer: usize,
        group_commit: usize,
        gates: Arc<Gates>,
    ) -> (Vec<String>, Option<String>, Result<()>) {
        let sink = Sink {
            gates: Some(gates.clone()),
            ..Sink::default()
        };
        deliver_with(
            batches,
            0,
            sink,
            None,
            (buffer, group_commit),
            Some(gates),
            None,
        )
    }

    /// As [`deliver`], through `workers` [`Filter`]s, dead letters into `dead_dir`.
    fn deliver_through(
        batches: Vec<Batch>,
        workers: usize,
        sink: Sink,
        dead_dir: Option<&std::path::Path>,
    ) -> (Vec<String>, Option<String>, Result<()>) {
        // One batch in flight, each committed on its own: the order of events is the
        // loop's, not the scheduler's.
        deliver_with(batches, workers, sink, dead_dir, (1, 1), None, None)
    }

    fn deliver_with(
        batches: Vec<Batch>,
        workers: usize,
        mut sink: Sink,
        dead_dir: Option<&std::path::Path>,
        (buffer, group_commit): (usize, usize),
        gates: Option<Arc<Gates>>,
        rest_after: Option<Duration>,
    ) -> (Vec<String>, Option<String>, Result<()>) {
        let log = sink.log.clone();
        let rested = sink.rested.clone();
        let store = Store { log: log.clone() };
        let (stop, meter, owner) = (Shutdown::default(), Arc::default(), Owner::default());
        let ctx = Delivery {
            tap: None,
            pipeline: "p",
            store: &store,
            owner: &owner,
            stop: &stop,
            batch_size: 10,
            buffer,
            group_commit,
            rest_after,
            source_plugin: "src",
            sink_plugin: "sink",
            meter: &meter,
            cpu: None,
        };
        let source = Source {
            batches: batches.into(),
            log: log.clone(),
            pulled: 0,
            gates,
            rested,
        };
        let target = dead_dir.map(|d| {
            crate::config::DeadLetterTarget::Dir(weir_runtime::HostDir::place(d, &[d.into()]))
        });
        let mut dead = DeadLetters::open("p", target.as_ref()).unwrap();
        let mut committed = Some("0".to_string());
        let chains: Vec<Chain<Filter>> = (0..workers)
            .map(|_| {
                vec![Step {
                    name: "transform #1 (filter)".into(),
                    plugin: "filter".into(),
                    transform: Filter { log: log.clone() },
                }]
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_, outcome) = runtime.block_on(run(
            &ctx,
            source,
            chains,
            &mut sink,
            &mut dead,
            &mut committed,
        ));
        let events = log.lock().unwrap().clone();
        (events, committed, outcome)
    }

    fn commits(events: &[String]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| e.strip_prefix("commit "))
            .collect()
    }

    #[test]
    fn a_sink_with_no_batch_rests_once_all_is_committed_and_wakes_before_the_next() {
        let rested = Arc::new(tokio::sync::Notify::new());
        let sink = Sink {
            rested: Some(rested.clone()),
            ..Sink::default()
        };
        let batches = vec![batch("1", &["a"]), batch("2", &["b"])];
        // The second batch comes only once the sink rested.
        let rest_after = Some(Duration::from_millis(20));
        let (events, committed, outcome) =
            deliver_with(batches, 0, sink, None, (1, 1), None, rest_after);
        outcome.unwrap();
        assert_eq!(committed.as_deref(), Some("2"));
        let events: Vec<&str> = events
            .iter()
            .map(String::as_str)
            .filter(|e| !e.starts_with("ack"))
            .collect();
        // On a loaded machine it may rest (and wake) before the first batch too, and rest
        // again before the source says it is done.
        let first = events.iter().position(|e| *e == "write a").unwrap();
        let (run, after) = events[first..].split_at(8.min(events.len() - first));
        assert_eq!(
            run,
            [
                "write a", "flush", "commit 1", "rest", "wake", "write b", "flush", "commit 2"
            ]
        );
        assert!(after.iter().all(|e| *e == "rest"), "{after:?}");
    }

    #[test]
    fn each_checkpoint_is_committed_after_its_flush_and_then_acknowledged() {
        let batches = vec![batch("1", &["a", "b"]), batch("2", &["c"])];
        let (events, committed, outcome) = deliver(batches, Sink::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1", "2"]);
        assert_eq!(committed.as_deref(), Some("2"));
        for (i, checkpoint) in ["1", "2"].iter().enumerate() {
            let commit = events
                .iter()
                .position(|e| *e == format!("commit {checkpoint}"))
                .expect("committed");
            let flush = events
                .iter()
                .enumerate()
                .filter(|(_, e)| *e == "flush")
                .nth(i)
                .map(|(at, _)| at)
                .unwrap_or_else(|| panic!("flush {i} is missing: {events:?}"));
            assert!(
                flush < commit,
                "flush before commit {checkpoint}: {events:?}"
            );
        }
        assert!(events.contains(&"ack 2".to_string()), "{events:?}");
    }

    #[test]
    fn a_failed_flush_commits_nothing_past_the_last_durable_batch() {
        let batches = vec![batch("1", &["a"]), batch("2", &["b"]), batch("3", &["c"])];
        let sink = Sink {
            fail_flush: Some(2),
            ..Sink::default()
        };
        let (events, committed, outcome) = deliver(batches, sink);
        assert!(outcome.is_err(), "{events:?}");
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(committed.as_deref(), Some("1"));
    }

    #[test]
    fn transient_failures_are_retried_and_fatal_ones_are_not() {
        let sink = Sink {
            write_errors: [GuestErrorKind::Transient, GuestErrorKind::Transient].into(),
            ..Sink::default()
        };
        let (events, _, outcome) = deliver(vec![batch("1", &["a"])], sink);
        outcome.unwrap();
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(events.iter().filter(|e| e.starts_with("write")).count(), 3);

        let sink = Sink {
            write_errors: [GuestErrorKind::Fatal].into(),
            ..Sink::default()
        };
        let (events, committed, outcome) = deliver(vec![batch("1", &["a"])], sink);
        assert!(outcome.is_err());
        assert_eq!(commits(&events), Vec::<&str>::new());
        assert_eq!(committed.as_deref(), Some("0"), "the position stays");
    }

    /// Batches that wait while the sink commits go under one commit, up to `group_commit`.
    #[test]
    fn batches_waiting_for_the_sink_share_one_commit() {
        let batches = || -> Vec<Batch> {
            (1..=5)
                .map(|i| batch(&i.to_string(), &[&format!("v{i}")]))
                .collect()
        };
        // Batch 1 is written alone; the sink's commit of it waits until the source has
        // handed over the rest, so all four wait in the channel when it returns.
        let (events, committed, outcome) = deliver_grouped(batches(), 4, 8, Arc::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1", "5"], "{events:?}");
        assert_eq!(committed.as_deref(), Some("5"));
        let writes: Vec<&String> = events.iter().filter(|e| e.starts_with("write")).collect();
        assert_eq!(
            writes,
            ["write v1", "write v2", "write v3", "write v4", "write v5"]
        );
        assert_eq!(events.iter().filter(|e| *e == "flush").count(), 2);
        assert!(events.contains(&"ack 5".to_string()), "{events:?}");

        // No more than `group_commit` of them.
        let (events, _, outcome) = deliver_grouped(batches(), 4, 3, Arc::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1", "4", "5"], "{events:?}");
        // And none with the default of 1.
        let (events, _, outcome) = deliver_grouped(batches(), 4, 1, Arc::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1", "2", "3", "4", "5"], "{events:?}");
    }

    #[test]
    fn a_group_stops_taking_batches_past_its_byte_bound() {
        let big = "x".repeat(GROUP_BYTES / 2);
        let (tx, mut rx) = mpsc::channel(8);
        for i in 1..=4 {
            let b = batch(&i.to_string(), &[big.as_str()]);
            tx.try_send(Delivered::pulled(b, "src")).ok().unwrap();
        }
        let first = rx.try_recv().unwrap();
        let group = waiting(*first, &mut rx, 8);
        let checkpoints: Vec<&str> = group.iter().map(|b| b.checkpoint.as_str()).collect();
        assert_eq!(checkpoints, ["1", "2"]);
        assert_eq!(waiting(*rx.try_recv().unwrap(), &mut rx, 8).len(), 2);
    }

    /// A failed group commits none of its batches: the checkpoint stays before them all.
    #[test]
    fn a_failed_group_commits_none_of_its_batches() {
        let batches: Vec<Batch> = (1..=4).map(|i| batch(&i.to_string(), &["a"])).collect();
        let gates = Arc::new(Gates::default());
        let sink = Sink {
            fail_flush: Some(2),
            gates: Some(gates.clone()),
            ..Sink::default()
        };
        let (events, committed, outcome) =
            deliver_with(batches, 0, sink, None, (4, 8), Some(gates), None);
        assert!(outcome.is_err(), "{events:?}");
        assert_eq!(commits(&events), ["1"], "{events:?}");
        assert_eq!(committed.as_deref(), Some("1"));
        assert_eq!(events.iter().filter(|e| e.starts_with("write")).count(), 4);
    }

    #[test]
    fn rejects_without_a_destination_stop_the_pipeline_before_their_commit() {
        let batches = vec![batch("1", &["a"]), batch("2", &["bad"])];
        let (events, committed, outcome) = deliver(batches, Sink::default());
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(err.contains("no dead_letter destination"), "{err}");
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(committed.as_deref(), Some("1"));
        // Nor did the sink commit it: a sink keeping its own checkpoint would resume past
        // the rejected record.
        assert_eq!(
            events.iter().filter(|e| *e == "flush").count(),
            1,
            "{events:?}"
        );
    }

    #[test]
    fn an_idle_poll_that_did_not_move_delivers_nothing() {
        let batches = vec![batch("0", &[]), batch("1", &["a"]), batch("1", &[])];
        let (events, _, outcome) = deliver(batches, Sink::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1"], "{events:?}");
        assert_eq!(events.iter().filter(|e| e.starts_with("write")).count(), 1);
    }

    #[test]
    fn a_transform_maps_filters_and_expands_and_an_emptied_batch_still_commits() {
        let batches = vec![
            batch("1", &["a", "drop", "twice"]),
            batch("2", &["drop", "drop"]),
            batch("3", &["b"]),
        ];
        let (events, committed, outcome) = deliver_through(batches, 1, Sink::default(), None);
        outcome.unwrap();
        let writes: Vec<&String> = events.iter().filter(|e| e.starts_with("write")).collect();
        assert_eq!(writes, ["write a,twice,twice", "write b"], "{events:?}");
        assert_eq!(commits(&events), ["1", "2", "3"]);
        assert_eq!(committed.as_deref(), Some("3"));
    }

    #[test]
    fn a_transforms_dead_letters_are_stored_under_its_name_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let batches = vec![batch("1", &["a", "reject"])];
        let (events, _, outcome) = deliver_through(batches, 1, Sink::default(), Some(dir.path()));
        outcome.unwrap();
        assert_eq!(commits(&events), ["1"]);
        let stored = std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).unwrap();
        let letter: serde_json::Value = serde_json::from_str(stored.trim()).unwrap();
        assert_eq!(letter["plugin"], "filter", "{stored}");
        assert_eq!(letter["reason"], "rejected", "{stored}");

        // Without a destination the pipeline stops before that batch's commit.
        let batches = vec![batch("1", &["a"]), batch("2", &["reject"])];
        let (events, committed, outcome) = deliver_through(batches, 1, Sink::default(), None);
        assert!(outcome.is_err());
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(committed.as_deref(), Some("1"));
    }

    #[test]
    fn a_failing_transform_names_its_step_and_commits_nothing_after_it() {
        let batches = vec![
            batch("1", &["a"]),
            batch("2", &["fail"]),
            batch("3", &["b"]),
        ];
        let (events, committed, outcome) = deliver_through(batches, 1, Sink::default(), None);
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(err.contains("transform #1 (filter)"), "{err}");
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(committed.as_deref(), Some("1"));
    }

    /// With several workers the sink still gets every batch in the source's order, and a
    /// failing transform stops delivery at its batch: nothing after it is committed, even
    /// what other workers finished.
    #[test]
    fn parallel_workers_keep_the_order_and_stop_at_the_first_failure() {
        let batches: Vec<Batch> = (1..=12)
            .map(|i| batch(&i.to_string(), &[&format!("v{i}"), "drop"]))
            .collect();
        let (events, committed, outcome) = deliver_through(batches, 3, Sink::default(), None);
        outcome.unwrap();
        let writes: Vec<&String> = events.iter().filter(|e| e.starts_with("write")).collect();
        let expected: Vec<String> = (1..=12).map(|i| format!("write v{i}")).collect();
        assert_eq!(writes, expected.iter().collect::<Vec<_>>());
        assert_eq!(committed.as_deref(), Some("12"));

        let mut batches: Vec<Batch> = (1..=12).map(|i| batch(&i.to_string(), &["a"])).collect();
        batches[6] = batch("7", &["fail"]);
        let (events, committed, outcome) = deliver_through(batches, 3, Sink::default(), None);
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(err.contains("transform #1 (filter)"), "{err}");
        assert_eq!(commits(&events), ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(committed.as_deref(), Some("6"));
    }
}
