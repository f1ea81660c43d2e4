//! `weir serve`: one long-running process hosting many tenants' pipelines.
//!
//! - `registry`: tenants, plugin versions and pipelines in SQLite beside the checkpoints.
//! - `tenant` and `resolver`: quotas and grants, and how a pipeline is held inside them.
//! - `supervisor`: a worker per pipeline; restarts with backoff (`restart` decides);
//!   swaps at checkpoints.
//! - `ops`: what the server can be asked to do (tenants, plugin pushes, pipelines), for
//!   the API and `watch` (which pushes files) alike.
//! - `tenant_cpu`: each tenant's CPU share.
//! - `api`, `auth`, `metrics`, `tls`: the HTTP side.
//! - `cluster`: `--cluster`, several nodes as one service (Kafka's group protocol places
//!   pipelines, PostgreSQL holds the registry and fenced checkpoints).

mod api;
mod auth;
#[cfg(feature = "cluster")]
mod cluster;
mod console;
pub mod logs;
mod metrics;
mod ops;
#[cfg(test)]
mod properties;
mod registry;
mod resolver;
mod restart;
mod series;
mod supervisor;
mod tenant;
mod tenant_cpu;
mod tls;
mod watch;

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::sync::Arc;
use weir_checkpoint::{CheckpointStore, SqliteCheckpoints};
use weir_pipeline::Shutdown;
use weir_runtime::{Runtime, RuntimeConfig};

pub use tenant::{Grants, Quotas};
pub use tls::TlsFiles;

pub struct Options {
    pub listen: String,
    pub data_dir: PathBuf,
    pub admin_token: String,
    pub watch: Option<PathBuf>,
    pub runtime: RuntimeConfig,
    /// Serve the API over TLS; without it, only loopback addresses unless `insecure_http`.
    pub tls: Option<TlsFiles>,
    pub insecure_http: bool,
    /// The cluster settings file: join a cluster instead of running alone.
    pub cluster: Option<PathBuf>,
}

/// Where state lives and which pipelines run here: this process alone, or a node of a
/// cluster.
struct Stores {
    checkpoints: Arc<dyn CheckpointStore>,
    registry: Arc<dyn registry::Registry>,
    placement: Arc<dyn supervisor::Placement>,
    #[cfg(feature = "cluster")]
    cluster: Option<Node>,
    /// Held for the process's life: one weir per data directory.
    _lock: Option<std::fs::File>,
}

#[cfg(feature = "cluster")]
struct Node {
    settings: cluster::Settings,
    slots: Arc<cluster::Slots>,
    nodes: Arc<cluster::Nodes>,
}

fn alone(options: &Options) -> Result<Stores> {
    let checkpoints = Arc::new(SqliteCheckpoints::open(&options.data_dir)?);
    Ok(Stores {
        registry: Arc::new(registry::SqliteRegistry::open(&options.data_dir)?),
        checkpoints,
        placement: Arc::new(supervisor::Alone),
        #[cfg(feature = "cluster")]
        cluster: None,
        _lock: None,
    })
}

#[cfg(not(feature = "cluster"))]
fn stores(options: &Options, _: &tokio::runtime::Runtime) -> Result<Stores> {
    ensure!(
        options.cluster.is_none(),
        "this weir was built without cluster support (cargo feature `cluster`)"
    );
    alone(options)
}

#[cfg(feature = "cluster")]
fn stores(options: &Options, server: &tokio::runtime::Runtime) -> Result<Stores> {
    let Some(path) = &options.cluster else {
        return alone(options);
    };
    let settings = cluster::Settings::read(path)?;
    let lock = weir_checkpoint::lock_state_dir(&options.data_dir)?;
    let node = settings.node.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "weir".into());
        let port = options.listen.rsplit(':').next().unwrap_or("0");
        format!("{host}:{port}")
    });
    let url = settings.postgres.as_deref().unwrap_or_default();
    let pg = weir_checkpoint::postgres::Pg::connect(url, server.handle().clone())?;
    let slots = cluster::Slots::new(node, settings.slots, Some(pg.clone()));
    server.block_on(cluster::ensure_slot_topic(
        &settings,
        supervisor::Placement::node(slots.as_ref()),
    ))?;
    Ok(Stores {
        checkpoints: Arc::new(weir_checkpoint::postgres::PgCheckpoints::open(pg.clone())?),
        registry: Arc::new(registry::PgRegistry::open(pg.clone(), &options.data_dir)?),
        placement: slots.clone(),
        cluster: Some(Node {
            nodes: cluster::Nodes::open(pg, slots.clone(), options.listen.clone())?,
            settings,
            slots,
        }),
        _lock: Some(lock),
    })
}

/// Serves until `stop` is triggered, then stops every pipeline between batches.
pub fn serve(options: Options, stop: Shutdown) -> Result<()> {
    ensure!(
        !options.admin_token.trim().is_empty(),
        "the admin token (WEIR_ADMIN_TOKEN) is empty"
    );
    if options.admin_token.len() < 16 {
        tracing::warn!(
            "the admin token (WEIR_ADMIN_TOKEN) is short: anyone who guesses it manages every tenant; use 32 random bytes"
        );
    }
    let acceptor = options.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
    // One runtime for the API and every pipeline (guests yield at each epoch tick, so
    // the API stays responsive).
    let server = weir_runtime::task_runtime().context("cannot start the runtime")?;
    if acceptor.is_none() {
        server.block_on(tls::check_plain(&options.listen, options.insecure_http))?;
    }
    let stores = stores(&options, &server)?;
    let registry = stores.registry.clone();
    let runtime = Arc::new(Runtime::new(options.runtime)?);
    let supervisor = supervisor::Supervisor::new(
        runtime.clone(),
        server.handle().clone(),
        stores.checkpoints.clone(),
        registry.clone(),
        stores.placement.clone(),
    );
    let reserved: Vec<PathBuf> = std::iter::once(&options.data_dir)
        .chain(&options.watch)
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    let app = api::App {
        ops: Arc::new(ops::Ops::new(
            registry,
            supervisor.clone(),
            runtime,
            reserved,
        )),
        admin_token: options.admin_token.into(),
        series: Arc::new(series::Series::default()),
        streams: Arc::default(),
        #[cfg(feature = "cluster")]
        cluster: stores.cluster.as_ref().map(|n| n.nodes.clone()),
    };
    let restored = supervisor.start_all()?;
    server.spawn(app.series.clone().run(supervisor.clone(), stop.clone()));
    tracing::info!(pipelines = restored, "pipelines restored");
    #[cfg(feature = "cluster")]
    let membership = match &stores.cluster {
        Some(node) => {
            server.spawn(node.nodes.clone().run(supervisor.clone(), stop.clone()));
            let joined =
                cluster::Membership::join(&node.settings, node.slots.clone(), supervisor.clone())?;
            tracing::info!(node = supervisor::Placement::node(node.slots.as_ref()), group = %node.settings.group, "joined the cluster");
            Some(joined)
        }
        None => None,
    };
    if let Some(dir) = options.watch {
        watch::spawn(app.ops.clone(), dir, stop.clone())
            .context("cannot start the plugin watcher")?;
    }

    let served = server.block_on(async {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let address = listener.local_addr()?;
        #[cfg(feature = "cluster")]
        if let Some(node) = &stores.cluster {
            node.nodes.set_api(address.to_string());
        }
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        println!(
            "weir: serving {scheme}://{address} (data in {})",
            options.data_dir.display()
        );
        let stopped = stop.clone();
        let shutdown = async move { stopped.triggered().await };
        match acceptor {
            Some(acceptor) => {
                tls::serve(listener, acceptor, api::router(app), shutdown).await;
                Ok(())
            }
            None => axum::serve(listener, api::router(app))
                .with_graceful_shutdown(shutdown)
                .await
                .context("the API server failed"),
        }
    });
    // A clean leave: nothing more starts here, every pipeline commits its batch in
    // flight and stops, and only then is the group told, so whoever takes a pipeline
    // over starts exactly where it stopped.
    #[cfg(feature = "cluster")]
    if let Some(node) = &stores.cluster {
        node.slots.leave();
    }
    supervisor.shutdown();
    #[cfg(feature = "cluster")]
    if let (Some(node), Some(membership)) = (&stores.cluster, membership) {
        membership.leave();
        if let Err(e) = node.nodes.forget() {
            tracing::warn!(error = %format!("{e:#}"), "cannot remove this node from the cluster's table");
        }
    }
    // Every pipeline has committed and stopped by now. Dropping the runtime would wait
    // without end for any blocking task still out (a registry sync on a database that
    // stopped answering), and a service manager's stop would hang with it.
    server.shutdown_timeout(EXIT_GRACE);
    served
}

/// How long `weir serve` waits, once its pipelines stopped, for the rest to wind down.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
