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

mod api;
mod auth;
mod metrics;
mod ops;
#[cfg(test)]
mod properties;
mod registry;
mod resolver;
mod restart;
mod supervisor;
mod tenant;
mod tenant_cpu;
mod tls;
mod watch;

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::sync::Arc;
use weir_checkpoint::SqliteCheckpoints;
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
    let checkpoints = Arc::new(SqliteCheckpoints::open(&options.data_dir)?);
    let registry: Arc<dyn registry::Registry> =
        Arc::new(registry::SqliteRegistry::open(&options.data_dir)?);
    let runtime = Arc::new(Runtime::new(options.runtime)?);
    let supervisor = supervisor::Supervisor::new(
        runtime.clone(),
        server.handle().clone(),
        checkpoints,
        registry.clone(),
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
    };
    let restored = supervisor.start_all()?;
    tracing::info!(pipelines = restored, "pipelines restored");
    if let Some(dir) = options.watch {
        watch::spawn(app.ops.clone(), dir, stop.clone())
            .context("cannot start the plugin watcher")?;
    }

    let served = server.block_on(async {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let address = listener.local_addr()?;
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
    supervisor.shutdown();
    served
}
