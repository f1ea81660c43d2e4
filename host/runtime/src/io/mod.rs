//! I/O the host supplies to plugins, one folder per system, each gated by a grant.

pub mod http;
pub mod kafka;
pub mod objects;
pub mod sql;
