//! What `weir serve` keeps across restarts: tenants (tokens hashed), plugin versions
//! (files content-addressed on disk) and pipelines with the state they should be in.
//!
//! - `sqlite`: one process, beside its checkpoints (the default).
//! - `postgres`: shared by the nodes of a cluster, plugin bytes included, every change
//!   announced to every node (`LISTEN weir_registry`).

use crate::tenant::{Grants, Quotas};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use weir_pipeline::{PipelineSpec, Side};

#[cfg(feature = "cluster")]
mod postgres;
mod sqlite;

#[cfg(feature = "cluster")]
pub use postgres::{CHANNEL, PgRegistry};
pub use sqlite::SqliteRegistry;

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub quotas: Quotas,
    pub grants: Grants,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginVersion {
    pub name: String,
    pub version: i64,
    pub sha256: String,
    pub world: String,
    pub spec: PluginSpec,
    pub created_at_ms: i64,
}

/// What a plugin version says about itself (its `spec()`), as stored and shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    pub name: String,
    pub version: String,
    pub description: String,
    /// A JSON Schema known to compile (checked at push).
    pub config_schema: serde_json::Value,
}

/// Whether a pipeline should be delivering. `Failed` is set by the supervisor when a
/// pipeline used up its restarts; only `resume` clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Paused,
    Failed,
}

impl Desired {
    fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Paused => "paused",
            Desired::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Desired {
        match s {
            "paused" => Desired::Paused,
            "failed" => Desired::Failed,
            _ => Desired::Running,
        }
    }
}

/// A plugin reference pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub name: String,
    pub version: i64,
}

/// The plugin version each side of a pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pins {
    pub source: PluginRef,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<PluginRef>,
    pub sink: PluginRef,
}

impl Pins {
    /// `name@version` per side, as a history shows them.
    pub fn versions(&self) -> serde_json::Value {
        let at = |r: &PluginRef| format!("{}@{}", r.name, r.version);
        serde_json::json!({
            "source": at(&self.source),
            "transforms": self.transforms.iter().map(at).collect::<Vec<_>>(),
            "sink": at(&self.sink),
        })
    }

    /// A move from these versions to `to`, as a history shows it.
    pub fn moved_to(&self, to: &Pins) -> serde_json::Value {
        serde_json::json!({ "from": self.versions(), "to": to.versions() })
    }

    /// Panics for a transform the pipeline does not have: sides come from [`Pins::sides`].
    pub fn get(&self, side: Side) -> &PluginRef {
        match side {
            Side::Source => &self.source,
            Side::Transform(i) => &self.transforms[i],
            Side::Sink => &self.sink,
        }
    }

    pub fn get_mut(&mut self, side: Side) -> &mut PluginRef {
        match side {
            Side::Source => &mut self.source,
            Side::Transform(i) => &mut self.transforms[i],
            Side::Sink => &mut self.sink,
        }
    }

    /// Every side, in delivery order.
    pub fn sides(&self) -> Vec<Side> {
        Side::all(self.transforms.len())
    }

    /// Whether any side runs plugin `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.sides()
            .into_iter()
            .any(|side| self.get(side).name == name)
    }
}

#[derive(Debug, Clone)]
pub struct PipelineRow {
    pub tenant: String,
    pub name: String,
    /// What the tenant wrote, every limit filled in from its quotas at creation.
    pub spec: PipelineSpec,
    pub pins: Pins,
    pub desired: Desired,
    pub last_error: Option<String>,
}

impl PipelineRow {
    /// The name the checkpoint store, logs and metrics know it by.
    pub fn key(&self) -> String {
        key(&self.tenant, &self.name)
    }
}

pub fn key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

/// The transforms' pins as a registry column stores them: JSON, `[]` for none.
fn transforms_column(pins: &Pins) -> String {
    serde_json::to_string(&pins.transforms).expect("plugin refs serialise")
}

fn transforms_from_column(text: &str) -> Result<Vec<PluginRef>, serde_json::Error> {
    serde_json::from_str(text)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tenants, plugin versions and pipelines: what the API and the supervisor read and write.
/// SQLite beside the checkpoints (`SqliteRegistry`) is the embedded default; a shared store
/// implements the same trait.
pub trait Registry: Send + Sync {
    fn create_tenant(&self, t: &Tenant, token: &str) -> Result<()>;
    fn update_tenant(&self, t: &Tenant) -> Result<bool>;
    /// A new token for the tenant; the old one stops working at once.
    fn rotate_token(&self, name: &str, token: &str) -> Result<bool>;
    /// Removes the tenant and its plugin versions (not their files: see
    /// [`Registry::plugin_file_used`]); the caller has made sure no pipeline is left.
    fn delete_tenant(&self, name: &str) -> Result<bool>;
    fn tenant_by_token(&self, token: &str) -> Result<Option<String>>;
    fn tenant(&self, name: &str) -> Result<Option<Tenant>>;
    fn tenants(&self) -> Result<Vec<Tenant>>;
    /// This node's directory of plugin files.
    fn plugins_dir(&self) -> &Path;
    /// Where a plugin file lives: under its content hash, named as the plugin so that
    /// the runtime's labels and errors carry the plugin's name.
    fn plugin_path(&self, sha256: &str, name: &str) -> PathBuf {
        self.plugins_dir().join(sha256).join(format!("{name}.wasm"))
    }
    /// The plugin file, on this node's disk: a shared registry fetches the bytes of a
    /// version pushed to another node first.
    fn plugin_file(&self, sha256: &str, name: &str) -> Result<PathBuf> {
        Ok(self.plugin_path(sha256, name))
    }
    /// A scratch file to validate an upload in before it gets a version.
    fn staging_path(&self, name: &str) -> Result<PathBuf> {
        let dir = self
            .plugins_dir()
            .join(".staging")
            .join(crate::auth::random_token()?);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("{name}.wasm")))
    }
    fn latest_plugin(&self, tenant: &str, name: &str) -> Result<Option<PluginVersion>> {
        Ok(self.plugin_versions(tenant, name)?.pop())
    }
    fn plugin(&self, tenant: &str, name: &str, version: i64) -> Result<Option<PluginVersion>> {
        Ok(self
            .plugin_versions(tenant, name)?
            .into_iter()
            .find(|v| v.version == version))
    }
    /// Versions of one plugin, oldest first.
    fn plugin_versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>>;
    /// Every version of every plugin of the tenant, by name then version.
    fn plugins(&self, tenant: &str) -> Result<Vec<PluginVersion>>;
    /// Records a new version (one above the latest) and returns it.
    fn add_plugin(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        world: &str,
        spec: &PluginSpec,
    ) -> Result<PluginVersion>;
    fn delete_plugin(&self, tenant: &str, name: &str, version: i64) -> Result<bool>;
    /// Whether any tenant still has a version with these bytes (the file may go if not).
    fn plugin_file_used(&self, sha256: &str) -> Result<bool>;
    fn insert_pipeline(&self, p: &PipelineRow) -> Result<()>;
    fn pipeline(&self, tenant: &str, name: &str) -> Result<Option<PipelineRow>>;
    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineRow>>;
    fn all_pipelines(&self) -> Result<Vec<PipelineRow>>;
    /// The tenant's pipelines that use plugin `name` on any side.
    fn pipelines_using(&self, tenant: &str, name: &str) -> Result<Vec<PipelineRow>> {
        let mut rows = self.pipelines(tenant)?;
        rows.retain(|p| p.pins.uses(name));
        Ok(rows)
    }
    fn set_desired(
        &self,
        tenant: &str,
        name: &str,
        desired: Desired,
        error: Option<&str>,
    ) -> Result<()>;
    /// Moves the pipeline's sides to the versions `pins` names (its plugins stay).
    fn set_pins(&self, tenant: &str, name: &str, pins: &Pins) -> Result<()>;
    /// Replaces the pipeline's definition and pins (its plugins may change), keeping
    /// whether it should run; clears its last error.
    fn replace_definition(&self, p: &PipelineRow) -> Result<()>;
    fn delete_pipeline(&self, tenant: &str, name: &str) -> Result<bool>;
    fn count_pipelines(&self, tenant: &str) -> Result<u32>;
}
