//! PostgreSQL behind `weir:connector/sql`, with tokio-postgres: a statement in progress
//! holds no thread, and the call's deadline cancels it from a timer.

use super::SqlGrant;
use crate::bindings::weir::connector::sql::{Statement, Value};
use crate::bindings::weir::connector::types::{Error, Records};
use crate::sandbox::CallDeadline;
use bytes::BytesMut;
use std::future::Future;
use std::time::Duration;
use std::time::Instant;
use tokio_postgres::NoTls;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

pub struct Connection {
    client: tokio_postgres::Client,
    deadline: CallDeadline,
    cancel: tokio_postgres::CancelToken,
    /// Whether a query's cursor (and the transaction holding it) is open.
    reading: bool,
    /// Why the last query's cursor closed before its end (a failed or cancelled fetch).
    broken: Option<String>,
    /// For errors: `host:port/database`, never the credentials.
    database: String,
}

/// `host:port/database` of a URL, for messages.
pub(super) fn describe(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
        }
        Err(_) => "<an unparsable URL>".into(),
    }
}

const CURSOR: &str = "weir_cursor";

impl Connection {
    pub(super) async fn open(
        grant: &SqlGrant,
        call_timeout: Duration,
        deadline: &CallDeadline,
    ) -> Result<Connection, Error> {
        let database = describe(&grant.url);
        let mut config: tokio_postgres::Config = grant
            .url
            .parse()
            .map_err(|_| Error::Config(format!("invalid PostgreSQL URL for {database}")))?;
        if let Some(password) = &grant.password {
            config.password(password);
        }
        // A host call is out of the epoch deadline's reach: the connection must come
        // within the call's deadline, and a statement is cancelled before it (the
        // server's statement_timeout is the backstop).
        config.connect_timeout(deadline.left(call_timeout));
        config.options(format!("-c statement_timeout={}", call_timeout.as_millis()));
        config.application_name("weir");
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| classify(&database, "cannot connect", e))?;
        // Drives the socket; ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "sql connection closed");
            }
        });
        Ok(Connection {
            cancel: client.cancel_token(),
            client,
            deadline: deadline.clone(),
            reading: false,
            broken: None,
            database,
        })
    }

    pub(super) async fn execute(
        &mut self,
        statement: &str,
        params: &[Value],
    ) -> Result<u64, Error> {
        self.end_query().await?;
        let params = texts(params);
        let at = self.deadline.cancel_at();
        guarded(
            at,
            &self.cancel,
            self.client.execute(statement, &refs(&params)),
        )
        .await
        .map_err(|e| classify(&self.database, "statement failed", e))
    }

    pub(super) async fn transaction(
        &mut self,
        statements: &[Statement],
    ) -> Result<Vec<u64>, Error> {
        self.end_query().await?;
        let database = &self.database;
        let at = self.deadline.cancel_at();
        let client = &mut self.client;
        let all = async move {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify(database, "cannot begin", e))?;
            let mut affected = Vec::with_capacity(statements.len());
            for s in statements {
                let params = texts(&s.params);
                // Dropping `tx` on the error path rolls the whole transaction back.
                affected.push(
                    tx.execute(&s.sql, &refs(&params))
                        .await
                        .map_err(|e| classify(database, "statement failed", e))?,
                );
            }
            tx.commit()
                .await
                .map_err(|e| classify(database, "commit failed", e))?;
            Ok(affected)
        };
        guarded(at, &self.cancel, all).await
    }

    pub(super) async fn query(&mut self, statement: &str, params: &[Value]) -> Result<(), Error> {
        self.end_query().await?;
        self.broken = None;
        self.client
            .batch_execute("BEGIN READ ONLY")
            .await
            .map_err(|e| classify(&self.database, "cannot begin", e))?;
        self.reading = true;
        // row_to_json keeps the query's column order and maps every type the way the
        // database itself prints it as JSON: exact numerics, RFC 3339 timestamps.
        let declare = format!(
            "DECLARE {CURSOR} NO SCROLL CURSOR FOR SELECT row_to_json(q)::text FROM ({statement}) q"
        );
        let params = texts(params);
        let at = self.deadline.cancel_at();
        guarded(
            at,
            &self.cancel,
            self.client.execute(&declare, &refs(&params)),
        )
        .await
        .map_err(|e| classify(&self.database, "query failed", e))?;
        Ok(())
    }

    pub(super) async fn fetch(&mut self, max_rows: u32) -> Result<Records, Error> {
        if !self.reading {
            return Err(match &self.broken {
                // Each retry says why, until the guest opens the query again.
                Some(why) => Error::Transient(format!("the query ended early: {why}")),
                None => Error::Fatal("fetch without an open query".into()),
            });
        }
        let fetch = format!("FETCH {} FROM {CURSOR}", max_rows.max(1));
        let at = self.deadline.cancel_at();
        let fetched = guarded(at, &self.cancel, self.client.query(&fetch, &[])).await;
        let rows = match fetched {
            Ok(rows) => rows,
            Err(e) => {
                // The transaction is aborted now: end it, so the connection stays usable.
                let error = classify(&self.database, "fetch failed", e);
                let _ = self.client.batch_execute("ROLLBACK").await;
                self.reading = false;
                self.broken = Some(format!("{error:?}"));
                return Err(error);
            }
        };
        let mut records = Records::new();
        for row in &rows {
            let json: &str = row.get(0);
            records.push(None, Some(json.as_bytes()), &[], None);
        }
        if rows.len() < max_rows as usize {
            self.end_query().await?;
        }
        Ok(records)
    }

    async fn end_query(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.reading) {
            self.client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| classify(&self.database, "cannot end the query", e))?;
        }
        Ok(())
    }
}

/// Every parameter goes over the wire as text, so the server parses it as whatever type
/// the statement needs: the plugin need not know the column types.
#[derive(Debug)]
struct Text(Option<String>);

impl ToSql for Text {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

fn texts(params: &[Value]) -> Vec<Text> {
    params
        .iter()
        .map(|v| {
            Text(match v {
                Value::Null => None,
                Value::Boolean(b) => Some(b.to_string()),
                Value::Int(i) => Some(i.to_string()),
                Value::Float(f) => Some(f.to_string()),
                Value::Text(t) | Value::Json(t) => Some(t.clone()),
                Value::Bytes(b) => Some(format!("\\x{}", hex::encode(b))),
            })
        })
        .collect()
}

fn refs(params: &[Text]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Connection trouble, serialization failures and lack of resources pass; bad SQL, missing
/// tables, refused credentials don't.
fn classify(database: &str, what: &str, e: tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!(
            "{database}: {what}: {} ({}: {})",
            db.message(),
            db.severity(),
            db.code().code()
        ),
        None => {
            // The client's own message is generic ("error connecting to server"); the
            // cause (refused, timed out, unknown host) is in its sources.
            let mut message = format!("{database}: {what}: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        }
    };
    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
    if e.is_closed() || code.is_empty() && e.as_db_error().is_none() {
        return Error::Transient(message);
    }
    by_sqlstate(&code, message)
}

/// What a server error means for the plugin, by its SQLSTATE.
pub(super) fn by_sqlstate(code: &str, message: String) -> Error {
    // Object in use (a replication slot still held by the session of a killed run), lock
    // not available: someone else's, for now.
    if code == "55006" || code == "55P03" {
        return Error::Transient(message);
    }
    match &code[..2.min(code.len())] {
        // connection exception, transaction rollback, insufficient resources, operator
        // intervention (e.g. the server shutting down)
        "08" | "40" | "53" | "57" => Error::Transient(message),
        // invalid authorization, syntax error or access rule violation (missing table,
        // column, privilege), invalid catalog (no such database), undefined object (no
        // such replication slot)
        "28" | "42" | "3D" => Error::Config(message),
        _ => Error::Fatal(message),
    }
}

/// Runs `call`, cancelling its statement at `cancel_at` (the guest call's deadline less
/// its margin): the statement then fails with `query_canceled`, a transient error the
/// guest gets back within its call.
async fn guarded<T>(
    cancel_at: Option<Instant>,
    cancel: &tokio_postgres::CancelToken,
    call: impl Future<Output = T>,
) -> T {
    let Some(at) = cancel_at else {
        return call.await;
    };
    let call = std::pin::pin!(call);
    let mut call = call;
    tokio::select! {
        done = &mut call => done,
        () = tokio::time::sleep_until(at.into()) => {
            if let Err(e) = cancel.cancel_query(NoTls).await {
                tracing::warn!(error = %e, "cannot cancel a statement past its deadline");
            }
            call.await
        }
    }
}
