//! `kinesis-source` (stream): reads every shard of a Kinesis stream through the host and
//! follows splits and merges. A shard is read only once each of its parents was read to
//! its end *and that end is committed*, so a partition key's records arrive in order across
//! a reshard, and a closed parent is always read out. The checkpoint is per shard: the
//! sequence number of the last record delivered, or `ended`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_guest::kinesis::{ReadError, Shard, ShardReader, StartAt, kpl, list_shards};
use weir_guest::log::{self, LogLevel};
use weir_guest::{Batch, Connector, Error, RecordRef, Records, Result, StreamSource, metrics};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stream to read; the pipeline's `grants.kinesis` must name it.
    stream: String,
    /// Where a new pipeline starts: `trim_horizon` (the oldest record the stream keeps),
    /// `latest` (what arrives from its first start on) or `{ at_timestamp = <ms> }`.
    #[serde(default)]
    start: Start,
    /// How often to look for new shards besides when a shard ends, in milliseconds.
    #[serde(default = "default_shard_refresh_ms")]
    shard_refresh_ms: u64,
    /// Records the Kinesis Producer Library aggregated are split into their user records.
    #[serde(default = "yes")]
    deaggregate: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Start {
    #[default]
    TrimHorizon,
    Latest,
    /// Milliseconds since the Unix epoch.
    AtTimestamp(i64),
}

fn default_shard_refresh_ms() -> u64 {
    10_000
}
fn yes() -> bool {
    true
}

const ENDED: &str = "ended";
/// Throttled reads of a shard back off from this, doubling, to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Where a shard with no position starts: at this time (ms) if set, else at the oldest
    /// record kept. `latest` is fixed here at the first start, so a restart before any
    /// record arrived still reads what came meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_ms: Option<i64>,
    /// Per shard: the sequence number of the last record delivered, or `ended`.
    #[serde(default)]
    shards: BTreeMap<String, String>,
}

impl Checkpoint {
    fn ended(&self, shard: &str) -> bool {
        self.shards.get(shard).is_some_and(|p| p == ENDED)
    }
}

/// A shard being read.
struct Reading {
    shard: String,
    reader: ShardReader,
    /// Opened at the checkpoint's record, which must come first (and is skipped): if
    /// another comes, the stream's retention dropped what lay between.
    expect: Option<String>,
    backoff: Duration,
    resume_at: Option<Instant>,
    /// How far behind the stream's tip the last read was, as the service says.
    behind: Option<i64>,
}

pub struct KinesisSource {
    config: Config,
    /// After the last batch handed out.
    at: Checkpoint,
    /// The last checkpoint the host committed: children wait on their parents' ends here.
    committed: Checkpoint,
    /// The stream's shards at the last listing.
    shards: BTreeMap<String, Shard>,
    readers: Vec<Reading>,
    next_listing: Instant,
    /// Where the next round of reads begins, so no shard always goes first.
    turn: usize,
    /// Until every shard has said it is at the tip once (or `FIRST_READ` passed since
    /// opening), an empty poll reads on: GetRecords answers empty now and then far from
    /// the tip, and a run that stops when the source is idle must not stop there.
    caught_up: bool,
    opened: Instant,
}

/// The longest a new source reads on before an empty poll may answer.
const FIRST_READ: Duration = Duration::from_secs(15);

impl Connector for KinesisSource {
    const NAME: &'static str = "kinesis-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Reads a Kinesis stream shard by shard, following splits and merges: \
         a child shard only after its parents' ends are committed.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        if config.stream.is_empty() {
            return Err(Error::Config("config field `stream`: name a stream".into()));
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl KinesisSource {
    /// Lists the shards, forgets those gone from the stream, and opens a reader for every
    /// shard that may be read now.
    fn refresh(&mut self) -> Result<()> {
        self.shards = list_shards(&self.config.stream)?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        self.next_listing = Instant::now() + Duration::from_millis(self.config.shard_refresh_ms);
        // A shard past the stream's retention is no longer listed: its entry goes, and a
        // shard that had not been read to its end lost records.
        let shards = &self.shards;
        self.at.shards.retain(|id, position| {
            let kept = shards.contains_key(id);
            if !kept && position != ENDED {
                log::with_fields(
                    LogLevel::Warn,
                    "a shard left the stream (past its retention) before it was read to its end",
                    &[("shard", id.as_str()), ("last_read", position.as_str())],
                );
                metrics::counter_add("kinesis_shards_expired_unread", 1);
            }
            kept
        });
        let ready: Vec<String> = self
            .shards
            .values()
            .filter(|s| !self.at.ended(&s.id))
            .filter(|s| !self.readers.iter().any(|r| r.shard == s.id))
            .filter(|s| {
                // A parent no longer listed is past retention: nothing of it is left to read.
                [&s.parent, &s.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .all(|p| !self.shards.contains_key(p) || self.committed.ended(p))
            })
            .map(|s| s.id.clone())
            .collect();
        for shard in ready {
            if let Some(reading) = self.open_reader(shard)? {
                self.readers.push(reading);
            }
        }
        Ok(())
    }

    fn open_reader(&mut self, shard: String) -> Result<Option<Reading>> {
        let stream = &self.config.stream;
        let (start, expect) = match self.at.shards.get(&shard) {
            Some(seq) => (StartAt::AtSequenceNumber(seq.clone()), Some(seq.clone())),
            None => match self.at.since_ms {
                Some(ms) => (StartAt::AtTimestamp(ms), None),
                None => (StartAt::TrimHorizon, None),
            },
        };
        let reader = match ShardReader::open(stream, &shard, &start) {
            Ok(reader) => reader,
            Err(ReadError::Throttled(why)) => {
                log::with_fields(
                    LogLevel::Info,
                    "opening a shard was throttled; trying again later",
                    &[("why", &why)],
                );
                self.next_listing = Instant::now() + FIRST_BACKOFF;
                return Ok(None);
            }
            Err(ReadError::Other(Error::Config(why)))
                if expect.is_some() && why.contains("InvalidArgumentException") =>
            {
                // The checkpoint's record is no longer in the stream.
                aged_out(&shard, &why);
                ShardReader::open(stream, &shard, &StartAt::TrimHorizon).map_err(read_failed)?
            }
            Err(e) => return Err(read_failed(e)),
        };
        Ok(Some(Reading {
            shard,
            reader,
            expect,
            backoff: FIRST_BACKOFF,
            resume_at: None,
            behind: None,
        }))
    }

    /// Reads each shard once, in turn, into `records`; true if a shard ended.
    fn read_round(&mut self, records: &mut Records, max: usize) -> Result<bool> {
        let mut ended = false;
        let n = self.readers.len();
        let now = Instant::now();
        for k in 0..n {
            if records.len() >= max {
                break;
            }
            let reading = &mut self.readers[(self.turn + k) % n];
            if reading.resume_at.is_some_and(|at| at > now) {
                continue;
            }
            let got = match reading.reader.read((max - records.len()) as u32) {
                Ok(got) => got,
                Err(ReadError::Throttled(why)) => {
                    metrics::counter_add("kinesis_throttled", 1);
                    log::with_fields(
                        LogLevel::Debug,
                        "a shard's reads are throttled; backing off",
                        &[("why", &why)],
                    );
                    reading.resume_at = Some(Instant::now() + reading.backoff);
                    reading.backoff = (reading.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(ReadError::Other(e)) => return Err(e),
            };
            reading.backoff = FIRST_BACKOFF;
            reading.resume_at = None;
            if let Some(lag) = got.millis_behind_latest {
                metrics::gauge_set("kinesis_millis_behind_latest", lag.max(0) as u64);
            }
            reading.behind = got.millis_behind_latest.or(Some(0));
            for (record, seq) in got.records.iter().zip(&got.sequence_numbers) {
                if let Some(expected) = reading.expect.take() {
                    if *seq == expected {
                        continue; // delivered before the restart
                    }
                    aged_out(&reading.shard, &format!("the first record kept is {seq}"));
                }
                let value = record.value().unwrap_or_default();
                match kpl::deaggregate(value).filter(|_| self.config.deaggregate) {
                    Some(users) => {
                        for user in users {
                            records.push(RecordRef {
                                key: Some(user.partition_key.as_bytes()),
                                value: Some(user.data),
                                headers: &[],
                                timestamp_ms: record.timestamp_ms(),
                                op: None,
                            });
                        }
                    }
                    None => records.push(RecordRef {
                        key: record.key(),
                        value: Some(value),
                        headers: &[],
                        timestamp_ms: record.timestamp_ms(),
                        op: None,
                    }),
                }
            }
            if let Some(last) = got.sequence_numbers.last() {
                self.at.shards.insert(reading.shard.clone(), last.clone());
            }
            if got.ended {
                self.at.shards.insert(reading.shard.clone(), ENDED.into());
                ended = true;
            }
        }
        self.turn = self.turn.wrapping_add(1);
        let at = &self.at;
        self.readers.retain(|r| !at.ended(&r.shard));
        Ok(ended)
    }
}

fn aged_out(shard: &str, why: &str) {
    log::with_fields(
        LogLevel::Warn,
        "the checkpoint's record is past the stream's retention: reading the shard from the oldest record kept",
        &[("shard", shard), ("why", why)],
    );
    metrics::counter_add("kinesis_resumed_at_trim_horizon", 1);
}

fn read_failed(e: ReadError) -> Error {
    match e {
        ReadError::Throttled(why) => Error::Transient(why),
        ReadError::Other(e) => e,
    }
}

impl StreamSource for KinesisSource {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        Self::check(&config)?;
        let at = checkpoint.unwrap_or_else(|| Checkpoint {
            since_ms: match config.start {
                Start::TrimHorizon => None,
                Start::Latest => Some(now_ms()),
                Start::AtTimestamp(ms) => Some(ms),
            },
            shards: BTreeMap::new(),
        });
        let mut source = KinesisSource {
            config,
            committed: at.clone(),
            at,
            shards: BTreeMap::new(),
            readers: Vec::new(),
            next_listing: Instant::now(),
            turn: 0,
            caught_up: false,
            opened: Instant::now(),
        };
        source.refresh()?;
        Ok(source)
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Checkpoint>> {
        let deadline = Instant::now() + max_wait;
        let before = self.at.clone();
        let mut records = Records::new();
        let max = max_records.max(1) as usize;
        loop {
            if Instant::now() >= self.next_listing {
                self.refresh()?;
            }
            if self.read_round(&mut records, max)? {
                // Its children may be listed already; they wait for the end's commit.
                self.next_listing = Instant::now();
            }
            let now = Instant::now();
            if !self.caught_up
                && (self.readers.iter().all(|r| r.behind == Some(0))
                    || self.opened.elapsed() >= FIRST_READ)
            {
                self.caught_up = true;
            }
            if !records.is_empty() || self.at != before || now >= deadline && self.caught_up {
                break;
            }
            if self
                .readers
                .iter()
                .all(|r| r.resume_at.is_some_and(|at| at > now))
            {
                // Nothing to read now (children waiting on a commit, throttled shards).
                let left = deadline.saturating_duration_since(now);
                let pause = if left.is_zero() {
                    Duration::from_millis(100)
                } else {
                    left
                };
                std::thread::sleep(Duration::from_millis(100).min(pause));
            }
        }
        Ok(Batch::new(records, self.at.clone()))
    }

    fn ack(&mut self, checkpoint: Checkpoint) -> Result<()> {
        let newly_ended = checkpoint
            .shards
            .iter()
            .any(|(id, p)| p == ENDED && !self.committed.ended(id));
        self.committed = checkpoint;
        if newly_ended {
            self.next_listing = Instant::now();
        }
        Ok(())
    }
}

weir_guest::export_stream_source!(KinesisSource);
