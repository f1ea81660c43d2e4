//! postgres-cdc: change data capture from PostgreSQL's logical replication, via a
//! replication slot decoded by wal2json.
//!
//! Changes are peeked, not consumed: the slot's confirmed position moves only in `ack`,
//! which the host calls after the sink flushed and the checkpoint (the last change's LSN)
//! is committed. After a crash the slot still holds everything after the last ack, and the
//! committed LSN filters out what was already delivered. Each change becomes a flat change
//! record like the Debezium source's: the row as a JSON object (the old key for a
//! delete), its primary key as the key, create / update / delete as the op, and the
//! transaction's commit time as the timestamp. Changes arrive in commit order.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;
use weir_guest::sql::{Connection, Value as Param};
use weir_guest::{
    Batch, ChangeOp, Connector, DeadLetter, Error, RecordRef, Records, Result, StreamSource,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The logical replication slot; created (with wal2json) if it does not exist.
    slot: String,
    /// Only these tables (`schema.table`); all tables when empty.
    #[serde(default)]
    tables: Vec<String>,
}

/// The LSN of the last change delivered.
#[derive(Serialize, Deserialize, Clone)]
pub struct Checkpoint {
    lsn: String,
}

pub struct PostgresCdc {
    db: Connection,
    config: Config,
    /// The last change handed to the host; later polls skip up to here.
    emitted: Option<String>,
    /// Changes emitted but not yet acknowledged: the slot replays them on every peek.
    pending: u64,
}

impl Connector for PostgresCdc {
    const NAME: &'static str = "postgres-cdc";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Streams inserts, updates and deletes from a PostgreSQL replication slot (wal2json).";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        let db = Connection::open()?;
        db.query("SELECT current_setting('wal_level') AS level", &[])?;
        let rows = db.fetch(1)?;
        let level = rows
            .iter()
            .next()
            .and_then(|r| r.value())
            .unwrap_or_default();
        if !level.windows(7).any(|w| w == b"logical") {
            return Err(Error::Config(
                "the server's wal_level is not `logical`: logical replication is off".into(),
            ));
        }
        ensure_slot(&db, &config.slot)
    }
}

fn ensure_slot(db: &Connection, slot: &str) -> Result<()> {
    db.query(
        "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1",
        &[Param::Text(slot.to_string())],
    )?;
    let found = db.fetch(1)?;
    match found.iter().next().and_then(|r| r.value()) {
        None => {
            db.execute(
                "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
                &[Param::Text(slot.to_string())],
            )?;
            Ok(())
        }
        Some(row) if row.windows(8).any(|w| w == b"wal2json") => Ok(()),
        Some(_) => Err(Error::Config(format!(
            "replication slot `{slot}` exists but does not decode with wal2json"
        ))),
    }
}

/// One wal2json (format 2) change.
#[derive(Deserialize)]
struct Change {
    action: String,
    schema: String,
    table: String,
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    identity: Vec<Column>,
    #[serde(default)]
    pk: Vec<PkColumn>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
    value: Value,
}

#[derive(Deserialize)]
struct PkColumn {
    name: String,
}

#[derive(Deserialize)]
struct Row {
    lsn: String,
    ts_ms: Option<i64>,
    change: String,
}

/// A peek's answer: the undelivered changes found (if any), and how many it decoded.
#[derive(Deserialize)]
struct Peeked {
    lsn: Option<String>,
    ts_ms: Option<i64>,
    change: Option<String>,
    peeked: u64,
}

fn object(columns: &[Column]) -> Map<String, Value> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.value.clone()))
        .collect()
}

impl PostgresCdc {
    /// Up to `max` changes after the last one emitted, decoding at most about `upto`
    /// changes from the slot's confirmed position; and how many it decoded.
    fn peek(&self, upto: u64, max: u32) -> Result<(Vec<Row>, u64)> {
        let mut options = String::from(
            "'format-version', '2', 'include-timestamp', '1', 'include-pk', '1', \
             'include-transaction', '0'",
        );
        let mut params = vec![
            Param::Text(self.config.slot.clone()),
            Param::Int(
                i64::try_from(upto)
                    .unwrap_or(i64::from(i32::MAX))
                    .min(i64::from(i32::MAX)),
            ),
            Param::Text(self.emitted.clone().unwrap_or_else(|| "0/0".into())),
            Param::Int(i64::from(max)),
        ];
        if !self.config.tables.is_empty() {
            options.push_str(", 'add-tables', $5");
            params.push(Param::Text(self.config.tables.join(",")));
        }
        // The LEFT JOIN keeps one row when nothing is new, to carry the count.
        self.db.query(
            &format!(
                "WITH peek AS MATERIALIZED ( \
                   SELECT lsn, data FROM pg_logical_slot_peek_changes($1, NULL, $2::int, {options})), \
                 total AS (SELECT count(*) AS peeked FROM peek) \
                 SELECT p.lsn::text AS lsn, \
                   (extract(epoch FROM (p.data::jsonb->>'timestamp')::timestamptz) * 1000)::bigint AS ts_ms, \
                   p.data AS change, total.peeked \
                 FROM total LEFT JOIN LATERAL ( \
                   SELECT lsn, data FROM peek WHERE lsn > $3::pg_lsn ORDER BY lsn LIMIT $4) p ON true"
            ),
            &params,
        )?;
        let fetched = self.db.fetch(max.saturating_add(1))?;
        let mut rows = Vec::new();
        let mut peeked = 0;
        for r in fetched.iter() {
            let p: Peeked = serde_json::from_slice(r.value().unwrap_or_default())
                .map_err(|e| Error::Fatal(format!("unexpected row from the slot: {e}")))?;
            peeked = p.peeked;
            if let (Some(lsn), Some(change)) = (p.lsn, p.change) {
                rows.push(Row {
                    lsn,
                    ts_ms: p.ts_ms,
                    change,
                });
            }
        }
        Ok((rows, peeked))
    }
}

impl StreamSource for PostgresCdc {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        let db = Connection::open()?;
        ensure_slot(&db, &config.slot)?;
        Ok(PostgresCdc {
            db,
            config,
            emitted: checkpoint.map(|c| c.lsn),
            pending: 0,
        })
    }

    fn poll(&mut self, max_records: u32, _max_wait: Duration) -> Result<Batch<Checkpoint>> {
        let rows = loop {
            // Peeking replays every change not yet acknowledged: ask for those and `max`
            // more. After a restart `pending` is unknown; a peek that comes back full of
            // delivered changes says how many there are, and the next one asks past them.
            let upto = self.pending + u64::from(max_records);
            let (rows, peeked) = self.peek(upto, max_records)?;
            if !rows.is_empty() || peeked < upto {
                break rows;
            }
            self.pending = peeked;
        };
        let mut records = Records::new();
        let mut dead = Vec::new();
        let mut last = None;
        for row in &rows {
            last = Some(row.lsn.clone());
            let change: Change = match serde_json::from_str(&row.change) {
                Ok(c) => c,
                Err(e) => {
                    dead.push(DeadLetter {
                        key: None,
                        value: Some(row.change.clone().into_bytes()),
                        reason: format!("not a wal2json change: {e}"),
                    });
                    continue;
                }
            };
            let op = match change.action.as_str() {
                "I" => ChangeOp::Create,
                "U" => ChangeOp::Update,
                "D" => ChangeOp::Delete,
                // Truncates and messages carry no row.
                _ => continue,
            };
            let row_value = if op == ChangeOp::Delete {
                object(&change.identity)
            } else {
                object(&change.columns)
            };
            let key: Map<String, Value> = change
                .pk
                .iter()
                .filter_map(|pk| {
                    row_value
                        .get(&pk.name)
                        .map(|v| (pk.name.clone(), v.clone()))
                })
                .collect();
            let table = format!("{}.{}", change.schema, change.table);
            let value = serde_json::to_vec(&row_value).expect("a map serialises");
            let key =
                (!key.is_empty()).then(|| serde_json::to_vec(&key).expect("a map serialises"));
            records.push(RecordRef {
                key: key.as_deref(),
                value: Some(&value),
                headers: &[("table", table.as_bytes())],
                timestamp_ms: row.ts_ms,
                op: Some(op),
            });
        }
        if let Some(lsn) = &last {
            self.pending += rows.len() as u64;
            self.emitted = Some(lsn.clone());
        }
        let checkpoint = Checkpoint {
            lsn: self.emitted.clone().unwrap_or_else(|| "0/0".into()),
        };
        let mut batch = Batch::new(records, checkpoint);
        batch.dead_letters = dead;
        Ok(batch)
    }

    /// The host committed `checkpoint`: the slot may forget everything up to it.
    fn ack(&mut self, checkpoint: Checkpoint) -> Result<()> {
        self.db.execute(
            "SELECT pg_replication_slot_advance($1, $2::pg_lsn)",
            &[
                Param::Text(self.config.slot.clone()),
                Param::Text(checkpoint.lsn.clone()),
            ],
        )?;
        if self.emitted.as_deref() == Some(checkpoint.lsn.as_str()) {
            self.pending = 0;
        }
        Ok(())
    }
}

weir_guest::export_stream_source!(PostgresCdc);
