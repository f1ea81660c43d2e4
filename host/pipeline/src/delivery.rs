//! Source → bounded channel → sink write → flush → commit → acknowledge.
//!
//! At-least-once: a checkpoint is committed only after the sink flushed every record up to
//! it, so a crash anywhere redelivers at most the batches that were in flight. The channel
//! is bounded, so a slow sink slows the source and memory stays at `buffer` batches.

use crate::cpu_budget::{CpuBudget, thread_cpu};
use crate::dead_letter::DeadLetters;
use crate::meter::Meter;
use crate::shutdown::Shutdown;
use anyhow::{Context, Result, anyhow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weir_checkpoint::{CheckpointStore, Owner};
use weir_runtime::{Batch, BatchSourceInstance, GuestError, SinkInstance, StreamSourceInstance};

/// What a delivery run needs to know besides the two instances.
pub(crate) struct Delivery<'a> {
    pub pipeline: &'a str,
    pub store: &'a dyn CheckpointStore,
    /// Whose commits these are (a shared store refuses an owner that is no longer current).
    pub owner: &'a Owner,
    pub stop: &'a Shutdown,
    pub batch_size: u32,
    pub buffer: usize,
    /// Plugin names, for dead letters.
    pub source_plugin: &'a str,
    pub sink_plugin: &'a str,
    pub meter: &'a Meter,
    pub cpu: Option<&'a dyn CpuBudget>,
}

impl Delivery<'_> {
    /// Counts the CPU one side used since `since` (its thread's CPU time), and waits if
    /// the budget says so: between batches, so a swap or stop is never held up by it.
    fn charge(&self, since: Duration) {
        let used = thread_cpu().saturating_sub(since);
        self.meter
            .cpu_ns
            .fetch_add(used.as_nanos() as u64, Ordering::Relaxed);
        if let Some(budget) = self.cpu {
            let started = Instant::now();
            budget.charge(used, self.stop);
            self.meter
                .throttled_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// A source, seen by the delivery loop.
pub(crate) trait Pull: Send {
    /// The next batch; `None` ends this run.
    fn pull(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError>;
    /// `checkpoint` (and everything before it) is committed.
    fn acknowledge(&mut self, checkpoint: &str) -> Result<(), GuestError>;
    fn memory_bytes(&self) -> usize;
}

impl Pull for BatchSourceInstance {
    fn pull(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError> {
        self.next(max_records)
    }
    fn acknowledge(&mut self, _: &str) -> Result<(), GuestError> {
        Ok(())
    }
    fn memory_bytes(&self) -> usize {
        BatchSourceInstance::memory_bytes(self)
    }
}

/// A stream source polled with a wait bound; with `until_idle`, an empty poll ends the run
/// (`--once`: read what is there now, then stop).
pub(crate) struct StreamPull<'a> {
    pub source: &'a mut StreamSourceInstance,
    pub wait: Duration,
    pub until_idle: bool,
    pub stop: &'a Shutdown,
}

impl Pull for StreamPull<'_> {
    fn pull(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError> {
        let started = Instant::now();
        let batch = self.source.poll(max_records, self.wait)?;
        if batch.records.is_empty() {
            if self.until_idle {
                return Ok(None);
            }
            // A guest that answers "nothing" at once instead of waiting must not make the
            // host spin: the rest of the wait is slept here.
            if let Some(rest) = self.wait.checked_sub(started.elapsed()) {
                self.stop.wait(rest);
            }
        }
        Ok(Some(batch))
    }
    fn acknowledge(&mut self, checkpoint: &str) -> Result<(), GuestError> {
        self.source.ack(checkpoint)
    }
    fn memory_bytes(&self) -> usize {
        self.source.memory_bytes()
    }
}

/// A position whose records the sink has flushed. Only [`flush`] makes one, and only a
/// `Durable` can be committed.
struct Durable {
    checkpoint: String,
}

/// Runs until the source ends the run, the shutdown is triggered, or either side fails.
/// `committed` is the checkpoint the source was opened at, and follows each commit (also
/// when the run fails half-way); the counts go to the meter.
pub(crate) fn run(
    ctx: &Delivery<'_>,
    source: &mut dyn Pull,
    sink: &mut SinkInstance,
    dead: &mut DeadLetters,
    committed: &mut Option<String>,
) -> Result<()> {
    let from = committed.clone();
    let (batches, inbox) = mpsc::sync_channel::<Batch>(ctx.buffer);
    let (acks, acked) = mpsc::channel::<String>();
    let sink_failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let failed = &sink_failed;
        // A host out of threads (or of memory maps for their stacks) fails this run with
        // the reason; the caller's restart policy decides what next.
        let reader = std::thread::Builder::new()
            .name("source".into())
            .spawn_scoped(scope, move || {
                read(ctx, source, batches, acked, from, failed)
            })
            .context("cannot start the source thread")?;
        // On a sink failure `inbox` is dropped here, which unblocks a reader blocked in
        // send; the flag stops one that is polling an idle stream.
        let written = write(ctx, sink, dead, inbox, acks, committed);
        if written.is_err() {
            sink_failed.store(true, Ordering::Relaxed);
        }
        let pulled = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the source thread panicked")));
        // The sink's error is the cause when both failed: the reader only saw it go.
        written.and(pulled)
    })
}

fn read(
    ctx: &Delivery<'_>,
    source: &mut dyn Pull,
    batches: mpsc::SyncSender<Batch>,
    acked: mpsc::Receiver<String>,
    from: Option<String>,
    sink_failed: &AtomicBool,
) -> Result<()> {
    let mut last = from;
    let mut pulled = || -> Result<()> {
        while !ctx.stop.is_triggered() && !sink_failed.load(Ordering::Relaxed) {
            if let Some(latest) = acked.try_iter().last() {
                acknowledge(source, &latest)?;
            }
            let cpu = thread_cpu();
            let pulled = retry(|| source.pull(ctx.batch_size))?;
            ctx.charge(cpu);
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
            if batches.send(batch).is_err() {
                break; // the sink stopped; its error is reported by the writer
            }
            ctx.meter.pulled(n, bytes, source.memory_bytes());
        }
        Ok(())
    };
    let result = pulled();
    drop(batches);
    // Acknowledge what the sink commits after the last pull, until the sink is done.
    let acknowledged = match acked.iter().last() {
        Some(latest) => acknowledge(source, &latest),
        None => Ok(()),
    };
    result.and(acknowledged)
}

/// Tells the source a checkpoint is committed. weir's own commit already made it durable,
/// so a transient failure upstream (a group commit) only delays that copy: the next
/// acknowledgement carries a newer position.
fn acknowledge(source: &mut dyn Pull, checkpoint: &str) -> Result<()> {
    match source.acknowledge(checkpoint) {
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "acknowledgement failed; the next one will carry it");
            Ok(())
        }
        other => other.map_err(Into::into),
    }
}

fn write(
    ctx: &Delivery<'_>,
    sink: &mut SinkInstance,
    dead: &mut DeadLetters,
    inbox: mpsc::Receiver<Batch>,
    acks: mpsc::Sender<String>,
    committed: &mut Option<String>,
) -> Result<()> {
    for batch in inbox {
        let n = batch.records.len() as u64;
        let cpu = thread_cpu();
        let (durable, rejected) = flush(ctx, sink, dead, batch)?;
        ctx.store
            .commit(ctx.pipeline, &durable.checkpoint, ctx.owner)
            .context("the sink flushed but the checkpoint could not be committed")?;
        ctx.meter.committed(
            n - rejected.by_sink,
            rejected.by_source + rejected.by_sink,
            sink.memory_bytes(),
        );
        *committed = Some(durable.checkpoint.clone());
        // The reader may have finished already; then nothing is left to acknowledge.
        let _ = acks.send(durable.checkpoint);
        ctx.charge(cpu);
    }
    Ok(())
}

struct Rejected {
    by_source: u64,
    by_sink: u64,
}

/// Writes and flushes the batch, and stores its dead letters: only then is its checkpoint
/// [`Durable`].
fn flush(
    ctx: &Delivery<'_>,
    sink: &mut SinkInstance,
    dead: &mut DeadLetters,
    batch: Batch,
) -> Result<(Durable, Rejected)> {
    let by_sink = retry(|| sink.write(&batch.records))?;
    retry(|| sink.flush())?;
    dead.store(ctx.source_plugin, &batch.dead_letters)?;
    dead.store(ctx.sink_plugin, &by_sink)?;
    let rejected = Rejected {
        by_source: batch.dead_letters.len() as u64,
        by_sink: by_sink.len() as u64,
    };
    let durable = Durable {
        checkpoint: batch.checkpoint,
    };
    Ok((durable, rejected))
}

const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Retries transient guest errors with exponential backoff; anything else fails at once.
fn retry<T>(mut call: impl FnMut() -> Result<T, GuestError>) -> Result<T, GuestError> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1.. {
        match call() {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "transient error, retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns by the last attempt")
}
