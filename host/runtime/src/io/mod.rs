//! I/O the host supplies to plugins, one folder per system, each gated by a grant.

pub mod http;
pub mod kafka;
pub mod objects;
mod policy;
pub mod sql;

pub use policy::ClientPolicy;
