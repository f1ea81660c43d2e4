//! `file-source`: reads JSON Lines and CSV files from a granted directory, incrementally.
//!
//! The checkpoint maps each file to the byte offset delivered so far, so a rerun skips what was
//! delivered and picks up lines appended since. A last line without its newline is still
//! being written: it is left for a later run rather than delivered half.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use weir_guest::formats::{CsvOptions, Header, read_record, trim_newline};
use weir_guest::{Batch, BatchSource, Connector, Error, Records, Result, StreamInfo};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory to read, as the plugin sees it: the `guest` path of a granted directory.
    dir: String,
    /// Which files to read: a file name pattern with `*` and `?` wildcards.
    #[serde(default = "default_pattern")]
    pattern: String,
    /// How to parse the files; `auto` chooses by extension (`.csv`, else JSON Lines).
    #[serde(default)]
    format: Format,
    /// How CSV files are read: delimiter, quote, null values, types.
    #[serde(default)]
    csv: CsvOptions,
}

fn default_pattern() -> String {
    "*".into()
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Auto,
    Jsonl,
    Csv,
}

/// Bytes delivered per file name.
type Checkpoint = BTreeMap<String, u64>;

pub struct FileSource {
    dir: String,
    /// Files still to read, in name order, with the offset to start from.
    queue: std::vec::IntoIter<(String, u64)>,
    current: Option<OpenFile>,
    checkpoint: Checkpoint,
    format: Format,
    csv: CsvOptions,
    /// `csv.quote`, checked.
    quote: u8,
}

struct OpenFile {
    name: String,
    reader: BufReader<File>,
    offset: u64,
    csv: Option<Header>,
}

impl Connector for FileSource {
    const NAME: &'static str = "file-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reads JSON Lines and CSV files from a granted directory; resumes where it left off.";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        config.csv.quote_byte().map_err(Error::Config)?;
        list(&config.dir, &config.pattern).map(|_| ())
    }
}

impl BatchSource for FileSource {
    type Checkpoint = Checkpoint;

    fn discover(config: &Config) -> Result<Vec<StreamInfo>> {
        Ok(list(&config.dir, &config.pattern)?
            .into_iter()
            .map(|(name, _)| StreamInfo { name, schema: None })
            .collect())
    }

    fn open(config: Config, checkpoint: Option<Checkpoint>) -> Result<Self> {
        let quote = config.csv.quote_byte().map_err(Error::Config)?;
        let checkpoint = checkpoint.unwrap_or_default();
        let files = list(&config.dir, &config.pattern)?
            .into_iter()
            .filter_map(|(name, len)| {
                let done = checkpoint.get(&name).copied().unwrap_or(0);
                // A file shorter than what was delivered was replaced: read it anew.
                let start = if len < done { 0 } else { done };
                (len > start).then_some((name, start))
            })
            .collect::<Vec<_>>();
        Ok(FileSource {
            dir: config.dir,
            queue: files.into_iter(),
            current: None,
            checkpoint,
            format: config.format,
            csv: config.csv,
            quote,
        })
    }

    fn next(&mut self, max_records: u32) -> Result<Option<Batch<Checkpoint>>> {
        let mut records = Records::with_capacity(max_records as usize, 128 * max_records as usize);
        let (mut line, mut json) = (Vec::new(), Vec::new());
        while records.len() < max_records as usize {
            let Some(file) = self.current.as_mut() else {
                match self.queue.next() {
                    Some((name, start)) => self.current = self.open_file(name, start)?,
                    None => break,
                }
                continue;
            };
            line.clear();
            let quote = file.csv.as_ref().map(|_| self.quote);
            let read = read_record(&mut file.reader, &mut line, quote)
                .map_err(|e| io_error(&file.name, e))?;
            if read == 0 || line.last() != Some(&b'\n') {
                // End of file, or a line still being written: leave it for the next run.
                self.checkpoint.insert(file.name.clone(), file.offset);
                self.current = None;
                continue;
            }
            let at = file.offset;
            file.offset += read as u64;
            let content = trim_newline(&line);
            if !content.iter().all(u8::is_ascii_whitespace) {
                match &mut file.csv {
                    Some(header) => {
                        header
                            .write_json(content, &mut json)
                            .map_err(|e| parse_error(&file.name, at, &e))?;
                        records.push_value(&json);
                    }
                    None => {
                        serde_json::from_slice::<serde::de::IgnoredAny>(content)
                            .map_err(|e| parse_error(&file.name, at, &e.to_string()))?;
                        records.push_value(content);
                    }
                }
            }
        }
        // The checkpoint moves once per batch, not per line (a per-line name copy and map
        // insert cost more than the line's JSON check).
        if let Some(file) = &self.current {
            self.checkpoint.insert(file.name.clone(), file.offset);
        }
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch::new(records, self.checkpoint.clone())))
    }
}

impl FileSource {
    /// Opens `name` positioned at `start`; none while a CSV header is still being written.
    fn open_file(&self, name: String, start: u64) -> Result<Option<OpenFile>> {
        let path = format!("{}/{}", self.dir.trim_end_matches('/'), name);
        let err = |e| io_error(&name, e);
        let mut reader = BufReader::with_capacity(256 * 1024, File::open(&path).map_err(err)?);
        let is_csv = match self.format {
            Format::Csv => true,
            Format::Jsonl => false,
            Format::Auto => name.to_ascii_lowercase().ends_with(".csv"),
        };
        let mut offset = start;
        let mut csv = None;
        if is_csv {
            // Every read needs the header, wherever it resumes.
            let mut first = Vec::new();
            let read = read_record(&mut reader, &mut first, Some(self.quote)).map_err(err)?;
            if first.last() != Some(&b'\n') {
                return Ok(None);
            }
            offset = offset.max(read as u64);
            let header = Header::parse(trim_newline(&first), &self.csv)
                .map_err(|e| Error::Fatal(format!("{name} header: {e}")))?;
            csv = Some(header);
        }
        reader.seek(SeekFrom::Start(offset)).map_err(err)?;
        Ok(Some(OpenFile {
            name,
            reader,
            offset,
            csv,
        }))
    }
}

/// Files matching `pattern` in `dir`, sorted by name, with their lengths.
fn list(dir: &str, pattern: &str) -> Result<Vec<(String, u64)>> {
    let pattern = glob::Pattern::new(pattern)
        .map_err(|e| Error::Config(format!("config field `pattern`: {e}")))?;
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Config(format!(
            "cannot read directory `{dir}`: {e} (is it granted to the plugin?)"
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(|e| io_error(&name, e))?;
        if meta.is_file() && pattern.matches(&name) {
            files.push((name, meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Transient(format!("{what}: {e}"))
}

/// Bad data stops the pipeline before the bad record, so nothing after it is skipped.
fn parse_error(file: &str, offset: u64, message: &str) -> Error {
    Error::Fatal(format!("{file} at byte {offset}: {message}"))
}

weir_guest::export_batch_source!(FileSource);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        Config {
            dir: dir.display().to_string(),
            pattern: "*".into(),
            format: Format::Auto,
            csv: CsvOptions::default(),
        }
    }

    /// Every record of a run, and the checkpoint it ended at.
    fn read_all(source: &mut FileSource) -> (Vec<String>, Checkpoint) {
        let (mut out, mut checkpoint) = (Vec::new(), Checkpoint::new());
        while let Some(batch) = source.next(2).unwrap() {
            for r in batch.records.iter() {
                out.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
            }
            checkpoint = batch.checkpoint;
        }
        (out, checkpoint)
    }

    #[test]
    fn each_file_is_read_once_and_a_rerun_takes_only_what_was_added() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join(name))
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        write("a.jsonl", "{\"n\":1}\n\n{\"n\":2}\n");
        write("b.csv", "id,name\n1,x\n2,y\n");
        write("c.jsonl", "{\"n\":3}\n{\"n\":"); // its last line is still being written
        let mut first = FileSource::open(config(dir.path()), None).unwrap();
        let (records, checkpoint) = read_all(&mut first);
        assert_eq!(
            records,
            [
                r#"{"n":1}"#,
                r#"{"n":2}"#,
                r#"{"id":"1","name":"x"}"#,
                r#"{"id":"2","name":"y"}"#,
                r#"{"n":3}"#
            ]
        );
        assert_eq!(checkpoint["c.jsonl"], 8, "the half line is left for later");

        write("a.jsonl", "{\"n\":4}\n");
        write("c.jsonl", "5}\n");
        let mut rerun = FileSource::open(config(dir.path()), Some(checkpoint)).unwrap();
        let (records, _) = read_all(&mut rerun);
        assert_eq!(records, [r#"{"n":4}"#, r#"{"n":5}"#]);
    }

    #[test]
    fn a_bad_line_stops_the_run_naming_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{\"n\":1}\nnot json\n").unwrap();
        let mut source = FileSource::open(config(dir.path()), None).unwrap();
        let Err(err) = source.next(10) else {
            panic!("a bad line was read");
        };
        assert!(
            matches!(&err, Error::Fatal(m) if m.starts_with("a.jsonl at byte 8")),
            "{err:?}"
        );
    }

    #[test]
    fn csv_options_type_the_values_and_bad_ones_are_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("flights.csv"),
            "year;carrier;dep_delay;tailnum\n2013;UA;2;N14228\n2013;AA;NA;NA\n",
        )
        .unwrap();
        let mut config = config(dir.path());
        config.csv = serde_json::from_value(serde_json::json!({
            "delimiter": ";", "null_values": ["NA"], "infer_types": true,
        }))
        .unwrap();
        let (records, _) = read_all(&mut FileSource::open(config, None).unwrap());
        assert_eq!(
            records,
            [
                r#"{"year":2013,"carrier":"UA","dep_delay":2,"tailnum":"N14228"}"#,
                r#"{"year":2013,"carrier":"AA","dep_delay":null,"tailnum":null}"#,
            ]
        );
        let mut bad = self::config(dir.path());
        bad.csv.delimiter = '→';
        assert!(matches!(
            FileSource::open(bad, None),
            Err(Error::Config(m)) if m.contains("csv.delimiter")
        ));
    }
}
