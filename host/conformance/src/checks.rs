//! The checks, world by world.

use crate::{Check, Options, Report, Status, Target, broken_config};
use anyhow::{Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::{
    BatchSourceInstance, GuestError, GuestErrorKind, Instance, Labels, Plugin, Records, Runtime,
    SinkInstance, Stamp, StreamSourceInstance, TransformInstance, World,
};

/// A record as a check compares it: key, value, headers.
type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

/// The pipeline name instances are labelled with, and transactional sinks store under.
const PIPELINE: &str = "weir-test";

/// Runs every check that applies to the plugin's world. Errors only when the plugin cannot
/// be loaded or instantiated at all: anything it does wrong after that is a failed check.
pub async fn run(runtime: &Runtime, target: &Target, options: &Options) -> Result<Report> {
    let plugin = runtime.load(&target.plugin)?;
    let mut bench = Bench {
        runtime,
        plugin: plugin.clone(),
        target,
        options,
        config: target.config.to_string(),
        checks: Vec::new(),
        watch: RefCell::default(),
    };
    let mut first = bench.fresh().await?;
    let spec = bench
        .timed("connector.spec", first.spec())
        .await
        .map_err(anyhow::Error::from)
        .context("the plugin's spec() failed")?;
    let schema = bench.spec_check(&spec);
    bench.config_checks(&mut first, schema.as_ref()).await;
    bench.saw_memory(first.memory_bytes());
    drop(first);
    match plugin.world {
        World::BatchSource | World::StreamSource => bench.source().await,
        World::Sink => bench.sink().await,
        World::Transform => bench.transform().await,
    }
    bench.limits_check();
    let limits = &target.sandbox.limits;
    let watch = bench.watch.into_inner();
    Ok(Report {
        plugin: target.plugin.display().to_string(),
        name: spec.name,
        version: spec.version,
        world: plugin.world.name(),
        checks: bench.checks,
        peak_memory_bytes: watch.peak_memory,
        memory_limit_bytes: limits.memory,
        slowest_call: watch.slowest.0,
        slowest_call_ms: watch.slowest.1.as_millis() as u64,
        call_timeout_ms: limits.call_timeout.as_millis() as u64,
    })
}

struct Bench<'a> {
    runtime: &'a Runtime,
    plugin: Arc<Plugin>,
    target: &'a Target,
    options: &'a Options,
    config: String,
    checks: Vec<Check>,
    watch: RefCell<Watch>,
}

/// What the calls cost, kept as they return.
#[derive(Default)]
struct Watch {
    peak_memory: usize,
    slowest: (String, Duration),
    /// A call stopped by the memory limit or the deadline.
    hit_limit: Option<String>,
}

/// What a check found wrong, in words.
type Verdict = std::result::Result<String, String>;

impl Bench<'_> {
    /// A new instance in the target's sandbox: what the host makes after a crash.
    async fn fresh(&self) -> Result<Instance> {
        let role = match self.plugin.world {
            World::BatchSource | World::StreamSource => "source",
            World::Sink => "sink",
            World::Transform => "transform",
        };
        let labels = Labels {
            pipeline: PIPELINE.into(),
            plugin: self.plugin.name.clone(),
            role,
        };
        self.runtime
            .instantiate(&self.plugin, &self.target.sandbox, labels)
            .await
    }

    /// Awaits a call into the guest, keeping the slowest and any limit it hit.
    async fn timed<T>(
        &self,
        call: &str,
        future: impl Future<Output = Result<T, GuestError>>,
    ) -> Result<T, GuestError> {
        let started = Instant::now();
        let result = future.await;
        let took = started.elapsed();
        let mut watch = self.watch.borrow_mut();
        if took > watch.slowest.1 {
            watch.slowest = (call.to_string(), took);
        }
        if let Err(e) = &result
            && matches!(e.kind, GuestErrorKind::Memory | GuestErrorKind::Deadline)
        {
            watch.hit_limit = Some(e.to_string());
        }
        result
    }

    fn saw_memory(&self, bytes: usize) {
        let mut watch = self.watch.borrow_mut();
        watch.peak_memory = watch.peak_memory.max(bytes);
    }

    fn record(&mut self, name: &'static str, verdict: Verdict) {
        let (status, evidence) = match verdict {
            Ok(e) => (Status::Pass, e),
            Err(e) => (Status::Fail, e),
        };
        self.checks.push(Check {
            name,
            status,
            evidence,
        });
    }

    fn skip(&mut self, name: &'static str, why: String) {
        self.checks.push(Check {
            name,
            status: Status::Skip,
            evidence: why,
        });
    }

    /// `spec`: named, versioned, and a config schema a validator accepts.
    fn spec_check(&mut self, spec: &weir_runtime::ConnectorSpec) -> Option<serde_json::Value> {
        let mut wrong = Vec::new();
        if spec.name.trim().is_empty() {
            wrong.push("the name is empty".to_string());
        }
        if spec.version.trim().is_empty() {
            wrong.push("the version is empty".to_string());
        }
        let schema = match serde_json::from_str::<serde_json::Value>(&spec.config_schema) {
            Err(e) => {
                wrong.push(format!("the config schema is not JSON: {e}"));
                None
            }
            Ok(schema) => match jsonschema::validator_for(&schema) {
                Err(e) => {
                    wrong.push(format!("the config schema is not a valid JSON Schema: {e}"));
                    None
                }
                Ok(_) => Some(schema),
            },
        };
        let verdict = if wrong.is_empty() {
            Ok(format!(
                "{} {}, a {}; its config schema is a valid JSON Schema",
                spec.name,
                spec.version,
                self.plugin.world.name()
            ))
        } else {
            Err(wrong.join("; "))
        };
        self.record("spec", verdict);
        schema
    }

    /// `config`: the config given passes the schema and `check`; `bad-config`: one that
    /// breaks the schema is refused by `check` as a config error naming the field.
    async fn config_checks(&mut self, instance: &mut Instance, schema: Option<&serde_json::Value>) {
        let violations = schema
            .map(|s| weir_pipeline::schema::violations(&s.to_string(), &self.target.config))
            .transpose()
            .unwrap_or_default()
            .unwrap_or_default();
        let checked = self
            .timed("connector.check", instance.check(&self.config))
            .await;
        let verdict = match (violations.is_empty(), checked) {
            (true, Ok(())) if schema.is_none() => {
                Ok("check() accepts the config (no valid schema to hold it to)".into())
            }
            (true, Ok(())) => Ok("the config passes the schema and check()".into()),
            (false, _) => Err(format!(
                "the config given breaks the schema: {}",
                violations.join("; ")
            )),
            (true, Err(e)) => Err(format!("check() refused the config given: {e}")),
        };
        self.record("config", verdict);

        let Some(schema) = schema else {
            return self.skip("bad-config", "no valid schema to break".into());
        };
        let Some((bad, field)) = broken_config(schema, &self.target.config) else {
            return self.skip(
                "bad-config",
                "the schema refuses none of: a required field left out, a field of the wrong type, an unknown field".into(),
            );
        };
        let bad_text = bad.to_string();
        let verdict = match self
            .timed("connector.check", instance.check(&bad_text))
            .await
        {
            Ok(()) => Err(format!(
                "check() accepted {bad_text}, which the schema refuses (field `{field}`)"
            )),
            Err(e) if e.kind != GuestErrorKind::Config => Err(format!(
                "check({bad_text}) should fail as a `config` error, but: {e}"
            )),
            Err(e) if !e.message.contains(&field) => Err(format!(
                "check({bad_text}) refused it without naming the field `{field}`: {}",
                e.message
            )),
            Err(e) => Ok(format!(
                "check({bad_text}) refused it as a config error: {}",
                e.message
            )),
        };
        self.record("bad-config", verdict);
        if matches!(self.plugin.world, World::BatchSource | World::StreamSource) {
            let verdict = match self
                .timed("connector.discover", instance.discover(&self.config))
                .await
            {
                Ok(streams) => Ok(format!("discover() named {} stream(s)", streams.len())),
                Err(e) => Err(format!("discover() failed on the config given: {e}")),
            };
            self.record("discover", verdict);
        }
    }

    /// A source, batch or stream: a full read, a read resumed from every checkpoint in a
    /// fresh instance, and (for a batch source, which ends) a read from the final one.
    async fn source(&mut self) {
        let stream = self.plugin.world == World::StreamSource;
        let batch = self.options.batch;
        let full = match self.read(batch, false, self.options.max_records).await {
            Ok(read) => read,
            Err(e) => return self.record("read", Err(format!("the full read failed: {e:#}"))),
        };
        let what = if stream {
            "the full read (until idle)"
        } else {
            "the full read"
        };
        self.record("read", Ok(full.describe(what)));
        // Small enough to reopen often; a long read is still reopened at most ~30 times.
        let small = (self.options.small_batch as usize).max(full.records.len().div_ceil(30));
        let small = u32::try_from(small).unwrap_or(u32::MAX);
        let cap = if full.capped {
            full.records.len()
        } else {
            2 * full.records.len() + small as usize
        };
        let resumed = match self.read(small, true, cap).await {
            Ok(read) => read,
            Err(e) => return self.record("resume", Err(format!("the resumed read failed: {e:#}"))),
        };
        self.record("max-records", resumed.within(small).and(full.within(batch)));
        self.resume_verdict(&full, &resumed, small);
        if stream {
            return;
        }
        // A batch source read to its end has nothing more to give from its last checkpoint.
        if full.capped {
            return self.skip(
                "reread",
                format!(
                    "the full read stopped at {} records before the end",
                    full.records.len()
                ),
            );
        }
        let verdict = match self.reread(full.last.as_deref()).await {
            Ok(0) => Ok(format!(
                "nothing more from the final checkpoint {}",
                full.last.as_deref().unwrap_or("(none)")
            )),
            Ok(n) => Err(format!(
                "{n} record(s) again from the final checkpoint {}: a finished read must yield nothing new",
                full.last.as_deref().unwrap_or("(none)")
            )),
            Err(e) => Err(format!("reading from the final checkpoint failed: {e:#}")),
        };
        self.record("reread", verdict);
    }

    async fn read(&mut self, max: u32, reopen: bool, cap: usize) -> Result<Read> {
        match self.plugin.world {
            World::StreamSource => self.stream_read(max, reopen, cap).await,
            _ => self.batch_read(max, reopen, cap).await,
        }
    }

    /// Reads a batch source from the start, `max` records a call, to its end or `cap`
    /// records. `reopen`: a fresh instance from every checkpoint.
    async fn batch_read(&mut self, max: u32, reopen: bool, cap: usize) -> Result<Read> {
        let mut read = Read::default();
        let mut source = self.batch_instance().await?;
        self.timed("batch-read.reader.open", source.open(&self.config, None))
            .await?;
        loop {
            let Some(batch) = self
                .timed("batch-read.reader.next", source.next(max))
                .await?
            else {
                break;
            };
            read.add(&batch.records, batch.checkpoint);
            if read.records.len() >= cap {
                read.capped = true;
                break;
            }
            if reopen {
                self.saw_memory(source.memory_bytes());
                source = self.batch_instance().await?;
                read.reopened += 1;
                let at = read.last.clone();
                self.timed(
                    "batch-read.reader.open",
                    source.open(&self.config, at.as_deref()),
                )
                .await?;
            }
        }
        self.saw_memory(source.memory_bytes());
        Ok(read)
    }

    async fn reread(&mut self, from: Option<&str>) -> Result<usize> {
        let mut source = self.batch_instance().await?;
        self.timed("batch-read.reader.open", source.open(&self.config, from))
            .await?;
        let mut again = 0;
        for _ in 0..1000 {
            match self
                .timed("batch-read.reader.next", source.next(self.options.batch))
                .await?
            {
                Some(batch) => again += batch.records.len(),
                None => break,
            }
        }
        Ok(again)
    }

    async fn batch_instance(&self) -> Result<BatchSourceInstance> {
        match self.fresh().await? {
            Instance::BatchSource(s) => Ok(s),
            _ => unreachable!("the plugin's world is batch-source"),
        }
    }

    /// Polls a stream source from the start until it is idle (two empty polls in a row
    /// from one instance: the contract's "nothing now"), `cap` records or the time
    /// budget. `reopen`: after each batch, acknowledge its checkpoint and go on in a fresh
    /// instance opened from it.
    async fn stream_read(&mut self, max: u32, reopen: bool, cap: usize) -> Result<Read> {
        const EMPTY_POLLS: u32 = 2;
        let wait = Duration::from_millis(500);
        let started = Instant::now();
        let mut read = Read::default();
        let mut source = self.stream_instance().await?;
        self.timed("stream-read.stream.open", source.open(&self.config, None))
            .await?;
        let mut empty = 0;
        while empty < EMPTY_POLLS {
            if started.elapsed() > self.options.stream_budget {
                read.out_of_time = true;
                break;
            }
            let batch = self
                .timed("stream-read.stream.poll", source.poll(max, wait))
                .await?;
            if batch.records.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            read.add(&batch.records, batch.checkpoint.clone());
            if read.records.len() >= cap {
                read.capped = true;
                break;
            }
            if reopen {
                self.timed("stream-read.stream.ack", source.ack(&batch.checkpoint))
                    .await?;
                self.saw_memory(source.memory_bytes());
                source = self.stream_instance().await?;
                read.reopened += 1;
                self.timed(
                    "stream-read.stream.open",
                    source.open(&self.config, Some(&batch.checkpoint)),
                )
                .await?;
            }
        }
        self.saw_memory(source.memory_bytes());
        Ok(read)
    }

    async fn stream_instance(&self) -> Result<StreamSourceInstance> {
        match self.fresh().await? {
            Instance::StreamSource(s) => Ok(s),
            _ => unreachable!("the plugin's world is stream-source"),
        }
    }

    /// `resume`: the resumed read holds what the full read held, no record missing and
    /// none twice (compared as multisets: a source need not keep its order across reads).
    fn resume_verdict(&mut self, full: &Read, resumed: &Read, small: u32) {
        if full.records.is_empty() {
            return self.skip(
                "resume",
                "the full read was empty: nothing to resume".into(),
            );
        }
        if resumed.reopened == 0 {
            return self.skip(
                "resume",
                "the resumed read gave no batch to resume after".into(),
            );
        }
        // A full read cut short (a stream that does not end): compare what both reached.
        // Otherwise the whole of each: what the resumed read has beyond the full read is
        // repeated.
        let upto = if full.capped || full.out_of_time {
            full.records.len().min(resumed.records.len())
        } else {
            usize::MAX
        };
        let full_part = &full.records[..full.records.len().min(upto)];
        let resumed_part = &resumed.records[..resumed.records.len().min(upto)];
        let mut counts: HashMap<&Rec, i64> = HashMap::new();
        for r in full_part {
            *counts.entry(r).or_default() += 1;
        }
        for r in resumed_part {
            *counts.entry(r).or_default() -= 1;
        }
        let mut missing: Vec<&Rec> = full_part
            .iter()
            .filter(|r| counts.get(r).is_some_and(|&n| n > 0))
            .collect();
        // A resumed read the clock cut short cannot show a gap, only repeats.
        let cut = resumed.out_of_time && !full.out_of_time && !full.capped;
        if cut {
            missing.clear();
        }
        let repeated: Vec<&Rec> = resumed_part
            .iter()
            .filter(|r| counts.get(r).is_some_and(|&n| n < 0))
            .collect();
        let how = format!(
            "read {} records {} at a time, reopened {} times in a fresh instance from each checkpoint",
            resumed.records.len(),
            small,
            resumed.reopened
        );
        if cut && repeated.is_empty() {
            return self.skip(
                "resume",
                format!(
                    "{how}, no repeats, but the time budget ran out at {} of the full read's {} records (raise --stream-budget)",
                    resumed.records.len(),
                    full.records.len()
                ),
            );
        }
        let verdict = if missing.is_empty() && repeated.is_empty() {
            Ok(format!(
                "{how}: the same {} records as the full read",
                full_part.len()
            ))
        } else {
            let mut wrong = Vec::new();
            if let Some(first) = missing.first() {
                let at = full_part.iter().position(|r| r == *first).unwrap_or(0);
                wrong.push(format!(
                    "{} record(s) of the full read missing (gaps), the first is record {at}: {}",
                    missing.len(),
                    show(first)
                ));
            }
            if let Some(first) = repeated.first() {
                wrong.push(format!(
                    "{} record(s) read more often than in the full read (duplicates), the first: {}",
                    repeated.len(),
                    show(first)
                ));
            }
            Err(format!("{how}: {}", wrong.join("; ")))
        };
        self.record("resume", verdict);
    }

    async fn sink(&mut self) {
        let batches: Vec<Records> = self
            .options
            .sample
            .chunks(self.options.batch.max(1) as usize)
            .map(|chunk| values(chunk.iter().map(|v| Some(v.as_slice()))))
            .collect();
        let Some(last) = batches.last() else {
            return self.skip("write", "no sample records".into());
        };
        let verdict = self.sink_write(&batches).await;
        let wrote = verdict.is_ok();
        self.record("write", verdict);
        if !wrote {
            return;
        }
        let verdict = self.sink_redeliver(last, batches.len()).await;
        self.record("redelivery", verdict);
        let odd = values([
            Some(&b"\xff\xfe not UTF-8, not JSON"[..]),
            Some(b"[\"a JSON array\"]"),
            None,
        ]);
        let verdict = self.sink_odd(&odd).await;
        self.record("dead-letters", verdict);
    }

    async fn sink_instance(&mut self) -> Result<SinkInstance, String> {
        let mut sink = match self.fresh().await.map_err(|e| format!("{e:#}"))? {
            Instance::Sink(s) => s,
            _ => unreachable!("the plugin's world is sink"),
        };
        self.timed("sink-write.writer.open", sink.open(&self.config))
            .await
            .map_err(|e| e.to_string())?;
        Ok(sink)
    }

    fn stamp(n: usize) -> Stamp {
        Stamp {
            pipeline: PIPELINE.into(),
            epoch: 1,
            checkpoint: format!("{{\"weir-test\":{n}}}"),
        }
    }

    /// Writes and commits each batch (flush, for a sink that is not transactional).
    async fn sink_write(&mut self, batches: &[Records]) -> Verdict {
        let mut sink = self.sink_instance().await?;
        let mut dead = 0;
        for (i, batch) in batches.iter().enumerate() {
            let rejected = self
                .timed("sink-write.writer.write", sink.write(batch))
                .await
                .map_err(|e| format!("write of batch {i}: {e}"))?;
            let committed = self
                .timed("sink.commit", sink.commit(&Self::stamp(i + 1)))
                .await
                .map_err(|e| format!("commit (flush) of batch {i}: {e}"))?;
            dead += reasons(&rejected)?.len() + reasons(&committed)?.len();
        }
        self.saw_memory(sink.memory_bytes());
        let records: usize = batches.iter().map(Records::len).sum();
        Ok(format!(
            "wrote and committed {records} records in {} batch(es); {dead} dead-lettered",
            batches.len()
        ))
    }

    /// A crash after the last batch reached the sink but before weir committed: a fresh
    /// instance gets the same batch again and must take it without an error.
    async fn sink_redeliver(&mut self, last: &Records, batches: usize) -> Verdict {
        let mut sink = self.sink_instance().await?;
        let mut said = String::new();
        if sink.is_transactional() {
            let stored = self
                .timed("sink-transactional.stored", sink.stored(PIPELINE))
                .await
                .map_err(|e| e.to_string())?;
            let expected = Self::stamp(batches).checkpoint;
            if stored.as_deref() != Some(expected.as_str()) {
                return Err(format!(
                    "stored() gave {stored:?} after the commit of {expected}: a transactional sink must return its last committed checkpoint"
                ));
            }
            said = format!("; stored() gave the last committed checkpoint {expected}");
        }
        self.timed("sink-write.writer.write", sink.write(last))
            .await
            .map_err(|e| format!("the redelivered batch was refused: {e}"))?;
        self.timed("sink.commit", sink.commit(&Self::stamp(batches)))
            .await
            .map_err(|e| format!("the redelivered batch's commit (flush) failed: {e}"))?;
        self.saw_memory(sink.memory_bytes());
        Ok(format!(
            "a fresh instance took the last batch ({} records) again without an error (at-least-once){said}",
            last.len()
        ))
    }

    /// Records a sink may not handle (not UTF-8, not an object, no value): dead letters
    /// with reasons, or taken, but not a failed batch.
    async fn sink_odd(&mut self, odd: &Records) -> Verdict {
        let mut sink = self.sink_instance().await?;
        let mut rejected = self
            .timed("sink-write.writer.write", sink.write(odd))
            .await
            .map_err(|e| {
                format!("a batch with an odd record failed whole instead of dead-lettering it: {e}")
            })?;
        rejected.extend(
            self.timed("sink.commit", sink.commit(&Self::stamp(usize::MAX >> 1)))
                .await
                .map_err(|e| format!("commit after odd records failed: {e}"))?,
        );
        self.saw_memory(sink.memory_bytes());
        let reasons = reasons(&rejected)?;
        Ok(match reasons.len() {
            0 => format!(
                "took all {} odd records (not UTF-8, an array, no value)",
                odd.len()
            ),
            n => format!(
                "{n} of {} odd records came back as dead letters: {}",
                odd.len(),
                reasons.join("; ")
            ),
        })
    }

    async fn transform(&mut self) {
        let sample = values(self.options.sample.iter().map(|v| Some(v.as_slice())));
        let first = self.transform_once(&sample).await;
        let second = self.transform_once(&sample).await;
        let verdict = match (first, second) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(a), Ok(b)) if a != b => Err(format!(
                "two fresh instances gave different output for the same {} records: {} vs {}",
                sample.len(),
                a.describe(),
                b.describe()
            )),
            (Ok(a), Ok(_)) => Ok(format!(
                "two fresh instances gave the same output for {} records: {}",
                sample.len(),
                a.describe()
            )),
        };
        self.record("deterministic", verdict);
        let odd = values([
            Some(&b"\xff\xfe not UTF-8, not JSON"[..]),
            Some(b"[\"a JSON array\"]"),
            None,
        ]);
        let verdict = match self.transform_once(&odd).await {
            Err(e) => Err(format!(
                "odd records (not UTF-8, an array, no value) failed the batch instead of coming back as dead letters: {e}"
            )),
            Ok(out) => {
                reasons(&out.dead).map(|r| format!("{}; reasons: {}", out.describe(), r.join("; ")))
            }
        };
        self.record("dead-letters", verdict);
    }

    async fn transform_once(&mut self, records: &Records) -> Result<Output, String> {
        let mut step: TransformInstance = match self.fresh().await.map_err(|e| format!("{e:#}"))? {
            Instance::Transform(t) => t,
            _ => unreachable!("the plugin's world is transform"),
        };
        self.timed(
            "transform-records.transformer.open",
            step.open(&self.config),
        )
        .await
        .map_err(|e| e.to_string())?;
        let out = self
            .timed(
                "transform-records.transformer.process",
                step.process(records),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.saw_memory(step.memory_bytes());
        Ok(Output {
            records: collect(&out.records),
            dead: out.dead_letters,
        })
    }

    /// `limits`: every call within the memory limit and the call timeout.
    fn limits_check(&mut self) {
        let limits = &self.target.sandbox.limits;
        let watch = self.watch.borrow();
        let evidence = format!(
            "peak linear memory {} of {} allowed; slowest call {} took {} ms of {} ms allowed",
            bytes(watch.peak_memory as u64),
            bytes(limits.memory),
            if watch.slowest.0.is_empty() {
                "(none)"
            } else {
                &watch.slowest.0
            },
            watch.slowest.1.as_millis(),
            limits.call_timeout.as_millis()
        );
        let verdict = match &watch.hit_limit {
            Some(e) => Err(format!("{e} ({evidence})")),
            None => Ok(evidence),
        };
        drop(watch);
        self.record("limits", verdict);
    }
}

/// A source read: its records in order, the last checkpoint, batch sizes.
#[derive(Default)]
struct Read {
    records: Vec<Rec>,
    last: Option<String>,
    batches: Vec<usize>,
    reopened: usize,
    /// Stopped at the record cap, not at the end.
    capped: bool,
    /// Stopped by the time budget.
    out_of_time: bool,
}

impl Read {
    fn add(&mut self, records: &Records, checkpoint: String) {
        self.batches.push(records.len());
        self.records.extend(collect(records));
        self.last = Some(checkpoint);
    }

    fn describe(&self, what: &str) -> String {
        format!(
            "{what} gave {} records in {} batch(es){}",
            self.records.len(),
            self.batches.len(),
            if self.capped {
                ", stopped at the cap"
            } else {
                ""
            }
        )
    }

    /// `max-records`: no batch over `max`.
    fn within(&self, max: u32) -> Verdict {
        match self.batches.iter().find(|&&n| n > max as usize) {
            Some(n) => Err(format!(
                "a batch of {n} records where at most {max} were asked for"
            )),
            None => Ok(format!(
                "every batch within the records asked for ({} batches, at most {max} each)",
                self.batches.len()
            )),
        }
    }
}

/// A transform's output, compared whole.
struct Output {
    records: Vec<Rec>,
    dead: Vec<weir_runtime::DeadLetter>,
}

impl PartialEq for Output {
    fn eq(&self, other: &Output) -> bool {
        let dead = |o: &Output| -> Vec<_> {
            o.dead
                .iter()
                .map(|d| (d.key.clone(), d.value.clone(), d.reason.clone()))
                .collect()
        };
        self.records == other.records && dead(self) == dead(other)
    }
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "{} record(s) out, {} dead letter(s)",
            self.records.len(),
            self.dead.len()
        )
    }
}

fn collect(records: &Records) -> Vec<Rec> {
    records
        .iter()
        .map(|r| {
            (
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.headers().map(|(k, v)| (k, v.to_vec())).collect(),
            )
        })
        .collect()
}

fn values<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> Records {
    let mut records = Records::new();
    for value in values {
        records.push(None, value, &[], None);
    }
    records
}

/// Each dead letter's reason; a dead letter without one is a failure.
fn reasons(dead: &[weir_runtime::DeadLetter]) -> Result<Vec<String>, String> {
    dead.iter()
        .map(|d| {
            if d.reason.trim().is_empty() {
                Err(format!(
                    "a dead letter without a reason (value {})",
                    d.value.as_deref().map_or("none".into(), text)
                ))
            } else {
                Ok(d.reason.clone())
            }
        })
        .collect()
}

fn show(r: &Rec) -> String {
    match (&r.0, &r.1) {
        (Some(k), Some(v)) => format!("key {} value {}", text(k), text(v)),
        (None, Some(v)) => text(v),
        (Some(k), None) => format!("key {} (no value)", text(k)),
        (None, None) => "(no key, no value)".into(),
    }
}

/// Bytes as text for evidence, cut to a readable length.
fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 120 {
        format!("`{}…`", s.chars().take(120).collect::<String>())
    } else {
        format!("`{s}`")
    }
}

fn bytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}
