//! postgres-sink: writes each batch into a table in one transaction, so a batch lands whole
//! or not at all. With `key`, rows are upserted on it (the last record of a key in a batch
//! wins), which makes redelivery after a crash harmless: the table ends up equal to the
//! input. Records must be JSON objects; their fields fill the columns of the same name.
//!
//! Change records (from postgres-cdc or debezium-source) whose op is `delete` delete the
//! row with their key instead, so a change stream replicates a table. A batch's runs of
//! upserts and deletes are applied in order, one statement per run.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_guest::sql::{Connection, Statement, Value as Param, ident};
use weir_guest::{ChangeOp, Connector, DeadLetter, Error, Records, Result, Sink, log};

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
}

pub struct PostgresSink {
    db: Connection,
    config: Config,
    /// The table's columns, once known (it may be created by the first write).
    columns: Option<Vec<String>>,
}

impl Connector for PostgresSink {
    const NAME: &'static str = "postgres-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Upserts JSON records into a PostgreSQL table, one transaction per batch.";
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
        Ok(PostgresSink {
            db,
            config,
            columns,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let mut rejected = Vec::new();
        let mut runs: Vec<Run<'_>> = Vec::new();
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
            if !delete && first.is_none() {
                first = Some(object);
            }
            match runs.last_mut() {
                Some(run) if run.delete == delete => run.rows.push((r.key(), value)),
                _ => runs.push(Run {
                    delete,
                    rows: vec![(r.key(), value)],
                }),
            }
        }
        if self.columns.is_none() {
            // A table to create needs a row to shape it; deletes alone have nothing to do.
            let Some(first) = first else {
                return Ok(rejected);
            };
            self.create(&first)?;
            self.columns = Some(columns(&self.db, &self.config.table)?);
        }
        let upsert = self.statement(self.columns.as_deref().unwrap_or_default());
        let delete = self.delete_statement();
        let sql = |run: &Run<'_>| if run.delete { &delete } else { &upsert };
        let statements: Vec<Statement> = runs
            .iter()
            .map(|run| Statement {
                sql: sql(run).clone(),
                params: vec![Param::Json(json_array(run.rows.iter().map(|(_, v)| *v)))],
            })
            .collect();
        let applied = match statements.len() {
            0 => Ok(()),
            1 => self
                .db
                .execute(&statements[0].sql, &statements[0].params)
                .map(drop),
            _ => self.db.transaction(&statements).map(drop),
        };
        match applied {
            Ok(()) => Ok(rejected),
            // The data does not fit the table (a type, a constraint): the transaction
            // changed nothing. Apply the rows one by one, in order, so only the misfits
            // become dead letters, each with the database's reason. Upserts and deletes by
            // key are safe to repeat.
            Err(Error::Fatal(reason)) => {
                log::warn(&format!("batch refused, writing row by row: {reason}"));
                for run in &runs {
                    for (key, value) in &run.rows {
                        let one = json_array([*value]);
                        match self.db.execute(sql(run), &[Param::Json(one)]) {
                            Ok(_) => {}
                            Err(Error::Fatal(reason)) => rejected.push(DeadLetter {
                                key: key.map(<[u8]>::to_vec),
                                value: Some(value.to_vec()),
                                reason,
                            }),
                            Err(other) => return Err(other),
                        }
                    }
                }
                Ok(rejected)
            }
            Err(other) => Err(other),
        }
    }

    /// Each write committed its own transaction already.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Consecutive records of one kind (upserts or deletes), applied by one statement.
struct Run<'a> {
    delete: bool,
    rows: Vec<(Option<&'a [u8]>, &'a [u8])>,
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

weir_guest::export_sink!(PostgresSink);
