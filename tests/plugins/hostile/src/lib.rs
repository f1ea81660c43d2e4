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
    /// What `read-path`, `socket` and `http` reach for: a path, `host:port` or a URL.
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
    /// Returns one batch of 48 MiB.
    Huge,
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
    type Cursor = u64;

    fn open(config: Config, cursor: Option<u64>) -> Result<Self> {
        Ok(Hostile {
            mode: config.mode,
            target: config.target,
            calls: 0,
            next: cursor.unwrap_or(0),
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
            Mode::Http => {
                let response = weir_guest::http::get(&self.target)?;
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

/// Scalars only, so every frame is on wasm's own call stack (not Rust's shadow stack in
/// linear memory) and the engine's stack limit is what stops it.
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(depth)
}

weir_guest::export_batch_source!(Hostile);
