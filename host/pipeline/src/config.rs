//! Pipeline files, and resolving a [`PipelineSpec`] into a [`Pipeline`] that can run:
//! paths anchored (see [`HostDir`]), secrets read, plugins found, client settings held to
//! the policy. What differs between `weir run` and `weir serve` is one [`Resolver`].
//! Resolving creates nothing: writable directories are made when the pipeline starts.

use crate::fit::Side;
use crate::spec::{Access, DeadLetterSpec, ObjectStoreSpec, PipelineSpec, Release, SecretSpec};
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_runtime::confined::{normalize, overlap};
use weir_runtime::io::ClientPolicy;
use weir_runtime::{
    DEFAULT_MAX_RESPONSE_BYTES, DirGrant, HostDir, HttpGrant, KafkaGrant, Key, KinesisGrant,
    Limits, ObjectLocation, ObjectsGrant, Sandbox, SqlGrant,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    /// Where checkpoints are kept, relative to the file.
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(rename = "pipeline", default)]
    pipelines: Vec<PipelineSpec>,
}

fn default_state_dir() -> PathBuf {
    ".weir".into()
}

/// A pipeline file, read and checked, with every path made absolute.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub pipelines: Vec<Pipeline>,
}

/// A pipeline ready to run: what [`resolve`] makes of a spec.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub batch_size: u32,
    pub buffer_batches: usize,
    /// Batches one commit may cover.
    pub group_commit: usize,
    pub source: Endpoint,
    /// Between source and sink, in order.
    pub transforms: Vec<Endpoint>,
    /// Workers, each with an instance of every transform.
    pub transform_parallelism: usize,
    pub sink: Endpoint,
    pub schedule: Option<croner::Cron>,
    pub poll_wait: Duration,
    /// When the sink's instance, with no batch to write, is closed and let go.
    pub sink_release: Release,
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

/// Where the names in a spec lead. Errors need not name the field: the caller adds it.
pub trait Resolver {
    /// The directory `path` names, anchored so that no link leads the host out of it;
    /// `access` says who touches it how.
    fn dir(&self, path: &Path, access: Access) -> Result<HostDir>;
    /// The value of the environment variable a secret names.
    fn env(&self, var: &str) -> Result<String>;
    /// The file of the plugin `side` references.
    fn plugin(&self, side: Side, reference: &str) -> Result<PathBuf>;
    /// Which client settings the operator allows beyond those any pipeline may set.
    fn policy(&self) -> &ClientPolicy;
}

/// `weir run`'s resolver: paths relative to the pipeline file, each anchored at the
/// outermost plugin-writable directory holding it (or the file's folder), the process
/// environment for `env` secrets.
pub struct FileResolver<'a> {
    pub base: PathBuf,
    pub anchors: Vec<PathBuf>,
    pub policy: &'a ClientPolicy,
}

impl<'a> FileResolver<'a> {
    /// Paths relative to `base`, anchored at the directories `specs` let a plugin write
    /// (and at `base`).
    pub fn new(base: &Path, specs: &[PipelineSpec], policy: &'a ClientPolicy) -> Self {
        let mut anchors: Vec<PathBuf> = specs
            .iter()
            .flat_map(PipelineSpec::host_paths)
            .filter(|h| h.access == Access::Write)
            .map(|h| normalize(&base.join(h.path)))
            .collect();
        anchors.push(base.to_path_buf());
        FileResolver {
            base: base.to_path_buf(),
            anchors,
            policy,
        }
    }
}

impl Resolver for FileResolver<'_> {
    fn dir(&self, path: &Path, _: Access) -> Result<HostDir> {
        Ok(HostDir::place(
            &normalize(&self.base.join(path)),
            &self.anchors,
        ))
    }

    fn env(&self, var: &str) -> Result<String> {
        std::env::var(var).with_context(|| format!("environment variable `{var}` is not set"))
    }

    fn plugin(&self, _: Side, reference: &str) -> Result<PathBuf> {
        Ok(normalize(&self.base.join(reference)))
    }

    fn policy(&self) -> &ClientPolicy {
        self.policy
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
        let r = FileResolver::new(&base, &file.pipelines, policy);
        let mut names = HashSet::new();
        let pipelines = file
            .pipelines
            .iter()
            .map(|p| {
                ensure!(
                    names.insert(p.name.clone()),
                    "pipeline name `{}` is used twice",
                    p.name
                );
                resolve(p, &r)
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
    /// Every side in delivery order: the source, each transform, the sink.
    pub fn sides(&self) -> Vec<Side> {
        Side::all(self.transforms.len())
    }

    /// Panics for a transform the pipeline does not have: sides come from [`Self::sides`].
    pub fn endpoint(&self, side: Side) -> &Endpoint {
        match side {
            Side::Source => &self.source,
            Side::Transform(i) => &self.transforms[i],
            Side::Sink => &self.sink,
        }
    }

    /// Directories a plugin of this pipeline may write (through WASI or the objects
    /// interface), each with the field that grants it.
    pub fn writable(&self) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        for side in self.sides() {
            let (e, side) = (self.endpoint(side), side.field());
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
        let mut owned: Vec<(PathBuf, String)> = self
            .sides()
            .into_iter()
            .map(|side| {
                let field = at(&format!("{}.plugin", side.field()));
                (self.endpoint(side).plugin.clone(), field)
            })
            .collect();
        if let Some(DeadLetterTarget::Dir(dir)) = &self.dead_letter {
            owned.push((dir.path(), at("dead_letter.dir")));
        }
        owned
    }
}

/// A spec made runnable by `r`. Errors name the pipeline and the field.
pub fn resolve(spec: &PipelineSpec, r: &dyn Resolver) -> Result<Pipeline> {
    spec.check()?;
    let name = &spec.name;
    let at = |field: &str| format!("pipeline `{name}`: {field}");
    let schedule = match &spec.source.schedule {
        None => None,
        Some(s) => Some(s.parse::<croner::Cron>().map_err(|e| {
            anyhow::anyhow!("{e}").context(at(&format!(
                "source.schedule `{s}` is not a cron expression"
            )))
        })?),
    };
    let endpoint = |side: Side| -> Result<Endpoint> {
        let field = |f: &str| at(&format!("{}.{f}", side.field()));
        let limits = spec.limits(side).or(&Limits::default());
        Ok(Endpoint {
            plugin: r
                .plugin(side, spec.plugin(side))
                .with_context(|| field("plugin"))?,
            config: spec.config(side).clone(),
            sandbox: sandbox(r, spec, side, limits, &field("grants"))?,
        })
    };
    let (source, sink) = (endpoint(Side::Source)?, endpoint(Side::Sink)?);
    let transforms = (0..spec.transforms.len())
        .map(|i| endpoint(Side::Transform(i)))
        .collect::<Result<Vec<_>>>()?;
    let dead_letter = match &spec.dead_letter {
        None => None,
        Some(DeadLetterSpec::Dir(dir)) => Some(DeadLetterTarget::Dir(
            r.dir(dir, Access::HostWrite)
                .with_context(|| at("dead_letter.dir"))?,
        )),
        Some(DeadLetterSpec::Kafka(k)) => {
            r.policy()
                .check_kafka(&k.properties)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at("dead_letter.kafka.properties")))?;
            Some(DeadLetterTarget::Kafka {
                grant: KafkaGrant {
                    brokers: k.brokers.clone(),
                    group: String::new(),
                    topics: vec![k.topic.clone()],
                    properties: k.properties.clone(),
                },
                topic: k.topic.clone(),
            })
        }
    };
    let pipeline = Pipeline {
        name: name.clone(),
        batch_size: spec.batch_size,
        buffer_batches: spec.buffer_batches,
        group_commit: spec.group_commit,
        source,
        transforms,
        transform_parallelism: spec.transform_parallelism,
        sink,
        schedule,
        poll_wait: spec.source.poll_wait,
        sink_release: spec.sink.release_when_idle,
        dead_letter,
    };
    refuse_overlaps(&pipeline.host_owned(), std::slice::from_ref(&pipeline))?;
    Ok(pipeline)
}

fn sandbox(
    r: &dyn Resolver,
    spec: &PipelineSpec,
    side: Side,
    limits: Limits,
    at: &str,
) -> Result<Sandbox> {
    let grants = spec.grants(side);
    let kafka = grants
        .kafka
        .as_ref()
        .map(|k| {
            r.policy()
                .check_kafka(&k.properties)
                .map_err(|e| anyhow::anyhow!("{at}.kafka.properties: {e}"))?;
            Ok::<_, anyhow::Error>(KafkaGrant {
                brokers: k.brokers.clone(),
                group: k
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("weir-{}", spec.name)),
                topics: k.topics.clone(),
                properties: k.properties.clone(),
            })
        })
        .transpose()?;
    let http = grants.http.as_ref().map(|h| HttpGrant {
        hosts: h.hosts.clone(),
        max_response_bytes: h
            .max_response
            .map_or(DEFAULT_MAX_RESPONSE_BYTES, |b| b.as_u64()),
    });
    let sql = grants
        .sql
        .as_ref()
        .map(|s| -> Result<SqlGrant> {
            r.policy()
                .check_sql_url(&s.url)
                .map_err(|e| anyhow::anyhow!("{at}.sql.url: {e}"))?;
            Ok(SqlGrant {
                url: s.url.clone(),
                password: s
                    .password
                    .as_ref()
                    .map(|p| secret(r, p, &format!("{at}.sql.password")))
                    .transpose()?,
            })
        })
        .transpose()?;
    let objects = grants
        .objects
        .as_ref()
        .map(|o| -> Result<ObjectsGrant> {
            let at = format!("{at}.objects");
            let key = |s: &Option<SecretSpec>, field: &str| {
                s.as_ref()
                    .map(|s| secret(r, s, &format!("{at}.{field}")))
                    .transpose()
            };
            let location = match &o.store {
                ObjectStoreSpec::S3 {
                    bucket,
                    prefix,
                    region,
                    endpoint,
                } => ObjectLocation::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    region: region.clone(),
                    allow_http: endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                    endpoint: endpoint.clone(),
                    access_key_id: key(&o.access_key_id, "access_key_id")?,
                    secret_access_key: key(&o.secret_access_key, "secret_access_key")?,
                },
                ObjectStoreSpec::Dir(dir) => ObjectLocation::Dir(
                    r.dir(dir, Access::Write)
                        .with_context(|| format!("{at}.dir"))?,
                ),
            };
            let describe = match &location {
                ObjectLocation::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
                ObjectLocation::Dir(d) => d.path().display().to_string(),
            };
            Ok(ObjectsGrant { location, describe })
        })
        .transpose()?;
    let kinesis = grants
        .kinesis
        .as_ref()
        .map(|k| -> Result<KinesisGrant> {
            let at = format!("{at}.kinesis");
            let secret = |s: &SecretSpec, field: &str| secret(r, s, &format!("{at}.{field}"));
            ensure!(
                !k.streams.is_empty(),
                "{at}.streams: name at least one stream"
            );
            Ok(KinesisGrant {
                region: k.region.clone(),
                endpoint: k.endpoint.clone(),
                streams: k.streams.clone(),
                access_key_id: secret(&k.access_key_id, "access_key_id")?,
                secret_access_key: secret(&k.secret_access_key, "secret_access_key")?,
                session_token: k
                    .session_token
                    .as_ref()
                    .map(|s| secret(s, "session_token"))
                    .transpose()?,
            })
        })
        .transpose()?;
    let dirs = grants
        .dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let field = format!("{at}.dirs[{i}].host");
            let access = if d.write { Access::Write } else { Access::Read };
            let host = r.dir(&d.host, access).with_context(|| field.clone())?;
            // A directory to read must be there; one to write is made at the start.
            if !d.write {
                host.open().with_context(|| {
                    format!("{field}: cannot open directory {}", host.path().display())
                })?;
            }
            Ok(DirGrant {
                host,
                guest: d.guest.clone(),
                writable: d.write,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let keys = grants
        .keys
        .iter()
        .map(|(name, s)| {
            let value = secret(r, s, &format!("{at}.keys.{name}"))?;
            ensure!(!value.is_empty(), "{at}.keys.{name}: the secret is empty");
            Ok((name.clone(), Key::new(value)))
        })
        .collect::<Result<_>>()?;
    Ok(Sandbox {
        dirs,
        kafka,
        http,
        sql,
        objects,
        kinesis,
        keys,
        limits,
    })
}

/// A secret's value: an environment variable (if `r` allows it) or a file's first line.
fn secret(r: &dyn Resolver, s: &SecretSpec, at: &str) -> Result<String> {
    match s {
        SecretSpec::Env(var) => r.env(var).with_context(|| at.to_string()),
        SecretSpec::File(file) => {
            let (parent, Some(name)) = (
                file.parent().unwrap_or(Path::new("")),
                file.file_name().and_then(|n| n.to_str()),
            ) else {
                bail!("{at}.file: `{}` is not a file", file.display());
            };
            let dir = r
                .dir(parent, Access::Secret)
                .with_context(|| format!("{at}.file"))?;
            dir.read_first_line(name)
                .with_context(|| format!("{at}: cannot read {}", dir.path().join(name).display()))
        }
    }
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
        assert!(!root.join("out").exists(), "reading a file creates nothing");
        assert_eq!(p.sink.sandbox.limits.memory, 64 << 20);
        assert_eq!(p.sink.sandbox.limits.call_timeout, Duration::from_secs(2));
        assert_eq!(p.source.config["dir"], "/in");
        assert_eq!(p.batch_size, 1000);
        assert_eq!(p.sink_release, Release::After(Duration::from_secs(60)));
    }

    #[test]
    fn a_sink_is_released_after_the_wait_it_names_or_never() {
        let dir = tempfile::tempdir().unwrap();
        let file = |release: &str| {
            format!(
                "[[pipeline]]\nname = \"x\"\n[pipeline.source]\nplugin = \"s.wasm\"\n\
                 [pipeline.sink]\nplugin = \"k.wasm\"\nrelease_when_idle = \"{release}\"\n"
            )
        };
        let load = |text: String| PipelineFile::load(&write(dir.path(), &text));
        let released = |text| load(text).unwrap().pipelines[0].sink_release;
        assert_eq!(released(file("never")), Release::Never);
        assert_eq!(
            released(file("90s")),
            Release::After(Duration::from_secs(90))
        );
        for (bad, expected) in [("0s", "more than zero"), ("soon", "neither a duration")] {
            let err = format!("{:#}", load(file(bad)).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err}");
            assert!(err.contains("release_when_idle"), "{err}");
        }
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
            "group_commit = 0\n",
            "release_when_idle = \"0s\"\n",
            "release_when_idle = \"never\"\n",
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
