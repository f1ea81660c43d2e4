//! Pushing a plugin version: validate it, check it against every pipeline that uses the
//! plugin, store it, and swap those pipelines over. The API and `--watch` both push here.

use crate::api::ApiError;
use crate::registry::{PipelineRow, PluginVersion, Registry, sha256_hex};
use crate::supervisor::Supervisor;
use serde::Serialize;
use serde_json::json;
use std::sync::Mutex;
use weir_pipeline::{Side, schema};
use weir_runtime::{Labels, Runtime, Sandbox, World};

/// Names of plugins, pipelines and tenants: they appear in URLs, paths and metrics.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`, not starting with `.`"
        )))
    }
}

#[derive(Debug, Serialize)]
pub struct Pushed {
    #[serde(flatten)]
    pub plugin: PluginVersion,
    /// False when the same bytes were already the latest version.
    pub created: bool,
    /// Pipelines now swapping to this version at their next checkpoint boundary.
    pub upgraded: Vec<String>,
}

pub struct Plugins<'a> {
    pub runtime: &'a Runtime,
    pub registry: &'a dyn Registry,
    pub supervisor: &'a Supervisor,
    /// One push at a time: version numbers and swaps stay in order.
    pub lock: &'a Mutex<()>,
}

impl Plugins<'_> {
    pub fn push(&self, tenant: &str, name: &str, wasm: &[u8]) -> Result<Pushed, ApiError> {
        check_name("plugin", name)?;
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let quotas = self
            .registry
            .tenant(tenant)?
            .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}`")))?
            .quotas;
        let sha = sha256_hex(wasm);
        if let Some(latest) = self.registry.latest_plugin(tenant, name)?
            && latest.sha256 == sha
        {
            return Ok(Pushed {
                plugin: latest,
                created: false,
                upgraded: Vec::new(),
            });
        }

        let staged = self.registry.staging_path(name)?;
        std::fs::write(&staged, wasm).map_err(anyhow::Error::from)?;
        let checked = self.inspect(&staged, name, &quotas);
        let staging_dir = staged.parent().map(|p| p.to_path_buf());
        let (world, spec) = match checked {
            Ok(found) => found,
            Err(e) => {
                if let Some(dir) = &staging_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };

        // Every pipeline following this plugin must accept the new version, or none moves.
        // One created with `name@version` is pinned: a push leaves it where it is.
        let users: Vec<PipelineRow> = self
            .registry
            .pipelines_using(tenant, name)?
            .into_iter()
            .filter(|p| !pinned(p, name))
            .collect();
        let refusals: Vec<String> = users
            .iter()
            .filter_map(|p| {
                fits(p, name, world, &spec)
                    .err()
                    .map(|e| format!("pipeline `{}`: {e}", p.name))
            })
            .collect();
        if !refusals.is_empty() {
            if let Some(dir) = &staging_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(ApiError::unprocessable(format!(
                "plugin `{name}` was not updated; the pipelines keep their current version:\n  - {}",
                refusals.join("\n  - ")
            )));
        }

        let path = self.registry.plugin_path(&sha, name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(anyhow::Error::from)?;
        }
        std::fs::rename(&staged, &path).map_err(anyhow::Error::from)?;
        if let Some(dir) = &staging_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let version = self
            .registry
            .add_plugin(tenant, name, &sha, world.name(), &spec)?;
        tracing::info!(
            tenant,
            plugin = name,
            version = version.version,
            "plugin version stored"
        );

        let mut upgraded = Vec::new();
        for p in users {
            let (source, sink) = if p.source.name == name {
                (version.version, p.sink.version)
            } else {
                (p.source.version, version.version)
            };
            self.registry.set_versions(tenant, &p.name, source, sink)?;
            self.supervisor.swap(tenant, &p.name);
            upgraded.push(p.name);
        }
        Ok(Pushed {
            plugin: version,
            created: true,
            upgraded,
        })
    }

    /// Loads the file as the runtime would (a component, a known world, the contract's
    /// exports, imports the host provides) and asks it for its spec, under the tenant's
    /// limits: a plugin that loops in `spec` is stopped like anywhere else.
    fn inspect(
        &self,
        path: &std::path::Path,
        name: &str,
        quotas: &crate::tenant::Quotas,
    ) -> Result<(World, serde_json::Value), ApiError> {
        let invalid = |e: anyhow::Error| {
            let text =
                format!("{e:#}").replace(&path.display().to_string(), &format!("upload `{name}`"));
            ApiError::unprocessable(text)
        };
        let plugin = self.runtime.load(path).map_err(invalid)?;
        let sandbox = Sandbox {
            limits: quotas.limits(),
            ..Sandbox::default()
        };
        let labels = Labels {
            pipeline: String::new(),
            plugin: name.to_string(),
            role: "inspect",
        };
        let mut instance = self
            .runtime
            .instantiate(&plugin, &sandbox, labels)
            .map_err(invalid)?;
        let spec = instance
            .spec()
            .map_err(|e| invalid(anyhow::Error::from(e)))?;
        schema::violations(&spec.config_schema, &json!({})).map_err(invalid)?;
        let schema: serde_json::Value =
            serde_json::from_str(&spec.config_schema).map_err(|e| invalid(e.into()))?;
        Ok((
            plugin.world,
            json!({
                "name": spec.name,
                "version": spec.version,
                "description": spec.description,
                "config_schema": schema,
            }),
        ))
    }
}

/// Whether a plugin version (its world and spec) can serve as pipeline `p`'s side that
/// uses plugin `name`: the world must fit and the pipeline's config must pass the schema.
pub fn fits(
    p: &PipelineRow,
    name: &str,
    world: World,
    spec: &serde_json::Value,
) -> Result<(), String> {
    let side = if p.source.name == name {
        Side::Source
    } else {
        Side::Sink
    };
    if !side.accepts(world) {
        return Err(format!("its {} cannot be a {world}", side.name()));
    }
    let violations = schema::violations(&spec["config_schema"].to_string(), p.spec.config(side))
        .map_err(|e| format!("{e:#}"))?;
    let side = side.name();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the new version rejects its {side} config: {}",
            violations.join("; ")
        ))
    }
}

/// Whether the pipeline names plugin `name` with an explicit `@version`.
fn pinned(p: &PipelineRow, name: &str) -> bool {
    [Side::Source, Side::Sink].into_iter().any(|side| {
        p.spec
            .plugin(side)
            .split_once('@')
            .is_some_and(|(n, _)| n == name)
    })
}

pub fn world_named(name: &str) -> Option<World> {
    World::ALL.into_iter().find(|w| w.name() == name)
}
