//! A transform for the tests that does what it is told, well or badly: tag records with
//! its version, trap, spin, hog memory, flood the host, hand back a malformed batch, or
//! hash through the host's keys. Each misdeed must stay inside its own pipeline and be
//! reported with the step that did it.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::{Connector, Error, Records, Result, Transform, Transformed};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `tag`, `trap`, `spin`, `hog`, `flood`, `malformed` or `hmac`.
    #[serde(rename = "do")]
    action: String,
    /// Misbehave only from this batch on (counted from 1); before it, tag.
    #[serde(default)]
    from_batch: u64,
    /// For `hmac`: the key's name in `grants.keys`.
    #[serde(default)]
    key: Option<String>,
}

pub struct Rogue {
    config: Config,
    batches: u64,
}

const TAG: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

impl Connector for Rogue {
    const NAME: &'static str = "rogue-transform";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Misbehaves on request (tests only).";
    type Config = Config;
}

impl Transform for Rogue {
    fn open(config: Config) -> Result<Self> {
        Ok(Rogue { config, batches: 0 })
    }

    fn process(&mut self, records: Records) -> Result<Transformed> {
        self.batches += 1;
        let action = if self.batches >= self.config.from_batch {
            self.config.action.as_str()
        } else {
            "tag"
        };
        let mut out = Transformed::default();
        match action {
            "tag" => {
                for r in records.iter() {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(r.value().unwrap_or(b"null"))
                            .map_err(|e| Error::Fatal(format!("not JSON: {e}")))?;
                    v["tag"] = TAG.into();
                    out.records
                        .push_like(&r, Some(&serde_json::to_vec(&v).unwrap()));
                }
            }
            "trap" => unreachable!("told to trap"),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut held = Vec::new();
                loop {
                    held.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&held);
                }
            }
            "flood" => {
                // One record of 5 MiB: past a max_batch_bytes of 4 MiB, well within memory.
                if let Some(r) = records.iter().next() {
                    out.records.push_like(&r, Some(&vec![b'x'; 5 << 20]));
                }
            }
            "malformed" => {
                out.records = records;
                // The first entry's value offset (bytes 8..12 of its 36), past any buffer.
                if let Some(offset) = out.records.items.get_mut(8..12) {
                    offset.copy_from_slice(&(u32::MAX - 8).to_le_bytes());
                }
            }
            "hmac" => {
                let key = self.config.key.clone().unwrap_or_default();
                let values: Vec<Vec<u8>> = records
                    .iter()
                    .map(|r| r.value().unwrap_or_default().to_vec())
                    .collect();
                let digests = weir_guest::keys::hmac_sha256(&key, &values)?;
                for (r, d) in records.iter().zip(digests) {
                    let v = serde_json::json!({ "digest": hex::encode(d) });
                    out.records
                        .push_like(&r, Some(&serde_json::to_vec(&v).unwrap()));
                }
            }
            other => return Err(Error::Config(format!("unknown action `{other}`"))),
        }
        Ok(out)
    }
}

weir_guest::export_transform!(Rogue);
