//! Write weir connectors in Rust.
//!
//! Implement [`Connector`] plus one of [`BatchSource`], [`StreamSource`], [`Sink`] or
//! [`Transform`] on a type, then call the matching export macro once:
//!
//! ```ignore
//! use weir_guest::{BatchSource, Batch, Connector, Result};
//!
//! struct Numbers { next: u64, end: u64 }
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Config { count: u64 }
//!
//! impl Connector for Numbers {
//!     const NAME: &'static str = "numbers";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DESCRIPTION: &'static str = "Counts to `count`.";
//!     type Config = Config;
//! }
//!
//! impl BatchSource for Numbers {
//!     type Checkpoint = u64;
//!     fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
//!         Ok(Numbers { next: checkpoint.unwrap_or(0), end: config.count })
//!     }
//!     fn next(&mut self, max: u32) -> Result<Option<Batch<u64>>> {
//!         if self.next >= self.end { return Ok(None) }
//!         let end = (self.next + max as u64).min(self.end);
//!         let mut records = weir_guest::Records::new();
//!         for n in self.next..end {
//!             records.push_value(n.to_string().as_bytes());
//!         }
//!         self.next = end;
//!         Ok(Some(Batch::new(records, end)))
//!     }
//! }
//!
//! weir_guest::export_batch_source!(Numbers);
//! ```
//!
//! Config arrives as your typed struct; a config that does not fit is rejected with the
//! path of the offending field. Checkpoints are your own serde types: the host
//! stores them as JSON and hands back the last committed one. Records travel packed
//! ([`Records`]): push them into one, read a sink's with [`Records::iter`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The host's imports and the shared types, as generated from `wit/`.
pub mod wit {
    wit_bindgen::generate!({
        world: "guest-imports",
        path: "../wit",
        generate_all,
    });
}

pub use records::{RecordRef, RecordView};

// A connector allocates per record (parsed values, strings); the wasm target's default
// allocator (dlmalloc) made that a quarter of the benchmark transform's time, talc less
// than half of that.
#[cfg(all(
    feature = "talc",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
pub use wit::weir::connector::types::{ChangeOp, DeadLetter, Error, Records, StreamInfo};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every connector declares: its name, version and typed config.
pub trait Connector: Sized + 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
    const DESCRIPTION: &'static str;
    /// Deserialized from the pipeline's `config`; its JSON Schema is the connector's spec.
    type Config: DeserializeOwned + schemars::JsonSchema;

    /// Can the config work (credentials, reachable servers, readable paths)?
    fn check(_config: &Self::Config) -> Result<()> {
        Ok(())
    }
}

/// Records and the position reached after them.
pub struct Batch<P> {
    pub records: Records,
    pub checkpoint: P,
    /// Input that could not become records; the host sends it to the dead-letter destination.
    pub dead_letters: Vec<DeadLetter>,
}

impl<P> Batch<P> {
    pub fn new(records: Records, checkpoint: P) -> Self {
        Batch {
            records,
            checkpoint,
            dead_letters: Vec::new(),
        }
    }
}

/// A bounded read run on a schedule. One value of `Self` is one read.
pub trait BatchSource: Connector {
    /// Where a read resumes; the host commits it after the sink flushed.
    type Checkpoint: Serialize + DeserializeOwned;

    fn discover(_config: &Self::Config) -> Result<Vec<StreamInfo>> {
        Ok(Vec::new())
    }
    /// Starts a read after `checkpoint` (none: from the beginning).
    fn open(config: Self::Config, checkpoint: Option<Self::Checkpoint>) -> Result<Self>;
    /// At most `max_records`, or `None` once the data at hand is exhausted.
    fn next(&mut self, max_records: u32) -> Result<Option<Batch<Self::Checkpoint>>>;
}

/// An unbounded read, polled continuously.
pub trait StreamSource: Connector {
    type Checkpoint: Serialize + DeserializeOwned;

    fn discover(_config: &Self::Config) -> Result<Vec<StreamInfo>> {
        Ok(Vec::new())
    }
    fn open(config: Self::Config, checkpoint: Option<Self::Checkpoint>) -> Result<Self>;
    /// Waits at most `max_wait` for records; an empty batch is a normal answer.
    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Self::Checkpoint>>;
    /// The host durably committed `checkpoint`: commit upstream positions here.
    fn ack(&mut self, _checkpoint: Self::Checkpoint) -> Result<()> {
        Ok(())
    }
}

/// Delivery to an external system.
pub trait Sink: Connector {
    fn open(config: Self::Config) -> Result<Self>;
    /// Writes what it can; returns the records it rejects, with why (most sinks return an
    /// empty list). The host sends those to the dead-letter destination.
    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>>;
    /// When this returns `Ok`, every record written before is durable.
    fn flush(&mut self) -> Result<()>;
}

/// What a transactional sink stores with a batch's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Whose data this is: the host's name for the pipeline (`tenant/name` in `weir serve`).
    pub pipeline: String,
    /// The epoch under which the host's run holds the pipeline. Refuse a commit whose epoch
    /// is below the one stored for the pipeline: it comes from a node that lost it.
    pub epoch: u64,
    /// The source's checkpoint, opaque: store it, give it back from `stored`.
    pub checkpoint: String,
}

/// A sink that stores the source's checkpoint in its own store, atomically with the data
/// (`export_transactional_sink!`): the host then delivers each record into it exactly once.
/// The host calls `commit` where it would call `flush`, and asks `stored` after `open` to
/// resume the source from what the sink holds.
pub trait TransactionalSink: Sink {
    /// The checkpoint last committed for `pipeline`, if any.
    fn stored(&mut self, pipeline: &str) -> Result<Option<String>>;
    /// Makes every record written since the last commit durable together with `stamp`, all
    /// or nothing: after a crash at any point, `stored` and the data agree. Returns the
    /// records the destination refused at commit, with why (most sinks: none).
    fn commit(&mut self, stamp: Stamp) -> Result<Vec<DeadLetter>>;
}

/// What a transform passes on from one batch.
#[derive(Debug, Default)]
pub struct Transformed {
    /// Any number of records: one per input (a map), fewer (a filter), more (an
    /// expansion). [`Records::push_like`] keeps an input's key, headers, timestamp and op.
    pub records: Records,
    /// Input rejected, with why; the host stores them like a source's.
    pub dead_letters: Vec<DeadLetter>,
}

/// A step between a pipeline's source and its sink, called once per batch. It keeps no
/// durable state: the host may open a new one (a new version) at any checkpoint.
pub trait Transform: Connector {
    fn open(config: Self::Config) -> Result<Self>;
    /// The records to pass on for `records`, and those rejected.
    fn process(&mut self, records: Records) -> Result<Transformed>;
}

/// Exports `$ty` as a batch-source component.
#[macro_export]
macro_rules! export_batch_source {
    ($ty:ty) => {
        $crate::__private::export!(batch_source, $ty);
    };
}

/// Exports `$ty` as a stream-source component.
#[macro_export]
macro_rules! export_stream_source {
    ($ty:ty) => {
        $crate::__private::export!(stream_source, $ty);
    };
}

/// Exports `$ty` as a sink component.
#[macro_export]
macro_rules! export_sink {
    ($ty:ty) => {
        $crate::__private::export!(sink, $ty);
    };
}

/// Exports `$ty` as a sink component that commits checkpoints with its data.
#[macro_export]
macro_rules! export_transactional_sink {
    ($ty:ty) => {
        $crate::__private::export!(transactional_sink, $ty);
    };
}

/// Exports `$ty` as a transform component.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        $crate::__private::export!(transform, $ty);
    };
}

/// JSON Lines and CSV, for sources that read files or objects.
pub mod formats;
/// Outgoing HTTP through the host (`weir:connector/http`), to the hosts the pipeline grants.
pub mod http;
/// Kafka through the host (`weir:connector/kafka`): brokers and group come from the
/// pipeline's grant; a plugin names only the topics, and only granted ones.
pub mod kafka;
/// Keyed hashes through the host (`weir:connector/keys`): the key is the pipeline's
/// secret, named in `grants.keys`, and never enters the plugin.
pub mod keys {
    pub use crate::wit::weir::connector::keys::hmac_sha256;
}
/// Kinesis Data Streams through the host (`weir:connector/kinesis`): region, endpoint and
/// credentials come from the pipeline's grant; a plugin names only streams, granted ones.
pub mod kinesis {
    pub mod kpl;
    pub use crate::wit::weir::connector::kinesis::{
        Got, PutFailure, ReadError, Shard, ShardReader, StartAt, list_shards, put_records,
    };
}
pub mod log;
pub mod metrics;
/// Object storage through the host (`weir:connector/objects`), under the granted prefix.
pub mod objects {
    pub use crate::wit::weir::connector::objects::{ObjectInfo, list, read, write};
}
mod records;
/// SQL through the host (`weir:connector/sql`), on the database the pipeline grants.
pub mod sql;

#[doc(hidden)]
pub mod __private;
