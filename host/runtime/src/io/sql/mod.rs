//! `weir:connector/sql`: SQL through the host, confined to the pipeline's SQL grant.
//!
//! The grant holds the database's address and credentials; the plugin only sends
//! statements. Errors name the database by host and name, never by the connection string,
//! so a password cannot leak through them.

#[cfg(feature = "sql")]
mod host;
#[cfg(feature = "sql")]
mod postgres;
#[cfg(feature = "sql")]
mod replication;

#[cfg(feature = "sql")]
pub(crate) use host::SqlCtx;
#[cfg(feature = "sql")]
pub use postgres::Connection;
#[cfg(feature = "sql")]
pub use replication::Replication;

/// Built without the `sql` feature: the contract's resource exists, and none can be made.
#[cfg(not(feature = "sql"))]
pub enum Connection {}
#[cfg(not(feature = "sql"))]
pub enum Replication {}

use std::fmt;

/// The database a pipeline side may use. `Debug` leaves the password out.
#[derive(Clone)]
pub struct SqlGrant {
    /// `postgres://user@host:port/database` (a password here is accepted, and redacted
    /// like any other).
    pub url: String,
    /// Read from the environment or a file (`password = { env | file }`) at load.
    pub password: Option<String>,
}

impl fmt::Debug for SqlGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlGrant")
            .field("database", &describe(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `host:port/database` of a URL, for messages.
#[cfg(feature = "sql")]
fn describe(url: &str) -> String {
    postgres::describe(url)
}

#[cfg(not(feature = "sql"))]
fn describe(_: &str) -> String {
    "<not shown: this build has no SQL>".into()
}
