//! {{name}}: a transform. Upper-cases the string `field` of each JSON object, drops objects
//! without it, and rejects values that are not JSON objects (they go to the dead letters).
//! Keys, headers and timestamps pass through unchanged.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use weir_guest::{Connector, DeadLetter, Records, Result, Transform, Transformed};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field to upper-case; objects without it are dropped.
    pub field: String,
}

pub struct Upper {
    field: String,
}

impl Connector for Upper {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Upper-cases a field of each JSON object.";
    type Config = Config;
}

impl Transform for Upper {
    fn open(config: Config) -> Result<Self> {
        Ok(Upper { field: config.field })
    }

    fn process(&mut self, records: Records) -> Result<Transformed> {
        let mut out = Transformed::default();
        for r in records.iter() {
            let value = r.value().unwrap_or_default();
            let mut object = match serde_json::from_slice::<Value>(value) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    out.dead_letters.push(DeadLetter {
                        key: r.key().map(<[u8]>::to_vec),
                        value: Some(value.to_vec()),
                        reason: "not a JSON object".into(),
                    });
                    continue;
                }
            };
            let Some(Value::String(text)) = object.get_mut(&self.field) else {
                continue;
            };
            *text = text.to_uppercase();
            let bytes = serde_json::to_vec(&object).expect("a Value serialises");
            out.records.push_like(&r, Some(&bytes));
        }
        Ok(out)
    }
}

weir_guest::export_transform!(Upper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_cases_drops_and_rejects() {
        let mut t = Upper::open(Config { field: "name".into() }).unwrap();
        let mut records = Records::new();
        records.push_value(br#"{"id":1,"name":"ada"}"#);
        records.push_value(br#"{"id":2}"#);
        records.push_value(br#""just a string""#);
        let out = t.process(records).unwrap();
        let values: Vec<&[u8]> = out.records.iter().filter_map(|r| r.value()).collect();
        assert_eq!(values, [&br#"{"id":1,"name":"ADA"}"#[..]]);
        assert_eq!(out.dead_letters.len(), 1);
    }
}
