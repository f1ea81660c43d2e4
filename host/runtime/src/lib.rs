//! Loads weir connector components and runs them sandboxed.
//!
//! - [`Runtime`]: one wasmtime engine per process, the pooling allocator, the on-disk
//!   compile cache and the epoch ticker that enforces call deadlines.
//! - [`Plugin`]: a loaded component, its world, ready to instantiate.
//! - [`Instance`]: one connector in its own store, with its memory limit, deadline and grants.
//! - `host/`: the host side of the WIT imports (logs, metrics).
//! - [`confined`]: every path the host opens for a plugin, beneath a handle, never via links.
//! - [`patterns`]: what grant entries (hosts, topics, store locations) name and cover.

mod bindings;
mod cache;
pub mod confined;
mod console;
mod error;
mod host;
mod instance;
pub mod io;
pub mod patterns;
mod plugin;
#[cfg(test)]
mod properties;
mod records;
mod runtime;
mod sandbox;

pub use bindings::weir::connector::types::{
    Batch, ChangeOp, ConnectorSpec, DeadLetter, Header, Records, Span, StreamInfo,
};
pub use confined::HostDir;
pub use error::{GuestError, GuestErrorKind};
pub use host::Key;
pub use instance::{
    BatchSourceInstance, Instance, SinkInstance, SourceInstance, Stamp, StreamSourceInstance,
    TransformInstance, Transformed,
};
pub use io::http::{DEFAULT_MAX_RESPONSE_BYTES, HttpGrant};
pub use io::kafka::KafkaGrant;
pub use io::kinesis::KinesisGrant;
pub use io::objects::{ObjectLocation, ObjectsGrant};
pub use io::sql::SqlGrant;
pub use plugin::{Compilation, Plugin, World};
pub use records::View;
pub use runtime::{Runtime, RuntimeConfig, block_on, task_runtime};
pub use sandbox::{DirGrant, Labels, Limits, Sandbox};
