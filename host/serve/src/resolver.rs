//! How weir serve resolves a tenant's pipeline spec: every host path inside the tenant's
//! directories (writable ones where anything is written), as written and where it leads
//! on disk now, then opened beneath them with no link followed; no `env` secrets (the
//! server's environment holds the operator's own, the admin token among them).

use crate::tenant::Grants;
use anyhow::{Result, bail};
use std::path::{Component, Path, PathBuf};
use weir_pipeline::{Access, Resolver, Side};
use weir_runtime::HostDir;
use weir_runtime::io::ClientPolicy;

pub struct TenantResolver<'a> {
    grants: &'a Grants,
    roots: Vec<PathBuf>,
    plugin: &'a dyn Fn(Side, &str) -> Result<PathBuf>,
    policy: ClientPolicy,
}

impl<'a> TenantResolver<'a> {
    /// `plugin` turns a side's `name[@version]` into the file pinned for that side.
    pub fn new(grants: &'a Grants, plugin: &'a dyn Fn(Side, &str) -> Result<PathBuf>) -> Self {
        TenantResolver {
            grants,
            roots: grants.roots(),
            plugin,
            policy: ClientPolicy::default(),
        }
    }
}

impl Resolver for TenantResolver<'_> {
    fn dir(&self, path: &Path, access: Access) -> Result<HostDir> {
        let write = matches!(access, Access::Write | Access::HostWrite);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            bail!("`{}` must be an absolute path without `..`", path.display());
        }
        if !self.grants.dir_allows(path, write) {
            let how = if write { "writable " } else { "" };
            bail!(
                "`{}` is not within the tenant's {how}directories",
                path.display()
            );
        }
        HostDir::within(path, &self.roots).ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` is not within the tenant's directories",
                path.display()
            )
        })
    }

    fn env(&self, _: &str) -> Result<String> {
        bail!("`env` secrets are not available in weir serve; use `file` in a tenant directory")
    }

    fn plugin(&self, side: Side, reference: &str) -> Result<PathBuf> {
        (self.plugin)(side, reference)
    }

    fn policy(&self) -> &ClientPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use crate::tenant::{Grants, TenantDir};
    use serde_json::json;
    use weir_pipeline::PipelineSpec;

    fn sink_dir(host: &std::path::Path) -> PipelineSpec {
        PipelineSpec::from_json(json!({
            "name": "p",
            "source": { "plugin": "s" },
            "sink": { "plugin": "k", "grants": { "dirs": [{ "host": host, "guest": "/out", "write": true }] } },
        }))
        .unwrap()
    }

    fn resolve(grants: &Grants, spec: &PipelineSpec) -> anyhow::Result<weir_pipeline::Pipeline> {
        grants.resolve(spec, &|_, p| Ok(p.into()))
    }

    #[test]
    fn paths_outside_the_tenant_are_refused_and_nothing_is_created() {
        let root = tempfile::tempdir().unwrap();
        let mine = root.path().join("tenant-a");
        std::fs::create_dir_all(&mine).unwrap();
        let grants = Grants {
            dirs: vec![TenantDir {
                host: mine.clone(),
                write: true,
                guest: None,
            }],
            ..Grants::default()
        };
        resolve(&grants, &sink_dir(&mine.join("out"))).unwrap();
        assert!(!mine.join("out").exists(), "resolving creates nothing");
        let t = mine.display().to_string();
        let b = root.path().join("tenant-b").display().to_string();
        let base = json!({ "name": "p", "source": { "plugin": "s" }, "sink": { "plugin": "k" } });
        let with = |path: &str, value: serde_json::Value| {
            let mut d = base.clone();
            let mut at = &mut d;
            for key in path.split('.') {
                at = &mut at[key];
            }
            *at = value;
            PipelineSpec::from_json(d).unwrap()
        };
        for (bad, expected) in [
            (
                with(
                    "sink.grants",
                    json!({"dirs": [{"host": b, "guest": "/o", "write": true}]}),
                ),
                "sink.grants.dirs[0].host",
            ),
            (
                with(
                    "sink.grants",
                    json!({"dirs": [{"host": format!("{t}/../tenant-b"), "guest": "/o"}]}),
                ),
                "without `..`",
            ),
            (
                with(
                    "source.grants",
                    json!({"dirs": [{"host": "relative", "guest": "/i"}]}),
                ),
                "absolute",
            ),
            (
                with(
                    "source.grants",
                    json!({"sql": {"url": "postgres://x", "password": {"env": "WEIR_ADMIN_TOKEN"}}}),
                ),
                "`env` secrets",
            ),
            (
                with(
                    "source.grants",
                    json!({"sql": {"url": "postgres://x", "password": {"file": "/etc/shadow"}}}),
                ),
                "sql.password.file",
            ),
            (
                with("dead_letter", json!({"dir": "/tmp/dl"})),
                "dead_letter.dir",
            ),
        ] {
            let err = format!("{:#}", resolve(&grants, &bad).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn a_symlink_in_the_tenants_directory_does_not_lead_outside() {
        let root = tempfile::tempdir().unwrap();
        let (mine, outside) = (root.path().join("mine"), root.path().join("outside"));
        std::fs::create_dir_all(mine.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, mine.join("link")).unwrap();
        let grants = Grants {
            dirs: vec![TenantDir {
                host: mine.clone(),
                write: true,
                guest: None,
            }],
            ..Grants::default()
        };
        resolve(&grants, &sink_dir(&mine.join("real/new/deeper"))).unwrap();
        let err = format!(
            "{:#}",
            resolve(&grants, &sink_dir(&mine.join("link/new"))).unwrap_err()
        );
        assert!(err.contains("not within the tenant's"), "{err}");
        assert!(!outside.join("new").exists());
    }
}
