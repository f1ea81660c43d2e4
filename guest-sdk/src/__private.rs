//! What the export macro's glue calls. Not a public API.

use crate::wit::weir::connector::types::{
    Batch as WitBatch, ConnectorSpec, DeadLetter, Error, Records, StreamInfo,
};
use crate::{
    Batch, BatchSource, Connector, Result, Sink, Stamp, StreamSource, TransactionalSink, Transform,
    Transformed,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::time::Duration;

pub use weir_guest_macro::__export as export;
pub use wit_bindgen;

/// A resource's state: the component model hands methods `&self`.
pub struct Cell<T>(RefCell<T>);

impl<T> Cell<T> {
    fn new(value: T) -> Self {
        Cell(RefCell::new(value))
    }
}

pub fn spec<C: Connector>() -> ConnectorSpec {
    let schema = schemars::schema_for!(C::Config);
    ConnectorSpec {
        name: C::NAME.to_string(),
        version: C::VERSION.to_string(),
        description: C::DESCRIPTION.to_string(),
        config_schema: serde_json::to_string(&schema).expect("a JSON Schema serializes"),
    }
}

/// Parses a config, naming the field that does not fit.
pub fn config<C: Connector>(json: &str) -> Result<C::Config> {
    parse(json, "config").map_err(Error::Config)
}

fn parse<T: DeserializeOwned>(json: &str, what: &str) -> std::result::Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("{what}: {}", e.inner())
        } else {
            format!("{what} field `{path}`: {}", e.inner())
        }
    })
}

/// A position this version cannot read back (written by an incompatible version, or
/// edited) is refused as a `config` error, as the contract asks: retrying will not help,
/// and an operator can reset or set it.
fn position<P: DeserializeOwned>(json: Option<&str>, what: &str) -> Result<Option<P>> {
    json.map(|j| {
        parse(j, what).map_err(|e| {
            Error::Config(format!(
                "this version cannot read the {what} it was given ({e}): reset it or set one it can read (weir checkpoint)"
            ))
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_position_is_a_config_error_naming_it() {
        let err = position::<u64>(Some(r#"{"offset": 3}"#), "checkpoint").unwrap_err();
        match err {
            Error::Config(m) => assert!(m.contains("cannot read the checkpoint"), "{m}"),
            other => panic!("not a config error: {other:?}"),
        }
        assert_eq!(position::<u64>(Some("7"), "checkpoint").unwrap(), Some(7));
        assert_eq!(position::<u64>(None, "checkpoint").unwrap(), None);
    }
}

fn encode<P: Serialize>(batch: Batch<P>) -> Result<WitBatch> {
    let checkpoint = serde_json::to_string(&batch.checkpoint)
        .map_err(|e| Error::Fatal(format!("cannot encode checkpoint: {e}")))?;
    Ok(WitBatch {
        records: batch.records,
        dead_letters: batch.dead_letters,
        checkpoint,
    })
}

pub fn check<C: Connector>(json: &str) -> Result<()> {
    C::check(&config::<C>(json)?)
}

pub fn discover_batch<C: BatchSource>(json: &str) -> Result<Vec<StreamInfo>> {
    C::discover(&config::<C>(json)?)
}

pub fn open_batch<C: BatchSource>(json: &str, checkpoint: Option<&str>) -> Result<Cell<C>> {
    let config = config::<C>(json)?;
    C::open(config, position(checkpoint, "checkpoint")?).map(Cell::new)
}

pub fn next_batch<C: BatchSource>(cell: &Cell<C>, max: u32) -> Result<Option<WitBatch>> {
    cell.0.borrow_mut().next(max)?.map(encode).transpose()
}

pub fn discover_stream<C: StreamSource>(json: &str) -> Result<Vec<StreamInfo>> {
    C::discover(&config::<C>(json)?)
}

pub fn open_stream<C: StreamSource>(json: &str, checkpoint: Option<&str>) -> Result<Cell<C>> {
    let config = config::<C>(json)?;
    C::open(config, position(checkpoint, "checkpoint")?).map(Cell::new)
}

pub fn poll_stream<C: StreamSource>(cell: &Cell<C>, max: u32, wait_ms: u32) -> Result<WitBatch> {
    encode(
        cell.0
            .borrow_mut()
            .poll(max, Duration::from_millis(wait_ms.into()))?,
    )
}

pub fn ack_stream<C: StreamSource>(cell: &Cell<C>, checkpoint: &str) -> Result<()> {
    let checkpoint = position(Some(checkpoint), "checkpoint")?.expect("some in, some out");
    cell.0.borrow_mut().ack(checkpoint)
}

pub fn open_sink<C: Sink>(json: &str) -> Result<Cell<C>> {
    C::open(config::<C>(json)?).map(Cell::new)
}

pub fn write_sink<C: Sink>(cell: &Cell<C>, records: Records) -> Result<Vec<DeadLetter>> {
    cell.0.borrow_mut().write(records)
}

pub fn flush_sink<C: Sink>(cell: &Cell<C>) -> Result<()> {
    cell.0.borrow_mut().flush()
}

pub fn stored_sink<C: TransactionalSink>(cell: &Cell<C>, pipeline: &str) -> Result<Option<String>> {
    cell.0.borrow_mut().stored(pipeline)
}

pub fn commit_sink<C: TransactionalSink>(
    cell: &Cell<C>,
    pipeline: String,
    epoch: u64,
    checkpoint: String,
) -> Result<Vec<DeadLetter>> {
    cell.0.borrow_mut().commit(Stamp {
        pipeline,
        epoch,
        checkpoint,
    })
}

pub fn open_transform<C: Transform>(json: &str) -> Result<Cell<C>> {
    C::open(config::<C>(json)?).map(Cell::new)
}

pub fn process_transform<C: Transform>(cell: &Cell<C>, records: Records) -> Result<Transformed> {
    cell.0.borrow_mut().process(records)
}
