//! A config that breaks the connector's own schema, derived from the schema and the good
//! config: what `check` must refuse, naming the field.

use serde_json::{Value, json};

/// A copy of `config` that `schema` refuses, and the field that makes it so: a required
/// field left out, else a field of the wrong type, else a field the schema does not know.
/// None when the schema refuses none of these (it accepts almost anything).
pub fn broken_config(schema: &Value, config: &Value) -> Option<(Value, String)> {
    let validator = jsonschema::validator_for(schema).ok()?;
    let object = config.as_object()?;
    let mut tries: Vec<(Value, String)> = Vec::new();
    let required = schema["required"].as_array().into_iter().flatten();
    for field in required.filter_map(Value::as_str) {
        if object.contains_key(field) {
            let mut broken = object.clone();
            broken.remove(field);
            tries.push((Value::Object(broken), field.to_string()));
        }
    }
    let properties = schema["properties"].as_object().into_iter().flatten();
    for (field, property) in properties {
        if !object.contains_key(field) {
            continue;
        }
        let wrong = match property["type"].as_str() {
            Some("string") => json!(12345),
            Some("integer" | "number") => json!("not a number"),
            Some("boolean") => json!("not a boolean"),
            Some("array") => json!("not an array"),
            Some("object") => json!("not an object"),
            _ => json!({"weir-test": "an object where none is expected"}),
        };
        let mut broken = object.clone();
        broken.insert(field.clone(), wrong);
        tries.push((Value::Object(broken), field.clone()));
    }
    let unknown = "weir_test_unknown_field";
    let mut broken = object.clone();
    broken.insert(unknown.into(), json!(1));
    tries.push((Value::Object(broken), unknown.into()));
    tries.into_iter().find(|(c, _)| !validator.is_valid(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_field_goes_first() {
        let schema = json!({"type": "object", "required": ["dir"],
            "properties": {"dir": {"type": "string"}, "n": {"type": "integer"}}});
        let (broken, field) = broken_config(&schema, &json!({"dir": "/in", "n": 1})).unwrap();
        assert_eq!(field, "dir");
        assert_eq!(broken, json!({"n": 1}));
    }

    #[test]
    fn else_a_wrong_type_else_an_unknown_field() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let (broken, field) = broken_config(&schema, &json!({"n": 1})).unwrap();
        assert_eq!(
            (broken, field.as_str()),
            (json!({"n": "not a number"}), "n")
        );
        let closed = json!({"type": "object", "additionalProperties": false,
            "properties": {"n": {}}});
        let (_, field) = broken_config(&closed, &json!({"n": 1})).unwrap();
        assert_eq!(field, "weir_test_unknown_field");
        let open = json!({"type": "object"});
        assert!(broken_config(&open, &json!({"n": 1})).is_none());
    }
}
