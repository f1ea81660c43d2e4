//! postgres-source: reads a table (or a query) in chunks, incrementally by a cursor column.
//!
//! Rows are read in `(cursor_column, tiebreak_column)` order and the checkpoint is that
//! pair for the last row delivered, so the next read asks for rows strictly after it.
//! Ties on the cursor value (many rows with one `updated_at`) are ordered by the tiebreak
//! column (a unique key), which is why nothing is skipped or read twice across runs, even
//! when a run ends in the middle of a tie. An updated row gets a larger cursor value and is
//! read again. Each row becomes one JSON object, typed as PostgreSQL prints JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use weir_guest::sql::{Connection, Value as Param, ident};
use weir_guest::{Batch, BatchSource, Connector, Error, Result, StreamInfo};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The table to read, optionally `schema.table`. Or give `query`.
    table: Option<String>,
    /// A SELECT to read instead of a table; its columns must include the cursor columns.
    query: Option<String>,
    /// Read only rows after the last run's position in this column (e.g. `updated_at`, `id`).
    /// None: every run reads everything (full refresh).
    cursor_column: Option<String>,
    /// A unique column that orders rows sharing a cursor value (e.g. `id`). Needed unless
    /// the cursor column is unique itself.
    tiebreak_column: Option<String>,
}

/// The position after the last row delivered: its cursor and tiebreak values, as the
/// database printed them in JSON.
#[derive(Serialize, Deserialize, Default)]
pub struct Checkpoint {
    after: Option<Vec<String>>,
}

pub struct PostgresSource {
    db: Connection,
    columns: Vec<String>,
    after: Option<Vec<String>>,
    done: bool,
}

fn relation(config: &Config) -> Result<String> {
    match (&config.table, &config.query) {
        (Some(t), None) => Ok(format!("SELECT * FROM {}", ident(t))),
        (None, Some(q)) => Ok(q.trim_end_matches(';').to_string()),
        _ => Err(Error::Config(
            "give exactly one of `table` or `query`".into(),
        )),
    }
}

fn cursor_columns(config: &Config) -> Vec<String> {
    config
        .cursor_column
        .iter()
        .chain(config.tiebreak_column.iter())
        .cloned()
        .collect()
}

impl Connector for PostgresSource {
    const NAME: &'static str = "postgres-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reads PostgreSQL tables or queries incrementally by a cursor column, in chunks.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        if config.tiebreak_column.is_some() && config.cursor_column.is_none() {
            return Err(Error::Config("tiebreak_column needs cursor_column".into()));
        }
        let db = Connection::open()?;
        // Plan the query without reading it: bad SQL or a missing table shows here.
        db.query(&format!("{} LIMIT 0", relation(config)?), &[])?;
        db.fetch(1)?;
        Ok(())
    }
}

impl BatchSource for PostgresSource {
    type Checkpoint = Checkpoint;

    fn discover(_: &Config) -> Result<Vec<StreamInfo>> {
        let db = Connection::open()?;
        db.query(
            "SELECT table_schema || '.' || table_name AS name, \
             json_object_agg(column_name, data_type ORDER BY ordinal_position) AS columns \
             FROM information_schema.columns \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
             GROUP BY table_schema, table_name ORDER BY 1",
            &[],
        )?;
        let mut streams = Vec::new();
        loop {
            let rows = db.fetch(500)?;
            for r in rows.iter() {
                #[derive(Deserialize)]
                struct Table {
                    name: String,
                    columns: serde_json::Map<String, serde_json::Value>,
                }
                let t: Table = serde_json::from_slice(r.value().unwrap_or_default())
                    .map_err(|e| Error::Fatal(format!("discover: {e}")))?;
                let properties: serde_json::Map<String, serde_json::Value> = t
                    .columns
                    .into_iter()
                    .map(|(c, ty)| (c, serde_json::json!({ "x-postgres-type": ty })))
                    .collect();
                let schema = serde_json::json!({ "type": "object", "properties": properties });
                streams.push(StreamInfo {
                    name: t.name,
                    schema: Some(schema.to_string()),
                });
            }
            if rows.len() < 500 {
                return Ok(streams);
            }
        }
    }

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        if config.tiebreak_column.is_some() && config.cursor_column.is_none() {
            return Err(Error::Config("tiebreak_column needs cursor_column".into()));
        }
        let columns = cursor_columns(&config);
        // A full refresh starts over every run, whatever was committed.
        let after = checkpoint
            .and_then(|c| c.after)
            .filter(|_| !columns.is_empty());
        let mut sql = format!("SELECT * FROM ({}) r", relation(&config)?);
        let mut params = Vec::new();
        if !columns.is_empty() {
            let cols: Vec<String> = columns.iter().map(|c| format!("r.{}", ident(c))).collect();
            let tuple = cols.join(", ");
            if let Some(after) = &after {
                if after.len() != columns.len() {
                    return Err(Error::Config(
                        "the committed checkpoint has other columns than the config: \
                         reset the pipeline's checkpoint after changing cursor columns"
                            .into(),
                    ));
                }
                let placeholders: Vec<String> =
                    (1..=after.len()).map(|i| format!("${i}")).collect();
                // A row comparison: ties on the cursor value are ordered by the tiebreak.
                sql.push_str(&format!(" WHERE ({tuple}) > ({})", placeholders.join(", ")));
                params = after.iter().cloned().map(Param::Text).collect();
            }
            sql.push_str(&format!(" ORDER BY {tuple}"));
        }
        let db = Connection::open()?;
        db.query(&sql, &params)?;
        Ok(PostgresSource {
            db,
            columns,
            after,
            done: false,
        })
    }

    fn next(&mut self, max_records: u32) -> Result<Option<Batch<Checkpoint>>> {
        if self.done {
            return Ok(None);
        }
        let records = self.db.fetch(max_records)?;
        if records.len() < max_records as usize {
            self.done = true;
        }
        if records.is_empty() {
            return Ok(None);
        }
        if !self.columns.is_empty() {
            let last = records
                .iter()
                .last()
                .and_then(|r| r.value())
                .unwrap_or_default();
            let row: HashMap<&str, &RawValue> = serde_json::from_slice(last)
                .map_err(|e| Error::Fatal(format!("a row is not a JSON object: {e}")))?;
            let mut after = Vec::with_capacity(self.columns.len());
            for c in &self.columns {
                let raw = row.get(c.as_str()).ok_or_else(|| {
                    Error::Config(format!("the rows have no cursor column `{c}`"))
                })?;
                // Strings come back quoted in JSON; numbers keep their exact digits.
                let text = match serde_json::from_str::<String>(raw.get()) {
                    Ok(s) => s,
                    Err(_) if raw.get() == "null" => {
                        return Err(Error::Fatal(format!(
                            "cursor column `{c}` is NULL in a row: such rows cannot be ordered"
                        )));
                    }
                    Err(_) => raw.get().to_string(),
                };
                after.push(text);
            }
            self.after = Some(after);
        }
        Ok(Some(Batch::new(
            records,
            Checkpoint {
                after: self.after.clone(),
            },
        )))
    }
}

weir_guest::export_batch_source!(PostgresSource);
