//! The host side of `weir:connector/sql`: the connections an instance holds.

use super::{Connection, Replication, SqlGrant};
use crate::bindings::weir::connector::sql::{
    Host, HostConnection, HostReplication, Statement, Value, WalRead,
};
use crate::bindings::weir::connector::types::{Error, Records};
use crate::sandbox::CallDeadline;
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};

/// The SQL capability of one instance: its grant and the connections it holds.
pub(crate) struct SqlCtx {
    pub(crate) grant: Option<SqlGrant>,
    pub(crate) table: ResourceTable,
    pub(crate) held: u32,
    pub(crate) limit: u32,
    /// A statement ends before the deadline of the guest call that made it.
    pub(crate) call_timeout: Duration,
    pub(crate) deadline: CallDeadline,
}

impl SqlCtx {
    /// The grant, if another connection is within the plugin's limit.
    fn may_open(&self) -> Result<&SqlGrant, Error> {
        let limit = self.limit;
        if self.held >= limit {
            return Err(Error::Config(format!(
                "this plugin already holds {limit} SQL connections, its limit \
                 (limits.sql_connections); close one before opening another"
            )));
        }
        self.grant
            .as_ref()
            .ok_or_else(|| Error::Config("this plugin has no SQL grant".into()))
    }

    fn replication(&mut self, r: &Resource<Replication>) -> Result<&mut Replication, Error> {
        self.table
            .get_mut(r)
            .map_err(|e| Error::Fatal(e.to_string()))
    }

    fn connection(&mut self, c: &Resource<Connection>) -> Result<&mut Connection, Error> {
        self.table
            .get_mut(c)
            .map_err(|e| Error::Fatal(e.to_string()))
    }
}

impl Host for SqlCtx {}

impl HostConnection for SqlCtx {
    async fn open(&mut self) -> Result<Resource<Connection>, Error> {
        let grant = self.may_open()?;
        let connection = Connection::open(grant, self.call_timeout, &self.deadline).await?;
        let connection = self
            .table
            .push(connection)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        self.held += 1;
        Ok(connection)
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<Value>,
    ) -> Result<u64, Error> {
        self.connection(&c)?.execute(&statement, &params).await
    }

    async fn transaction(
        &mut self,
        c: Resource<Connection>,
        statements: Vec<Statement>,
    ) -> Result<Vec<u64>, Error> {
        self.connection(&c)?.transaction(&statements).await
    }

    async fn query(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<Value>,
    ) -> Result<(), Error> {
        self.connection(&c)?.query(&statement, &params).await
    }

    async fn fetch(&mut self, c: Resource<Connection>, max_rows: u32) -> Result<Records, Error> {
        self.connection(&c)?.fetch(max_rows).await
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        self.held -= 1;
        Ok(())
    }
}

impl HostReplication for SqlCtx {
    async fn open(
        &mut self,
        slot: String,
        start: Option<u64>,
        options: Vec<(String, String)>,
    ) -> Result<Resource<Replication>, Error> {
        let grant = self.may_open()?;
        let within = self.deadline.left(self.call_timeout);
        let stream = Replication::open(grant, &slot, start, &options, within).await?;
        let stream = self
            .table
            .push(stream)
            .map_err(|e| Error::Fatal(e.to_string()))?;
        self.held += 1;
        Ok(stream)
    }

    async fn read(
        &mut self,
        r: Resource<Replication>,
        max: u32,
        max_wait_ms: u32,
    ) -> Result<WalRead, Error> {
        let wait = self
            .deadline
            .left(Duration::from_millis(u64::from(max_wait_ms)));
        self.replication(&r)?.read(max, wait).await
    }

    async fn confirm(&mut self, r: Resource<Replication>, lsn: u64) -> Result<(), Error> {
        self.replication(&r)?.confirm(lsn);
        Ok(())
    }

    async fn drop(&mut self, r: Resource<Replication>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.held -= 1;
        Ok(())
    }
}
