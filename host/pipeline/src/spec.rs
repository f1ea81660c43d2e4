//! What a user writes for one pipeline, typed: a `[[pipeline]]` table of a pipeline file,
//! the body of `POST /v1/pipelines`, a row of weir serve's registry. Reading one has no
//! side effects: paths stay as written, secrets are named and not read, plugins are
//! referenced and not loaded. [`crate::resolve`] turns a spec into a runnable pipeline.

use crate::fit::Side;
use anyhow::{Result, bail, ensure};
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_runtime::Limits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Batches between source and sink: the backpressure window.
    #[serde(default = "default_buffer")]
    pub buffer_batches: usize,
    /// Batches one commit may cover (group commit): when batches wait for a slow sink, up
    /// to this many go under one sink commit and one checkpoint commit. 1: each batch is
    /// committed on its own, so a sink that names its output by batch (object-sink) names
    /// it the same way on every run.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub group_commit: usize,
    pub source: SourceSpec,
    /// Steps between source and sink, in order: `[[pipeline.transforms]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<TransformSpec>,
    /// Batches that go through the transforms at once, each in its own instance of every
    /// transform; the sink still gets them in the source's order.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub transform_parallelism: usize,
    pub sink: SinkSpec,
    #[serde(default, skip_serializing_if = "LimitsSpec::is_empty")]
    pub limits: LimitsSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,
}

fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

/// Each worker holds an instance of every transform: more than this is a mistake.
pub const MAX_TRANSFORM_PARALLELISM: usize = 16;

fn default_batch_size() -> u32 {
    1000
}
fn default_buffer() -> usize {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A file (weir run: relative to the pipeline file) or `name[@version]` (weir serve).
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Cron expression for batch sources; none runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How long a stream source's poll may wait for records.
    #[serde(default = "default_poll_wait", with = "humantime_serde")]
    pub poll_wait: Duration,
    #[serde(default, skip_serializing_if = "GrantsSpec::is_empty")]
    pub grants: GrantsSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// How long the sink's instance stays open with no batch to write; then it is closed
    /// and released, and the next batch opens a new one, as a restart would.
    #[serde(default, skip_serializing_if = "Release::is_default")]
    pub release_when_idle: Release,
    #[serde(default, skip_serializing_if = "GrantsSpec::is_empty")]
    pub grants: GrantsSpec,
}

/// One transform: a plugin of the `transform` world, its config, what it may reach, and
/// limits of its own over the pipeline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "GrantsSpec::is_empty")]
    pub grants: GrantsSpec,
    /// Over the pipeline's `limits`: what is left out is the pipeline's.
    #[serde(default, skip_serializing_if = "LimitsSpec::is_empty")]
    pub limits: LimitsSpec,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
fn default_poll_wait() -> Duration {
    Duration::from_millis(500)
}

/// When an instance with nothing to do is let go: an idle pipeline that holds only its
/// source's instance costs half the memory. Written `"30s"`, `"5m"`... or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    After(Duration),
    Never,
}

impl Release {
    /// A minute: a sink that takes a batch a second is never released, and one that
    /// waits for the hour's batch holds no memory in between.
    pub const DEFAULT: Release = Release::After(Duration::from_secs(60));

    fn is_default(&self) -> bool {
        *self == Release::DEFAULT
    }

    /// How long to wait before releasing; none for never.
    pub fn after(self) -> Option<Duration> {
        match self {
            Release::After(wait) => Some(wait),
            Release::Never => None,
        }
    }
}

impl Default for Release {
    fn default() -> Release {
        Release::DEFAULT
    }
}

impl Serialize for Release {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Release::After(wait) => s.serialize_str(&humantime::format_duration(*wait).to_string()),
            Release::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for Release {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Release, D::Error> {
        let text = String::deserialize(d)?;
        if text == "never" {
            return Ok(Release::Never);
        }
        match humantime::parse_duration(&text) {
            Ok(wait) if !wait.is_zero() => Ok(Release::After(wait)),
            Ok(_) => Err(serde::de::Error::custom(
                "a release wait must be more than zero (\"never\" keeps the instance)",
            )),
            Err(e) => Err(serde::de::Error::custom(format!(
                "`{text}` is neither a duration (\"30s\", \"5m\") nor \"never\": {e}"
            ))),
        }
    }
}

/// What one side's plugin may reach. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<KinesisSpec>,
    /// Secrets the plugin may hash under (`weir:connector/keys`), by the name it uses.
    /// The plugin never sees them: it gets digests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, SecretSpec>,
}

impl GrantsSpec {
    fn is_empty(&self) -> bool {
        *self == GrantsSpec::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// A host directory (weir run: relative to the pipeline file).
    pub host: PathBuf,
    /// The absolute path the plugin sees it under.
    pub guest: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    pub brokers: String,
    /// Consumer group; `weir-<pipeline>` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Topics (or `*` patterns) the plugin may consume or produce.
    pub topics: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `host`, `host:port` or `*.domain`; without a port only 80/443 are granted.
    pub hosts: Vec<String>,
    /// Larger response bodies fail the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response: Option<ByteSize>,
}

/// A database and how to log in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    /// `postgres://user@host:port/database`
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretSpec>,
}

/// Kinesis streams in one region, and the credentials to sign with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSpec {
    pub region: String,
    /// Another endpoint than AWS's: an emulator, a VPC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Stream names (or `*` patterns) the plugin may read or write.
    pub streams: Vec<String>,
    pub access_key_id: SecretSpec,
    pub secret_access_key: SecretSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretSpec>,
}

/// A secret is never written in a pipeline: it names an environment variable or a file
/// (its first line), read when the pipeline is resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretSpec {
    Env(String),
    File(PathBuf),
}

/// An S3-compatible bucket or a local directory: the plugin's root for object keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ObjectsFields", into = "ObjectsFields")]
pub struct ObjectsSpec {
    pub store: ObjectStoreSpec,
    pub access_key_id: Option<SecretSpec>,
    pub secret_access_key: Option<SecretSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObjectStoreSpec {
    /// `s3://bucket/prefix`, in `region`, at `endpoint` when not AWS (MinIO, Ceph).
    S3 {
        bucket: String,
        prefix: String,
        region: String,
        endpoint: Option<String>,
    },
    /// A host directory (weir run: relative to the pipeline file).
    Dir(PathBuf),
}

/// The fields as written: exactly one of `url` and `dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// An S3 API other than AWS's (MinIO, moto, Ceph), e.g. `http://127.0.0.1:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id: Option<SecretSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<SecretSpec>,
}

impl TryFrom<ObjectsFields> for ObjectsSpec {
    type Error = String;

    fn try_from(o: ObjectsFields) -> Result<Self, String> {
        let store = match (o.url, o.dir) {
            (Some(url), None) => {
                let rest = url
                    .strip_prefix("s3://")
                    .ok_or_else(|| format!("url: `{url}` is not s3://bucket/prefix"))?;
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("url: `{url}` names no bucket"));
                }
                ObjectStoreSpec::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                    region: o.region.unwrap_or_else(|| "us-east-1".into()),
                    endpoint: o.endpoint,
                }
            }
            (None, Some(dir)) if o.region.is_none() && o.endpoint.is_none() => {
                ObjectStoreSpec::Dir(dir)
            }
            (None, Some(_)) => return Err("`region` and `endpoint` are for `url` (s3://)".into()),
            _ => return Err("give exactly one of `url` (s3://) or `dir`".into()),
        };
        Ok(ObjectsSpec {
            store,
            access_key_id: o.access_key_id,
            secret_access_key: o.secret_access_key,
        })
    }
}

impl From<ObjectsSpec> for ObjectsFields {
    fn from(o: ObjectsSpec) -> Self {
        let (url, dir, region, endpoint) = match o.store {
            ObjectStoreSpec::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => (
                Some(format!("s3://{bucket}/{prefix}")),
                None,
                Some(region),
                endpoint,
            ),
            ObjectStoreSpec::Dir(dir) => (None, Some(dir), None, None),
        };
        ObjectsFields {
            url,
            dir,
            region,
            endpoint,
            access_key_id: o.access_key_id,
            secret_access_key: o.secret_access_key,
        }
    }
}

/// Where records a plugin rejects go: a directory (JSON Lines) or a Kafka topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DeadLetterFields", into = "DeadLetterFields")]
pub enum DeadLetterSpec {
    Dir(PathBuf),
    Kafka(DeadLetterKafkaSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterKafkaSpec {
    pub brokers: String,
    pub topic: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kafka: Option<DeadLetterKafkaSpec>,
}

impl TryFrom<DeadLetterFields> for DeadLetterSpec {
    type Error = &'static str;

    fn try_from(d: DeadLetterFields) -> Result<Self, Self::Error> {
        match (d.dir, d.kafka) {
            (Some(dir), None) => Ok(DeadLetterSpec::Dir(dir)),
            (None, Some(kafka)) => Ok(DeadLetterSpec::Kafka(kafka)),
            _ => Err("dead_letter needs exactly one of `dir` or `kafka`"),
        }
    }
}

impl From<DeadLetterSpec> for DeadLetterFields {
    fn from(d: DeadLetterSpec) -> Self {
        match d {
            DeadLetterSpec::Dir(dir) => DeadLetterFields {
                dir: Some(dir),
                kafka: None,
            },
            DeadLetterSpec::Kafka(kafka) => DeadLetterFields {
                dir: None,
                kafka: Some(kafka),
            },
        }
    }
}

/// Per-instance limits as written; what is left out comes from the defaults the pipeline
/// is resolved with (`Limits::default()` for weir run, the tenant's quotas in weir serve).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub call_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_bytes: Option<ByteSize>,
    /// The log budget of each instance: lines and bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes_per_second: Option<ByteSize>,
    /// Host resources each instance may hold at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_clients: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis_readers: Option<u32>,
}

impl LimitsSpec {
    fn is_empty(&self) -> bool {
        *self == LimitsSpec::default()
    }

    /// These limits, `base`'s where one is left out.
    pub fn over(&self, base: &LimitsSpec) -> LimitsSpec {
        LimitsSpec {
            memory: self.memory.or(base.memory),
            call_timeout: self.call_timeout.or(base.call_timeout),
            max_batch_bytes: self.max_batch_bytes.or(base.max_batch_bytes),
            log_lines_per_second: self.log_lines_per_second.or(base.log_lines_per_second),
            log_bytes_per_second: self.log_bytes_per_second.or(base.log_bytes_per_second),
            sql_connections: self.sql_connections.or(base.sql_connections),
            kafka_clients: self.kafka_clients.or(base.kafka_clients),
            kinesis_readers: self.kinesis_readers.or(base.kinesis_readers),
        }
    }

    /// These limits, `defaults` where one is left out.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            memory: self.memory.map_or(defaults.memory, |b| b.as_u64()),
            call_timeout: self.call_timeout.unwrap_or(defaults.call_timeout),
            max_batch_bytes: self
                .max_batch_bytes
                .map_or(defaults.max_batch_bytes, |b| b.as_u64()),
            log_lines_per_second: self
                .log_lines_per_second
                .unwrap_or(defaults.log_lines_per_second),
            log_bytes_per_second: self
                .log_bytes_per_second
                .map_or(defaults.log_bytes_per_second, |b| b.as_u64()),
            sql_connections: self.sql_connections.unwrap_or(defaults.sql_connections),
            kafka_clients: self.kafka_clients.unwrap_or(defaults.kafka_clients),
            kinesis_readers: self.kinesis_readers.unwrap_or(defaults.kinesis_readers),
        }
    }

    /// Every limit written out, those left out set to `most`; refused if one is above it.
    pub fn within(&self, most: &Limits) -> Result<LimitsSpec> {
        let asked = self.or(most);
        let mut above = Vec::new();
        let bytes = |v: u64| ByteSize::b(v).to_string();
        for (field, asked, quota) in [
            ("memory", asked.memory, most.memory),
            (
                "max_batch_bytes",
                asked.max_batch_bytes,
                most.max_batch_bytes,
            ),
            (
                "log_bytes_per_second",
                asked.log_bytes_per_second,
                most.log_bytes_per_second,
            ),
        ] {
            if asked > quota {
                above.push((field, bytes(asked), bytes(quota)));
            }
        }
        for (field, asked, quota) in [
            (
                "log_lines_per_second",
                asked.log_lines_per_second,
                most.log_lines_per_second,
            ),
            (
                "sql_connections",
                asked.sql_connections,
                most.sql_connections,
            ),
            ("kafka_clients", asked.kafka_clients, most.kafka_clients),
            (
                "kinesis_readers",
                asked.kinesis_readers,
                most.kinesis_readers,
            ),
        ] {
            if asked > quota {
                above.push((field, asked.to_string(), quota.to_string()));
            }
        }
        if asked.call_timeout > most.call_timeout {
            let text = |d| humantime::format_duration(d).to_string();
            above.push((
                "call_timeout",
                text(asked.call_timeout),
                text(most.call_timeout),
            ));
        }
        if let Some((field, asked, quota)) = above.first() {
            bail!("limits.{field}: {asked} is above the tenant's quota of {quota}");
        }
        Ok(LimitsSpec::from(&asked))
    }
}

impl From<&Limits> for LimitsSpec {
    fn from(l: &Limits) -> Self {
        LimitsSpec {
            memory: Some(ByteSize::b(l.memory)),
            call_timeout: Some(l.call_timeout),
            max_batch_bytes: Some(ByteSize::b(l.max_batch_bytes)),
            log_lines_per_second: Some(l.log_lines_per_second),
            log_bytes_per_second: Some(ByteSize::b(l.log_bytes_per_second)),
            sql_connections: Some(l.sql_connections),
            kafka_clients: Some(l.kafka_clients),
            kinesis_readers: Some(l.kinesis_readers),
        }
    }
}

/// How the host touches a path a spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A directory a plugin reads.
    Read,
    /// A directory a plugin writes (created when the pipeline starts).
    Write,
    /// A directory only the host writes (dead letters; created when first needed).
    HostWrite,
    /// A file the host reads a secret from.
    Secret,
}

/// A host path in a spec, with the field that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPath<'a> {
    pub field: String,
    pub path: &'a Path,
    pub access: Access,
}

impl PipelineSpec {
    /// A spec from JSON (the API's body, a registry row): unknown fields refused, errors
    /// naming the field, then checked.
    pub fn from_json(value: serde_json::Value) -> Result<PipelineSpec> {
        let spec: PipelineSpec = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("invalid pipeline at `{path}`: {}", e.into_inner())
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// A spec from a document that holds one: a bare table, or a pipeline file's shape
    /// with exactly one `[[pipeline]]` (so a file of one pipeline can be sent as is).
    pub fn from_document(value: serde_json::Value) -> Result<PipelineSpec> {
        #[derive(Deserialize)]
        struct File {
            pipeline: [serde_json::Value; 1],
        }
        match serde_json::from_value::<File>(value.clone()) {
            Ok(File { pipeline: [one] }) => PipelineSpec::from_json(one),
            Err(_) => PipelineSpec::from_json(value),
        }
    }

    /// What can be checked without touching anything: every error names the pipeline and
    /// the field.
    pub fn check(&self) -> Result<()> {
        let name = &self.name;
        let at = |field: &str| format!("pipeline `{name}`: {field}");
        ensure!(!name.is_empty(), "a pipeline has an empty name");
        ensure!(
            self.batch_size > 0,
            "{}",
            at("batch_size must be at least 1")
        );
        ensure!(
            self.buffer_batches > 0,
            "{}",
            at("buffer_batches must be at least 1")
        );
        ensure!(
            self.group_commit > 0,
            "{}",
            at("group_commit must be at least 1")
        );
        ensure!(
            (1..=MAX_TRANSFORM_PARALLELISM).contains(&self.transform_parallelism),
            "{}",
            at(&format!(
                "transform_parallelism must be from 1 to {MAX_TRANSFORM_PARALLELISM}"
            ))
        );
        if let Some(s) = &self.source.schedule {
            s.parse::<croner::Cron>()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .map_err(|e| {
                    e.context(at(&format!(
                        "source.schedule `{s}` is not a cron expression"
                    )))
                })?;
        }
        for side in self.sides() {
            if let Some(memory) = self.limits(side).memory {
                let field = match side {
                    Side::Transform(_) => format!("{}.limits.memory", side.field()),
                    _ => "limits.memory".to_string(),
                };
                ensure!(
                    memory.as_u64() >= 1 << 20,
                    "{}",
                    at(&format!("{field} must be at least 1 MiB"))
                );
            }
            let g = self.grants(side);
            let at = |field: &str| at(&format!("{}.grants.{field}", side.field()));
            if let Some(k) = &g.kafka {
                ensure!(!k.topics.is_empty(), "{}", at("kafka: no topics granted"));
            }
            if let Some(h) = &g.http {
                ensure!(!h.hosts.is_empty(), "{}", at("http: no hosts granted"));
                if let Some(bad) = h.hosts.iter().find(|h| h.contains('/')) {
                    bail!(
                        "{}",
                        at(&format!(
                            "http: `{bad}` is not a host or host:port (no scheme, no path)"
                        ))
                    );
                }
            }
            for d in &g.dirs {
                ensure!(
                    d.guest.starts_with('/'),
                    "{}",
                    at(&format!("dirs: guest path `{}` must be absolute", d.guest))
                );
            }
        }
        Ok(())
    }

    /// Every side in delivery order: the source, each transform, the sink.
    pub fn sides(&self) -> Vec<Side> {
        Side::all(self.transforms.len())
    }

    /// Panics for a transform the spec does not have: sides come from [`Self::sides`].
    pub fn plugin(&self, side: Side) -> &str {
        match side {
            Side::Source => &self.source.plugin,
            Side::Transform(i) => &self.transforms[i].plugin,
            Side::Sink => &self.sink.plugin,
        }
    }

    pub fn config(&self, side: Side) -> &serde_json::Value {
        match side {
            Side::Source => &self.source.config,
            Side::Transform(i) => &self.transforms[i].config,
            Side::Sink => &self.sink.config,
        }
    }

    pub fn grants(&self, side: Side) -> &GrantsSpec {
        match side {
            Side::Source => &self.source.grants,
            Side::Transform(i) => &self.transforms[i].grants,
            Side::Sink => &self.sink.grants,
        }
    }

    /// The limits a side runs under, as written: a transform's own over the pipeline's.
    pub fn limits(&self, side: Side) -> LimitsSpec {
        match side {
            Side::Transform(i) => self.transforms[i].limits.over(&self.limits),
            _ => self.limits.clone(),
        }
    }

    /// Every host path the spec names, as written: the one list, so a new path-bearing
    /// field is seen by every check that walks paths.
    pub fn host_paths(&self) -> Vec<HostPath<'_>> {
        let mut found = Vec::new();
        for side in self.sides() {
            let g = self.grants(side);
            let at = |field: &str| format!("{}.grants.{field}", side.field());
            for (i, d) in g.dirs.iter().enumerate() {
                let access = if d.write { Access::Write } else { Access::Read };
                found.push(HostPath {
                    field: at(&format!("dirs[{i}].host")),
                    path: &d.host,
                    access,
                });
            }
            let secrets = [
                (
                    "sql.password",
                    g.sql.as_ref().and_then(|s| s.password.as_ref()),
                ),
                (
                    "objects.access_key_id",
                    g.objects.as_ref().and_then(|o| o.access_key_id.as_ref()),
                ),
                (
                    "objects.secret_access_key",
                    g.objects
                        .as_ref()
                        .and_then(|o| o.secret_access_key.as_ref()),
                ),
                (
                    "kinesis.access_key_id",
                    g.kinesis.as_ref().map(|k| &k.access_key_id),
                ),
                (
                    "kinesis.secret_access_key",
                    g.kinesis.as_ref().map(|k| &k.secret_access_key),
                ),
                (
                    "kinesis.session_token",
                    g.kinesis.as_ref().and_then(|k| k.session_token.as_ref()),
                ),
            ];
            let keys = g
                .keys
                .iter()
                .map(|(name, secret)| (format!("keys.{name}"), Some(secret)));
            let secrets = secrets
                .into_iter()
                .map(|(field, secret)| (field.to_string(), secret))
                .chain(keys);
            for (field, secret) in secrets {
                if let Some(SecretSpec::File(file)) = secret {
                    found.push(HostPath {
                        field: at(&format!("{field}.file")),
                        path: file,
                        access: Access::Secret,
                    });
                }
            }
            if let Some(ObjectsSpec {
                store: ObjectStoreSpec::Dir(dir),
                ..
            }) = &g.objects
            {
                found.push(HostPath {
                    field: at("objects.dir"),
                    path: dir,
                    access: Access::Write,
                });
            }
        }
        if let Some(DeadLetterSpec::Dir(dir)) = &self.dead_letter {
            found.push(HostPath {
                field: "dead_letter.dir".into(),
                path: dir,
                access: Access::HostWrite,
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> serde_json::Value {
        json!({
            "name": "p",
            "batch_size": 10,
            "source": {
                "plugin": "src@2",
                "config": { "dir": "/in" },
                "schedule": "0 * * * *",
                "grants": {
                    "dirs": [{ "host": "in", "guest": "/in" }],
                    "sql": { "url": "postgres://u@h/d", "password": { "file": "pw" } },
                    "objects": { "url": "s3://bucket/a/b", "endpoint": "http://127.0.0.1:9000" },
                },
            },
            "sink": {
                "plugin": "out",
                "grants": {
                    "dirs": [{ "host": "out", "guest": "/out", "write": true }],
                    "kafka": { "brokers": "k:9092", "topics": ["t.*"] },
                    "http": { "hosts": ["api.example.com"] },
                },
            },
            "limits": { "memory": "32 MiB", "call_timeout": "2s" },
            "dead_letter": { "dir": "dl" },
        })
    }

    /// What the registry stores is what it reads back, and the API shows what was asked.
    #[test]
    fn a_spec_survives_its_own_serialisation() {
        let spec = PipelineSpec::from_json(full()).unwrap();
        let again = PipelineSpec::from_json(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(spec, again);
        assert_eq!(spec.limits.memory, Some(ByteSize::mib(32)));
        assert_eq!(spec.plugin(Side::Source), "src@2");
        assert_eq!(
            spec.source.grants.objects.as_ref().unwrap().store,
            ObjectStoreSpec::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into(),
                region: "us-east-1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
            }
        );
    }

    #[test]
    fn every_host_path_is_listed_with_how_it_is_used() {
        let spec = PipelineSpec::from_json(full()).unwrap();
        let found: Vec<(String, Access)> = spec
            .host_paths()
            .into_iter()
            .map(|h| (h.field, h.access))
            .collect();
        assert_eq!(
            found,
            [
                ("source.grants.dirs[0].host".to_string(), Access::Read),
                (
                    "source.grants.sql.password.file".to_string(),
                    Access::Secret
                ),
                ("sink.grants.dirs[0].host".to_string(), Access::Write),
                ("dead_letter.dir".to_string(), Access::HostWrite),
            ]
        );
    }

    #[test]
    fn a_document_holds_one_pipeline_bare_or_as_a_file() {
        let bare = PipelineSpec::from_document(full()).unwrap();
        let file = PipelineSpec::from_document(json!({ "pipeline": [full()] })).unwrap();
        assert_eq!(bare, file);
        let two = PipelineSpec::from_document(json!({ "pipeline": [full(), full()] }));
        assert!(two.is_err());
    }

    #[test]
    fn wrong_states_do_not_parse() {
        for (change, expected) in [
            (
                json!({ "dead_letter": { "dir": "a", "kafka": { "brokers": "k", "topic": "t" } } }),
                "exactly one",
            ),
            (json!({ "dead_letter": {} }), "exactly one"),
            (json!({ "batch_size": 0 }), "batch_size"),
            (
                json!({ "transform_parallelism": 0 }),
                "transform_parallelism",
            ),
            (
                json!({ "transform_parallelism": 17 }),
                "transform_parallelism",
            ),
            (json!({ "limits": { "memory": "1 KiB" } }), "limits.memory"),
            (
                json!({ "source": { "plugin": "s", "schedule": "every day" } }),
                "source.schedule",
            ),
            (
                json!({ "sink": { "plugin": "k", "grants": { "objects": { "url": "s3://" } } } }),
                "names no bucket",
            ),
            (
                json!({ "sink": { "plugin": "k", "grants": { "objects": { "dir": "o", "region": "eu" } } } }),
                "for `url`",
            ),
            (
                json!({ "sink": { "plugin": "k", "grants": { "http": { "hosts": ["http://x/"] } } } }),
                "no scheme",
            ),
            (
                json!({ "sink": { "plugin": "k", "grants": { "kafka": { "brokers": "k", "topics": [] } } } }),
                "no topics",
            ),
        ] {
            let mut d = full();
            for (k, v) in change.as_object().unwrap() {
                d[k] = v.clone();
            }
            let err = format!("{:#}", PipelineSpec::from_json(d).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }
}
