//! A connector's config checked against the JSON Schema from its spec, before any call.

use anyhow::{Context, Result};

/// Every way `config` breaks `schema`, each naming the field (a JSON pointer).
pub fn violations(schema: &str, config: &serde_json::Value) -> Result<Vec<String>> {
    let schema: serde_json::Value =
        serde_json::from_str(schema).context("the plugin's config schema is not JSON")?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| anyhow::anyhow!("the plugin's config schema is invalid: {e}"))?;
    Ok(validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                format!("config: {e}")
            } else {
                format!("config field `{at}`: {e}")
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
        "type": "object",
        "properties": {
            "dir": {"type": "string"},
            "format": {"enum": ["jsonl", "csv"]}
        },
        "required": ["dir"],
        "additionalProperties": false
    }"#;

    #[test]
    fn a_good_config_has_no_violations() {
        assert!(
            violations(SCHEMA, &json!({"dir": "/in", "format": "csv"}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn each_violation_names_its_field() {
        let v = violations(SCHEMA, &json!({"dir": 3, "format": "xml"})).unwrap();
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.iter().any(|m| m.starts_with("config field `/dir`")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|m| m.starts_with("config field `/format`")),
            "{v:?}"
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let v = violations(SCHEMA, &json!({})).unwrap();
        assert!(v[0].contains("dir"), "{v:?}");
    }
}
