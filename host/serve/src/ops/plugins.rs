//! Plugin versions: pushing one (validate it, check it against every pipeline that uses
//! the plugin, store it, swap those pipelines over), listing, deleting an unused one, and
//! pinning a reference to a version.

use super::tenants::remove_unused_file;
use super::{Error, Ops, Result, check_name};
use crate::registry::{PipelineRow, PluginRef, PluginSpec, PluginVersion, Registry, sha256_hex};
use serde::Serialize;
use weir_pipeline::{Misfit, Side, fit};
use weir_runtime::World;

#[derive(Debug, Serialize)]
pub struct Pushed {
    #[serde(flatten)]
    pub plugin: PluginVersion,
    /// False when the same bytes were already the latest version.
    pub created: bool,
    /// Pipelines now swapping to this version at their next checkpoint boundary.
    pub upgraded: Vec<String>,
}

impl Ops {
    /// Pushes `wasm` as the next version of plugin `name`; the same bytes as the latest
    /// version change nothing.
    pub fn push(&self, tenant: &str, name: &str, wasm: &[u8]) -> Result<Pushed> {
        check_name("plugin", name)?;
        let _one = self.one_change();
        let quotas = self
            .registry
            .tenant(tenant)?
            .ok_or_else(|| Error::not_found(format!("tenant `{tenant}`")))?
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
        // A side created with `name@version` is pinned: a push leaves it where it is.
        let users: Vec<PipelineRow> = self
            .registry
            .pipelines_using(tenant, name)?
            .into_iter()
            .filter(|p| !following(p, name).is_empty())
            .collect();
        let refusals: Vec<String> = users
            .iter()
            .flat_map(|p| {
                following(p, name).into_iter().filter_map(|side| {
                    fits(p, side, world, &spec)
                        .err()
                        .map(|e| format!("pipeline `{}`: {e}", p.name))
                })
            })
            .collect();
        if !refusals.is_empty() {
            if let Some(dir) = &staging_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(Error::Refused(format!(
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
            let mut pins = p.pins.clone();
            for side in following(&p, name) {
                pins.get_mut(side).version = version.version;
            }
            self.registry.set_pins(tenant, &p.name, &pins)?;
            self.supervisor.swap(tenant, &p.name);
            let mut moved = p.pins.moved_to(&pins);
            moved["by"] = "push".into();
            self.record(tenant, &p.name, "upgraded", moved);
            upgraded.push(p.name);
        }
        Ok(Pushed {
            plugin: version,
            created: true,
            upgraded,
        })
    }

    /// What the file is, asked under the tenant's limits (see `weir_pipeline::inspect`);
    /// errors name the upload, not the staging path.
    fn inspect(
        &self,
        path: &std::path::Path,
        name: &str,
        quotas: &crate::tenant::Quotas,
    ) -> Result<(World, PluginSpec)> {
        let found =
            weir_runtime::block_on(weir_pipeline::inspect(&self.runtime, path, quotas.limits()))
                .map_err(|e| {
                    let text = format!("{e:#}")
                        .replace(&path.display().to_string(), &format!("upload `{name}`"));
                    Error::Refused(text)
                })?;
        Ok((
            found.plugin.world,
            PluginSpec {
                name: found.spec.name,
                version: found.spec.version,
                description: found.spec.description,
                config_schema: found.schema,
            },
        ))
    }

    pub fn plugins(&self, tenant: &str) -> Result<Vec<PluginVersion>> {
        Ok(self.registry.plugins(tenant)?)
    }

    pub fn plugin_versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>> {
        let versions = self.registry.plugin_versions(tenant, name)?;
        if versions.is_empty() {
            return Err(Error::not_found(format!("plugin `{name}`")));
        }
        Ok(versions)
    }

    pub fn plugin_version(&self, tenant: &str, name: &str, version: i64) -> Result<PluginVersion> {
        self.registry
            .plugin(tenant, name, version)?
            .ok_or_else(|| Error::not_found(format!("plugin `{name}` version {version}")))
    }

    /// Deletes a version no pipeline is pinned to; its file goes when no tenant uses it.
    pub fn delete_plugin_version(&self, tenant: &str, name: &str, version: i64) -> Result<()> {
        let _one = self.one_change();
        let v = self.plugin_version(tenant, name, version)?;
        let pinned = PluginRef {
            name: name.to_string(),
            version,
        };
        let users: Vec<String> = self
            .registry
            .pipelines_using(tenant, name)?
            .into_iter()
            .filter(|p| {
                p.pins
                    .sides()
                    .iter()
                    .any(|side| *p.pins.get(*side) == pinned)
            })
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "plugin `{name}` version {version} is used by pipeline(s): {}",
                users.join(", ")
            )));
        }
        self.registry.delete_plugin(tenant, name, version)?;
        remove_unused_file(self.registry.as_ref(), &v)
    }
}

/// A stored version `reference` (`name` or `name@version`) names: the named version, or
/// the latest; with its world and spec. `at` is the field the reference came from.
pub(super) fn pin(
    registry: &dyn Registry,
    tenant: &str,
    reference: &str,
    at: &str,
) -> Result<(PluginRef, World, PluginSpec)> {
    let (name, version) = match reference.split_once('@') {
        Some((n, v)) => (
            n,
            Some(v.parse::<i64>().map_err(|_| {
                Error::Refused(format!(
                    "{at}: `{reference}`: the version after `@` is not a number"
                ))
            })?),
        ),
        None => (reference, None),
    };
    let found = match version {
        Some(v) => registry.plugin(tenant, name, v)?,
        None => registry.latest_plugin(tenant, name)?,
    };
    let v = found.ok_or_else(|| {
        Error::Refused(format!(
            "{at}: no plugin `{reference}` (push it first: weir plugin push)"
        ))
    })?;
    let world = world_named(&v.world)
        .ok_or_else(|| anyhow::anyhow!("stored plugin has unknown world {}", v.world))?;
    Ok((
        PluginRef {
            name: v.name,
            version: v.version,
        },
        world,
        v.spec,
    ))
}

/// Whether a plugin version (its world and spec) can serve as pipeline `p`'s `side`: the
/// world must fit and the pipeline's config must pass the schema.
pub(super) fn fits(
    p: &PipelineRow,
    side: Side,
    world: World,
    spec: &PluginSpec,
) -> Result<(), Misfit> {
    fit(
        side,
        world,
        &spec.config_schema.to_string(),
        p.spec.config(side),
    )
}

/// The sides of `p` that run plugin `name` and follow its latest version: those its
/// spec names without an explicit `@version`.
fn following(p: &PipelineRow, name: &str) -> Vec<Side> {
    p.pins
        .sides()
        .into_iter()
        .filter(|side| p.pins.get(*side).name == name && !p.spec.plugin(*side).contains('@'))
        .collect()
}

fn world_named(name: &str) -> Option<World> {
    World::ALL.into_iter().find(|w| w.name() == name)
}
