//! `weir:connector/kinesis`: Kinesis Data Streams, confined to the pipeline's grant: one
//! region and endpoint, the streams it names, credentials that stay in the host.
//!
//! A shard is read through a [`ShardReader`] that keeps the service's iterator in the host:
//! a plugin cannot hand in an iterator of a stream it was not granted, an expired iterator
//! is rebuilt from the last record read, and reads of a shard keep within the service's
//! five per second.

pub mod client;

use crate::bindings::weir::connector::kinesis::{
    Got, Host, HostShardReader, PutFailure, ReadError, Shard, StartAt,
};
use crate::bindings::weir::connector::types::{Error, Records};
use crate::patterns;
use crate::sandbox::CallDeadline;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use client::{Client, Failure};
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Resource, ResourceTable};

/// Where a pipeline side may reach Kinesis. `Debug` leaves the credentials out.
#[derive(Clone)]
pub struct KinesisGrant {
    pub region: String,
    /// Another endpoint than AWS's (an emulator, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Stream names, or patterns with `*` and `?`.
    pub streams: Vec<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for KinesisGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisGrant")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl KinesisGrant {
    /// Whether `stream` is granted here.
    pub fn allows(&self, stream: &str) -> bool {
        patterns::topic_allows(&self.streams, stream)
    }

    /// Whether every stream `pattern` names is granted here.
    pub fn covers(&self, pattern: &str) -> bool {
        patterns::topic_covers(&self.streams, pattern)
    }
}

/// The service allows five GetRecords a second per shard.
const READ_INTERVAL: Duration = Duration::from_millis(200);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A PutRecords call: at most this many records and bytes (data and partition keys).
const PUT_MAX_RECORDS: usize = 500;
const PUT_MAX_BYTES: usize = 5 << 20;
const RECORD_MAX_BYTES: usize = 1 << 20;
const READ_MAX_RECORDS: u32 = 10_000;

/// The Kinesis capability of one instance: its grant, the client opened on first use, and
/// the shard readers it holds.
pub(crate) struct KinesisCtx {
    pub(crate) grant: Option<KinesisGrant>,
    pub(crate) client: Option<Arc<Client>>,
    pub(crate) table: ResourceTable,
    pub(crate) held: u32,
    /// Shard readers it may hold at once (`limits.kinesis_readers`).
    pub(crate) limit: u32,
    pub(crate) deadline: CallDeadline,
}

impl KinesisCtx {
    pub(crate) fn new(
        grant: Option<KinesisGrant>,
        limit: u32,
        deadline: CallDeadline,
    ) -> KinesisCtx {
        KinesisCtx {
            grant,
            client: None,
            table: ResourceTable::new(),
            held: 0,
            limit,
            deadline,
        }
    }

    /// The client, once `stream` is known to be granted.
    fn client(&mut self, stream: &str) -> Result<Arc<Client>, Error> {
        let grant = self
            .grant
            .as_ref()
            .ok_or_else(|| Error::Config("this plugin has no Kinesis grant".into()))?;
        if !grant.allows(stream) {
            return Err(Error::Config(format!(
                "Kinesis stream `{stream}` is not granted to this plugin (granted: {})",
                grant.streams.join(", ")
            )));
        }
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = Client::new(
            &grant.region,
            grant.endpoint.as_deref(),
            &grant.access_key_id,
            &grant.secret_access_key,
            grant.session_token.as_deref(),
        )
        .map(Arc::new)
        .map_err(|e| Error::Config(format!("grants.kinesis: {e}")))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    fn timeout(&self) -> Duration {
        self.deadline.left(CALL_TIMEOUT)
    }
}

/// One shard being read; the service's iterator never leaves the host.
pub struct ShardReader {
    client: Arc<Client>,
    stream: String,
    shard: String,
    /// None once the shard is read to its end.
    iterator: Option<String>,
    /// Where a new iterator starts if this one expires: after the last record read, or
    /// where the reader was opened.
    resume: StartAt,
    last_read: Option<Instant>,
}

impl ShardReader {
    fn at(&self, action: &str) -> String {
        format!(
            "{}: {action} of stream `{}` shard `{}`",
            self.client.describe, self.stream, self.shard
        )
    }

    async fn iterator(
        client: &Client,
        stream: &str,
        shard: &str,
        start: &StartAt,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let mut body = json!({ "StreamName": stream, "ShardId": shard });
        let kind = match start {
            StartAt::TrimHorizon => "TRIM_HORIZON",
            StartAt::Latest => "LATEST",
            StartAt::AtSequenceNumber(s) => {
                body["StartingSequenceNumber"] = s.as_str().into();
                "AT_SEQUENCE_NUMBER"
            }
            StartAt::AfterSequenceNumber(s) => {
                body["StartingSequenceNumber"] = s.as_str().into();
                "AFTER_SEQUENCE_NUMBER"
            }
            StartAt::AtTimestamp(ms) => {
                body["Timestamp"] = (*ms as f64 / 1000.0).into();
                "AT_TIMESTAMP"
            }
        };
        body["ShardIteratorType"] = kind.into();
        let answer = client.call("GetShardIterator", &body, timeout).await?;
        string(&answer, "ShardIterator")
            .map(str::to_string)
            .ok_or_else(|| Failure::Invalid("GetShardIterator answered no ShardIterator".into()))
    }
}

fn string<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

fn read_error(failure: Failure, at: &str) -> ReadError {
    if failure.is_throttled() {
        ReadError::Throttled(format!("{at}: {}", failure.kind().unwrap_or_default()))
    } else {
        ReadError::Other(failure.error(at))
    }
}

impl HostShardReader for KinesisCtx {
    async fn open(
        &mut self,
        stream: String,
        shard: String,
        start: StartAt,
    ) -> Result<Resource<ShardReader>, ReadError> {
        if self.held >= self.limit {
            return Err(ReadError::Other(Error::Config(format!(
                "this plugin already holds {} Kinesis shard readers, its limit \
                 (limits.kinesis_readers); drop one before opening another",
                self.limit
            ))));
        }
        let client = self.client(&stream).map_err(ReadError::Other)?;
        let timeout = self.timeout();
        let iterator = ShardReader::iterator(&client, &stream, &shard, &start, timeout)
            .await
            .map_err(|f| {
                let at = format!(
                    "{}: GetShardIterator of stream `{stream}` shard `{shard}`",
                    client.describe
                );
                read_error(f, &at)
            })?;
        let reader = ShardReader {
            client,
            stream,
            shard,
            iterator: Some(iterator),
            resume: start,
            last_read: None,
        };
        let reader = self
            .table
            .push(reader)
            .map_err(|e| ReadError::Other(Error::Fatal(e.to_string())))?;
        self.held += 1;
        Ok(reader)
    }

    async fn read(&mut self, r: Resource<ShardReader>, max: u32) -> Result<Got, ReadError> {
        let timeout = self.timeout();
        let reader = self
            .table
            .get_mut(&r)
            .map_err(|e| ReadError::Other(Error::Fatal(e.to_string())))?;
        let Some(iterator) = reader.iterator.clone() else {
            return Ok(Got {
                records: Records::new(),
                sequence_numbers: Vec::new(),
                ended: true,
                millis_behind_latest: None,
            });
        };
        if let Some(last) = reader.last_read {
            let next = last + READ_INTERVAL;
            if next > Instant::now() {
                tokio::time::sleep_until(next.into()).await;
            }
        }
        reader.last_read = Some(Instant::now());
        let limit = max.clamp(1, READ_MAX_RECORDS);
        let body = |iterator: &str| json!({ "ShardIterator": iterator, "Limit": limit });
        let answer = match reader
            .client
            .call("GetRecords", &body(&iterator), timeout)
            .await
        {
            Err(f) if f.kind() == Some("ExpiredIteratorException") => {
                tracing::info!(
                    stream = %reader.stream,
                    shard = %reader.shard,
                    "the shard iterator expired; a new one starts after the last record read"
                );
                let fresh = ShardReader::iterator(
                    &reader.client,
                    &reader.stream,
                    &reader.shard,
                    &reader.resume,
                    timeout,
                )
                .await
                .map_err(|f| read_error(f, &reader.at("GetShardIterator")))?;
                reader.iterator = Some(fresh.clone());
                reader
                    .client
                    .call("GetRecords", &body(&fresh), timeout)
                    .await
            }
            other => other,
        }
        .map_err(|f| read_error(f, &reader.at("GetRecords")))?;
        let got = parse_records(&answer).map_err(|e| {
            ReadError::Other(Error::Fatal(format!("{}: {e}", reader.at("GetRecords"))))
        })?;
        if let Some(last) = got.sequence_numbers.last() {
            reader.resume = StartAt::AfterSequenceNumber(last.clone());
        }
        reader.iterator = string(&answer, "NextShardIterator").map(str::to_string);
        Ok(Got {
            ended: reader.iterator.is_none(),
            ..got
        })
    }

    async fn drop(&mut self, r: Resource<ShardReader>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.held -= 1;
        Ok(())
    }
}

/// A GetRecords answer as records: the partition key as key, the arrival time as timestamp.
fn parse_records(answer: &Value) -> Result<Got, String> {
    let mut records = Records::new();
    let mut sequence_numbers = Vec::new();
    let listed = answer
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("the answer has no Records")?;
    for (i, r) in listed.iter().enumerate() {
        let field = |name: &str| string(r, name).ok_or(format!("record {i} has no {name}"));
        let data = BASE64
            .decode(field("Data")?)
            .map_err(|e| format!("record {i}: Data is not base64: {e}"))?;
        let arrived = r
            .get("ApproximateArrivalTimestamp")
            .and_then(Value::as_f64)
            .map(|seconds| (seconds * 1000.0).round() as i64);
        records.push(
            Some(field("PartitionKey")?.as_bytes()),
            Some(&data),
            &[],
            arrived,
        );
        sequence_numbers.push(field("SequenceNumber")?.to_string());
    }
    Ok(Got {
        records,
        sequence_numbers,
        ended: false,
        millis_behind_latest: answer.get("MillisBehindLatest").and_then(Value::as_i64),
    })
}

impl Host for KinesisCtx {
    async fn list_shards(&mut self, stream: String) -> Result<Vec<Shard>, Error> {
        let client = self.client(&stream)?;
        let at = format!("{}: ListShards of stream `{stream}`", client.describe);
        let mut shards = Vec::new();
        let mut body = json!({ "StreamName": stream });
        loop {
            let answer = client
                .call("ListShards", &body, self.timeout())
                .await
                .map_err(|f| f.error(&at))?;
            for s in answer
                .get("Shards")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Fatal(format!("{at}: the answer has no Shards")))?
            {
                let text = |path: &[&str]| {
                    path.iter()
                        .try_fold(s, |v, p| v.get(p))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                shards.push(Shard {
                    id: text(&["ShardId"])
                        .ok_or_else(|| Error::Fatal(format!("{at}: a shard has no ShardId")))?,
                    parent: text(&["ParentShardId"]),
                    adjacent_parent: text(&["AdjacentParentShardId"]),
                    starting_hash_key: text(&["HashKeyRange", "StartingHashKey"])
                        .unwrap_or_default(),
                    ending_hash_key: text(&["HashKeyRange", "EndingHashKey"]).unwrap_or_default(),
                    ending_sequence_number: text(&["SequenceNumberRange", "EndingSequenceNumber"]),
                });
            }
            match string(&answer, "NextToken") {
                // Later pages are asked by token alone.
                Some(token) => body = json!({ "NextToken": token }),
                None => return Ok(shards),
            }
        }
    }

    async fn put_records(
        &mut self,
        stream: String,
        records: Records,
    ) -> Result<Vec<PutFailure>, Error> {
        let client = self.client(&stream)?;
        let at = format!("{}: PutRecords to stream `{stream}`", client.describe);
        records
            .check()
            .map_err(|e| Error::Fatal(format!("malformed records: {e}")))?;
        if records.len() > PUT_MAX_RECORDS {
            return Err(Error::Config(format!(
                "{at}: {} records in one call; at most {PUT_MAX_RECORDS}",
                records.len()
            )));
        }
        let mut total = 0;
        let mut entries = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let key = r
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .filter(|k| (1..=256).contains(&k.chars().count()))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{at}: record {i}: its key, the partition key, must be 1 to 256 \
                         characters of UTF-8"
                    ))
                })?;
            let value = r.value().unwrap_or_default();
            let size = key.len() + value.len();
            if size > RECORD_MAX_BYTES {
                return Err(Error::Config(format!(
                    "{at}: record {i} is {size} bytes; a record holds at most {RECORD_MAX_BYTES}"
                )));
            }
            total += size;
            entries.push(json!({ "Data": BASE64.encode(value), "PartitionKey": key }));
        }
        if total > PUT_MAX_BYTES {
            return Err(Error::Config(format!(
                "{at}: {total} bytes in one call; at most {PUT_MAX_BYTES}"
            )));
        }
        let body = json!({ "StreamName": stream, "Records": entries });
        let answer = client
            .call("PutRecords", &body, self.timeout())
            .await
            .map_err(|f| f.error(&at))?;
        let results = answer
            .get("Records")
            .and_then(Value::as_array)
            .filter(|r| r.len() == records.len())
            .ok_or_else(|| {
                Error::Fatal(format!(
                    "{at}: the answer does not have one result per record"
                ))
            })?;
        Ok(results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let code = string(r, "ErrorCode")?;
                Some(PutFailure {
                    index: i as u32,
                    code: code.to_string(),
                    message: string(r, "ErrorMessage").unwrap_or_default().to_string(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_shows_no_credentials_and_names_streams_by_pattern() {
        let grant = KinesisGrant {
            region: "eu-west-1".into(),
            endpoint: None,
            streams: vec!["orders".into(), "acme-*".into()],
            access_key_id: "AKIDSECRETID".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: Some("FwoGZXIvYXdzTOKEN".into()),
        };
        let shown = format!("{grant:?}");
        for secret in ["AKIDSECRETID", "wJalrXUtnFEMI", "FwoGZXIvYXdzTOKEN"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(grant.allows("orders") && grant.allows("acme-clicks"));
        assert!(!grant.allows("billing") && !grant.allows("order"));
        assert!(grant.covers("acme-*") && !grant.covers("*"));
    }

    #[test]
    fn get_records_answers_become_records_with_keys_and_arrival_times() {
        let answer = json!({
            "Records": [
                { "SequenceNumber": "4959", "PartitionKey": "k1", "Data": "eyJuIjoxfQ==",
                  "ApproximateArrivalTimestamp": 1764540000.123 },
                { "SequenceNumber": "4960", "PartitionKey": "k2", "Data": "" },
            ],
            "MillisBehindLatest": 1500,
        });
        let got = parse_records(&answer).unwrap();
        assert_eq!(got.sequence_numbers, ["4959", "4960"]);
        assert_eq!(got.millis_behind_latest, Some(1500));
        let records: Vec<_> = got.records.iter().collect();
        assert_eq!(records[0].key(), Some(&b"k1"[..]));
        assert_eq!(records[0].value(), Some(&b"{\"n\":1}"[..]));
        assert_eq!(records[0].timestamp_ms(), Some(1_764_540_000_123));
        assert_eq!(
            (records[1].value(), records[1].timestamp_ms()),
            (Some(&b""[..]), None)
        );
        let bad =
            json!({ "Records": [{ "SequenceNumber": "1", "PartitionKey": "k", "Data": "%%" }] });
        assert!(parse_records(&bad).unwrap_err().contains("not base64"));
    }

    #[test]
    fn service_errors_are_typed_for_retry_or_stop() {
        let failure = |kind: &str, status| Failure::Service {
            status,
            kind: kind.into(),
            message: "m".into(),
        };
        for kind in [
            "UnrecognizedClientException",
            "ResourceNotFoundException",
            "AccessDeniedException",
        ] {
            assert!(
                matches!(failure(kind, 400).error("at"), Error::Config(_)),
                "{kind}"
            );
        }
        for kind in [
            "ProvisionedThroughputExceededException",
            "KMSThrottlingException",
        ] {
            assert!(failure(kind, 400).is_throttled());
            assert!(matches!(
                failure(kind, 400).error("at"),
                Error::Transient(_)
            ));
        }
        assert!(matches!(
            failure("InternalFailure", 500).error("at"),
            Error::Transient(_)
        ));
        assert!(matches!(
            Failure::Network("refused".into()).error("at"),
            Error::Transient(_)
        ));
        assert!(matches!(
            failure("SomethingNew", 400).error("at"),
            Error::Fatal(_)
        ));
    }
}
