//! One engine per process: the pooling allocator, the compile cache, the epoch ticker, and
//! the linker every plugin is instantiated against.

#[cfg(feature = "kafka")]
use crate::bindings::weir::connector::kafka;
#[cfg(feature = "sql")]
use crate::bindings::weir::connector::sql;
use crate::bindings::weir::connector::{http, keys, kinesis, log, metrics, objects, types};
use crate::cache::CompileCache;
use crate::host::{KeysCtx, LogCtx, MetricsCtx};
use crate::instance::Instance;
use crate::io::http::HttpCtx;
#[cfg(feature = "kafka")]
use crate::io::kafka::KafkaCtx;
use crate::io::kinesis::KinesisCtx;
use crate::io::objects::ObjectsCtx;
#[cfg(feature = "sql")]
use crate::io::sql::SqlCtx;
use crate::plugin::Plugin;
use crate::sandbox::{HostState, Labels, Sandbox};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use std::time::SystemTime;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Deadlines are counted in ticks of this length.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are kept; none compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Connector instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// The most linear memory any one instance may be granted, in bytes.
    pub max_memory: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: default_cache_dir(),
            max_instances: 100,
            max_memory: 4 << 30,
        }
    }
}

/// `$WEIR_CACHE_DIR`, else the user's cache directory, as wasmtime's own cache does.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weir").join("components"))
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    ticker: Arc<AtomicBool>,
    max_memory: u64,
    /// Plugins alive in this process, by file: every pipeline on a plugin shares one
    /// compiled component (one mapping of its code and memory image) instead of loading
    /// its own. Weak, so a plugin no pipeline uses any more is freed.
    loaded: Mutex<HashMap<PathBuf, Loaded>>,
}

struct Loaded {
    /// The file's length and modification time when it was loaded: a rebuilt file is
    /// loaded again.
    stamp: (u64, Option<SystemTime>),
    plugin: Weak<Plugin>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        // Deadlines by epoch: far cheaper than fuel. Each tick also yields to tokio, so a
        // busy guest cannot keep other pipelines off a worker thread for longer than one.
        wasm.epoch_interruption(true);
        // `WEIR_PERF_MAP=1`: guest code named in /tmp/perf-PID.map, so `perf report` shows
        // a plugin's own functions (for profiling hot paths, not for production).
        if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // A 4 GiB reservation per memory lets compiled code skip bounds checks; a host
        // that caps memory lower reserves that much instead and packs more instances.
        if config.max_memory < 4 << 30 {
            wasm.memory_reservation(config.max_memory);
        }
        let n = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A Rust component holds a handful of core instances (its code plus the small
        // shims wit-component adds); leave room for languages that bring more.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
            // A store keeps its last fiber stack for its next call and returns it when it
            // is dropped; returned, its pages are released, or every stopped pipeline's
            // stack would stay resident in the pool.
            .async_stack_keep_resident(0);
        wasm.async_stack_zeroing(true);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasm engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        // Each capability sees only its own context.
        log::add_to_linker::<_, HasSelf<LogCtx>>(&mut linker, |s| &mut s.log)?;
        metrics::add_to_linker::<_, HasSelf<MetricsCtx>>(&mut linker, |s| &mut s.metrics)?;
        // A build without a system's feature does not provide its interface: a plugin
        // that imports it is refused at load, as any plugin importing what is not here.
        #[cfg(feature = "kafka")]
        kafka::add_to_linker::<_, HasSelf<KafkaCtx>>(&mut linker, |s| &mut s.kafka)?;
        http::add_to_linker::<_, HasSelf<HttpCtx>>(&mut linker, |s| &mut s.http)?;
        #[cfg(feature = "sql")]
        sql::add_to_linker::<_, HasSelf<SqlCtx>>(&mut linker, |s| &mut s.sql)?;
        objects::add_to_linker::<_, HasSelf<ObjectsCtx>>(&mut linker, |s| &mut s.objects)?;
        kinesis::add_to_linker::<_, HasSelf<KinesisCtx>>(&mut linker, |s| &mut s.kinesis)?;
        keys::add_to_linker::<_, HasSelf<KeysCtx>>(&mut linker, |s| &mut s.keys)?;

        let ticker = Arc::new(AtomicBool::new(true));
        let (running, ticking) = (ticker.clone(), engine.clone());
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .context("cannot start the epoch ticker")?;

        Ok(Runtime {
            engine,
            linker,
            cache: config.cache_dir.map(CompileCache::new),
            ticker,
            max_memory: config.max_memory,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Reads, checks and compiles (or loads from the cache) a plugin file; a file this
    /// process has loaded and still uses is shared.
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        let loaded = || self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stamp) = stamp
            && let Some(known) = loaded().get(path)
            && known.stamp == stamp
            && let Some(plugin) = known.plugin.upgrade()
        {
            return Ok(plugin);
        }
        // Not under the lock: compiling a large plugin (seconds, for Python) must not hold
        // up every other pipeline's start. Two first loads of one file both compile.
        let plugin = Arc::new(off_the_workers(|| Plugin::load(self, path))?);
        if let Some(stamp) = stamp {
            let mut loaded = loaded();
            loaded.retain(|_, l| l.plugin.strong_count() > 0);
            loaded.insert(
                path.to_path_buf(),
                Loaded {
                    stamp,
                    plugin: Arc::downgrade(&plugin),
                },
            );
        }
        Ok(plugin)
    }

    /// A fresh instance of `plugin` in its own store, confined to `sandbox`.
    pub async fn instantiate(
        &self,
        plugin: &Arc<Plugin>,
        sandbox: &Sandbox,
        labels: Labels,
    ) -> Result<Instance> {
        // The pool reserves at most `max_memory` per memory; a larger grant would fail
        // later as an allocation failure inside the guest, far from its cause.
        anyhow::ensure!(
            sandbox.limits.memory <= self.max_memory,
            "memory limit of {} bytes exceeds this host's maximum of {} bytes per instance",
            sandbox.limits.memory,
            self.max_memory
        );
        Instance::new(self, plugin, sandbox, labels).await
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    pub(crate) fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }
}

/// The tokio runtime pipelines run on (`weir run`, `weir serve`, and [`block_on`] when
/// called outside one): a worker thread per core, at least two, however many pipelines.
pub fn task_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    builder
        .worker_threads(cores.max(2))
        .enable_all()
        .thread_name("weir");
    // A task woken by a running one waits in that worker's LIFO slot, which idle workers
    // cannot steal: behind a guest call of milliseconds, a pipeline's source and sink
    // would take turns on one core instead of running on two.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}

/// Runs a guest-calling future to its end from synchronous code (a command, an API
/// handler on a blocking thread): on the tokio runtime the caller is in, else on one of
/// this process's own.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match multi_thread_runtime() {
        Some(handle) => tokio::task::block_in_place(|| handle.block_on(future)),
        None => {
            static OWN: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
            OWN.get_or_init(|| task_runtime().expect("a tokio runtime"))
                .block_on(future)
        }
    }
}

/// Runs `f`, which blocks for a long time, where it holds up no task. On a tokio worker,
/// the worker's queued tasks move to another thread first: compiling Python and
/// JavaScript plugins (tens of seconds on a cold cache) on both workers of a two-core
/// machine would otherwise stall every pipeline, and a guest call waiting to be polled
/// runs out its wall-clock deadline meanwhile.
fn off_the_workers<R>(f: impl FnOnce() -> R) -> R {
    match multi_thread_runtime() {
        Some(_) => tokio::task::block_in_place(f),
        None => f(),
    }
}

/// The tokio runtime the caller is in, if it is a multi-thread one: where
/// `block_in_place` may be called (it panics on a current-thread runtime).
fn multi_thread_runtime() -> Option<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current()
        .ok()
        .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Component;

    /// Kafka and SQL are provided exactly when they are built in: a lean build
    /// (`--no-default-features`) refuses a plugin importing them at load.
    /// `scripts/test.sh` runs this both ways.
    #[test]
    fn a_system_is_provided_exactly_when_it_is_built_in() {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: None,
            max_instances: 1,
            max_memory: 1 << 20,
        })
        .unwrap();
        for (interface, resource, built) in [
            ("kafka", "consumer", cfg!(feature = "kafka")),
            ("kafka", "producer", cfg!(feature = "kafka")),
            ("sql", "connection", cfg!(feature = "sql")),
        ] {
            let text = format!(
                r#"(component (import "weir:connector/{interface}@0.1.0"
                    (instance (export "{resource}" (type (sub resource))))))"#
            );
            let component = Component::new(runtime.engine(), text).unwrap();
            let linked = runtime.linker().instantiate_pre(&component);
            assert_eq!(linked.is_ok(), built, "{interface}: {:?}", linked.err());
        }
    }

    /// A load (reading and compiling: tens of seconds for a Python plugin on a cold
    /// cache) gives up its tokio worker, so the tasks queued behind it still run. Here the
    /// plugin file is a FIFO that only a task queued on the same, single worker fills.
    #[test]
    fn a_load_holds_up_no_other_task() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("plugin.wasm");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let runtime = Arc::new(
            Runtime::new(RuntimeConfig {
                cache_dir: None,
                max_instances: 1,
                max_memory: 1 << 20,
            })
            .unwrap(),
        );
        let tasks = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The main thread waits by the wall clock, not tokio's timer: a blocked worker
        // would not drive the timer either.
        let (started, loading) = std::sync::mpsc::channel();
        let (loaded, outcome) = std::sync::mpsc::channel();
        tasks.spawn({
            let fifo = fifo.clone();
            async move {
                started.send(()).unwrap();
                loaded.send(runtime.load(&fifo).map(|_| ())).unwrap();
            }
        });
        loading.recv().unwrap();
        // Blocking, on purpose: it runs on a worker, and there is one.
        let filled = tasks.spawn({
            let fifo = fifo.clone();
            async move { std::fs::write(&fifo, b"not a component") }
        });
        let Ok(loaded) = outcome.recv_timeout(Duration::from_secs(30)) else {
            // Unblock the stuck read so the worker can be let go, then fail.
            std::fs::write(&fifo, b"").ok();
            tasks.shutdown_background();
            panic!("the load held the only worker: the task filling its file never ran");
        };
        tasks.block_on(filled).unwrap().unwrap();
        let error = format!("{:#}", loaded.unwrap_err());
        assert!(error.contains("is not a weir plugin"), "{error}");
    }
}
