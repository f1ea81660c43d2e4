//! postgres-sink: writes each batch into a table in one transaction, together with the
//! source's checkpoint in `checkpoint_table` (keyed by pipeline): exactly once, for inserts,
//! upserts and deletes alike. A crash before the commit leaves neither; after it, both, and
//! the host resumes the source from the checkpoint stored here. With `key`, rows are
//! upserted on it (the last record of a key in a batch wins). Records must be JSON
//! objects; their fields fill the columns of the same name.
//!
//! A batch the table refuses (a type, a constraint) is applied again row by row, so only
//! the misfits become dead letters, each with the database's reason; that fallback commits
//! row by row, and a crash in the middle of it repeats those rows.
//!
//! Change records (from postgres-cdc or debezium-source) whose op is `delete` delete the
//! row with their key instead, so a change stream replicates a table. A batch's runs of
//! upserts and deletes are applied in order, one statement per run.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_guest::sql::{Connection, Statement, Value as Param, ident};
use weir_guest::{
    ChangeOp, Connector, DeadLetter, Error, Records, Result, Sink, Stamp, TransactionalSink, log,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The table, optionally `schema.table`.
    table: String,
    /// Columns that identify a row: records upsert on them. None: plain inserts.
    #[serde(default)]
    key: Vec<String>,
    /// Create the table from the first record's fields when it does not exist.
    #[serde(default)]
    create_table: bool,
    /// Where the checkpoint of each pipeline writing here is committed with its rows,
    /// optionally `schema.table`; created when missing.
    #[serde(default = "default_checkpoint_table")]
    checkpoint_table: String,
}

fn default_checkpoint_table() -> String {
    "weir_checkpoints".into()
}

pub struct PostgresSink {
    db: Connection,
    config: Config,
    /// The table's columns, once known (it may be created by the first write).
    columns: Option<Vec<String>>,
    /// Written since the last commit: applied by the next, with its checkpoint.
    pending: Vec<Run>,
}

impl Connector for PostgresSink {
    const NAME: &'static str = "postgres-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Inserts or upserts JSON records into a PostgreSQL table, exactly once: each batch and its checkpoint in one transaction.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        let db = Connection::open()?;
        if !config.create_table {
            columns(&db, &config.table)?;
        }
        Ok(())
    }
}

/// The table's columns in order; a missing table is a config error.
fn columns(db: &Connection, table: &str) -> Result<Vec<String>> {
    db.query(
        "SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1) \
         AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[Param::Text(ident(table))],
    )?;
    let rows = db.fetch(10_000)?;
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.value())
        .map(|v| {
            let row: Map<String, Value> = serde_json::from_slice(v).unwrap_or_default();
            row["name"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    if names.is_empty() {
        return Err(Error::Config(format!("table `{table}` does not exist")));
    }
    Ok(names)
}

/// A column type for a JSON value, for `create_table`.
fn column_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "bigint",
        Value::Number(_) => "numeric",
        Value::String(_) | Value::Null => "text",
        Value::Array(_) | Value::Object(_) => "jsonb",
    }
}

impl PostgresSink {
    fn create(&mut self, first: &Map<String, Value>) -> Result<()> {
        let mut defs: Vec<String> = first
            .iter()
            .map(|(k, v)| format!("{} {}", ident(k), column_type(v)))
            .collect();
        if !self.config.key.is_empty() {
            let key: Vec<String> = self.config.key.iter().map(|k| ident(k)).collect();
            defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            ident(&self.config.table),
            defs.join(", ")
        );
        self.db.execute(&sql, &[])?;
        log::info(&format!("created table {}", self.config.table));
        Ok(())
    }

    /// The statement for `run`: a delete, or an upsert of the table's columns its records
    /// carry (all of them if they carry none).
    fn run_statement(&self, run: &Run) -> String {
        if run.delete {
            return self.delete_statement();
        }
        let table = self.columns.as_deref().unwrap_or_default();
        let carried: Vec<String> = table
            .iter()
            .filter(|c| run.fields.binary_search(c).is_ok())
            .cloned()
            .collect();
        self.statement(if carried.is_empty() { table } else { &carried })
    }

    /// Deletes the rows whose key the records carry (their other fields are ignored).
    fn delete_statement(&self) -> String {
        let table = ident(&self.config.table);
        let key: Vec<String> = self.config.key.iter().map(|k| ident(k)).collect();
        let key = key.join(", ");
        format!(
            "DELETE FROM {table} WHERE ({key}) IN \
             (SELECT {key} FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb))"
        )
    }

    /// One statement for the whole batch: the rows arrive as one JSON array parameter.
    fn statement(&self, columns: &[String]) -> String {
        let table = ident(&self.config.table);
        let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let list = cols.join(", ");
        if self.config.key.is_empty() {
            return format!(
                "INSERT INTO {table} ({list}) SELECT {list} FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)"
            );
        }
        let key: Vec<String> = self.config.key.iter().map(|k| ident(k)).collect();
        let key = key.join(", ");
        let updates: Vec<String> = cols
            .iter()
            .filter(|c| !self.config.key.iter().any(|k| ident(k) == **c))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        // DISTINCT ON keeps one row per key, the batch's last: an upsert may not touch a
        // row twice in one statement.
        format!(
            "INSERT INTO {table} ({list}) \
             SELECT {list} FROM (SELECT DISTINCT ON ({key}) * FROM \
             jsonb_populate_recordset(NULL::{table}, $1::jsonb) WITH ORDINALITY AS r \
             ORDER BY {key}, ordinality DESC) d \
             ON CONFLICT ({key}) {action}"
        )
    }
}

impl Sink for PostgresSink {
    fn open(config: Config) -> Result<Self> {
        let db = Connection::open()?;
        let columns = if config.create_table {
            None
        } else {
            Some(columns(&db, &config.table)?)
        };
        db.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (pipeline text PRIMARY KEY, epoch bigint NOT NULL, \
                 checkpoint text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())",
                ident(&config.checkpoint_table)
            ),
            &[],
        )?;
        Ok(PostgresSink {
            db,
            config,
            columns,
            pending: Vec::new(),
        })
    }

    /// Checks and keeps the records; `commit` applies them.
    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let mut rejected = Vec::new();
        let mut first: Option<Map<String, Value>> = None;
        for r in records.iter() {
            let Some(value) = r.value() else { continue };
            let reject = |reason: String| DeadLetter {
                key: r.key().map(<[u8]>::to_vec),
                value: Some(value.to_vec()),
                reason,
            };
            let object = match serde_json::from_slice::<Map<String, Value>>(value) {
                Ok(object) => object,
                Err(e) => {
                    rejected.push(reject(format!("not a JSON object: {e}")));
                    continue;
                }
            };
            let delete = r.op() == Some(ChangeOp::Delete);
            if delete && self.config.key.is_empty() {
                rejected.push(reject(
                    "a delete needs the sink's `key` to find its row".into(),
                ));
                continue;
            }
            let mut fields: Vec<String> = if delete {
                Vec::new()
            } else {
                object.keys().cloned().collect()
            };
            fields.sort();
            if !delete && first.is_none() && self.columns.is_none() {
                first = Some(object);
            }
            let row = (r.key().map(<[u8]>::to_vec), value.to_vec());
            match self.pending.last_mut() {
                Some(run) if run.delete == delete && run.fields == fields => run.rows.push(row),
                _ => self.pending.push(Run {
                    delete,
                    fields,
                    rows: vec![row],
                }),
            }
        }
        if self.columns.is_none()
            && let Some(first) = first
        {
            // A table to create needs a row to shape it.
            self.create(&first)?;
            self.columns = Some(columns(&self.db, &self.config.table)?);
        }
        Ok(rejected)
    }

    /// Applies what was written, without a checkpoint: for a host that does not commit
    /// through the sink (at least once). Rows the table refuses fail the batch here, since
    /// a flush cannot hand them back.
    fn flush(&mut self) -> Result<()> {
        match self.apply(None)?.first() {
            None => Ok(()),
            Some(refused) => Err(Error::Fatal(refused.reason.clone())),
        }
    }
}

impl TransactionalSink for PostgresSink {
    /// Waits first for every other session writing this pipeline to end: a run killed
    /// after sending its last commit leaves a server session that may still apply it, and
    /// reading the checkpoint before that would resume from the one before, and write the
    /// batch twice. The lock is the session's, held until this sink's connection closes.
    fn stored(&mut self, pipeline: &str) -> Result<Option<String>> {
        self.db.execute(
            "SELECT pg_advisory_lock(hashtext('weir-sink:' || $1))",
            &[Param::Text(pipeline.to_string())],
        )?;
        Ok(self
            .stored_row(pipeline)?
            .and_then(|row| row.get("checkpoint")?.as_str().map(str::to_string)))
    }

    fn commit(&mut self, stamp: Stamp) -> Result<Vec<DeadLetter>> {
        self.apply(Some(&stamp))
    }
}

impl PostgresSink {
    /// The pipeline's row in the checkpoint table, as JSON.
    fn stored_row(&mut self, pipeline: &str) -> Result<Option<Map<String, Value>>> {
        self.db.query(
            &format!(
                "SELECT epoch, checkpoint FROM {} WHERE pipeline = $1",
                ident(&self.config.checkpoint_table)
            ),
            &[Param::Text(pipeline.to_string())],
        )?;
        let rows = self.db.fetch(1)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.value())
            .next()
            .map(|v| serde_json::from_slice(v).unwrap_or_default()))
    }

    /// Refuses a run whose epoch is below the one stored for its pipeline.
    fn check_epoch(&mut self, stamp: &Stamp) -> Result<()> {
        let stored = self
            .stored_row(&stamp.pipeline)?
            .and_then(|row| row.get("epoch")?.as_u64());
        match stored {
            Some(epoch) if epoch > stamp.epoch => Err(Error::Fatal(format!(
                "pipeline `{}` was committed under epoch {epoch}, this run holds epoch {}: another node owns it now",
                stamp.pipeline, stamp.epoch
            ))),
            _ => Ok(()),
        }
    }

    /// The checkpoint's upsert. Run first in the transaction, it locks the pipeline's
    /// row; a stored epoch above the run's makes the new epoch NULL, which the column
    /// refuses, and the whole transaction (rows included) with it.
    fn checkpoint_statement(&self, stamp: &Stamp) -> Statement {
        let table = ident(&self.config.checkpoint_table);
        Statement {
            sql: format!(
                "INSERT INTO {table} (pipeline, epoch, checkpoint) VALUES ($1, $2, $3) \
                 ON CONFLICT (pipeline) DO UPDATE SET \
                 epoch = CASE WHEN {table}.epoch <= EXCLUDED.epoch THEN EXCLUDED.epoch END, \
                 checkpoint = EXCLUDED.checkpoint, committed_at = now()"
            ),
            params: vec![
                Param::Text(stamp.pipeline.clone()),
                Param::Int(stamp.epoch as i64),
                Param::Text(stamp.checkpoint.clone()),
            ],
        }
    }

    /// Applies the pending runs in order, with the stamp's checkpoint, in one
    /// transaction; returns the rows the table refused.
    fn apply(&mut self, stamp: Option<&Stamp>) -> Result<Vec<DeadLetter>> {
        let checkpoint = stamp.map(|s| self.checkpoint_statement(s));
        let pending = std::mem::take(&mut self.pending);
        // No table yet (deletes alone before any row shaped one): only the checkpoint.
        let runs: Vec<&Run> = pending.iter().filter(|_| self.columns.is_some()).collect();
        let sql: Vec<String> = runs.iter().map(|run| self.run_statement(run)).collect();
        let statements: Vec<Statement> = checkpoint
            .iter()
            .cloned()
            .chain(runs.iter().zip(&sql).map(|(run, sql)| Statement {
                sql: sql.clone(),
                params: vec![Param::Json(json_array(
                    run.rows.iter().map(|(_, v)| v.as_slice()),
                ))],
            }))
            .collect();
        let applied = match statements.len() {
            0 => Ok(()),
            1 => self
                .db
                .execute(&statements[0].sql, &statements[0].params)
                .map(drop),
            _ => self.db.transaction(&statements).map(drop),
        };
        let reason = match applied {
            Ok(()) => return Ok(Vec::new()),
            Err(Error::Fatal(reason)) => reason,
            Err(other) => {
                // Kept for the retry.
                self.pending = pending;
                return Err(other);
            }
        };
        // Fenced, or the data does not fit the table (a type, a constraint): the
        // transaction changed nothing. A fenced run stops here; otherwise the rows are
        // applied one by one, in order, so only the misfits become dead letters, and then
        // the checkpoint (a crash in between repeats rows, never loses them).
        let fallback = self.row_by_row(stamp, &reason, &runs, &sql, checkpoint.as_ref());
        if fallback.is_err() {
            // Kept for the retry: a row applied twice, never one lost.
            self.pending = pending;
        }
        fallback
    }

    fn row_by_row(
        &mut self,
        stamp: Option<&Stamp>,
        reason: &str,
        runs: &[&Run],
        sql: &[String],
        checkpoint: Option<&Statement>,
    ) -> Result<Vec<DeadLetter>> {
        if let Some(stamp) = stamp {
            self.check_epoch(stamp)?;
        }
        log::warn(&format!("batch refused, writing row by row: {reason}"));
        let mut rejected = Vec::new();
        for (run, sql) in runs.iter().zip(sql) {
            for (key, value) in &run.rows {
                let one = json_array([value.as_slice()]);
                match self.db.execute(sql, &[Param::Json(one)]) {
                    Ok(_) => {}
                    Err(Error::Fatal(reason)) => rejected.push(DeadLetter {
                        key: key.clone(),
                        value: Some(value.clone()),
                        reason,
                    }),
                    Err(other) => return Err(other),
                }
            }
        }
        if let Some(c) = checkpoint {
            self.db.execute(&c.sql, &c.params)?;
        }
        Ok(rejected)
    }
}

/// Consecutive records of one kind (upserts or deletes), applied by one statement: their
/// keys and values.
struct Run {
    delete: bool,
    /// The fields its records carry (sorted): only those columns are written, so a column
    /// a record leaves out keeps its value (an unchanged TOASTed column of a CDC update).
    fields: Vec<String>,
    rows: Vec<(Option<Vec<u8>>, Vec<u8>)>,
}

/// `[v1,v2,...]` from JSON object texts, without parsing them again.
fn json_array<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut out = String::from("[");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Values were parsed as JSON objects already, so they are UTF-8.
        out.push_str(&String::from_utf8_lossy(v));
    }
    out.push(']');
    out
}

weir_guest::export_transactional_sink!(PostgresSink);
