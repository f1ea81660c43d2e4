//! `debezium-source` (stream): reads Debezium JSON change events from Kafka and emits flat
//! change records: the row (`after`, or `before` for a delete) as the value, the operation
//! set, the Kafka key kept, `ts_ms` as the timestamp. Both JSON converter forms are read
//! (`{"schema": …, "payload": …}` and the bare payload). A tombstone stays a tombstone.
//! An event that is not a Debezium envelope becomes a dead letter with the reason, and the
//! stream goes on.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use weir_guest::kafka::{Offsets, Subscription};
use weir_guest::{
    Batch, ChangeOp, Connector, DeadLetter, Error, RecordRef, Records, Result, StreamSource,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Debezium topics to consume (e.g. `server.schema.table`); each must be granted.
    topics: Vec<String>,
}

pub struct DebeziumSource {
    subscription: Subscription,
}

impl Connector for DebeziumSource {
    const NAME: &'static str = "debezium-source";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reads Debezium JSON change events from Kafka and emits flat change records.";
    type Config = Config;
}

impl StreamSource for DebeziumSource {
    type Checkpoint = Offsets;

    fn open(config: Config, checkpoint: Option<Offsets>) -> Result<Self> {
        if config.topics.is_empty() {
            return Err(Error::Config(
                "config field `topics`: name at least one topic".into(),
            ));
        }
        Ok(DebeziumSource {
            subscription: Subscription::open(&config.topics, checkpoint)?,
        })
    }

    fn poll(&mut self, max_records: u32, max_wait: Duration) -> Result<Batch<Offsets>> {
        let polled = self.subscription.poll(max_records, max_wait)?;
        let mut records = Records::with_capacity(polled.records.len(), polled.records.data.len());
        let mut dead_letters = Vec::new();
        for event in polled.records.iter() {
            match flatten(event.value()) {
                Ok(change) => {
                    let row = change.row.map(|r| r.to_string());
                    records.push(RecordRef {
                        key: event.key(),
                        value: row.as_deref().map(str::as_bytes),
                        headers: &[],
                        timestamp_ms: change.ts_ms.or(event.timestamp_ms()),
                        op: Some(change.op),
                    });
                }
                Err(reason) => dead_letters.push(DeadLetter {
                    key: event.key().map(<[u8]>::to_vec),
                    value: event.value().map(<[u8]>::to_vec),
                    reason: format!("not a Debezium change event: {reason}"),
                }),
            }
        }
        let mut batch = Batch::new(records, self.subscription.offsets().clone());
        batch.dead_letters = dead_letters;
        Ok(batch)
    }

    fn ack(&mut self, checkpoint: Offsets) -> Result<()> {
        self.subscription.ack(&checkpoint)
    }
}

#[derive(Debug, PartialEq)]
struct Change {
    op: ChangeOp,
    /// None for a tombstone.
    row: Option<Value>,
    ts_ms: Option<i64>,
}

fn flatten(value: Option<&[u8]>) -> std::result::Result<Change, String> {
    let Some(bytes) = value else {
        // Debezium follows a delete with a tombstone so compaction can drop the key.
        return Ok(Change {
            op: ChangeOp::Delete,
            row: None,
            ts_ms: None,
        });
    };
    let event: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    // The JSON converter with schemas wraps the envelope in `payload`.
    let envelope = match event.get("payload") {
        Some(payload) if event.get("schema").is_some() => payload,
        _ => &event,
    };
    let field = |name: &str| envelope.get(name).filter(|v| !v.is_null()).cloned();
    let op = envelope
        .get("op")
        .and_then(Value::as_str)
        .ok_or("no `op` field")?;
    let (op, row) = match op {
        "c" => (ChangeOp::Create, field("after")),
        "u" => (ChangeOp::Update, field("after")),
        "r" => (ChangeOp::Snapshot, field("after")),
        "d" => (ChangeOp::Delete, field("before")),
        other => return Err(format!("unknown op `{other}`")),
    };
    let row = row.ok_or_else(|| format!("op `{}` without its row", op_letter(op)))?;
    Ok(Change {
        op,
        row: Some(row),
        ts_ms: envelope.get("ts_ms").and_then(Value::as_i64),
    })
}

fn op_letter(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Create => "c",
        ChangeOp::Update => "u",
        ChangeOp::Delete => "d",
        ChangeOp::Snapshot => "r",
    }
}

weir_guest::export_stream_source!(DebeziumSource);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(event: Value) -> std::result::Result<Change, String> {
        flatten(Some(event.to_string().as_bytes()))
    }

    #[test]
    fn every_op_in_both_converter_forms() {
        let payload = json!({"before": null, "after": {"id": 1, "name": "a"}, "op": "c",
                             "source": {"table": "users"}, "ts_ms": 1700000000000i64});
        let bare = change(payload.clone()).unwrap();
        let wrapped = change(json!({"schema": {"type": "struct"}, "payload": payload})).unwrap();
        assert_eq!(bare, wrapped);
        assert_eq!(bare.op, ChangeOp::Create);
        assert_eq!(bare.row, Some(json!({"id": 1, "name": "a"})));
        assert_eq!(bare.ts_ms, Some(1700000000000));

        let update =
            change(json!({"before": {"id": 1}, "after": {"id": 1, "name": "b"}, "op": "u"}))
                .unwrap();
        assert_eq!(
            (update.op, update.row),
            (ChangeOp::Update, Some(json!({"id": 1, "name": "b"})))
        );
        let delete =
            change(json!({"before": {"id": 1, "name": "b"}, "after": null, "op": "d"})).unwrap();
        assert_eq!(
            (delete.op, delete.row),
            (ChangeOp::Delete, Some(json!({"id": 1, "name": "b"})))
        );
        let read = change(json!({"after": {"id": 2}, "op": "r"})).unwrap();
        assert_eq!(read.op, ChangeOp::Snapshot);
        let tombstone = flatten(None).unwrap();
        assert_eq!((tombstone.op, tombstone.row), (ChangeOp::Delete, None));
    }

    #[test]
    fn malformed_events_say_why() {
        assert!(
            flatten(Some(b"{not json"))
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(
            change(json!({"after": {"id": 1}}))
                .unwrap_err()
                .contains("no `op`")
        );
        assert!(
            change(json!({"op": "x", "after": {}}))
                .unwrap_err()
                .contains("unknown op `x`")
        );
        assert!(
            change(json!({"op": "c", "after": null}))
                .unwrap_err()
                .contains("without its row")
        );
    }
}
