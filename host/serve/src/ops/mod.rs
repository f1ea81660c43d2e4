//! What weir serve can be asked to do, whoever asks (the HTTP API, `--watch`): manage
//! tenants, plugin versions and pipelines. Each operation checks, stores, and tells the
//! supervisor; none knows HTTP. Errors say what kind of failure they are, and the API maps
//! each kind to a status code.

mod pipelines;
mod plugins;
mod tenants;

use crate::registry::Registry;
use crate::supervisor::Supervisor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use weir_runtime::Runtime;

pub use pipelines::Upgrade;

pub struct Ops {
    pub registry: Arc<dyn Registry>,
    pub supervisor: Arc<Supervisor>,
    pub runtime: Arc<Runtime>,
    /// The server's own directories (data, watched plugins): no tenant may be granted them.
    pub reserved: Vec<PathBuf>,
    /// Pushes, upgrades and deletions one at a time, so that version numbers, pins and
    /// swaps stay in order.
    changes: Mutex<()>,
}

impl Ops {
    pub fn new(
        registry: Arc<dyn Registry>,
        supervisor: Arc<Supervisor>,
        runtime: Arc<Runtime>,
        reserved: Vec<PathBuf>,
    ) -> Ops {
        Ops {
            registry,
            supervisor,
            runtime,
            reserved,
            changes: Mutex::new(()),
        }
    }

    fn one_change(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why an operation did not happen.
#[derive(Debug)]
pub enum Error {
    /// The request is malformed: a name the host cannot use, a body that does not parse.
    BadRequest(String),
    NotFound(String),
    /// It clashes with what exists: a name taken, a version still pinned.
    Conflict(String),
    /// Well-formed but refused: a pipeline beyond its grants, a plugin its users reject.
    Refused(String),
    /// The host is at a limit (threads, memory maps); nothing was changed.
    AtLimit(String),
    Internal(anyhow::Error),
}

impl Error {
    fn not_found(what: impl std::fmt::Display) -> Error {
        Error::NotFound(format!("{what} not found"))
    }

    fn refused(e: anyhow::Error) -> Error {
        Error::Refused(format!("{e:#}"))
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadRequest(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Refused(m)
            | Error::AtLimit(m) => f.write_str(m),
            Error::Internal(e) => write!(f, "{e:#}"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names of plugins, pipelines and tenants: they appear in URLs, paths and metrics.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{what} name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`, not starting with `.`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Desired, Pins, PipelineRow, PluginRef, SqliteRegistry, Tenant};
    use crate::tenant::{Grants, Quotas, TenantDir};
    use serde_json::json;
    use weir_checkpoint::SqliteCheckpoints;
    use weir_pipeline::PipelineSpec;
    use weir_runtime::RuntimeConfig;

    /// Operations over a registry in a scratch directory, with no plugin ever run.
    fn ops(data: &std::path::Path) -> Ops {
        let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(data).unwrap());
        let runtime = Arc::new(
            Runtime::new(RuntimeConfig {
                cache_dir: None,
                max_instances: 2,
                max_memory: 64 << 20,
            })
            .unwrap(),
        );
        let checkpoints = Arc::new(SqliteCheckpoints::open(data).unwrap());
        static TASKS: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        let tasks = TASKS.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        });
        let supervisor = Supervisor::new(
            runtime.clone(),
            tasks.handle().clone(),
            checkpoints,
            registry.clone(),
            Arc::new(crate::supervisor::Alone),
        );
        Ops::new(registry, supervisor, runtime, vec![data.to_path_buf()])
    }

    fn tenant(name: &str) -> Tenant {
        Tenant {
            name: name.into(),
            quotas: Quotas::default(),
            grants: Grants::default(),
        }
    }

    fn spec(name: &str, extra: serde_json::Value) -> PipelineSpec {
        let mut d =
            json!({ "name": name, "source": { "plugin": "src" }, "sink": { "plugin": "out" } });
        if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(extra.clone());
        }
        PipelineSpec::from_json(d).unwrap()
    }

    /// A stored row, as a create that went through would leave it.
    fn row(tenant: &str, name: &str, version: i64) -> PipelineRow {
        PipelineRow {
            tenant: tenant.into(),
            name: name.into(),
            spec: spec(name, json!({})),
            pins: Pins {
                source: PluginRef {
                    name: "src".into(),
                    version,
                },
                transforms: Vec::new(),
                sink: PluginRef {
                    name: "out".into(),
                    version: 1,
                },
            },
            desired: Desired::Paused,
            last_error: None,
        }
    }

    #[test]
    fn tenants_are_checked_named_once_and_their_tokens_rotate() {
        let data = tempfile::tempdir().unwrap();
        let ops = ops(data.path());
        let token = ops.create_tenant(&tenant("acme")).unwrap();
        assert_eq!(
            ops.registry.tenant_by_token(&token).unwrap().as_deref(),
            Some("acme")
        );
        assert!(matches!(
            ops.create_tenant(&tenant("acme")),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            ops.create_tenant(&tenant("../x")),
            Err(Error::BadRequest(_))
        ));
        let mut greedy = tenant("greedy");
        greedy.grants.dirs = vec![TenantDir {
            host: data.path().join("registry"),
            write: true,
            guest: None,
        }];
        let err = ops.create_tenant(&greedy).unwrap_err();
        assert!(
            matches!(&err, Error::BadRequest(m) if m.contains("server's own")),
            "{err}"
        );
        let rotated = ops.rotate_token("acme").unwrap();
        assert_ne!(rotated, token);
        assert_eq!(ops.registry.tenant_by_token(&token).unwrap(), None);
        assert!(matches!(
            ops.rotate_token("nobody"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            ops.update_tenant(&tenant("nobody")),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_pipeline_is_refused_before_anything_is_stored() {
        let data = tempfile::tempdir().unwrap();
        let ops = ops(data.path());
        let mut t = tenant("acme");
        t.quotas.memory = bytesize::ByteSize::mib(32);
        ops.create_tenant(&t).unwrap();
        let refusals = [
            (spec("p", json!({})), "push it first"),
            (
                spec("p", json!({ "limits": { "memory": "64 MiB" } })),
                "limits.memory",
            ),
            (
                spec("p", json!({ "source": { "plugin": "src@x" } })),
                "not a number",
            ),
        ];
        for (s, expected) in refusals {
            let err = ops.create_pipeline("acme", s).unwrap_err();
            assert!(
                matches!(&err, Error::Refused(m) if m.contains(expected)),
                "{expected:?}: {err}"
            );
        }
        assert!(matches!(
            ops.create_pipeline("acme", spec("bad/name", json!({}))),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            ops.create_pipeline("nobody", spec("p", json!({}))),
            Err(Error::NotFound(_))
        ));
        t.quotas.max_pipelines = 1;
        ops.update_tenant(&t).unwrap();
        ops.registry
            .insert_pipeline(&row("acme", "first", 1))
            .unwrap();
        let err = ops
            .create_pipeline("acme", spec("p", json!({})))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Refused(m) if m.contains("used up")),
            "{err}"
        );
        let err = ops
            .create_pipeline("acme", spec("first", json!({})))
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        let names: Vec<String> = ops
            .pipelines("acme")
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["first"]);
    }

    #[test]
    fn what_is_in_use_is_not_deleted() {
        let data = tempfile::tempdir().unwrap();
        let ops = ops(data.path());
        ops.create_tenant(&tenant("acme")).unwrap();
        for version in 1..=2 {
            let sha = format!("{version:064}");
            ops.registry
                .add_plugin("acme", "src", &sha, "batch-source", &Default::default())
                .unwrap();
        }
        ops.registry.insert_pipeline(&row("acme", "p", 1)).unwrap();
        let err = ops.delete_tenant("acme").unwrap_err();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("1 pipeline")),
            "{err}"
        );
        let err = ops.delete_plugin_version("acme", "src", 1).unwrap_err();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("pipeline(s): p")),
            "{err}"
        );
        ops.delete_plugin_version("acme", "src", 2).unwrap();
        assert!(matches!(
            ops.plugin_version("acme", "src", 2),
            Err(Error::NotFound(_))
        ));
        ops.delete_pipeline("acme", "p").unwrap();
        assert!(matches!(ops.pipeline("acme", "p"), Err(Error::NotFound(_))));
        ops.delete_plugin_version("acme", "src", 1).unwrap();
        ops.delete_tenant("acme").unwrap();
        assert!(matches!(ops.tenant("acme"), Err(Error::NotFound(_))));
    }
}
