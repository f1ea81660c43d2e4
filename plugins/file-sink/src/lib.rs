//! `file-sink`: appends each record's value as one JSON Lines line to a file in a granted
//! directory. Exactly once: each commit appends the batch and fsyncs it, then appends one
//! line to a commit log (`<file>.weir`: the committed length, the pipeline, its epoch and
//! the source's checkpoint) and fsyncs that. Opening takes the log's last whole line and
//! cuts the file back to its length, so whatever a crash left after the last commit (a torn
//! line, a whole uncommitted batch) is gone before the host resumes the source from the
//! checkpoint beside that length. A file with no log gets one at open, before any batch,
//! holding its length then. The log is rewritten (by an fsynced rename) when it grows long.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use weir_guest::{
    ChangeOp, Connector, DeadLetter, Error, Records, Result, Sink, Stamp, TransactionalSink,
    metrics,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory to write into, as the plugin sees it: the `guest` path of a granted
    /// writable directory.
    dir: String,
    /// File name inside `dir`.
    #[serde(default = "default_file")]
    file: String,
    /// `value`: each record's value as a line. `record`: a JSON object per record with
    /// key, value, op, timestamp_ms and headers (tombstones included).
    #[serde(default)]
    format: Format,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Value,
    Record,
}

fn default_file() -> String {
    "out.jsonl".into()
}

pub struct FileSink {
    format: Format,
    path: String,
    file: File,
    buffer: Vec<u8>,
    /// The file's committed length: where the next batch goes.
    length: u64,
    /// The commit log's last entry.
    committed: Committed,
    /// The commit log, open for appending, and how many entries it holds.
    log: Option<(File, usize)>,
}

/// Entries the commit log holds before it is rewritten with only the last.
const LOG_ENTRIES: usize = 4096;

/// One commit log entry: the file is exactly `length` bytes of committed batches, the last
/// of which ended at `checkpoint` of `pipeline`'s source, under `epoch`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Committed {
    length: u64,
    pipeline: String,
    epoch: u64,
    checkpoint: String,
}

impl Connector for FileSink {
    const NAME: &'static str = "file-sink";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Appends record values as JSON Lines to a file in a granted directory, exactly once (the checkpoint is committed beside the file).";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        validate(config)?;
        let meta = std::fs::metadata(&config.dir).map_err(|e| {
            Error::Config(format!(
                "cannot use directory `{}`: {e} (is it granted to the plugin?)",
                config.dir
            ))
        })?;
        if !meta.is_dir() {
            return Err(Error::Config(format!(
                "`{}` is not a directory",
                config.dir
            )));
        }
        Ok(())
    }
}

impl Sink for FileSink {
    fn open(config: Config) -> Result<Self> {
        validate(&config)?;
        let path = format!("{}/{}", config.dir.trim_end_matches('/'), config.file);
        let err = |e: std::io::Error| Error::Transient(format!("{path}: {e}"));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                Error::Config(format!(
                    "cannot open `{path}` for writing: {e} (is its directory granted writable?)"
                ))
            })?;
        let (committed, log) = match read_log(&path)? {
            // Whatever follows the committed length was never committed, and will be
            // delivered again.
            Some(committed) => (committed, None),
            // No commit yet: a file from before (or from elsewhere) keeps every complete
            // line, and the log records that length before any batch is appended, so a
            // crash inside the first commit cannot leave a batch the log does not cover.
            None => {
                let committed = Committed {
                    length: complete_length(&mut file).map_err(err)?,
                    pipeline: String::new(),
                    epoch: 0,
                    checkpoint: String::new(),
                };
                let log = start_log(&log_path(&path), &committed)?;
                (committed, Some((log, 1)))
            }
        };
        let len = committed.length;
        file.set_len(len).map_err(err)?;
        file.seek(SeekFrom::Start(len)).map_err(err)?;
        Ok(FileSink {
            format: config.format,
            path,
            file,
            // Grown by the first batch, not reserved here: an idle pipeline holds no buffer.
            buffer: Vec::new(),
            length: len,
            committed,
            // Opened by the first commit (unless just started), which starts the log over
            // with one entry.
            log,
        })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        self.buffer.reserve(records.data.len() + records.len());
        for record in records.iter() {
            if self.format == Format::Record {
                let line = serde_json::to_vec(&as_json(&record))
                    .map_err(|e| Error::Fatal(e.to_string()))?;
                self.buffer.extend_from_slice(&line);
                self.buffer.push(b'\n');
                continue;
            }
            // Tombstones have nothing to write in a value-per-line file.
            let Some(value) = record.value() else {
                continue;
            };
            if value.contains(&b'\n') {
                return Err(Error::Fatal(
                    "a record value contains a newline; JSON Lines needs one record per line"
                        .into(),
                ));
            }
            self.buffer.extend_from_slice(value);
            self.buffer.push(b'\n');
        }
        Ok(Vec::new())
    }

    /// Appends and fsyncs, without a checkpoint: what a host that does not commit through
    /// the sink gets (at least once).
    fn flush(&mut self) -> Result<()> {
        self.append()?;
        self.buffer.clear();
        Ok(())
    }
}

impl FileSink {
    /// Appends the buffer at the committed length (cutting what a failed attempt left) and
    /// fsyncs; returns the new length.
    fn append(&mut self) -> Result<u64> {
        let err = |e: std::io::Error| Error::Transient(format!("{}: {e}", self.path));
        self.file.set_len(self.length).map_err(err)?;
        self.file.seek(SeekFrom::Start(self.length)).map_err(err)?;
        self.file.write_all(&self.buffer).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        metrics::counter_add("bytes", self.buffer.len() as u64);
        Ok(self.length + self.buffer.len() as u64)
    }
}

impl TransactionalSink for FileSink {
    fn stored(&mut self, pipeline: &str) -> Result<Option<String>> {
        let c = &self.committed;
        Ok((c.pipeline == pipeline).then(|| c.checkpoint.clone()))
    }

    fn commit(&mut self, stamp: Stamp) -> Result<Vec<DeadLetter>> {
        let c = &self.committed;
        if c.pipeline == stamp.pipeline && c.epoch > stamp.epoch {
            return Err(Error::Fatal(format!(
                "{}: pipeline `{}` was committed under epoch {}, this run holds epoch {}: another node owns it now",
                self.path, c.pipeline, c.epoch, stamp.epoch
            )));
        }
        let length = self.append()?;
        let committed = Committed {
            length,
            pipeline: stamp.pipeline,
            epoch: stamp.epoch,
            checkpoint: stamp.checkpoint,
        };
        self.append_log(&committed)?;
        self.length = length;
        self.committed = committed;
        self.buffer.clear();
        Ok(Vec::new())
    }
}

fn log_path(path: &str) -> String {
    format!("{path}.weir")
}

/// The log's last whole entry. A torn last line (a crash inside an append) is not an
/// entry; a log with no readable entry at all is refused.
fn read_log(path: &str) -> Result<Option<Committed>> {
    let log = log_path(path);
    let text = match std::fs::read(&log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Transient(format!("{log}: {e}"))),
    };
    let last = text
        .split_inclusive(|&b| b == b'\n')
        .rfind(|l| l.ends_with(b"\n"));
    match last {
        Some(last) => serde_json::from_slice(last)
            .map(Some)
            .map_err(|e| damaged(&log, &e.to_string())),
        None if text.is_empty() => Ok(None),
        None => Err(damaged(&log, "no whole entry")),
    }
}

/// Replaces the log at `log` with one entry, `committed`: written beside it, fsynced,
/// renamed over, the directory fsynced. Returns it open for appending.
fn start_log(log: &str, committed: &Committed) -> Result<File> {
    let err = |e: std::io::Error| Error::Transient(format!("{log}: {e}"));
    let mut line = serde_json::to_vec(committed).map_err(|e| Error::Fatal(e.to_string()))?;
    line.push(b'\n');
    let partial = format!("{log}.partial");
    let mut file = File::create(&partial).map_err(err)?;
    file.write_all(&line).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&partial, log).map_err(err)?;
    let dir = std::path::Path::new(log)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    // Makes the rename durable where the platform lets a directory be synced.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    OpenOptions::new().append(true).open(log).map_err(err)
}

fn damaged(log: &str, why: &str) -> Error {
    Error::Fatal(format!(
        "{log} is not a commit record this sink wrote ({why}): remove it to start the file over"
    ))
}

impl FileSink {
    /// Appends `committed` to the log and fsyncs it; rewrites the log with only this entry
    /// (beside it, fsynced, renamed over, the directory fsynced) once it is long.
    fn append_log(&mut self, committed: &Committed) -> Result<()> {
        let log = log_path(&self.path);
        let err = |e: std::io::Error| Error::Transient(format!("{log}: {e}"));
        let mut line = serde_json::to_vec(committed).map_err(|e| Error::Fatal(e.to_string()))?;
        line.push(b'\n');
        if self.log.as_ref().is_none_or(|(_, n)| *n >= LOG_ENTRIES) {
            self.log = Some((start_log(&log, committed)?, 1));
            return Ok(());
        }
        let (file, entries) = self.log.as_mut().expect("opened above");
        file.write_all(&line).map_err(err)?;
        file.sync_data().map_err(err)?;
        *entries += 1;
        Ok(())
    }
}

/// A record as one JSON object; bytes that are JSON stay JSON, other text stays a string.
fn as_json(record: &weir_guest::RecordView<'_>) -> serde_json::Value {
    let bytes = |b: &[u8]| {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into_owned()))
    };
    let op = record.op().map(|op| match op {
        ChangeOp::Create => "create",
        ChangeOp::Update => "update",
        ChangeOp::Delete => "delete",
        ChangeOp::Snapshot => "snapshot",
    });
    let headers: serde_json::Map<String, serde_json::Value> = record
        .headers()
        .map(|(k, v)| {
            (
                k.into_owned(),
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    serde_json::json!({
        "key": record.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "value": record.value().map(bytes),
        "op": op,
        "timestamp_ms": record.timestamp_ms(),
        "headers": headers,
    })
}

fn validate(config: &Config) -> Result<()> {
    if config.file.is_empty() || config.file.contains('/') || config.file == ".." {
        return Err(Error::Config(format!(
            "config field `file`: `{}` must be a plain file name",
            config.file
        )));
    }
    Ok(())
}

/// The length up to and including the last newline: what survived whole.
fn complete_length(file: &mut File) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    // Small, and no larger than the file: a guest's memory never shrinks, so what open
    // touches stays resident for as long as the pipeline (idle or not) lives.
    let mut chunk = vec![0u8; len.min(8 * 1024) as usize];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

weir_guest::export_transactional_sink!(FileSink);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, format: Format) -> Config {
        Config {
            dir: dir.display().to_string(),
            file: "out.jsonl".into(),
            format,
        }
    }

    fn records(values: &[&str]) -> Records {
        let mut r = Records::new();
        for v in values {
            r.push_value(v.as_bytes());
        }
        r
    }

    #[test]
    fn a_torn_last_line_is_cut_back_before_the_redelivered_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n{\"n\":").unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        sink.write(records(&[r#"{"n":3}"#, r#"{"n":4}"#])).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n",
            "nothing reaches the file before flush"
        );
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n"
        );
    }

    /// The tail is read backwards in small chunks: a torn line longer than one chunk, after
    /// lines longer than one too, is still cut at the last newline.
    #[test]
    fn a_torn_tail_longer_than_a_read_chunk_is_cut_at_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let whole = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(20_000));
        let torn = format!("{{\"pad\":\"{}", "y".repeat(30_000));
        std::fs::write(&path, format!("{whole}{torn}")).unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        sink.write(records(&[r#"{"n":1}"#])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{whole}{{\"n\":1}}\n")
        );
    }

    #[test]
    fn a_value_with_a_newline_fails_and_a_file_name_must_be_plain() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        assert!(matches!(
            sink.write(records(&["{\"a\":\n1}"])),
            Err(Error::Fatal(_))
        ));
        for bad in ["../escape", "..", ""] {
            let mut c = config(dir.path(), Format::Value);
            c.file = bad.into();
            assert!(matches!(FileSink::open(c), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn the_record_format_keeps_json_as_json_and_text_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Record)).unwrap();
        sink.write(records(&[r#"{"n":1}"#, "plain"])).unwrap();
        sink.flush().unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["value"], serde_json::json!({"n": 1}));
        assert_eq!(lines[1]["value"], "plain");
    }

    fn stamp(epoch: u64, checkpoint: &str) -> Stamp {
        Stamp {
            pipeline: "p".into(),
            epoch,
            checkpoint: checkpoint.into(),
        }
    }

    /// A crash inside the very first commit (its batch on disk, no log entry for it yet):
    /// reopening cuts the batch and keeps the lines the file had before. This once let a
    /// first batch through twice (the chaos test caught it under load).
    #[test]
    fn a_first_batch_never_committed_is_cut_and_a_file_from_before_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        sink.write(records(&["1", "2"])).unwrap();
        sink.append().unwrap(); // on disk, never committed
        drop(sink);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n1\n2\n");

        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(sink.stored("p").unwrap(), None);
        sink.write(records(&["1", "2"])).unwrap();
        sink.commit(stamp(0, "c2")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n1\n2\n");
    }

    /// A crash after the data reached the file but before its commit: reopening cuts it,
    /// and the sink says which checkpoint the rest ends at.
    #[test]
    fn what_was_not_committed_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        assert_eq!(sink.stored("p").unwrap(), None);
        sink.write(records(&["1", "2"])).unwrap();
        sink.commit(stamp(0, "c2")).unwrap();
        sink.write(records(&["3"])).unwrap();
        sink.append().unwrap(); // on disk, never committed
        drop(sink);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");

        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n");
        assert_eq!(sink.stored("p").unwrap().as_deref(), Some("c2"));
        assert_eq!(sink.stored("another").unwrap(), None);
        sink.write(records(&["3"])).unwrap();
        sink.commit(stamp(0, "c3")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");
    }

    #[test]
    fn a_commit_under_an_older_epoch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        sink.write(records(&["1"])).unwrap();
        sink.commit(stamp(5, "c1")).unwrap();
        sink.write(records(&["2"])).unwrap();
        let refused = sink.commit(stamp(4, "c2")).unwrap_err();
        assert!(format!("{refused:?}").contains("epoch 5"), "{refused:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
            "1\n"
        );
    }

    /// A crash inside a log append leaves a torn line: the entry before it holds, and the
    /// file is cut back to that entry's length.
    #[test]
    fn a_torn_log_entry_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        for (n, checkpoint) in [("1", "c1"), ("2", "c2")] {
            sink.write(records(&[n])).unwrap();
            sink.commit(stamp(0, checkpoint)).unwrap();
        }
        sink.write(records(&["3"])).unwrap();
        sink.append().unwrap();
        drop(sink);
        let log = dir.path().join("out.jsonl.weir");
        let mut torn = std::fs::read(&log).unwrap();
        torn.extend_from_slice(br#"{"length":6,"pipel"#);
        std::fs::write(&log, torn).unwrap();

        let mut sink = FileSink::open(config(dir.path(), Format::Value)).unwrap();
        assert_eq!(sink.stored("p").unwrap().as_deref(), Some("c2"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n");
    }
}
