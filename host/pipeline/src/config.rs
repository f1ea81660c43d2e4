//! The pipeline file (TOML): what to run, with what config, grants and limits.

use anyhow::{Context, Result, bail, ensure};
use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_runtime::confined::{normalize, overlap};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{
    DEFAULT_MAX_RESPONSE_BYTES, DirGrant, HostDir, HttpGrant, KafkaGrant, Limits, ObjectLocation,
    ObjectsGrant, Sandbox, SqlGrant,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    /// Where checkpoints are kept, relative to the file.
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(rename = "pipeline", default)]
    pipelines: Vec<PipelineToml>,
}

fn default_state_dir() -> PathBuf {
    ".weir".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineToml {
    name: String,
    #[serde(default = "default_batch_size")]
    batch_size: u32,
    /// Batches between source and sink: the backpressure window.
    #[serde(default = "default_buffer")]
    buffer_batches: usize,
    source: SourceToml,
    sink: SinkToml,
    #[serde(default)]
    limits: LimitsToml,
    dead_letter: Option<DeadLetterToml>,
}

/// Where records a plugin rejects go: a directory (JSON Lines) or a Kafka topic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterToml {
    dir: Option<PathBuf>,
    kafka: Option<DeadLetterKafkaToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterKafkaToml {
    brokers: String,
    topic: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

fn default_batch_size() -> u32 {
    1000
}
fn default_buffer() -> usize {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceToml {
    plugin: String,
    #[serde(default = "empty_object")]
    config: serde_json::Value,
    /// Cron expression for batch sources; none runs once.
    schedule: Option<String>,
    /// How long a stream source's poll may wait for records.
    #[serde(default = "default_poll_wait", with = "humantime_serde")]
    poll_wait: Duration,
    #[serde(default)]
    grants: GrantsToml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkToml {
    plugin: String,
    #[serde(default = "empty_object")]
    config: serde_json::Value,
    #[serde(default)]
    grants: GrantsToml,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
fn default_poll_wait() -> Duration {
    Duration::from_millis(500)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsToml {
    #[serde(default)]
    dirs: Vec<DirToml>,
    kafka: Option<KafkaToml>,
    http: Option<HttpToml>,
    sql: Option<SqlToml>,
    objects: Option<ObjectsToml>,
}

/// A database and how to log in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlToml {
    /// `postgres://user@host:port/database`
    url: String,
    password: Option<SecretToml>,
}

/// A secret is never written in a pipeline file: it is read from an environment variable
/// or a file (relative to the pipeline file; its first line) when the pipeline loads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SecretToml {
    Env(String),
    File(PathBuf),
}

impl SecretToml {
    fn resolve(self, r: &Resolving, at: &str) -> Result<String> {
        match self {
            SecretToml::Env(_) if !r.env_secrets => bail!(
                "{at}: `env` secrets are not available here; use `file` in a granted directory"
            ),
            SecretToml::Env(var) => std::env::var(&var)
                .with_context(|| format!("{at}: environment variable `{var}` is not set")),
            SecretToml::File(file) => {
                let path = r.absolute(&file);
                let (Some(parent), Some(name)) =
                    (path.parent(), path.file_name().and_then(|n| n.to_str()))
                else {
                    bail!("{at}: `{}` is not a file", path.display());
                };
                (r.place)(parent)
                    .with_context(|| format!("{at}.file"))?
                    .read_first_line(name)
                    .with_context(|| format!("{at}: cannot read {}", path.display()))
            }
        }
    }
}

/// An S3-compatible bucket (`url = "s3://bucket/prefix"`) or a local directory
/// (`dir`, relative to the pipeline file): the plugin's root for object keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsToml {
    url: Option<String>,
    dir: Option<PathBuf>,
    #[serde(default = "default_region")]
    region: String,
    /// An S3 API other than AWS's (MinIO, moto, Ceph), e.g. `http://127.0.0.1:9000`.
    endpoint: Option<String>,
    access_key_id: Option<SecretToml>,
    secret_access_key: Option<SecretToml>,
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    /// `host`, `host:port` or `*.domain`; without a port only 80/443 are granted.
    hosts: Vec<String>,
    /// Larger response bodies fail the call.
    max_response: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaToml {
    brokers: String,
    /// Consumer group; `weir-<pipeline>` by default.
    group: Option<String>,
    /// Topics (or `*` patterns) the plugin may consume or produce.
    topics: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirToml {
    /// A host directory, relative to the pipeline file.
    host: PathBuf,
    /// The absolute path the plugin sees it under.
    guest: String,
    #[serde(default)]
    write: bool,
}

/// Per-instance limits as a file writes them; what it leaves out is `Limits::default()`'s,
/// the one place defaults are said.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsToml {
    memory: ByteSize,
    #[serde(with = "humantime_serde")]
    call_timeout: Duration,
    max_batch_bytes: ByteSize,
    /// The log budget of each instance: lines and bytes per second.
    log_lines_per_second: u32,
    log_bytes_per_second: ByteSize,
    /// Host resources each instance may hold at once.
    sql_connections: u32,
    kafka_clients: u32,
}

impl Default for LimitsToml {
    fn default() -> Self {
        let d = Limits::default();
        LimitsToml {
            memory: ByteSize::b(d.memory),
            call_timeout: d.call_timeout,
            max_batch_bytes: ByteSize::b(d.max_batch_bytes),
            log_lines_per_second: d.log_lines_per_second,
            log_bytes_per_second: ByteSize::b(d.log_bytes_per_second),
            sql_connections: d.sql_connections,
            kafka_clients: d.kafka_clients,
        }
    }
}

/// A pipeline file, read and checked, with every path made absolute.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub pipelines: Vec<Pipeline>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub batch_size: u32,
    pub buffer_batches: usize,
    pub source: Endpoint,
    pub sink: Endpoint,
    pub schedule: Option<croner::Cron>,
    pub poll_wait: Duration,
    pub dead_letter: Option<DeadLetterTarget>,
}

/// Where a pipeline's dead letters go.
#[derive(Debug, Clone)]
pub enum DeadLetterTarget {
    /// `dead-letters.jsonl` in this host directory.
    Dir(HostDir),
    /// A Kafka topic, produced to with the same guarantees as the Kafka sink.
    Kafka { grant: KafkaGrant, topic: String },
}

/// One side of a pipeline: the plugin, its config and its sandbox.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub plugin: PathBuf,
    pub config: serde_json::Value,
    pub sandbox: Sandbox,
}

/// What resolving a pipeline needs besides its table: where relative paths start, where
/// each host path is anchored (see [`HostDir`]), and which client settings the operator
/// allows beyond those any pipeline may set.
pub struct Resolving<'a> {
    pub base: &'a Path,
    pub place: &'a dyn Fn(&Path) -> Result<HostDir>,
    pub policy: &'a ClientPolicy,
    /// Whether `{ env = "VAR" }` secrets may be read: not where the process environment
    /// holds the operator's own (weir serve's admin token).
    pub env_secrets: bool,
}

impl Resolving<'_> {
    fn absolute(&self, path: &Path) -> PathBuf {
        normalize(&self.base.join(path))
    }
}

impl PipelineFile {
    /// Reads a pipeline file; client settings beyond the pipeline-safe ones are refused.
    pub fn load(path: &Path) -> Result<PipelineFile> {
        PipelineFile::load_with(path, &ClientPolicy::default())
    }

    /// Reads a pipeline file, allowing the client settings `policy` names.
    pub fn load_with(path: &Path, policy: &ClientPolicy) -> Result<PipelineFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        let file: FileToml = toml::from_str(&text)
            .with_context(|| format!("invalid pipeline file {}", path.display()))?;
        // `pipeline.toml` alone has an empty parent: the current directory.
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()
            .with_context(|| format!("cannot resolve the directory of {}", path.display()))?;
        ensure!(
            !file.pipelines.is_empty(),
            "{}: no [[pipeline]] defined",
            path.display()
        );
        // Every directory a plugin of this file may write: a host path inside one is
        // anchored there, so a link a plugin plants cannot lead the host out of it. The
        // file's own directory anchors the rest of what lies below it, so that two files
        // run side by side from one folder cannot lead each other's host code out either.
        let mut anchors: Vec<PathBuf> = file
            .pipelines
            .iter()
            .flat_map(|p| [&p.source.grants, &p.sink.grants])
            .flat_map(|g| {
                let dirs = g.dirs.iter().filter(|d| d.write).map(|d| &d.host);
                dirs.chain(g.objects.as_ref().and_then(|o| o.dir.as_ref()))
            })
            .map(|dir| normalize(&base.join(dir)))
            .collect();
        anchors.push(base.clone());
        let place = |path: &Path| Ok(HostDir::place(path, &anchors));
        let r = Resolving {
            base: &base,
            place: &place,
            policy,
            env_secrets: true,
        };
        let mut names = HashSet::new();
        let pipelines = file
            .pipelines
            .into_iter()
            .map(|p| {
                ensure!(
                    names.insert(p.name.clone()),
                    "pipeline name `{}` is used twice",
                    p.name
                );
                resolve(&r, p, &mut |plugin| Ok(normalize(&base.join(plugin))))
            })
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("in pipeline file {}", path.display()))?;
        let state_dir = normalize(&base.join(file.state_dir));
        let mut host_owned = vec![(state_dir.clone(), "state_dir".to_string())];
        for p in &pipelines {
            host_owned.extend(p.host_owned());
        }
        refuse_overlaps(&host_owned, &pipelines)
            .with_context(|| format!("in pipeline file {}", path.display()))?;
        Ok(PipelineFile {
            path: path.to_path_buf(),
            state_dir,
            pipelines,
        })
    }
}

/// Host-owned paths (state, dead letters, plugin files) may not lie in or hold a directory
/// a plugin may write: the plugin could replace what the host reads, or plant a link where
/// the host writes.
pub fn refuse_overlaps(host_owned: &[(PathBuf, String)], pipelines: &[Pipeline]) -> Result<()> {
    let mut problems = Vec::new();
    for p in pipelines {
        for (writable, field) in p.writable() {
            for (owned, what) in host_owned {
                if overlap(owned, &writable) {
                    problems.push(format!(
                        "{what} ({}) overlaps pipeline `{}`: {field} ({}), which a plugin may write",
                        owned.display(),
                        p.name,
                        writable.display()
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "host-owned paths overlap plugin-writable directories:\n  - {}",
            problems.join("\n  - ")
        );
    }
    Ok(())
}

impl Pipeline {
    /// One `[[pipeline]]` table as a JSON value (how the management API receives it).
    /// `plugin` turns each side's `plugin` reference into a file. Errors name the field.
    pub fn from_value(
        value: serde_json::Value,
        r: &Resolving,
        plugin: &mut dyn FnMut(&str) -> Result<PathBuf>,
    ) -> Result<Pipeline> {
        let p: PipelineToml = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("invalid pipeline at `{path}`: {}", e.into_inner())
        })?;
        let pipeline = resolve(r, p, plugin)?;
        refuse_overlaps(&pipeline.host_owned(), std::slice::from_ref(&pipeline))?;
        Ok(pipeline)
    }

    /// Directories a plugin of this pipeline may write (through WASI or the objects
    /// interface), each with the field that grants it.
    pub fn writable(&self) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        for (side, e) in [("source", &self.source), ("sink", &self.sink)] {
            for (i, d) in e.sandbox.dirs.iter().enumerate() {
                if d.writable {
                    found.push((d.host.path(), format!("{side}.grants.dirs[{i}]")));
                }
            }
            if let Some(ObjectsGrant {
                location: ObjectLocation::Dir(dir),
                ..
            }) = &e.sandbox.objects
            {
                found.push((dir.path(), format!("{side}.grants.objects.dir")));
            }
        }
        found
    }

    /// Paths the host reads or writes for this pipeline that no plugin may touch.
    fn host_owned(&self) -> Vec<(PathBuf, String)> {
        let at = |field: &str| format!("pipeline `{}`: {field}", self.name);
        let mut owned = vec![
            (self.source.plugin.clone(), at("source.plugin")),
            (self.sink.plugin.clone(), at("sink.plugin")),
        ];
        if let Some(DeadLetterTarget::Dir(dir)) = &self.dead_letter {
            owned.push((dir.path(), at("dead_letter.dir")));
        }
        owned
    }
}

fn resolve(
    r: &Resolving,
    p: PipelineToml,
    plugin: &mut dyn FnMut(&str) -> Result<PathBuf>,
) -> Result<Pipeline> {
    let name = p.name;
    let at = |field: &str| format!("pipeline `{name}`: {field}");
    ensure!(!name.is_empty(), "a pipeline has an empty name");
    ensure!(p.batch_size > 0, "{}", at("batch_size must be at least 1"));
    ensure!(
        p.buffer_batches > 0,
        "{}",
        at("buffer_batches must be at least 1")
    );
    let schedule = p
        .source
        .schedule
        .as_deref()
        .map(|s| {
            s.parse::<croner::Cron>()
                .with_context(|| at(&format!("source.schedule `{s}` is not a cron expression")))
        })
        .transpose()?;
    let limits = Limits {
        memory: p.limits.memory.as_u64(),
        call_timeout: p.limits.call_timeout,
        max_batch_bytes: p.limits.max_batch_bytes.as_u64(),
        log_lines_per_second: p.limits.log_lines_per_second,
        log_bytes_per_second: p.limits.log_bytes_per_second.as_u64(),
        sql_connections: p.limits.sql_connections,
        kafka_clients: p.limits.kafka_clients,
    };
    ensure!(
        limits.memory >= 1 << 20,
        "{}",
        at("limits.memory must be at least 1 MiB")
    );
    let source = Endpoint {
        plugin: plugin(&p.source.plugin).with_context(|| at("source.plugin"))?,
        config: p.source.config,
        sandbox: sandbox(
            r,
            &name,
            p.source.grants,
            limits.clone(),
            &at("source.grants"),
        )?,
    };
    let sink = Endpoint {
        plugin: plugin(&p.sink.plugin).with_context(|| at("sink.plugin"))?,
        config: p.sink.config,
        sandbox: sandbox(r, &name, p.sink.grants, limits, &at("sink.grants"))?,
    };
    let dead_letter = match p.dead_letter {
        None => None,
        Some(DeadLetterToml {
            dir: Some(dir),
            kafka: None,
        }) => {
            let dir = (r.place)(&r.absolute(&dir)).with_context(|| at("dead_letter.dir"))?;
            dir.create().with_context(|| {
                at(&format!(
                    "dead_letter.dir: cannot create {}",
                    dir.path().display()
                ))
            })?;
            Some(DeadLetterTarget::Dir(dir))
        }
        Some(DeadLetterToml {
            dir: None,
            kafka: Some(k),
        }) => {
            r.policy
                .check_kafka(&k.properties)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at("dead_letter.kafka.properties")))?;
            Some(DeadLetterTarget::Kafka {
                grant: KafkaGrant {
                    brokers: k.brokers,
                    group: String::new(),
                    topics: vec![k.topic.clone()],
                    properties: k.properties,
                },
                topic: k.topic,
            })
        }
        Some(_) => bail!(
            "{}",
            at("dead_letter needs exactly one of `dir` or `kafka`")
        ),
    };
    Ok(Pipeline {
        name,
        batch_size: p.batch_size,
        buffer_batches: p.buffer_batches,
        source,
        sink,
        schedule,
        poll_wait: p.source.poll_wait,
        dead_letter,
    })
}

fn sandbox(
    r: &Resolving,
    pipeline: &str,
    grants: GrantsToml,
    limits: Limits,
    at: &str,
) -> Result<Sandbox> {
    let kafka = grants
        .kafka
        .map(|k| {
            ensure!(!k.topics.is_empty(), "{at}.kafka: no topics granted");
            r.policy
                .check_kafka(&k.properties)
                .map_err(|e| anyhow::anyhow!("{at}.kafka.properties: {e}"))?;
            Ok(KafkaGrant {
                brokers: k.brokers,
                group: k.group.unwrap_or_else(|| format!("weir-{pipeline}")),
                topics: k.topics,
                properties: k.properties,
            })
        })
        .transpose()?;
    let http = grants
        .http
        .map(|h| {
            ensure!(!h.hosts.is_empty(), "{at}.http: no hosts granted");
            if let Some(bad) = h.hosts.iter().find(|h| h.contains('/')) {
                bail!("{at}.http: `{bad}` is not a host or host:port (no scheme, no path)");
            }
            Ok(HttpGrant {
                hosts: h.hosts,
                max_response_bytes: h
                    .max_response
                    .map_or(DEFAULT_MAX_RESPONSE_BYTES, |b| b.as_u64()),
            })
        })
        .transpose()?;
    let sql = grants
        .sql
        .map(|s| -> Result<SqlGrant> {
            r.policy
                .check_sql_url(&s.url)
                .map_err(|e| anyhow::anyhow!("{at}.sql.url: {e}"))?;
            let password = s
                .password
                .map(|p| p.resolve(r, &format!("{at}.sql.password")))
                .transpose()?;
            Ok(SqlGrant {
                url: s.url,
                password,
            })
        })
        .transpose()?;
    let objects = grants
        .objects
        .map(|o| objects_grant(r, o, &format!("{at}.objects")))
        .transpose()?;
    Ok(Sandbox {
        dirs: dirs(r, grants.dirs, at)?,
        kafka,
        http,
        sql,
        objects,
        limits,
    })
}

fn objects_grant(r: &Resolving, o: ObjectsToml, at: &str) -> Result<ObjectsGrant> {
    let location = match (o.url, o.dir) {
        (Some(url), None) => {
            let rest = url
                .strip_prefix("s3://")
                .with_context(|| format!("{at}.url: `{url}` is not s3://bucket/prefix"))?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            ensure!(!bucket.is_empty(), "{at}.url: `{url}` names no bucket");
            let secret = |s: Option<SecretToml>, field: &str| {
                s.map(|s| s.resolve(r, &format!("{at}.{field}")))
                    .transpose()
            };
            ObjectLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                region: o.region,
                allow_http: o
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
                endpoint: o.endpoint,
                access_key_id: secret(o.access_key_id, "access_key_id")?,
                secret_access_key: secret(o.secret_access_key, "secret_access_key")?,
            }
        }
        (None, Some(dir)) => {
            let dir = (r.place)(&r.absolute(&dir)).with_context(|| format!("{at}.dir"))?;
            dir.create()
                .with_context(|| format!("{at}.dir: cannot create {}", dir.path().display()))?;
            ObjectLocation::Dir(dir)
        }
        _ => bail!("{at}: give exactly one of `url` (s3://) or `dir`"),
    };
    let describe = match &location {
        ObjectLocation::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        ObjectLocation::Dir(d) => d.path().display().to_string(),
    };
    Ok(ObjectsGrant { location, describe })
}

fn dirs(r: &Resolving, dirs: Vec<DirToml>, at: &str) -> Result<Vec<DirGrant>> {
    dirs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.guest.starts_with('/') {
                bail!("{at}: guest path `{}` must be absolute", d.guest);
            }
            let path = r.absolute(&d.host);
            let host = (r.place)(&path).with_context(|| format!("{at}.dirs[{i}].host"))?;
            if d.write {
                // A sink's output directory may not exist yet on a fresh checkout.
                host.create().with_context(|| {
                    format!("{at}.dirs[{i}].host: cannot create {}", path.display())
                })?;
            } else {
                host.open().with_context(|| {
                    format!(
                        "{at}.dirs[{i}].host: cannot open directory {}",
                        path.display()
                    )
                })?;
            }
            Ok(DirGrant {
                host,
                guest: d.guest,
                writable: d.write,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("p.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        let path = write(
            dir.path(),
            r#"
            [[pipeline]]
            name = "a"
            [pipeline.source]
            plugin = "src.wasm"
            config = { dir = "/in" }
            grants.dirs = [{ host = "in", guest = "/in" }]
            [pipeline.sink]
            plugin = "sink.wasm"
            grants.dirs = [{ host = "out", guest = "/out", write = true }]
            [pipeline.limits]
            memory = "64 MiB"
            call_timeout = "2s"
            "#,
        );
        let file = PipelineFile::load(&path).unwrap();
        let root = dir.path().canonicalize().unwrap();
        let p = &file.pipelines[0];
        assert_eq!(file.state_dir, root.join(".weir"));
        assert_eq!(p.source.plugin, root.join("src.wasm"));
        assert_eq!(p.source.sandbox.dirs[0].host.path(), root.join("in"));
        assert!(!p.source.sandbox.dirs[0].writable);
        assert!(root.join("out").is_dir(), "a writable grant is created");
        assert_eq!(p.sink.sandbox.limits.memory, 64 << 20);
        assert_eq!(p.sink.sandbox.limits.call_timeout, Duration::from_secs(2));
        assert_eq!(p.source.config["dir"], "/in");
        assert_eq!(p.batch_size, 1000);
    }

    #[test]
    fn errors_name_the_pipeline_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[pipeline.source]\nplugin = \"s.wasm\"\n[pipeline.sink]\nplugin = \"k.wasm\"\n";
        let cases = [
            (
                format!("[[pipeline]]\nname = \"x\"\nbatch_size = 0\n{base}"),
                "batch_size",
            ),
            (
                format!("[[pipeline]]\nname = \"x\"\n{base}").replace(
                    "plugin = \"s.wasm\"",
                    "plugin = \"s.wasm\"\nschedule = \"every tuesday\"",
                ),
                "source.schedule",
            ),
            (
                format!("[[pipeline]]\nname = \"x\"\n{base}").replace(
                    "plugin = \"k.wasm\"",
                    "plugin = \"k.wasm\"\ngrants.dirs = [{ host = \"o\", guest = \"rel\" }]",
                ),
                "must be absolute",
            ),
            (
                format!("[[pipeline]]\nname = \"x\"\nbatchsize = 3\n{base}"),
                "batchsize",
            ),
            (
                format!("[[pipeline]]\nname = \"x\"\n{base}[[pipeline]]\nname = \"x\"\n{base}"),
                "used twice",
            ),
        ];
        for (text, expected) in cases {
            let err = format!(
                "{:#}",
                PipelineFile::load(&write(dir.path(), &text)).unwrap_err()
            );
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    /// Pipeline files as an operator might mistype them: fragments from the grammar
    /// shuffled into a file. Loading one ends in a pipeline file or an error saying what is
    /// wrong, never a panic. Cases and seed come from `PROPTEST_CASES` and `PROPTEST_RNG_SEED`.
    #[test]
    fn pipeline_files_load_or_fail_never_panic() {
        use proptest::prelude::*;
        let fragments = prop::sample::select(vec![
            "[[pipeline]]\n",
            "name = \"p\"\n",
            "name = \"\"\n",
            "batch_size = 0\n",
            "batch_size = 4294967296\n",
            "buffer_batches = -1\n",
            "[pipeline.source]\n",
            "[pipeline.sink]\n",
            "plugin = \"s.wasm\"\n",
            "schedule = \"* * *\"\n",
            "poll_wait = \"forever\"\n",
            "config = { dir = \"/in\" }\n",
            "grants.dirs = [{ host = \"in\", guest = \"/in\" }]\n",
            "grants.dirs = [{ host = \"out\", guest = \"/out\", write = true }]\n",
            "grants.dirs = [{ host = \"out\", guest = \"rel\" }]\n",
            "grants.objects = { dir = \"out/objects\" }\n",
            "grants.objects = { url = \"s3://\" }\n",
            "grants.kafka = { brokers = \"k\", topics = [], properties = { debug = \"all\" } }\n",
            "grants.sql = { url = \"postgres://u@h/d?host=x\", password = { file = \"pw\" } }\n",
            "grants.http = { hosts = [\"a/b\"] }\n",
            "[pipeline.dead_letter]\n",
            "dir = \"out/dlq\"\n",
            "kafka = { brokers = \"k\", topic = \"t\" }\n",
            "[pipeline.limits]\n",
            "memory = \"1 KiB\"\n",
            "memory = \"lots\"\n",
            "call_timeout = \"1ms\"\n",
            "state_dir = \"out/state\"\n",
            "unknown = 1\n",
            "= broken\n",
            "[pipeline\n",
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("in")).unwrap();
        std::fs::write(base.join("pw"), "secret\n").unwrap();
        let path = base.join("p.toml");
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&prop::collection::vec(fragments, 0..24), |parts| {
                std::fs::write(&path, parts.concat()).unwrap();
                if let Err(e) = PipelineFile::load(&path) {
                    let message = format!("{e:#}");
                    prop_assert!(!message.is_empty());
                }
                Ok(())
            })
            .unwrap();
    }
}
