//! I/O the host supplies to plugins, one folder per system, each gated by a grant.

pub mod http;
pub mod kafka;
pub mod kinesis;
pub mod objects;
mod policy;
pub mod sql;

pub use policy::ClientPolicy;

/// Runs a call into a client that only blocks (librdkafka's commit, send and flush) on
/// tokio's bounded pool of blocking threads: the runtime's workers go on serving other
/// pipelines meanwhile, and a thread is held only while the call lasts.
#[cfg(feature = "kafka")]
pub(crate) async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(call).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
