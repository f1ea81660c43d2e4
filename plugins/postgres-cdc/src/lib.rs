//! postgres-cdc: change data capture from PostgreSQL's logical replication: a replication
//! slot decoded by wal2json, streamed over the replication protocol.
//!
//! The server decodes each change once and sends it as its transaction commits, in commit
//! order. The slot's confirmed position moves only in `ack`, which the host calls after the
//! sink flushed and the checkpoint is committed, so after a crash the server sends again
//! everything after the last ack. A checkpoint names a place between two transactions (the
//! end of the last one delivered whole) and, when a batch ended inside a transaction, how
//! many of that transaction's changes were delivered: those are skipped when it comes again.
//! (A change's own WAL position cannot serve: positions interleave across transactions that
//! ran at once.) Each change becomes a flat change record like the Debezium source's: the
//! row as a JSON object (the old key for a delete), its primary key as the key, create /
//! update / delete as the op, and the transaction's commit time as the timestamp.
//!
//! wal2json hands every value over as its text (a jsonb document as a JSON string, an array
//! as `{1,2}`). Each batch is turned back into typed rows by the database itself
//! (`json_populate_record` into the table's row type, then `row_to_json`), so a change maps
//! every type exactly as postgres-source does. A column an update did not carry (an
//! unchanged TOASTed value) is left out, not sent as null. A column added mid-stream is
//! carried from the first change that has it; one the table no longer has when the change
//! is read (dropped or renamed since) keeps the value wal2json gave.
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
use std::time::{Duration, Instant};
use weir_guest::sql::{Connection, Replication, Value as Param, ident, lsn_parse, lsn_text};
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
/// Where the stream stands: after the last transaction delivered whole, and inside the next
/// one when a batch ended there; and the initial snapshot while it is read and until the
/// stream is past it.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The end of the last transaction delivered whole (none before the first): the slot
    /// may move here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<Within>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Snapshot>,
}

/// The transaction after `lsn`, delivered in part: where it commits, and how many of its
/// changes were delivered.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct Within {
    commit: String,
    done: u64,
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
    /// The replication stream, opened when the snapshot is read; dropped when it fails,
    /// and opened again from where delivery stands.
    stream: Option<Replication>,
    /// Where the changes handed to the host end: the last transaction delivered whole.
    lsn: Option<u64>,
    /// The transaction being read.
    txn: Option<Txn>,
    /// Set when the stream (re)opens inside a transaction: its commit position and how
    /// many of its changes were delivered already.
    resume: Option<(u64, u64)>,
    /// The initial snapshot, as the next checkpoint will say.
    snapshot: Option<Snapshot>,
    /// Each table's primary key columns, once asked.
    keys: HashMap<String, Vec<String>>,
    /// The slot's confirmed position as far as this instance knows: never confirm behind.
    confirmed: u64,
    /// The furthest position the host acknowledged.
    acked: u64,
    /// The last checkpoint handed out and the last one acknowledged: a heartbeat may move
    /// the slot only when everything handed out is acknowledged.
    handed: Checkpoint,
    acknowledged: Checkpoint,
    /// When the slot was last moved past an idle stretch.
    last_heartbeat: Instant,
    /// The server's WAL position when the stream opened; and whether the server said it
    /// had sent everything up to there.
    tip: u64,
    caught_up: bool,
}

/// A transaction as it streams: where it commits and ends, how many of its changes were
/// read, and how many of those to skip (delivered before a restart).
struct Txn {
    commit: u64,
    end: u64,
    done: u64,
    skip: u64,
    ts_ms: Option<i64>,
}

/// How long the first read of a new stream may wait for the server to say how much it
/// holds, so a run that stops when the source is idle does not stop before the backlog.
const FIRST_READ: Duration = Duration::from_secs(10);

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
        slot_position(&db, &config.slot).map(|_| ())
    }
}

/// The slot's confirmed position, if the slot is there (and decodes with wal2json).
fn slot_position(db: &Connection, slot: &str) -> Result<Option<u64>> {
    db.query(
        "SELECT plugin, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots \
         WHERE slot_name = $1",
        &[Param::Text(slot.to_string())],
    )?;
    let found = db.fetch(1)?;
    let Some(row) = found.iter().next().and_then(|r| r.value()) else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Slot {
        plugin: Option<String>,
        confirmed: Option<String>,
    }
    let row: Slot = serde_json::from_slice(row)
        .map_err(|e| Error::Fatal(format!("unexpected row from pg_replication_slots: {e}")))?;
    if row.plugin.as_deref() != Some("wal2json") {
        return Err(Error::Config(format!(
            "replication slot `{slot}` exists but does not decode with wal2json"
        )));
    }
    Ok(Some(
        row.confirmed.as_deref().and_then(lsn_parse).unwrap_or(0),
    ))
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

/// One wal2json (format 2) message: a transaction's begin (`B`) or commit (`C`), or a
/// change.
#[derive(Deserialize)]
struct Message {
    action: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
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
    /// Of a begin or commit: where the transaction commits, and where its commit ends.
    #[serde(default)]
    lsn: Option<String>,
    #[serde(default)]
    nextlsn: Option<String>,
    /// The commit time, as the server prints a timestamptz in ISO style.
    #[serde(default)]
    timestamp: Option<String>,
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
    fn checkpoint(&self) -> Checkpoint {
        let within = match (&self.txn, self.resume) {
            (Some(txn), _) => Some((txn.commit, txn.done.max(txn.skip))),
            (None, resume) => resume,
        };
        Checkpoint {
            lsn: self.lsn.map(lsn_text),
            within: within.map(|(commit, done)| Within {
                commit: lsn_text(commit),
                done,
            }),
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
                    // A column the table no longer has (dropped or renamed before the
                    // change was read) keeps the value wal2json gave, after the others.
                    "SELECT coalesce('{{' || (SELECT string_agg(to_json(u.key)::text || ':' || \
                       u.value::text, ',' ORDER BY u.n) FROM ( \
                         SELECT e.key, e.value, e.n \
                         FROM json_each(row_to_json(json_populate_record(NULL::{t}, c))) \
                           WITH ORDINALITY AS e(key, value, n) \
                         WHERE e.key IN (SELECT json_object_keys(c)) \
                         UNION ALL \
                         SELECT g.key, g.value, 100000 + g.n \
                         FROM json_each(c) WITH ORDINALITY AS g(key, value, n) \
                         WHERE g.key NOT IN (SELECT json_object_keys( \
                           row_to_json(json_populate_record(NULL::{t}, '{{}}'))))) u) \
                       || '}}', '{{}}') AS r \
                     FROM json_array_elements($1::json) WITH ORDINALITY AS t(c, i) ORDER BY i",
                    t = ident(&format!("{}.{}", table.0, table.1))
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

/// A timestamptz as an ISO-style session prints it (`2026-11-30 23:59:39.968682+00`,
/// `+05:30`), as milliseconds since 1970.
fn timestamp_ms(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once(' ')?;
    let mut ymd = date.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) = (
        ymd.next()?.parse().ok()?,
        ymd.next()?.parse().ok()?,
        ymd.next()?.parse().ok()?,
    );
    let zone_at = rest.rfind(['+', '-'])?;
    let (time, zone) = rest.split_at(zone_at);
    let mut hms = time.splitn(3, ':');
    let (h, mi): (i64, i64) = (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    let seconds: f64 = hms.next()?.parse().ok()?;
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let mut parts = zone[1..].split(':').map(|p| p.parse::<i64>());
    let offset = parts.next()?.ok()? * 3600
        + parts.next().unwrap_or(Ok(0)).ok()? * 60
        + parts.next().unwrap_or(Ok(0)).ok()?;
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local_ms = (days * 86_400 + h * 3600 + mi * 60) * 1000 + (seconds * 1000.0).round() as i64;
    Some(local_ms - sign * offset * 1000)
}

impl PostgresCdc {
    /// The stream, opened from where delivery stands when there is none: the server sends
    /// again every transaction after `lsn`, and the one a batch ended inside is skipped
    /// into.
    fn stream(&mut self) -> Result<&Replication> {
        if self.stream.is_none() {
            let mut options: Vec<(String, String)> = [
                ("format-version", "2"),
                ("include-transaction", "1"),
                ("include-lsn", "1"),
                ("include-xids", "1"),
                ("include-timestamp", "1"),
                ("include-pk", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if !self.config.tables.is_empty() {
                options.push(("add-tables".into(), self.config.tables.join(",")));
            }
            let tip = one(&self.db, "SELECT pg_current_wal_lsn()::text AS tip", &[])?;
            self.tip = lsn_parse(&tip)
                .ok_or_else(|| Error::Fatal(format!("the server's position `{tip}`")))?;
            let stream = Replication::open(&self.config.slot, self.lsn, &options)?;
            if let Some(txn) = self.txn.take() {
                self.resume = Some((txn.commit, txn.done.max(txn.skip)));
            }
            self.caught_up = false;
            self.stream = Some(stream);
            self.confirm_acked()?;
        }
        Ok(self.stream.as_ref().expect("opened above"))
    }

    /// Tells the server what the host acknowledged, if that is news to it.
    fn confirm_acked(&mut self) -> Result<()> {
        if self.acked > self.confirmed
            && let Some(stream) = &self.stream
        {
            stream.confirm(self.acked)?;
            self.confirmed = self.acked;
        }
        Ok(())
    }

    /// Up to `max` messages, waiting up to `wait` for the first, and the position the
    /// server said it had sent everything before, if it said so after them. A new stream
    /// answers nothing only once the server has sent what the WAL held when it opened (or
    /// after `FIRST_READ`), so a run that ends when the source is idle reads that backlog
    /// first.
    fn read(
        &mut self,
        max: u32,
        wait: Duration,
    ) -> Result<(Vec<weir_guest::sql::WalMessage>, Option<u64>)> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let started = Instant::now();
        loop {
            let read = match self.stream()?.read(max, wait_ms) {
                Ok(read) => read,
                Err(e) => {
                    // Ended (the server restarted, the connection broke): the next poll
                    // opens it again from where delivery stands.
                    self.stream = None;
                    return Err(e);
                }
            };
            if let Some(at) = read.caught_up {
                self.caught_up |= at >= self.tip;
            }
            if !read.messages.is_empty() || self.caught_up || started.elapsed() >= FIRST_READ {
                return Ok((read.messages, read.caught_up));
            }
        }
    }

    /// The server sent everything before `at`, and this poll read nothing: with nothing
    /// read earlier left unacknowledged, the slot may move there, so WAL written for other
    /// tables is not kept for this one. (A poll that read messages hands them out first:
    /// confirming past them before they are delivered could lose them.)
    fn heartbeat(&mut self, at: u64) -> Result<()> {
        let settled = self.txn.is_none()
            && self.resume.is_none()
            && self.handed.lsn == self.acknowledged.lsn
            && self.handed.within == self.acknowledged.within;
        let beat = Duration::from_millis(self.config.heartbeat_ms);
        if !settled
            || self.config.heartbeat_ms == 0
            || self.last_heartbeat.elapsed() < beat
            || at <= self.confirmed
        {
            return Ok(());
        }
        self.last_heartbeat = Instant::now();
        self.lsn = Some(self.lsn.unwrap_or(0).max(at));
        self.acked = self.acked.max(at);
        self.handed.lsn = self.lsn.map(lsn_text);
        self.acknowledged.lsn = self.handed.lsn.clone();
        self.confirm_acked()
    }

    /// The changes among `messages`, keeping track of where the stream stands.
    fn changes(
        &mut self,
        messages: Vec<weir_guest::sql::WalMessage>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<Vec<Pending>> {
        let mut changes = Vec::new();
        for m in messages {
            let message: Message = match serde_json::from_slice(&m.data) {
                Ok(message) => message,
                Err(e) => {
                    dead.push(DeadLetter {
                        key: None,
                        value: Some(m.data),
                        reason: format!("not a wal2json change at {}: {e}", lsn_text(m.lsn)),
                    });
                    continue;
                }
            };
            match message.action.as_str() {
                "B" => {
                    let (Some(commit), Some(end)) = (
                        message.lsn.as_deref().and_then(lsn_parse),
                        message.nextlsn.as_deref().and_then(lsn_parse),
                    ) else {
                        return Err(Error::Fatal(
                            "wal2json sent a transaction without its positions \
                             (is this wal2json too old for include-lsn in format 2?)"
                                .into(),
                        ));
                    };
                    let skip = match self.resume.take() {
                        Some((at, done)) if at == commit => done,
                        Some((at, _)) => {
                            log::warn(&format!(
                                "the transaction delivered in part (commit {}) did not come \
                                 again; the slot had moved past it",
                                lsn_text(at)
                            ));
                            0
                        }
                        None => 0,
                    };
                    self.txn = Some(Txn {
                        commit,
                        end,
                        done: 0,
                        skip,
                        ts_ms: message.timestamp.as_deref().and_then(timestamp_ms),
                    });
                }
                "C" => {
                    if let Some(txn) = self.txn.take() {
                        self.lsn = Some(txn.end);
                    }
                }
                _ => {
                    let Some(txn) = self.txn.as_mut() else {
                        return Err(Error::Fatal(format!(
                            "a change outside a transaction at {}",
                            lsn_text(m.lsn)
                        )));
                    };
                    txn.done += 1;
                    if txn.done <= txn.skip {
                        continue;
                    }
                    // The snapshot's rows hold what its transactions did. In commit order
                    // they all come before any other, so the first change it did not see
                    // ends the check.
                    if let (Some(snapshot), Some(xid)) = (&self.snapshot, message.xid) {
                        if snapshot.seen.saw(xid as u32) {
                            continue;
                        }
                        self.snapshot = None;
                    }
                    let op = match message.action.as_str() {
                        "I" => ChangeOp::Create,
                        "U" => ChangeOp::Update,
                        "D" => ChangeOp::Delete,
                        // Truncates and messages carry no row.
                        _ => continue,
                    };
                    let columns = if op == ChangeOp::Delete {
                        &message.identity
                    } else {
                        &message.columns
                    };
                    changes.push(Pending {
                        op,
                        columns: object(columns)?,
                        pk: message.pk.into_iter().map(|pk| pk.name).collect(),
                        table: (message.schema, message.table),
                        ts_ms: txn.ts_ms,
                    });
                }
            }
        }
        Ok(changes)
    }
}

impl StreamSource for PostgresCdc {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        let db = Connection::open()?;
        let slot = config.slot.clone();
        let position = slot_position(&db, &slot)?;
        let checkpoint = match checkpoint {
            Some(_) if position.is_none() && config.snapshot != SnapshotMode::WhenNeeded => {
                return Err(Error::Config(format!(
                    "replication slot `{slot}` is gone (dropped, or invalidated when the WAL \
                     it held passed max_slot_wal_keep_size): the changes since this \
                     pipeline's checkpoint are lost. Set `snapshot = \"when_needed\"` to read \
                     the tables again and go on, or reset the pipeline's checkpoint"
                )));
            }
            Some(_) if position.is_none() => {
                log::warn(&format!(
                    "replication slot `{slot}` is gone: making it again and reading the tables anew"
                ));
                None
            }
            other => other,
        };
        if position.is_none() {
            db.execute(
                "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
                &[Param::Text(slot.clone())],
            )?;
        }
        let fresh = checkpoint.is_none();
        let checkpoint = checkpoint.unwrap_or_default();
        let lsn = match &checkpoint.lsn {
            Some(text) => Some(lsn_parse(text).ok_or_else(|| {
                Error::Config(format!("the checkpoint's position `{text}` is not an LSN"))
            })?),
            None => None,
        };
        let resume = match &checkpoint.within {
            Some(w) => Some((
                lsn_parse(&w.commit).ok_or_else(|| {
                    Error::Config(format!(
                        "the checkpoint's commit `{}` is not an LSN",
                        w.commit
                    ))
                })?,
                w.done,
            )),
            None => None,
        };
        let confirmed = position.unwrap_or(0);
        let mut cdc = PostgresCdc {
            db,
            stream: None,
            lsn,
            txn: None,
            resume,
            snapshot: checkpoint.snapshot.clone(),
            keys: HashMap::new(),
            confirmed,
            acked: confirmed,
            handed: checkpoint.clone(),
            acknowledged: checkpoint,
            last_heartbeat: Instant::now(),
            tip: 0,
            caught_up: false,
            config,
        };
        if fresh && cdc.config.snapshot != SnapshotMode::Never {
            cdc.snapshot = Some(cdc.begin_snapshot()?);
        }
        Ok(cdc)
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Checkpoint>> {
        if self.snapshot.as_ref().is_some_and(|s| !s.tables.is_empty()) {
            let records = self.snapshot_chunk(max_records)?;
            return Ok(Batch::new(records, self.checkpoint()));
        }
        // The server sends message by message: read on while they come, so a batch is
        // not a transaction's begin alone. Waiting is for the first change only.
        let started = Instant::now();
        let (mut changes, mut dead) = (Vec::new(), Vec::new());
        let mut read_any = false;
        loop {
            let wait = if changes.is_empty() {
                max_wait.saturating_sub(started.elapsed())
            } else {
                Duration::ZERO
            };
            let room = max_records.saturating_sub(changes.len() as u32).max(1);
            let (messages, caught_up) = match self.read(room, wait) {
                Ok(read) => read,
                // What this poll read is already counted in the position: it is handed
                // out, and the next poll opens the stream again (and fails, if it must).
                Err(e) if read_any => {
                    log::warn(&format!("the replication stream ended: {e:?}"));
                    break;
                }
                Err(e) => return Err(e),
            };
            if messages.is_empty() {
                if let Some(at) = caught_up {
                    metrics::gauge_set("cdc_lag_ms", 0);
                    if !read_any {
                        self.heartbeat(at)?;
                    }
                }
                break;
            }
            read_any = true;
            changes.extend(self.changes(messages, &mut dead)?);
            if changes.len() as u32 >= max_records {
                break;
            }
        }
        if let Some(ts) = changes.last().and_then(|c| c.ts_ms) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            metrics::gauge_set("cdc_lag_ms", (now - ts).max(0) as u64);
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
        let checkpoint = self.checkpoint();
        self.handed = checkpoint.clone();
        let mut batch = Batch::new(records, checkpoint);
        batch.dead_letters = dead;
        Ok(batch)
    }

    /// The host committed `checkpoint`: the slot may forget everything up to it. A
    /// checkpoint from before the first change (an idle slot) moves nothing.
    fn ack(&mut self, checkpoint: Checkpoint) -> Result<()> {
        if let Some(lsn) = checkpoint.lsn.as_deref().and_then(lsn_parse) {
            self.acked = self.acked.max(lsn);
        }
        self.acknowledged = checkpoint;
        self.confirm_acked()?;
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

#[cfg(test)]
mod tests {
    use super::timestamp_ms;

    #[test]
    fn commit_times_read_in_any_zone() {
        assert_eq!(
            timestamp_ms("2026-11-30 23:59:39.968682+00"),
            Some(1_796_083_179_969)
        );
        assert_eq!(
            timestamp_ms("2026-12-01 05:29:39.968682+05:30"),
            Some(1_796_083_179_969)
        );
        assert_eq!(timestamp_ms("1969-12-31 19:00:00-05"), Some(0));
        assert_eq!(
            timestamp_ms("2000-02-29 00:00:00+00"),
            Some(951_782_400_000)
        );
        assert_eq!(timestamp_ms("infinity"), None);
    }
}
