//! {{name}}: a sink. Appends each record's value as a line to `file` in `dir` (a directory
//! the pipeline grants with `write = true`), and fsyncs on flush: when flush returns, the
//! host commits the source's checkpoint.

use schemars::JsonSchema;
use serde::Deserialize;
use std::io::Write;
use weir_guest::{Connector, DeadLetter, Error, Records, Result, Sink};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A directory the pipeline grants (its guest path).
    pub dir: String,
    #[serde(default = "file")]
    pub file: String,
}

fn file() -> String {
    "out.jsonl".into()
}

pub struct Lines {
    out: std::fs::File,
}

impl Connector for Lines {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Appends values as lines to a file.";
    type Config = Config;
}

impl Sink for Lines {
    fn open(config: Config) -> Result<Self> {
        let path = format!("{}/{}", config.dir, config.file);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Config(format!("cannot open {path}: {e}")))?;
        Ok(Lines { out })
    }

    fn write(&mut self, records: Records) -> Result<Vec<DeadLetter>> {
        let mut buf = Vec::new();
        for value in records.iter().filter_map(|r| r.value()) {
            buf.extend_from_slice(value);
            buf.push(b'\n');
        }
        self.out
            .write_all(&buf)
            .map_err(|e| Error::Transient(format!("write: {e}")))?;
        Ok(Vec::new())
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .sync_data()
            .map_err(|e| Error::Transient(format!("fsync: {e}")))
    }
}

weir_guest::export_sink!(Lines);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_values_as_lines() {
        let dir = std::env::temp_dir().join(format!("{{name}}-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config { dir: dir.display().to_string(), file: "t.jsonl".into() };
        let mut sink = Lines::open(config).unwrap();
        let mut records = Records::new();
        records.push_value(b"{\"a\":1}");
        records.push_value(b"{\"a\":2}");
        assert!(sink.write(records).unwrap().is_empty());
        sink.flush().unwrap();
        let text = std::fs::read_to_string(dir.join("t.jsonl")).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
