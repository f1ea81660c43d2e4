//! `mask`: redacts or pseudonymises named fields of each record's JSON value. Hashes are
//! HMAC-SHA256 under a key the pipeline grants (`grants.keys`): the host computes them,
//! so the secret is never in the config, in the plugin, or in its memory.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use weir_guest::{Connector, DeadLetter, Error, Records, Result, Transform, Transformed};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Fields replaced by `replacement`: dotted paths into the value (`user.email`); a
    /// path through an array applies to each element.
    #[serde(default)]
    redact: Vec<String>,
    /// Fields replaced by the hex HMAC-SHA256 of their value (a string's text, anything
    /// else's JSON) under the key `key`: equal values stay equal, so joins still work.
    #[serde(default)]
    hash: Vec<String>,
    /// The name of the granted key (`grants.keys.<name>`) hashes are made with.
    #[serde(default)]
    key: Option<String>,
    /// What redacted fields become.
    #[serde(default = "default_replacement")]
    replacement: Value,
}

fn default_replacement() -> Value {
    Value::String("[redacted]".into())
}

pub struct Mask {
    redact: Vec<Vec<String>>,
    hash: Vec<Vec<String>>,
    key: Option<String>,
    replacement: Value,
}

impl Connector for Mask {
    const NAME: &'static str = "mask";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Redacts named fields, or replaces them with a keyed hash (HMAC-SHA256, key held by the host).";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        if !config.hash.is_empty() && config.key.is_none() {
            return Err(Error::Config(
                "hash: needs `key`, the name of a key in the pipeline's grants.keys".into(),
            ));
        }
        Ok(())
    }
}

impl Transform for Mask {
    fn open(config: Config) -> Result<Self> {
        Self::check(&config)?;
        let paths = |p: Vec<String>| -> Vec<Vec<String>> {
            p.iter()
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect()
        };
        Ok(Mask {
            redact: paths(config.redact),
            hash: paths(config.hash),
            key: config.key,
            replacement: config.replacement,
        })
    }

    fn process(&mut self, records: Records) -> Result<Transformed> {
        let key = self.key.clone();
        self.mask(records, |messages| match &key {
            Some(key) => weir_guest::keys::hmac_sha256(key, &messages),
            None => Ok(Vec::new()),
        })
    }
}

impl Mask {
    /// Masks every record; `hmac` hashes all of a batch's values in one host call.
    fn mask(
        &self,
        records: Records,
        hmac: impl FnOnce(Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>>,
    ) -> Result<Transformed> {
        let mut t = Transformed::default();
        let mut parsed = Vec::with_capacity(records.len());
        let mut messages = Vec::new();
        for r in records.iter() {
            let Some(value) = r.value() else {
                parsed.push(None);
                continue;
            };
            match serde_json::from_slice::<Value>(value) {
                Ok(mut v) => {
                    for path in &self.redact {
                        visit(&mut v, path, &mut |field| *field = self.replacement.clone());
                    }
                    for path in &self.hash {
                        visit(&mut v, path, &mut |field| messages.push(text(field)));
                    }
                    parsed.push(Some(v));
                }
                Err(e) => {
                    t.dead_letters.push(DeadLetter {
                        key: r.key().map(<[u8]>::to_vec),
                        value: Some(value.to_vec()),
                        reason: format!("value is not JSON: {e}"),
                    });
                    parsed.push(None);
                }
            }
        }
        let expected = messages.len();
        let digests = if expected == 0 {
            Vec::new()
        } else {
            hmac(messages)?
        };
        if digests.len() != expected {
            return Err(Error::Fatal(format!(
                "the host returned {} digests for {expected} values",
                digests.len()
            )));
        }
        let mut digests = digests.into_iter();
        let mut out = Vec::new();
        for (r, v) in records.iter().zip(parsed) {
            match (r.value(), v) {
                (None, _) => t.records.push_like(&r, None),
                (Some(_), None) => {} // a dead letter
                (Some(_), Some(mut v)) => {
                    for path in &self.hash {
                        visit(&mut v, path, &mut |field| {
                            let digest = digests.next().expect("counted above");
                            *field = Value::String(hex::encode(digest));
                        });
                    }
                    out.clear();
                    serde_json::to_writer(&mut out, &v).expect("a Value serialises");
                    t.records.push_like(&r, Some(&out));
                }
            }
        }
        Ok(t)
    }
}

/// Calls `f` on each field `path` leads to in `v`, in document order.
fn visit(v: &mut Value, path: &[String], f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| visit(i, path, f)),
        Value::Object(map) => {
            let Some((first, rest)) = path.split_first() else {
                return;
            };
            if let Some(field) = map.get_mut(first) {
                if rest.is_empty() {
                    f(field)
                } else {
                    visit(field, rest, f)
                }
            }
        }
        _ => {}
    }
}

/// What is hashed: a string's text, anything else's JSON.
fn text(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

weir_guest::export_transform!(Mask);

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(redact: &[&str], hash: &[&str]) -> Mask {
        Mask::open(Config {
            redact: redact.iter().map(|s| s.to_string()).collect(),
            hash: hash.iter().map(|s| s.to_string()).collect(),
            key: Some("k".into()),
            replacement: default_replacement(),
        })
        .unwrap()
    }

    /// Stands in for the host: "hashes" by reversing.
    fn reverse(messages: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>> {
        Ok(messages
            .into_iter()
            .map(|mut m| {
                m.reverse();
                m
            })
            .collect())
    }

    #[test]
    fn nested_fields_are_redacted_and_hashed_in_one_call_per_batch() {
        let mut records = Records::new();
        records
            .push_value(br#"{"user":{"email":"ab","name":"n"},"cards":[{"no":"12"},{"no":"34"}]}"#);
        records.push_value(b"not json");
        records.push_value(br#"{"other":1}"#);
        let mut calls = 0;
        let out = mask(&["user.name"], &["user.email", "cards.no"])
            .mask(records, |m| {
                calls += 1;
                assert_eq!(m, [b"ab".to_vec(), b"12".to_vec(), b"34".to_vec()]);
                reverse(m)
            })
            .unwrap();
        assert_eq!(calls, 1);
        let values: Vec<Value> = out
            .records
            .iter()
            .map(|r| serde_json::from_slice(r.value().unwrap()).unwrap())
            .collect();
        assert_eq!(
            values[0],
            serde_json::json!({"user":{"email":hex::encode("ba"),"name":"[redacted]"},"cards":[{"no":hex::encode("21")},{"no":hex::encode("43")}]})
        );
        assert_eq!(values[1], serde_json::json!({"other":1}));
        assert_eq!(out.dead_letters.len(), 1);
    }

    #[test]
    fn hashing_without_a_key_is_a_config_error() {
        let config = Config {
            redact: Vec::new(),
            hash: vec!["a".into()],
            key: None,
            replacement: default_replacement(),
        };
        assert!(matches!(Mask::check(&config), Err(Error::Config(_))));
    }
}
