//! object-source: reads the objects under a prefix (S3-compatible storage or a local
//! directory, whichever the pipeline grants), as JSON Lines or CSV, gzip or not.
//!
//! Objects are read in key order, each in ranged pieces, so a large object never has to
//! fit in memory. The checkpoint remembers every object delivered with its ETag: a new
//! object, or one whose content changed, is read on the next run; the rest are not. Inside
//! an object it remembers how many records were delivered, so a run stopped half-way
//! resumes there. Lines that are not JSON go to the dead letters with their place.

use flate2::read::MultiGzDecoder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use weir_guest::formats::{CsvOptions, Header, read_record, trim_newline};
use weir_guest::objects::{self, ObjectInfo};
use weir_guest::{Batch, BatchSource, Connector, DeadLetter, Error, Records, Result};

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// By name: `.csv` / `.csv.gz` is CSV, anything else JSON Lines.
    #[default]
    Auto,
    Jsonl,
    Csv,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Only keys starting with this (under the granted root).
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    format: Format,
    /// How CSV objects are read: delimiter, quote, null values, types.
    #[serde(default)]
    csv: CsvOptions,
}

#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Checkpoint {
    /// Objects read to the end: key → ETag.
    done: BTreeMap<String, String>,
    /// The object being read, and how many records of it are delivered.
    current: Option<Current>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Current {
    key: String,
    etag: String,
    records: u64,
}

/// An object's bytes, fetched a piece at a time through the host.
struct Ranged {
    key: String,
    offset: u64,
    size: u64,
}

const PIECE: u32 = 4 << 20;

impl Read for Ranged {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64)
            .min(u64::from(PIECE))
            .min(self.size - self.offset);
        let bytes = objects::read(&self.key, self.offset, want as u32)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        if bytes.is_empty() {
            return Ok(0);
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.offset += bytes.len() as u64;
        Ok(bytes.len())
    }
}

struct Open {
    info: ObjectInfo,
    etag: String,
    lines: Box<dyn BufRead>,
    csv: Option<Header>,
    /// For a CSV object, how to read it.
    csv_options: Option<CsvOptions>,
    /// Records of this object delivered so far (including skipped ones on resume).
    records: u64,
}

pub struct ObjectSource {
    config: Config,
    checkpoint: Checkpoint,
    /// Objects still to read this run, in key order.
    todo: Vec<ObjectInfo>,
    open: Option<Open>,
    /// After a failed read, the object to reopen and how many of its records were
    /// delivered: the decoder may have consumed part of a line, so it starts over.
    reopen: Option<(ObjectInfo, u64)>,
}

impl Connector for ObjectSource {
    const NAME: &'static str = "object-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reads JSON Lines and CSV objects (gzip or not) from S3-compatible storage or a directory.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        config.csv.quote_byte().map_err(Error::Config)?;
        objects::list(&config.prefix, None, 1).map(|_| ())
    }
}

fn etag(info: &ObjectInfo) -> String {
    info.etag
        .clone()
        .unwrap_or_else(|| format!("{}@{}", info.size, info.last_modified_ms))
}

/// Every object under `prefix`, in key order, a page at a time.
fn list_all(prefix: &str) -> Result<Vec<ObjectInfo>> {
    let mut all: Vec<ObjectInfo> = Vec::new();
    loop {
        let after = all.last().map(|o| o.key.clone());
        let page = objects::list(prefix, after.as_deref(), 1000)?;
        let n = page.len();
        all.extend(page);
        if n < 1000 {
            return Ok(all);
        }
    }
}

impl ObjectSource {
    fn open_object(&mut self, info: ObjectInfo, skip: u64) -> Result<()> {
        let name = info.key.to_ascii_lowercase();
        let gzip = name.ends_with(".gz");
        let base = name.trim_end_matches(".gz");
        let is_csv = match self.config.format {
            Format::Csv => true,
            Format::Jsonl => false,
            Format::Auto => base.ends_with(".csv"),
        };
        let ranged = Ranged {
            key: info.key.clone(),
            offset: 0,
            size: info.size,
        };
        let lines: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                MultiGzDecoder::new(ranged),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, ranged))
        };
        let etag = etag(&info);
        let mut open = Open {
            info,
            etag,
            lines,
            csv: None,
            csv_options: is_csv.then(|| self.config.csv.clone()),
            records: 0,
        };
        // Resuming inside an object: read past what was delivered.
        let mut line = Vec::new();
        while open.records < skip {
            line.clear();
            if next_line(&mut open, &mut line)?.is_none() {
                break;
            }
        }
        self.open = Some(open);
        Ok(())
    }
}

/// The next record's text (CSV rows already as JSON), or None at the end of the object.
fn next_line(open: &mut Open, line: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
    loop {
        line.clear();
        let quote = open.csv_options.as_ref().map(|o| o.quote as u8);
        let read = read_record(&mut open.lines, line, quote)
            .map_err(|e| Error::Transient(format!("{}: {e}", open.info.key)))?;
        if read == 0 {
            return Ok(None);
        }
        let content = trim_newline(line);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let (Some(options), None) = (&open.csv_options, &open.csv) {
            let header = Header::parse(content, options)
                .map_err(|e| Error::Fatal(format!("{}: CSV header: {e}", open.info.key)))?;
            open.csv = Some(header);
            continue;
        }
        open.records += 1;
        return Ok(Some(match &mut open.csv {
            Some(header) => header
                .to_json(content)
                .unwrap_or_else(|e| format!("\u{0}{e}").into_bytes()),
            None => content.to_vec(),
        }));
    }
}

impl BatchSource for ObjectSource {
    type Checkpoint = Checkpoint;

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        // Checked here, so the quote is one ASCII byte wherever it is used.
        config.csv.quote_byte().map_err(Error::Config)?;
        let checkpoint = checkpoint.unwrap_or_default();
        let mut todo: Vec<ObjectInfo> = list_all(&config.prefix)?
            .into_iter()
            .filter(|o| checkpoint.done.get(&o.key) != Some(&etag(o)))
            .collect();
        todo.reverse(); // popped from the end, in key order
        let mut source = ObjectSource {
            config,
            checkpoint,
            todo,
            open: None,
            reopen: None,
        };
        // Resume inside the object a stopped run was reading, if it did not change.
        if let Some(current) = source.checkpoint.current.take()
            && let Some(i) = source
                .todo
                .iter()
                .position(|o| o.key == current.key && etag(o) == current.etag)
        {
            let info = source.todo.remove(i);
            source.open_object(info, current.records)?;
        }
        Ok(source)
    }

    fn next(&mut self, max_records: u32) -> Result<Option<Batch<Checkpoint>>> {
        if let Some((info, delivered)) = self.reopen.take()
            && let Err(e) = self.open_object(info.clone(), delivered)
        {
            self.reopen = Some((info, delivered));
            return Err(e);
        }
        if self.open.is_none() {
            let Some(info) = self.todo.pop() else {
                return Ok(None);
            };
            self.open_object(info, 0)?;
        }
        let open = self.open.as_mut().expect("opened above");
        let delivered = open.records;
        let mut records = Records::with_capacity(max_records as usize, 128 * max_records as usize);
        let mut dead = Vec::new();
        let mut line = Vec::new();
        let mut ended = false;
        while records.len() + dead.len() < max_records as usize {
            let text = match next_line(open, &mut line) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    // The host retries a transient error: this batch is dropped and the
                    // object read again from the last record handed over.
                    let open = self.open.take().expect("open");
                    self.reopen = Some((open.info, delivered));
                    return Err(e);
                }
            };
            // A CSV row that does not fit its header comes back marked; one that does is
            // JSON by construction, so only JSON Lines are checked.
            let problem = match text.strip_prefix(b"\0") {
                Some(e) => Some(String::from_utf8_lossy(e).into_owned()),
                None if open.csv.is_some() => None,
                None => serde_json::from_slice::<serde::de::IgnoredAny>(&text)
                    .err()
                    .map(|e| e.to_string()),
            };
            match problem {
                None => records.push_value(&text),
                Some(e) => dead.push(DeadLetter {
                    key: None,
                    value: Some(text),
                    reason: format!("{} record {}: {e}", open.info.key, open.records),
                }),
            }
        }
        if ended {
            self.checkpoint
                .done
                .insert(open.info.key.clone(), open.etag.clone());
            self.checkpoint.current = None;
            self.open = None;
        } else {
            self.checkpoint.current = Some(Current {
                key: open.info.key.clone(),
                etag: open.etag.clone(),
                records: open.records,
            });
        }
        // An empty object still moves the checkpoint: its (empty) batch is delivered too.
        let mut batch = Batch::new(records, self.checkpoint.clone());
        batch.dead_letters = dead;
        Ok(Some(batch))
    }
}

weir_guest::export_batch_source!(ObjectSource);
