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
//!
//! wal2json hands every value over as its text (a jsonb document as a JSON string, an array
//! as `{1,2}`, a timestamp in PostgreSQL's own format). Each batch is turned back into typed
//! rows by the database itself (`jsonb_populate_record` into the table's row type, then
//! `row_to_json`), so a change maps every type exactly as postgres-source does. A column an
//! update did not carry (an unchanged TOASTed value) is left out, not sent as null.
//!
//! A new pipeline first reads the tables' existing rows (`snapshot`), in key order and in
//! chunks, each chunk's last key in the checkpoint, so a crash resumes the snapshot where it
//! was. The slot is made first and then the database's snapshot is taken (which transactions
//! it sees): the stream skips the changes of those transactions, since every row read
//! already holds them, and carries every later one. Rows read after a resume, or changed
//! while the snapshot was read, are overwritten in order by the changes that follow, so
//! the tables and a replica that applies the records (an upsert by key) end equal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Duration;
use weir_guest::sql::{Connection, Value as Param, ident};
use weir_guest::{
    Batch, ChangeOp, Connector, DeadLetter, Error, RecordRef, Records, Result, StreamSource, log,
    metrics,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The logical replication slot; created (with wal2json) if it does not exist.
    slot: String,
    /// Only these tables (`schema.table`); all tables when empty.
    #[serde(default)]
    tables: Vec<String>,
    /// `initial`: a new pipeline reads the tables' existing rows first, then streams what
    /// follows. `never`: only changes from the slot's creation on. `when_needed`: as
    /// `initial`, and again if the slot is gone (dropped, or invalidated for the WAL it
    /// held), where the others stop with an error.
    #[serde(default)]
    snapshot: SnapshotMode,
    /// While the watched tables are idle, move the slot past the WAL other tables wrote,
    /// at most this often (milliseconds; 0: never), so a quiet table next to a busy one
    /// does not make the server keep all of that WAL.
    #[serde(default = "default_heartbeat_ms")]
    heartbeat_ms: u64,
}

fn default_heartbeat_ms() -> u64 {
    10_000
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum SnapshotMode {
    #[default]
    Initial,
    Never,
    WhenNeeded,
}

/// The LSN of the last change delivered (none before the first), and the initial snapshot
/// while it is read and until the stream is past it.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Snapshot>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    /// The transactions the snapshot sees: their changes are in the rows read.
    seen: Seen,
    /// Tables still to read, in order; the first is being read.
    tables: Vec<String>,
    /// The key of the last row read of the first table, as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// A PostgreSQL snapshot (`pg_current_snapshot()`), by 32-bit transaction ids as logical
/// decoding gives them: every id before `xmin` is seen, none from `xmax` on, and of those
/// between, all but `running`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Seen {
    xmin: u32,
    xmax: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    running: Vec<u32>,
}

impl Seen {
    /// `xmin:xmax:xip,...` as PostgreSQL prints a snapshot (64-bit ids).
    fn parse(text: &str) -> Option<Seen> {
        let mut parts = text.trim().split(':');
        let id = |s: &str| s.parse::<u64>().ok().map(|x| x as u32);
        let (xmin, xmax) = (id(parts.next()?)?, id(parts.next()?)?);
        let running = match parts.next() {
            Some(list) if !list.is_empty() => list.split(',').map(id).collect::<Option<_>>()?,
            _ => Vec::new(),
        };
        Some(Seen {
            xmin,
            xmax,
            running,
        })
    }

    /// Whether transaction `xid` committed before the snapshot (ids wrap around at 2^32).
    fn saw(&self, xid: u32) -> bool {
        if (xid.wrapping_sub(self.xmin) as i32) < 0 {
            return true;
        }
        (xid.wrapping_sub(self.xmax) as i32) < 0 && !self.running.contains(&xid)
    }
}

pub struct PostgresCdc {
    db: Connection,
    config: Config,
    /// The last change handed to the host; later polls skip up to here.
    emitted: Option<String>,
    /// The initial snapshot, as the next checkpoint will say.
    snapshot: Option<Snapshot>,
    /// Each table's primary key columns, once asked.
    keys: HashMap<String, Vec<String>>,
    /// When the slot was last moved past an idle stretch.
    last_heartbeat: std::time::Instant,
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
        slot_exists(&db, &config.slot).map(|_| ())
    }
}

/// Whether the slot is there (and decodes with wal2json).
fn slot_exists(db: &Connection, slot: &str) -> Result<bool> {
    db.query(
        "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1",
        &[Param::Text(slot.to_string())],
    )?;
    let found = db.fetch(1)?;
    match found.iter().next().and_then(|r| r.value()) {
        None => Ok(false),
        Some(row) if row.windows(8).any(|w| w == b"wal2json") => Ok(true),
        Some(_) => Err(Error::Config(format!(
            "replication slot `{slot}` exists but does not decode with wal2json"
        ))),
    }
}

/// The first column of a one-row query, as the JSON text the host gives it.
fn one(db: &Connection, sql: &str, params: &[Param]) -> Result<String> {
    db.query(sql, params)?;
    let rows = db.fetch(1)?;
    let row = rows
        .iter()
        .next()
        .and_then(|r| r.value())
        .ok_or_else(|| Error::Fatal(format!("no row from `{sql}`")))?;
    let fields: HashMap<String, Box<RawValue>> = serde_json::from_slice(row)
        .map_err(|e| Error::Fatal(format!("unexpected row from `{sql}`: {e}")))?;
    let value = fields
        .into_values()
        .next()
        .ok_or_else(|| Error::Fatal(format!("no column from `{sql}`")))?;
    Ok(serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_string()))
}

/// The record key of a row (a JSON object text): its `key` columns, in order.
fn key_of(row: &str, key: &[String]) -> Result<Option<String>> {
    let fields: HashMap<String, &RawValue> = serde_json::from_str(row)
        .map_err(|e| Error::Fatal(format!("a row is not a JSON object: {e}")))?;
    let parts: Vec<String> = key
        .iter()
        .filter_map(|name| {
            let value = fields.get(name.as_str())?;
            Some(format!(
                "{}:{}",
                serde_json::to_string(name).expect("a string serialises"),
                value.get()
            ))
        })
        .collect();
    Ok((!parts.is_empty()).then(|| format!("{{{}}}", parts.join(","))))
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
    /// The change's transaction.
    #[serde(default)]
    xid: Option<u64>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
    /// The column's type as wal2json names it (`jsonb`, `integer[]`).
    #[serde(rename = "type", default)]
    kind: String,
    value: Box<RawValue>,
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

/// A peek's answer row: an undelivered change found (if any), how many it decoded, and the
/// server's WAL position it decoded up to.
#[derive(Deserialize)]
struct Peeked {
    lsn: Option<String>,
    ts_ms: Option<i64>,
    change: Option<String>,
    peeked: u64,
    tip: Option<String>,
}

#[derive(Default)]
struct Peek {
    rows: Vec<Row>,
    peeked: u64,
    tip: Option<String>,
}

/// The columns as one JSON object for `json_populate_record`: each value as wal2json gave
/// it, except json and jsonb, which wal2json gives as a string holding the document, and
/// bytea, which it gives as hex without its prefix.
fn object(columns: &[Column]) -> Result<String> {
    let mut out = String::from("{");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(&c.name).expect("a string serialises"));
        out.push(':');
        match (
            c.kind.as_str(),
            serde_json::from_str::<String>(c.value.get()),
        ) {
            ("json" | "jsonb", Ok(document)) => {
                let document = RawValue::from_string(document).map_err(|e| {
                    Error::Fatal(format!("column `{}`: not a JSON document: {e}", c.name))
                })?;
                out.push_str(document.get());
            }
            // wal2json gives bytea as bare hex; bytea's input wants its `\x`.
            ("bytea", Ok(hex)) if !hex.starts_with("\\x") => {
                out.push_str(&serde_json::to_string(&format!("\\x{hex}")).expect("a string"));
            }
            _ => out.push_str(c.value.get()),
        }
    }
    out.push('}');
    Ok(out)
}

/// A change on its way to a record: which table, and the columns it carried.
struct Pending {
    table: (String, String),
    op: ChangeOp,
    columns: String,
    pk: Vec<String>,
    ts_ms: Option<i64>,
}

impl PostgresCdc {
    /// Up to `max` changes after the last one emitted, decoding at most about `upto`
    /// changes from the slot's confirmed position; and how many it decoded.
    fn peek(&self, upto: u64, max: u32) -> Result<Peek> {
        let mut options = String::from(
            "'format-version', '2', 'include-timestamp', '1', 'include-pk', '1', \
             'include-transaction', '0', 'include-xids', '1'",
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
                "WITH tip AS MATERIALIZED (SELECT pg_current_wal_lsn() AS tip), \
                 peek AS MATERIALIZED ( \
                   SELECT lsn, data FROM tip, \
                     pg_logical_slot_peek_changes($1, tip.tip, $2::int, {options})), \
                 total AS (SELECT count(*) AS peeked, (SELECT tip::text FROM tip) AS tip FROM peek) \
                 SELECT p.lsn::text AS lsn, \
                   (extract(epoch FROM (p.data::jsonb->>'timestamp')::timestamptz) * 1000)::bigint AS ts_ms, \
                   p.data AS change, total.peeked, total.tip \
                 FROM total LEFT JOIN LATERAL ( \
                   SELECT lsn, data FROM peek WHERE lsn > $3::pg_lsn ORDER BY lsn LIMIT $4) p ON true"
            ),
            &params,
        )?;
        let fetched = self.db.fetch(max.saturating_add(1))?;
        let mut peek = Peek::default();
        for r in fetched.iter() {
            let p: Peeked = serde_json::from_slice(r.value().unwrap_or_default())
                .map_err(|e| Error::Fatal(format!("unexpected row from the slot: {e}")))?;
            (peek.peeked, peek.tip) = (p.peeked, p.tip);
            if let (Some(lsn), Some(change)) = (p.lsn, p.change) {
                peek.rows.push(Row {
                    lsn,
                    ts_ms: p.ts_ms,
                    change,
                });
            }
        }
        Ok(peek)
    }

    /// Moves the slot to `lsn`, never back.
    fn advance(&self, lsn: &str) -> Result<()> {
        self.db.execute(
            "SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots \
             WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn",
            &[
                Param::Text(self.config.slot.clone()),
                Param::Text(lsn.to_string()),
            ],
        )?;
        Ok(())
    }
}

impl PostgresCdc {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            lsn: self.emitted.clone(),
            snapshot: self.snapshot.clone(),
        }
    }

    /// After the slot is made: what the database's snapshot sees, and the tables to read.
    fn begin_snapshot(&self) -> Result<Snapshot> {
        let seen = one(&self.db, "SELECT pg_current_snapshot()::text AS seen", &[])?;
        let seen = Seen::parse(&seen)
            .ok_or_else(|| Error::Fatal(format!("cannot read the snapshot `{seen}`")))?;
        let tables = if self.config.tables.is_empty() {
            self.db.query(
                "SELECT schemaname || '.' || tablename AS t FROM pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                &[],
            )?;
            let rows = self.db.fetch(100_000)?;
            rows.iter()
                .filter_map(|r| {
                    #[derive(Deserialize)]
                    struct T {
                        t: String,
                    }
                    serde_json::from_slice::<T>(r.value()?).ok().map(|t| t.t)
                })
                .collect()
        } else {
            self.config.tables.clone()
        };
        Ok(Snapshot {
            seen,
            tables,
            after: None,
        })
    }

    /// A table's primary key columns, in key order.
    fn key(&mut self, table: &str) -> Result<Vec<String>> {
        if let Some(key) = self.keys.get(table) {
            return Ok(key.clone());
        }
        self.db.query(
            "SELECT a.attname AS name FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = $1::regclass AND i.indisprimary \
             ORDER BY array_position(i.indkey, a.attnum)",
            &[Param::Text(ident(table))],
        )?;
        let rows = self.db.fetch(1000)?;
        let key: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                #[derive(Deserialize)]
                struct Name {
                    name: String,
                }
                serde_json::from_slice::<Name>(r.value()?)
                    .ok()
                    .map(|n| n.name)
            })
            .collect();
        if key.is_empty() {
            return Err(Error::Config(format!(
                "table `{table}` has no primary key: the snapshot reads a table in key order \
                 (add one, or set `snapshot = \"never\"`)"
            )));
        }
        self.keys.insert(table.to_string(), key.clone());
        Ok(key)
    }

    /// The next rows of the table being snapshotted, after the last key read, in key order.
    fn snapshot_chunk(&mut self, max: u32) -> Result<Records> {
        let snapshot = self.snapshot.as_ref().expect("a snapshot is being read");
        let (table, after) = (snapshot.tables[0].clone(), snapshot.after.clone());
        let key = self.key(&table)?;
        let columns: Vec<String> = key.iter().map(|k| ident(k)).collect();
        let columns = columns.join(", ");
        let relation = ident(&table);
        let (filter, params) = match &after {
            Some(after) => (
                format!(
                    "WHERE ({columns}) > (SELECT {columns} FROM \
                     json_populate_record(NULL::{relation}, $1::json))"
                ),
                vec![Param::Text(after.clone())],
            ),
            None => (String::new(), Vec::new()),
        };
        self.db.query(
            &format!("SELECT * FROM {relation} {filter} ORDER BY {columns} LIMIT {max}"),
            &params,
        )?;
        let rows = self.db.fetch(max)?;
        let mut records = Records::new();
        let mut last = None;
        for row in rows.iter() {
            let value = row.value().unwrap_or_default();
            let text = std::str::from_utf8(value)
                .map_err(|e| Error::Fatal(format!("a row is not UTF-8: {e}")))?;
            let row_key = key_of(text, &key)?;
            records.push(RecordRef {
                key: row_key.as_deref().map(str::as_bytes),
                value: Some(value),
                headers: &[("table", table.as_bytes())],
                timestamp_ms: None,
                op: Some(ChangeOp::Snapshot),
            });
            last = row_key;
        }
        let snapshot = self.snapshot.as_mut().expect("a snapshot is being read");
        if (records.len() as u32) < max {
            log::info(&format!("snapshot of `{table}` read"));
            snapshot.tables.remove(0);
            snapshot.after = None;
        } else {
            snapshot.after = last;
        }
        Ok(records)
    }

    /// Each change's row as `row_to_json` of its table's row type gives it, with only the
    /// columns the change carried, in the changes' order: one query per table.
    fn typed(&self, changes: &[Pending]) -> Result<Vec<String>> {
        let mut typed = vec![String::new(); changes.len()];
        let mut tables: Vec<&(String, String)> = changes.iter().map(|c| &c.table).collect();
        tables.sort();
        tables.dedup();
        for table in tables {
            let at: Vec<usize> = (0..changes.len())
                .filter(|&i| changes[i].table == *table)
                .collect();
            let rows: Vec<&str> = at.iter().map(|&i| changes[i].columns.as_str()).collect();
            self.db.query(
                &format!(
                    // json, not jsonb, all the way: a json column's text is kept as
                    // written, and every value as the row type's input reads it.
                    "SELECT coalesce('{{' || (SELECT string_agg(to_json(e.key)::text || ':' || \
                       e.value::text, ',' ORDER BY e.n) \
                       FROM json_each(row_to_json(json_populate_record(NULL::{}, c))) \
                         WITH ORDINALITY AS e(key, value, n) \
                       WHERE e.key IN (SELECT json_object_keys(c))) || '}}', '{{}}') AS r \
                     FROM json_array_elements($1::json) WITH ORDINALITY AS t(c, i) ORDER BY i",
                    ident(&format!("{}.{}", table.0, table.1))
                ),
                &[Param::Text(format!("[{}]", rows.join(",")))],
            )?;
            let fetched = self.db.fetch(at.len() as u32 + 1)?;
            if fetched.len() != at.len() {
                return Err(Error::Fatal(format!(
                    "{} changes of {}.{} came back as {} rows",
                    at.len(),
                    table.0,
                    table.1,
                    fetched.len()
                )));
            }
            #[derive(Deserialize)]
            struct Typed {
                r: String,
            }
            for (&i, row) in at.iter().zip(fetched.iter()) {
                let row: Typed = serde_json::from_slice(row.value().unwrap_or_default())
                    .map_err(|e| Error::Fatal(format!("unexpected typed row: {e}")))?;
                typed[i] = row.r;
            }
        }
        Ok(typed)
    }
}

impl StreamSource for PostgresCdc {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        let db = Connection::open()?;
        let slot = config.slot.clone();
        let exists = slot_exists(&db, &slot)?;
        let checkpoint = match checkpoint {
            Some(_) if !exists && config.snapshot != SnapshotMode::WhenNeeded => {
                return Err(Error::Config(format!(
                    "replication slot `{slot}` is gone (dropped, or invalidated when the WAL \
                     it held passed max_slot_wal_keep_size): the changes since this \
                     pipeline's checkpoint are lost. Set `snapshot = \"when_needed\"` to read \
                     the tables again and go on, or reset the pipeline's checkpoint"
                )));
            }
            Some(_) if !exists => {
                log::warn(&format!(
                    "replication slot `{slot}` is gone: making it again and reading the tables anew"
                ));
                None
            }
            other => other,
        };
        if !exists {
            db.execute(
                "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
                &[Param::Text(slot.clone())],
            )?;
        }
        let fresh = checkpoint.is_none();
        let mut cdc = PostgresCdc {
            db,
            emitted: checkpoint.as_ref().and_then(|c| c.lsn.clone()),
            snapshot: checkpoint.and_then(|c| c.snapshot),
            keys: HashMap::new(),
            last_heartbeat: std::time::Instant::now(),
            pending: 0,
            config,
        };
        if fresh && cdc.config.snapshot != SnapshotMode::Never {
            cdc.snapshot = Some(cdc.begin_snapshot()?);
        }
        Ok(cdc)
    }

    fn poll(&mut self, max_records: u32, _max_wait: Duration) -> Result<Batch<Checkpoint>> {
        if self.snapshot.as_ref().is_some_and(|s| !s.tables.is_empty()) {
            let records = self.snapshot_chunk(max_records)?;
            return Ok(Batch::new(records, self.checkpoint()));
        }
        let rows = loop {
            // Peeking replays every change not yet acknowledged: ask for those and `max`
            // more. After a restart `pending` is unknown; a peek that comes back full of
            // delivered changes says how many there are, and the next one asks past them.
            let upto = self.pending + u64::from(max_records);
            let peek = self.peek(upto, max_records)?;
            if peek.peeked == 0 {
                // Nothing for these tables up to the server's tip: the slot may pass it.
                metrics::gauge_set("cdc_lag_ms", 0);
                let beat = Duration::from_millis(self.config.heartbeat_ms);
                if let Some(tip) = &peek.tip
                    && self.config.heartbeat_ms > 0
                    && self.last_heartbeat.elapsed() >= beat
                {
                    self.advance(tip)?;
                    self.last_heartbeat = std::time::Instant::now();
                }
            }
            if !peek.rows.is_empty() || peek.peeked < upto {
                break peek.rows;
            }
            self.pending = peek.peeked;
        };
        if let Some(ts) = rows.last().and_then(|r| r.ts_ms) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            metrics::gauge_set("cdc_lag_ms", (now - ts).max(0) as u64);
        }
        let mut dead = Vec::new();
        let mut changes = Vec::new();
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
            // The snapshot's rows hold what its transactions did. In commit order they all
            // come before any other, so the first change it did not see ends the check.
            if let (Some(snapshot), Some(xid)) = (&self.snapshot, change.xid) {
                if snapshot.seen.saw(xid as u32) {
                    continue;
                }
                self.snapshot = None;
            }
            let op = match change.action.as_str() {
                "I" => ChangeOp::Create,
                "U" => ChangeOp::Update,
                "D" => ChangeOp::Delete,
                // Truncates and messages carry no row.
                _ => continue,
            };
            let columns = if op == ChangeOp::Delete {
                &change.identity
            } else {
                &change.columns
            };
            changes.push(Pending {
                op,
                columns: object(columns)?,
                pk: change.pk.into_iter().map(|pk| pk.name).collect(),
                table: (change.schema, change.table),
                ts_ms: row.ts_ms,
            });
        }
        let typed = self.typed(&changes)?;
        let mut records = Records::new();
        for (change, row) in changes.iter().zip(&typed) {
            let key = key_of(row, &change.pk)?;
            let table = format!("{}.{}", change.table.0, change.table.1);
            records.push(RecordRef {
                key: key.as_deref().map(str::as_bytes),
                value: Some(row.as_bytes()),
                headers: &[("table", table.as_bytes())],
                timestamp_ms: change.ts_ms,
                op: Some(change.op),
            });
        }
        if let Some(lsn) = &last {
            self.pending += rows.len() as u64;
            self.emitted = Some(lsn.clone());
        }
        let mut batch = Batch::new(records, self.checkpoint());
        batch.dead_letters = dead;
        Ok(batch)
    }

    /// The host committed `checkpoint`: the slot may forget everything up to it. A
    /// checkpoint from before the first change (an idle slot) moves nothing.
    fn ack(&mut self, checkpoint: Checkpoint) -> Result<()> {
        let Some(lsn) = checkpoint.lsn else {
            return Ok(());
        };
        // Only ever forward: the slot may be past it already (acknowledged before a restart).
        self.advance(&lsn)?;
        if self.emitted.as_deref() == Some(lsn.as_str()) {
            self.pending = 0;
        }
        // What the slot holds the server to keep: WAL not yet acknowledged.
        let lag = one(
            &self.db,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[Param::Text(self.config.slot.clone())],
        )?;
        if let Ok(bytes) = lag.parse::<u64>() {
            metrics::gauge_set("cdc_slot_lag_bytes", bytes);
        }
        Ok(())
    }
}

weir_guest::export_stream_source!(PostgresCdc);
