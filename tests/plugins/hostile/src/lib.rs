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
}

pub struct Hostile {
    mode: Mode,
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

/// Scalars only, so every frame is on wasm's own call stack (not Rust's shadow stack in
/// linear memory) and the engine's stack limit is what stops it.
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(depth)
}

weir_guest::export_batch_source!(Hostile);
