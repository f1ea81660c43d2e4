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
use weir_runtime::{
    Batch, BatchSourceInstance, DeadLetter, GuestError, Records, SinkInstance, StreamSourceInstance,
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

/// A sink, seen by the delivery loop.
pub(crate) trait Push {
    /// Writes the records; the ones the sink rejects come back as dead letters.
    fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<(), GuestError>;
    fn memory_bytes(&self) -> usize;
}

impl Push for SinkInstance {
    fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
        SinkInstance::write(self, records)
    }
    fn flush(&mut self) -> Result<(), GuestError> {
        SinkInstance::flush(self)
    }
    fn memory_bytes(&self) -> usize {
        SinkInstance::memory_bytes(self)
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
    sink: &mut dyn Push,
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
    sink: &mut dyn Push,
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
        tracing::debug!(checkpoint = %durable.checkpoint, "checkpoint committed");
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
    sink: &mut dyn Push,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use weir_checkpoint::Committed;
    use weir_runtime::GuestErrorKind;

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
    }

    impl Pull for Source {
        fn pull(&mut self, _: u32) -> Result<Option<Batch>, GuestError> {
            Ok(self.batches.pop_front())
        }
        fn acknowledge(&mut self, checkpoint: &str) -> Result<(), GuestError> {
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
    }

    impl Push for Sink {
        fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
            if let Some(kind) = self.write_errors.pop_front() {
                note(&self.log, format!("write failed {kind:?}"));
                return Err(error(kind));
            }
            let values: Vec<String> = records
                .items
                .iter()
                .filter_map(|r| r.value)
                .map(|v| {
                    let (at, len) = (v.offset as usize, v.len as usize);
                    String::from_utf8_lossy(&records.data[at..at + len]).into_owned()
                })
                .collect();
            note(&self.log, format!("write {}", values.join(",")));
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
        fn flush(&mut self) -> Result<(), GuestError> {
            self.flushes += 1;
            if self.fail_flush == Some(self.flushes) {
                note(&self.log, "flush failed".into());
                return Err(error(GuestErrorKind::Fatal));
            }
            note(&self.log, "flush".into());
            Ok(())
        }
        fn memory_bytes(&self) -> usize {
            0
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

    /// Runs `batches` into `sink`; what happened, the last commit and the outcome.
    fn deliver(batches: Vec<Batch>, mut sink: Sink) -> (Vec<String>, Option<String>, Result<()>) {
        let log = sink.log.clone();
        let store = Store { log: log.clone() };
        let (stop, meter, owner) = (Shutdown::default(), Meter::default(), Owner::default());
        let ctx = Delivery {
            pipeline: "p",
            store: &store,
            owner: &owner,
            stop: &stop,
            batch_size: 10,
            // One batch in flight: the order of events is the loop's, not the scheduler's.
            buffer: 1,
            source_plugin: "src",
            sink_plugin: "sink",
            meter: &meter,
            cpu: None,
        };
        let mut source = Source {
            batches: batches.into(),
            log: log.clone(),
        };
        let mut dead = DeadLetters::open("p", None).unwrap();
        let mut committed = Some("0".to_string());
        let outcome = run(&ctx, &mut source, &mut sink, &mut dead, &mut committed);
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

    #[test]
    fn rejects_without_a_destination_stop_the_pipeline_before_their_commit() {
        let batches = vec![batch("1", &["a"]), batch("2", &["bad"])];
        let (events, committed, outcome) = deliver(batches, Sink::default());
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(err.contains("no dead_letter destination"), "{err}");
        assert_eq!(commits(&events), ["1"]);
        assert_eq!(committed.as_deref(), Some("1"));
    }

    #[test]
    fn an_idle_poll_that_did_not_move_delivers_nothing() {
        let batches = vec![batch("0", &[]), batch("1", &["a"]), batch("1", &[])];
        let (events, _, outcome) = deliver(batches, Sink::default());
        outcome.unwrap();
        assert_eq!(commits(&events), ["1"], "{events:?}");
        assert_eq!(events.iter().filter(|e| e.starts_with("write")).count(), 1);
    }
}
