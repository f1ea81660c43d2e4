//! A batch source that misbehaves on purpose, for the host's containment tests.
//! `mode` picks the misbehaviour; `ok` emits `count` records like a well-behaved source.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::{Batch, BatchSource, Connector, Error, Records, Result};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    mode: Mode,
    #[serde(default)]
    count: u64,
    /// What `read-path`, `socket` and `http` reach for: a path, `host:port` or a URL;
    /// for `plant-link`, `link=points-to` pairs separated by `;`.
    #[serde(default)]
    target: String,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Ok,
    /// Fails with a transient error on every other call, then succeeds.
    Flaky,
    Trap,
    Loop,
    Oom,
    StackOverflow,
    /// Reads the file `target` and emits its lines: a leak if it works.
    ReadPath,
    /// Opens a TCP connection to `target` with wasi sockets.
    Socket,
    /// GETs the URL `target` through the host's HTTP.
    Http,
    /// GETs the URL `target` with its own `Host` header, naming another server.
    HttpHostHeader,
    /// Returns one batch of 48 MiB.
    Huge,
    /// Creates each symbolic link `target` names (in a granted writable directory), then
    /// emits `count` records: links for the host to follow later, if it would.
    PlantLink,
    /// Logs `count` lines of 1 KiB as fast as it can, then ends.
    LogFlood,
    /// Prints `count` lines to stdout and as many to stderr, then ends.
    Print,
    /// Opens SQL connections and keeps them until the host refuses one.
    HoardSql,
    /// Opens a SQL connection, then replication streams (each on a slot of its own) and
    /// keeps them until the host refuses one.
    HoardReplication,
    /// Opens a replication stream on slot `target`, writes `count` rows of 1 KiB, and
    /// then never reads: it sleeps in SQL for 20 s, leaving the host to hold what arrives.
    UnreadReplication,
    /// Runs `SELECT pg_sleep(x)` for each x in `target` (`0.6,5`), all in one call.
    SqlSleep,
    /// Reads 1..=`count` from a query, fetching as many rows at a time as `target` says in
    /// turn (`1,7,3`), and emits them; then leaves a second query part read for a
    /// statement and a transaction on the same connection. Not hostile: it checks that
    /// the host hands out every row once, in order, whatever sizes the plugin asks for.
    SqlFetchSteps,
    /// Opens Kafka producers and keeps them until the host refuses one.
    HoardKafka,
    /// Opens readers of Kinesis stream `target`'s first shard and keeps them until the
    /// host refuses one.
    HoardKinesis,
    /// Writes the file `target` (in a grant that may be read-only).
    WritePath,
    /// Emits what it can see of the host process: environment variables and arguments.
    Environ,
}

pub struct Hostile {
    mode: Mode,
    target: String,
    calls: u64,
    next: u64,
    end: u64,
}

impl Connector for Hostile {
    const NAME: &'static str = "hostile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Misbehaves on purpose (tests only).";
    type Config = Config;
}

impl BatchSource for Hostile {
    type Checkpoint = u64;

    fn open(config: Config, checkpoint: Option<u64>) -> Result<Self> {
        Ok(Hostile {
            mode: config.mode,
            target: config.target,
            calls: 0,
            next: checkpoint.unwrap_or(0),
            end: config.count,
        })
    }

    fn next(&mut self, max_records: u32) -> Result<Option<Batch<u64>>> {
        self.calls += 1;
        match self.mode {
            Mode::Ok => {}
            Mode::Flaky if self.calls % 2 == 1 => {
                return Err(Error::Transient(format!("flaky call {}", self.calls)));
            }
            Mode::Flaky => {}
            Mode::Trap => panic!("hostile plugin panics on purpose"),
            Mode::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Mode::Oom => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::StackOverflow => {
                std::hint::black_box(recurse(std::hint::black_box(1)));
            }
            Mode::ReadPath => {
                let text = std::fs::read_to_string(&self.target)
                    .map_err(|e| Error::Fatal(format!("cannot read {}: {e}", self.target)))?;
                return Ok(self.leak(text.lines().map(str::to_string)));
            }
            Mode::Socket => {
                std::net::TcpStream::connect(&self.target)
                    .map_err(|e| Error::Fatal(format!("cannot connect to {}: {e}", self.target)))?;
                return Ok(self.leak(std::iter::once("connected".to_string())));
            }
            Mode::Http | Mode::HttpHostHeader if self.next >= self.end => return Ok(None),
            Mode::Http => {
                let response = weir_guest::http::get(&self.target)?;
                return Ok(self.leak(std::iter::once(format!("status {}", response.status))));
            }
            Mode::HttpHostHeader => {
                let mut request = weir_guest::http::request("GET", &self.target);
                request.headers.push(("Host".into(), "evil.example".into()));
                let response = weir_guest::http::send(&request)?;
                return Ok(self.leak(std::iter::once(format!("status {}", response.status))));
            }
            Mode::Huge if self.next < self.end => {
                let mut records = Records::new();
                let value = vec![b'x'; 1 << 20];
                for _ in 0..48 {
                    records.push_value(&value);
                }
                self.next = self.end;
                return Ok(Some(Batch::new(records, self.end)));
            }
            Mode::Huge => {}
            Mode::PlantLink if self.calls == 1 => {
                for pair in self.target.split(';').filter(|p| !p.is_empty()) {
                    let (link, points_to) = pair
                        .split_once('=')
                        .ok_or_else(|| Error::Config(format!("`{pair}` is not link=points-to")))?;
                    plant_link(link, points_to)?;
                }
            }
            Mode::PlantLink => {}
            Mode::Print => {
                use std::io::Write;
                for i in 0..self.end {
                    println!("stdout line {i}");
                    eprintln!("stderr line {i}");
                }
                let _ = std::io::stdout().flush();
                return Ok(None);
            }
            Mode::LogFlood => {
                let line = "x".repeat(1024);
                for i in 0..self.end {
                    weir_guest::log::with_fields(
                        weir_guest::log::LogLevel::Info,
                        &line,
                        &[("flood", &i.to_string())],
                    );
                }
                return Ok(None);
            }
            Mode::WritePath => {
                std::fs::write(&self.target, b"pwned\n")
                    .map_err(|e| Error::Fatal(format!("cannot write {}: {e}", self.target)))?;
                return Ok(self.leak(std::iter::once("written".to_string())));
            }
            Mode::Environ => {
                let seen = std::env::vars()
                    .map(|(k, v)| format!("env {k}={v}"))
                    .chain(std::env::args().map(|a| format!("arg {a}")));
                return Ok(self.leak(seen.chain(std::iter::once("end".to_string()))));
            }
            Mode::SqlSleep => {
                let db = weir_guest::sql::Connection::open()?;
                for seconds in self.target.split(',') {
                    db.execute(&format!("SELECT pg_sleep({seconds})"), &[])?;
                }
                return Ok(self.leak(std::iter::once("slept".to_string())));
            }
            Mode::SqlFetchSteps => {
                use weir_guest::sql::{Connection, Statement, Value};
                let db = Connection::open()?;
                db.query(
                    "SELECT n FROM generate_series(1, $1) n",
                    &[Value::Int(self.end as i64)],
                )?;
                let mut seen = Vec::new();
                for step in self.target.split(',').cycle() {
                    let step: u32 = step.parse().map_err(|_| Error::Config(step.into()))?;
                    let rows = db.fetch(step)?;
                    seen.extend(rows.iter().map(|r| {
                        String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()
                    }));
                    if rows.len() < step as usize {
                        break;
                    }
                }
                db.query("SELECT n FROM generate_series(1, 100000) n", &[])?;
                db.fetch(5)?;
                db.execute("SELECT 1", &[])?;
                db.query("SELECT n FROM generate_series(1, 100000) n", &[])?;
                db.fetch(5)?;
                let done = db.transaction(&[Statement {
                    sql: "SELECT 1".into(),
                    params: vec![],
                }])?;
                seen.push(format!("transaction {done:?}"));
                return Ok(self.leak(seen.into_iter()));
            }
            Mode::HoardSql => {
                let mut held = Vec::new();
                loop {
                    match weir_guest::sql::Connection::open() {
                        Ok(c) => held.push(c),
                        Err(e) => return Err(refused(held.len(), e)),
                    }
                }
            }
            Mode::HoardReplication => {
                let db = weir_guest::sql::Connection::open()?;
                let mut held = vec![];
                loop {
                    let slot = format!("hoard_{}", held.len());
                    db.execute(
                        "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
                        &[weir_guest::sql::Value::Text(slot.clone())],
                    )?;
                    match weir_guest::sql::Replication::open(&slot, None, &[]) {
                        Ok(r) => held.push(r),
                        Err(e) => return Err(refused(held.len() + 1, e)),
                    }
                }
            }
            Mode::UnreadReplication => {
                use weir_guest::sql::{Connection, Replication, Value};
                let db = Connection::open()?;
                db.execute(
                    "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
                    &[Value::Text(self.target.clone())],
                )?;
                let options = [("format-version".to_string(), "2".to_string())];
                let _stream = Replication::open(&self.target, None, &options)?;
                db.execute("CREATE TABLE IF NOT EXISTS unread (x text)", &[])?;
                db.execute(
                    "INSERT INTO unread SELECT repeat('x', 1024) FROM generate_series(1, $1)",
                    &[Value::Int(self.end as i64)],
                )?;
                db.execute("SELECT pg_sleep(20)", &[])?;
                return Ok(self.leak(std::iter::once("slept".to_string())));
            }
            Mode::HoardKafka => {
                let mut held = Vec::new();
                loop {
                    match weir_guest::kafka::Producer::open() {
                        Ok(p) => held.push(p),
                        Err(e) => return Err(refused(held.len(), e)),
                    }
                }
            }
            Mode::HoardKinesis => {
                use weir_guest::kinesis::{ReadError, ShardReader, StartAt, list_shards};
                let shard = list_shards(&self.target)?.remove(0).id;
                let mut held = Vec::new();
                loop {
                    match ShardReader::open(&self.target, &shard, &StartAt::TrimHorizon) {
                        Ok(r) => held.push(r),
                        Err(ReadError::Other(e)) => return Err(refused(held.len(), e)),
                        Err(ReadError::Throttled(why)) => return Err(Error::Transient(why)),
                    }
                }
            }
        }
        if self.next >= self.end {
            return Ok(None);
        }
        let end = (self.next + u64::from(max_records)).min(self.end);
        let mut records = Records::new();
        for n in self.next..end {
            records.push_value(format!("{{\"n\":{n}}}").as_bytes());
        }
        self.next = end;
        Ok(Some(Batch::new(records, end)))
    }
}

impl Hostile {
    /// Whatever an attack got hold of, as records, once: what a test must never see.
    fn leak(&mut self, lines: impl Iterator<Item = String>) -> Option<Batch<u64>> {
        if self.next >= self.end {
            return None;
        }
        let mut records = Records::new();
        for line in lines {
            records.push_value(serde_json::json!({ "leaked": line }).to_string().as_bytes());
        }
        self.next = self.end;
        Some(Batch::new(records, self.end))
    }
}

/// The host's refusal, saying how many were held when it came.
fn refused(held: usize, e: Error) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("held {held}, then: {m}")),
        Error::Transient(m) => Error::Transient(format!("held {held}, then: {m}")),
        Error::Fatal(m) => Error::Fatal(format!("held {held}, then: {m}")),
    }
}

/// `link` (an absolute guest path in a writable grant) made a symbolic link to
/// `points_to`, with WASI's own call: std has no stable one for WASI.
fn plant_link(link: &str, points_to: &str) -> Result<()> {
    use wasi::filesystem::preopens::get_directories;
    for (dir, guest) in get_directories() {
        let root = format!("{}/", guest.trim_end_matches('/'));
        if let Some(rest) = link.strip_prefix(&root) {
            return dir
                .symlink_at(points_to, rest)
                .map_err(|e| Error::Fatal(format!("cannot link {link} -> {points_to}: {e:?}")));
        }
    }
    Err(Error::Config(format!("{link} is in no granted directory")))
}

/// Scalars only, so every frame is on wasm's own call stack (not Rust's shadow stack in
/// linear memory) and the engine's stack limit is what stops it.
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(depth)
}

weir_guest::export_batch_source!(Hostile);
