//! One connector instance: its own store, limits and grants, and the typed calls of its world.

use crate::bindings::exports::weir::connector::{
    batch_read, connector, sink_transactional, sink_write, stream_read, transform_records,
};
use crate::bindings::weir::connector::types::{
    self, Batch, ConnectorSpec, DeadLetter, Records, StreamInfo,
};
use crate::error::{GuestError, GuestErrorKind};
use crate::plugin::{Exports, Plugin};
use crate::runtime::Runtime;
use crate::sandbox::{HostState, Labels, Sandbox};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap, UpdateDeadline};

/// How long past its deadline a call may go on waiting in the host (where the epoch
/// cannot interrupt it) before it is dropped where it stands.
const BACKSTOP: Duration = Duration::from_secs(2);

/// A live connector, by world.
pub enum Instance {
    BatchSource(BatchSourceInstance),
    StreamSource(StreamSourceInstance),
    Sink(SinkInstance),
    Transform(TransformInstance),
}

impl Instance {
    pub(crate) async fn new(
        runtime: &Runtime,
        plugin: &Arc<Plugin>,
        sandbox: &Sandbox,
        labels: Labels,
    ) -> Result<Instance> {
        let plugin_name = labels.plugin.clone();
        let mut store = Store::new(runtime.engine(), HostState::new(sandbox, labels)?);
        store.limiter(|state| &mut state.limiter);
        // At every tick: past the call's deadline, interrupt; before it, yield to tokio.
        store.epoch_deadline_callback(|store| {
            Ok(if store.data().deadline.passed() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let timeout = sandbox.limits.call_timeout;
        store.data().deadline.set(Instant::now() + timeout);
        store.set_epoch_deadline(1);
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot instantiate plugin `{plugin_name}`"))?;
        let load_err = |e: wasmtime::Error| {
            anyhow::Error::from(e).context(format!("plugin `{plugin_name}`: cannot load exports"))
        };
        let connector = plugin
            .connector
            .load(&mut store, &instance)
            .map_err(load_err)?;
        enum Api {
            Batch(batch_read::Guest),
            Stream(stream_read::Guest),
            Sink(sink_write::Guest),
            Transform(transform_records::Guest),
        }
        let api = match &plugin.exports {
            Exports::BatchSource(ix) => {
                Api::Batch(ix.load(&mut store, &instance).map_err(load_err)?)
            }
            Exports::StreamSource(ix) => {
                Api::Stream(ix.load(&mut store, &instance).map_err(load_err)?)
            }
            Exports::Sink(ix) => Api::Sink(ix.load(&mut store, &instance).map_err(load_err)?),
            Exports::Transform(ix) => {
                Api::Transform(ix.load(&mut store, &instance).map_err(load_err)?)
            }
        };
        let transactional = plugin
            .transactional
            .as_ref()
            .map(|ix| ix.load(&mut store, &instance))
            .transpose()
            .map_err(load_err)?;
        let core = Core {
            _plugin: plugin.clone(),
            store,
            connector,
            timeout,
            max_batch_bytes: sandbox.limits.max_batch_bytes,
            abandoned: false,
        };
        Ok(match api {
            Api::Batch(api) => Instance::BatchSource(BatchSourceInstance {
                core,
                api,
                reader: None,
            }),
            Api::Stream(api) => Instance::StreamSource(StreamSourceInstance {
                core,
                api,
                stream: None,
            }),
            Api::Sink(api) => Instance::Sink(SinkInstance {
                core,
                api,
                transactional,
                writer: None,
            }),
            Api::Transform(api) => Instance::Transform(TransformInstance {
                core,
                api,
                transformer: None,
            }),
        })
    }

    fn core(&mut self) -> &mut Core {
        match self {
            Instance::BatchSource(i) => &mut i.core,
            Instance::StreamSource(i) => &mut i.core,
            Instance::Sink(i) => &mut i.core,
            Instance::Transform(i) => &mut i.core,
        }
    }

    fn core_ref(&self) -> &Core {
        match self {
            Instance::BatchSource(i) => &i.core,
            Instance::StreamSource(i) => &i.core,
            Instance::Sink(i) => &i.core,
            Instance::Transform(i) => &i.core,
        }
    }

    /// The largest linear memory the guest has been granted, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.core_ref().memory_bytes()
    }

    pub async fn spec(&mut self) -> Result<ConnectorSpec, GuestError> {
        let core = self.core();
        let f = core.connector.clone();
        core.call("connector.spec", Duration::ZERO, async |s| {
            f.call_spec(s).await.map(Ok)
        })
        .await
    }

    pub async fn check(&mut self, config: &str) -> Result<(), GuestError> {
        let core = self.core();
        let f = core.connector.clone();
        let config = config.to_owned();
        core.call("connector.check", Duration::ZERO, async |s| {
            f.call_check(s, &config).await
        })
        .await
    }

    /// The streams a source can read; a sink or a transform has none.
    pub async fn discover(&mut self, config: &str) -> Result<Vec<StreamInfo>, GuestError> {
        let config = config.to_owned();
        match self {
            Instance::BatchSource(i) => {
                let f = i.api.clone();
                i.core
                    .call("batch-read.discover", Duration::ZERO, async |s| {
                        f.call_discover(s, &config).await
                    })
                    .await
            }
            Instance::StreamSource(i) => {
                let f = i.api.clone();
                i.core
                    .call("stream-read.discover", Duration::ZERO, async |s| {
                        f.call_discover(s, &config).await
                    })
                    .await
            }
            Instance::Sink(_) | Instance::Transform(_) => Ok(Vec::new()),
        }
    }
}

/// The store plus what every world shares.
struct Core {
    /// Held so the runtime keeps sharing this plugin's compiled code with the next
    /// pipeline that loads it, for as long as an instance of it lives.
    _plugin: Arc<Plugin>,
    store: Store<HostState>,
    connector: connector::Guest,
    timeout: Duration,
    max_batch_bytes: u64,
    /// A call was dropped mid-way at its backstop: the store is not fit for another.
    abandoned: bool,
}

macro_rules! shared {
    ($($t:ty),*) => {$(
        impl $t {
            /// The largest linear memory the guest has been granted, in bytes.
            pub fn memory_bytes(&self) -> usize {
                self.core.memory_bytes()
            }

            /// The guest's counters so far (`weir:connector/metrics`).
            pub fn counters(&self) -> &BTreeMap<String, u64> {
                &self.core.store.data().metrics.counters
            }

            /// Starts the counters where an earlier instance of the same connector left
            /// them: a replacement goes on counting, where starting at zero would read as
            /// the counter going back.
            pub fn carry_counters(&mut self, counters: BTreeMap<String, u64>) {
                self.core.store.data_mut().metrics.counters = counters;
            }

            /// Counts the log lines this instance drops over its budget into `counter` (a
            /// pipeline's meter), live, even while a call floods.
            pub fn count_dropped_logs_in(&mut self, counter: Arc<std::sync::atomic::AtomicU64>) {
                let log = &mut self.core.store.data_mut().log;
                log.budget.lock().unwrap_or_else(|e| e.into_inner()).dropped = counter;
            }
        }
    )*};
}
shared!(
    BatchSourceInstance,
    StreamSourceInstance,
    SinkInstance,
    TransformInstance
);

/// A source of either world: what a pipeline's source side runs.
pub enum SourceInstance {
    Batch(BatchSourceInstance),
    Stream(StreamSourceInstance),
}

impl SourceInstance {
    pub fn memory_bytes(&self) -> usize {
        match self {
            SourceInstance::Batch(i) => i.memory_bytes(),
            SourceInstance::Stream(i) => i.memory_bytes(),
        }
    }

    pub fn counters(&self) -> &BTreeMap<String, u64> {
        match self {
            SourceInstance::Batch(i) => i.counters(),
            SourceInstance::Stream(i) => i.counters(),
        }
    }

    pub fn count_dropped_logs_in(&mut self, counter: Arc<std::sync::atomic::AtomicU64>) {
        match self {
            SourceInstance::Batch(i) => i.count_dropped_logs_in(counter),
            SourceInstance::Stream(i) => i.count_dropped_logs_in(counter),
        }
    }
}

impl Instance {
    /// The instance as a source, if it is one.
    pub fn into_source(self) -> Option<SourceInstance> {
        match self {
            Instance::BatchSource(i) => Some(SourceInstance::Batch(i)),
            Instance::StreamSource(i) => Some(SourceInstance::Stream(i)),
            Instance::Sink(_) | Instance::Transform(_) => None,
        }
    }

    /// The instance as a sink, if it is one.
    pub fn into_sink(self) -> Option<SinkInstance> {
        match self {
            Instance::Sink(i) => Some(i),
            _ => None,
        }
    }

    /// The instance as a transform, if it is one.
    pub fn into_transform(self) -> Option<TransformInstance> {
        match self {
            Instance::Transform(i) => Some(i),
            _ => None,
        }
    }
}

impl Core {
    fn memory_bytes(&self) -> usize {
        self.store.data().limiter.granted
    }

    /// Calls into the guest under the deadline (`timeout` plus `extra` for calls that may
    /// legitimately wait), and turns what comes back into a [`GuestError`] the pipeline
    /// can act on.
    async fn call<R>(
        &mut self,
        call: &'static str,
        extra: Duration,
        f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, GuestError> {
        let limit = self.timeout + extra;
        if self.abandoned {
            return Err(self.failed(
                call,
                GuestErrorKind::Deadline,
                "an earlier call was stopped at its deadline; the instance is not used again"
                    .into(),
            ));
        }
        self.store.data().deadline.set(Instant::now() + limit);
        self.store.set_epoch_deadline(1);
        // The epoch interrupts a guest computing; a host wait it cannot reach ends with
        // its own timeout before the deadline, and this is the last resort.
        // Boxed: a call's state is kilobytes, and every future that awaits a guest call
        // (a pipeline's tasks live as long as it does) would otherwise be that large while
        // idle.
        match tokio::time::timeout(limit + BACKSTOP, Box::pin(f(&mut self.store))).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(self.reported(call, error)),
            Ok(Err(trap)) => Err(self.trapped(call, trap, extra)),
            Err(_) => {
                self.abandoned = true;
                Err(self.failed(
                    call,
                    GuestErrorKind::Deadline,
                    format!("did not return within {limit:?} (waiting in a host call)"),
                ))
            }
        }
    }

    fn failed(&self, call: &'static str, kind: GuestErrorKind, message: String) -> GuestError {
        GuestError {
            kind,
            plugin: self.store.data().log.labels.plugin.clone(),
            call,
            message,
        }
    }

    fn reported(&self, call: &'static str, error: types::Error) -> GuestError {
        let (kind, message) = match error {
            types::Error::Config(m) => (GuestErrorKind::Config, m),
            types::Error::Transient(m) => (GuestErrorKind::Transient, m),
            types::Error::Fatal(m) => (GuestErrorKind::Fatal, m),
        };
        GuestError {
            kind,
            plugin: self.store.data().log.labels.plugin.clone(),
            call,
            message,
        }
    }

    fn trapped(
        &mut self,
        call: &'static str,
        trap: wasmtime::Error,
        extra: Duration,
    ) -> GuestError {
        let state = self.store.data();
        let (kind, mut message) = if let Some(asked) = state.limiter.denied {
            (
                GuestErrorKind::Memory,
                format!(
                    "tried to grow linear memory to {asked} bytes; the limit is {}",
                    state.limiter.limit()
                ),
            )
        } else {
            match trap.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => (
                    GuestErrorKind::Deadline,
                    format!("interrupted after {:?}", self.timeout + extra),
                ),
                Some(Trap::StackOverflow) => (GuestErrorKind::Trap, "stack overflow".to_string()),
                Some(other) => (GuestErrorKind::Trap, other.to_string()),
                None => (
                    GuestErrorKind::Trap,
                    format!("{:?}", anyhow::Error::from(trap)),
                ),
            }
        };
        let console = state.console.text();
        if !console.is_empty() {
            message.push_str("; guest output: ");
            message.push_str(&console);
        }
        GuestError {
            kind,
            plugin: state.log.labels.plugin.clone(),
            call,
            message,
        }
    }

    /// A batch whose spans point outside its buffer would fail, or worse mislead, the sink
    /// that reads it, and one past the batch-bytes limit would make the host buffer what
    /// the operator capped: either is the source's fault and stops here.
    fn checked(&self, call: &'static str, batch: Batch) -> Result<Batch, GuestError> {
        self.check_records(call, &batch.records)?;
        Ok(batch)
    }

    fn check_records(&self, call: &'static str, records: &Records) -> Result<(), GuestError> {
        let bytes = records.data.len() as u64;
        let checked = if bytes > self.max_batch_bytes {
            Err(format!(
                "returned a batch of {bytes} bytes; the limit is {}",
                self.max_batch_bytes
            ))
        } else {
            records
                .check()
                .map_err(|problem| format!("returned a malformed batch: {problem}"))
        };
        match checked {
            Ok(()) => Ok(()),
            Err(problem) => Err(GuestError {
                kind: GuestErrorKind::Fatal,
                plugin: self.store.data().log.labels.plugin.clone(),
                call,
                message: problem,
            }),
        }
    }

    async fn drop_resource(
        &mut self,
        call: &'static str,
        resource: ResourceAny,
    ) -> Result<(), GuestError> {
        self.call(call, Duration::ZERO, async |s| {
            resource.resource_drop_async(s).await.map(Ok)
        })
        .await
    }
}

fn not_open(plugin: &Core, call: &'static str) -> GuestError {
    GuestError {
        kind: GuestErrorKind::Fatal,
        plugin: plugin.store.data().log.labels.plugin.clone(),
        call,
        message: "called before open".into(),
    }
}

pub struct BatchSourceInstance {
    core: Core,
    api: batch_read::Guest,
    reader: Option<ResourceAny>,
}

impl BatchSourceInstance {
    /// Starts a read after `checkpoint`, ending any read before it.
    pub async fn open(&mut self, config: &str, checkpoint: Option<&str>) -> Result<(), GuestError> {
        self.close().await?;
        let api = self.api.clone();
        let (config, checkpoint) = (config.to_owned(), checkpoint.map(str::to_owned));
        let reader = self
            .core
            .call("batch-read.reader.open", Duration::ZERO, async |s| {
                api.reader()
                    .call_open(s, &config, checkpoint.as_ref())
                    .await
            })
            .await?;
        self.reader = Some(reader);
        Ok(())
    }

    pub async fn next(&mut self, max_records: u32) -> Result<Option<Batch>, GuestError> {
        const CALL: &str = "batch-read.reader.next";
        let reader = self.reader.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        let batch = self
            .core
            .call(CALL, Duration::ZERO, async |s| {
                api.reader().call_next(s, reader, max_records).await
            })
            .await?;
        batch.map(|b| self.core.checked(CALL, b)).transpose()
    }

    pub async fn close(&mut self) -> Result<(), GuestError> {
        match self.reader.take() {
            Some(reader) => {
                self.core
                    .drop_resource("batch-read.reader.drop", reader)
                    .await
            }
            None => Ok(()),
        }
    }
}

pub struct StreamSourceInstance {
    core: Core,
    api: stream_read::Guest,
    stream: Option<ResourceAny>,
}

impl StreamSourceInstance {
    pub async fn open(&mut self, config: &str, checkpoint: Option<&str>) -> Result<(), GuestError> {
        self.close().await?;
        let api = self.api.clone();
        let (config, checkpoint) = (config.to_owned(), checkpoint.map(str::to_owned));
        let stream = self
            .core
            .call("stream-read.stream.open", Duration::ZERO, async |s| {
                api.stream()
                    .call_open(s, &config, checkpoint.as_ref())
                    .await
            })
            .await?;
        self.stream = Some(stream);
        Ok(())
    }

    pub async fn poll(
        &mut self,
        max_records: u32,
        max_wait: Duration,
    ) -> Result<Batch, GuestError> {
        const CALL: &str = "stream-read.stream.poll";
        let stream = self.stream.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        let wait_ms = u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX);
        let batch = self
            .core
            .call(CALL, max_wait, async |s| {
                api.stream()
                    .call_poll(s, stream, max_records, wait_ms)
                    .await
            })
            .await?;
        self.core.checked(CALL, batch)
    }

    pub async fn ack(&mut self, checkpoint: &str) -> Result<(), GuestError> {
        const CALL: &str = "stream-read.stream.ack";
        let stream = self.stream.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        let checkpoint = checkpoint.to_owned();
        self.core
            .call(CALL, Duration::ZERO, async |s| {
                api.stream().call_ack(s, stream, &checkpoint).await
            })
            .await
    }

    pub async fn close(&mut self) -> Result<(), GuestError> {
        match self.stream.take() {
            Some(stream) => {
                self.core
                    .drop_resource("stream-read.stream.drop", stream)
                    .await
            }
            None => Ok(()),
        }
    }
}

pub struct SinkInstance {
    core: Core,
    api: sink_write::Guest,
    transactional: Option<sink_transactional::Guest>,
    writer: Option<ResourceAny>,
}

/// What a transactional sink stores with a batch's data.
pub use sink_transactional::Stamp;

impl SinkInstance {
    pub async fn open(&mut self, config: &str) -> Result<(), GuestError> {
        self.close().await?;
        let api = self.api.clone();
        let config = config.to_owned();
        let writer = self
            .core
            .call("sink-write.writer.open", Duration::ZERO, async |s| {
                api.writer().call_open(s, &config).await
            })
            .await?;
        self.writer = Some(writer);
        Ok(())
    }

    /// Writes the records; returns those the sink rejected, with why.
    pub async fn write(&mut self, records: &Records) -> Result<Vec<DeadLetter>, GuestError> {
        const CALL: &str = "sink-write.writer.write";
        let writer = self.writer.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        self.core
            .call(CALL, Duration::ZERO, async |s| {
                api.writer().call_write(s, writer, records).await
            })
            .await
    }

    pub async fn flush(&mut self) -> Result<(), GuestError> {
        const CALL: &str = "sink-write.writer.flush";
        let writer = self.writer.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        self.core
            .call(CALL, Duration::ZERO, async |s| {
                api.writer().call_flush(s, writer).await
            })
            .await
    }

    /// Whether this sink commits checkpoints with its data.
    pub fn is_transactional(&self) -> bool {
        self.transactional.is_some()
    }

    /// The checkpoint a transactional sink last committed for `pipeline`; none from any
    /// other sink.
    pub async fn stored(&mut self, pipeline: &str) -> Result<Option<String>, GuestError> {
        const CALL: &str = "sink-transactional.stored";
        let Some(tx) = self.transactional.clone() else {
            return Ok(None);
        };
        let writer = self.writer.ok_or_else(|| not_open(&self.core, CALL))?;
        self.core
            .call(CALL, Duration::ZERO, async |s| {
                tx.call_stored(s, writer, pipeline).await
            })
            .await
    }

    /// Makes what was written durable: with `stamp`, in one step, for a transactional
    /// sink (returning the records refused at commit); by `flush` for any other.
    pub async fn commit(&mut self, stamp: &Stamp) -> Result<Vec<DeadLetter>, GuestError> {
        const CALL: &str = "sink-transactional.commit";
        let Some(tx) = self.transactional.clone() else {
            return self.flush().await.map(|()| Vec::new());
        };
        let writer = self.writer.ok_or_else(|| not_open(&self.core, CALL))?;
        self.core
            .call(CALL, Duration::ZERO, async |s| {
                tx.call_commit(s, writer, stamp).await
            })
            .await
    }

    pub async fn close(&mut self) -> Result<(), GuestError> {
        match self.writer.take() {
            Some(writer) => {
                self.core
                    .drop_resource("sink-write.writer.drop", writer)
                    .await
            }
            None => Ok(()),
        }
    }
}

pub struct TransformInstance {
    core: Core,
    api: transform_records::Guest,
    transformer: Option<ResourceAny>,
}

/// What a transform passes on from one batch.
pub use transform_records::Transformed;

impl TransformInstance {
    pub async fn open(&mut self, config: &str) -> Result<(), GuestError> {
        self.close().await?;
        let api = self.api.clone();
        let config = config.to_owned();
        let transformer = self
            .core
            .call(
                "transform-records.transformer.open",
                Duration::ZERO,
                async |s| api.transformer().call_open(s, &config).await,
            )
            .await?;
        self.transformer = Some(transformer);
        Ok(())
    }

    /// The records to pass on for `records`, and those the transform rejects. What it
    /// returns is held to the same checks as a source's batch.
    pub async fn process(&mut self, records: &Records) -> Result<Transformed, GuestError> {
        const CALL: &str = "transform-records.transformer.process";
        let transformer = self.transformer.ok_or_else(|| not_open(&self.core, CALL))?;
        let api = self.api.clone();
        let out = self
            .core
            .call(CALL, Duration::ZERO, async |s| {
                api.transformer()
                    .call_process(s, transformer, records)
                    .await
            })
            .await?;
        self.core.check_records(CALL, &out.records)?;
        Ok(out)
    }

    pub async fn close(&mut self) -> Result<(), GuestError> {
        match self.transformer.take() {
            Some(transformer) => {
                self.core
                    .drop_resource("transform-records.transformer.drop", transformer)
                    .await
            }
            None => Ok(()),
        }
    }
}
