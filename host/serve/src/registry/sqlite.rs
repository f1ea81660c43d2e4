//! The embedded default: the registry in `weir.db` beside the checkpoints, plugin files
//! content-addressed under the data directory.

use super::*;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use weir_pipeline::now_ms;

pub struct SqliteRegistry {
    conn: Mutex<Connection>,
    plugins_dir: PathBuf,
}

impl SqliteRegistry {
    /// Opens the registry in `dir`, which the caller has locked (the checkpoint store does).
    pub fn open(dir: &Path) -> Result<SqliteRegistry> {
        let (path, conn) = weir_checkpoint::open_database(dir, "registry")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tenants (
                name         TEXT PRIMARY KEY,
                token_sha256 TEXT NOT NULL UNIQUE,
                quotas       TEXT NOT NULL,
                grants       TEXT NOT NULL,
                created_at   INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS plugins (
                tenant     TEXT NOT NULL,
                name       TEXT NOT NULL,
                version    INTEGER NOT NULL,
                sha256     TEXT NOT NULL,
                world      TEXT NOT NULL,
                spec       TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (tenant, name, version)
            );
            CREATE TABLE IF NOT EXISTS pipelines (
                tenant         TEXT NOT NULL,
                name           TEXT NOT NULL,
                definition     TEXT NOT NULL,
                source_plugin  TEXT NOT NULL,
                source_version INTEGER NOT NULL,
                sink_plugin    TEXT NOT NULL,
                sink_version   INTEGER NOT NULL,
                transforms     TEXT NOT NULL DEFAULT '[]',
                desired        TEXT NOT NULL,
                last_error     TEXT,
                created_at     INTEGER NOT NULL,
                PRIMARY KEY (tenant, name)
            );",
        )
        .with_context(|| format!("cannot set up the registry {}", path.display()))?;
        // A registry from before transforms: the column arrives empty.
        let has_transforms: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('pipelines') WHERE name = 'transforms'",
                [],
                |r| r.get(0),
            )
            .with_context(|| format!("cannot read the registry {}", path.display()))?;
        if !has_transforms {
            conn.execute_batch(
                "ALTER TABLE pipelines ADD COLUMN transforms TEXT NOT NULL DEFAULT '[]'",
            )
            .with_context(|| format!("cannot upgrade the registry {}", path.display()))?;
        }
        let plugins_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugins_dir)
            .with_context(|| format!("cannot create {}", plugins_dir.display()))?;
        Ok(SqliteRegistry {
            conn: Mutex::new(conn),
            plugins_dir,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pipelines_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<PipelineRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT tenant, name, definition, source_plugin, source_version, sink_plugin,
                    sink_version, desired, last_error, transforms
             FROM pipelines WHERE {filter} ORDER BY tenant, name"
        ))?;
        let rows = stmt.query_map(args, |r| {
            let json = |i: usize, e: serde_json::Error| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
            };
            let definition: String = r.get(2)?;
            let desired: String = r.get(7)?;
            let transforms: String = r.get(9)?;
            Ok(PipelineRow {
                tenant: r.get(0)?,
                name: r.get(1)?,
                spec: serde_json::from_str(&definition).map_err(|e| json(2, e))?,
                pins: Pins {
                    source: PluginRef {
                        name: r.get(3)?,
                        version: r.get(4)?,
                    },
                    transforms: transforms_from_column(&transforms).map_err(|e| json(9, e))?,
                    sink: PluginRef {
                        name: r.get(5)?,
                        version: r.get(6)?,
                    },
                },
                desired: Desired::parse(&desired),
                last_error: r.get(8)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }
}

impl Registry for SqliteRegistry {
    // --- tenants ---

    fn create_tenant(&self, t: &Tenant, token: &str) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO tenants (name, token_sha256, quotas, grants, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    t.name,
                    sha256_hex(token.as_bytes()),
                    serde_json::to_string(&t.quotas)?,
                    serde_json::to_string(&t.grants)?,
                    now_ms() as i64
                ],
            )
            .with_context(|| format!("cannot create tenant `{}`", t.name))?;
        Ok(())
    }

    fn update_tenant(&self, t: &Tenant) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tenants SET quotas = ?2, grants = ?3 WHERE name = ?1",
            params![
                t.name,
                serde_json::to_string(&t.quotas)?,
                serde_json::to_string(&t.grants)?
            ],
        )?;
        Ok(n > 0)
    }

    /// A new token for the tenant; the old one stops working at once.
    fn rotate_token(&self, name: &str, token: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tenants SET token_sha256 = ?2 WHERE name = ?1",
            params![name, sha256_hex(token.as_bytes())],
        )?;
        Ok(n > 0)
    }

    /// Removes the tenant and its plugin versions (not their files: see
    /// [`Registry::plugin_file_used`]); the caller has made sure no pipeline is left.
    fn delete_tenant(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM plugins WHERE tenant = ?1", params![name])?;
        let n = tx.execute("DELETE FROM tenants WHERE name = ?1", params![name])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn tenant_by_token(&self, token: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name FROM tenants WHERE token_sha256 = ?1",
                params![sha256_hex(token.as_bytes())],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT quotas, grants FROM tenants WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(q, g)| {
            Ok(Tenant {
                name: name.to_string(),
                quotas: serde_json::from_str(&q).context("stored quotas")?,
                grants: serde_json::from_str(&g).context("stored grants")?,
            })
        })
        .transpose()
    }

    fn tenants(&self) -> Result<Vec<Tenant>> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT name FROM tenants ORDER BY name")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        names
            .iter()
            .filter_map(|n| self.tenant(n).transpose())
            .collect()
    }

    // --- plugins ---

    fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// Versions of one plugin, oldest first.
    fn plugin_versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, version, sha256, world, spec, created_at FROM plugins
             WHERE tenant = ?1 AND name = ?2 ORDER BY version",
        )?;
        let rows = stmt.query_map(params![tenant, name], plugin_row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Every version of every plugin of the tenant, by name then version.
    fn plugins(&self, tenant: &str) -> Result<Vec<PluginVersion>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, version, sha256, world, spec, created_at FROM plugins
             WHERE tenant = ?1 ORDER BY name, version",
        )?;
        let rows = stmt.query_map(params![tenant], plugin_row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Records a new version (one above the latest) and returns it.
    fn add_plugin(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        world: &str,
        spec: &PluginSpec,
    ) -> Result<PluginVersion> {
        let conn = self.conn();
        let version: i64 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM plugins WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
            |r| r.get(0),
        )?;
        let now = now_ms() as i64;
        conn.execute(
            "INSERT INTO plugins (tenant, name, version, sha256, world, spec, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                tenant,
                name,
                version,
                sha256,
                world,
                serde_json::to_string(spec)?,
                now
            ],
        )?;
        Ok(PluginVersion {
            name: name.to_string(),
            version,
            sha256: sha256.to_string(),
            world: world.to_string(),
            spec: spec.clone(),
            created_at_ms: now,
        })
    }

    fn delete_plugin(&self, tenant: &str, name: &str, version: i64) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM plugins WHERE tenant = ?1 AND name = ?2 AND version = ?3",
            params![tenant, name, version],
        )?;
        Ok(n > 0)
    }

    /// Whether any tenant still has a version with these bytes (the file may go if not).
    fn plugin_file_used(&self, sha256: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM plugins WHERE sha256 = ?1)",
            params![sha256],
            |r| r.get(0),
        )?)
    }

    // --- pipelines ---

    fn insert_pipeline(&self, p: &PipelineRow) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO pipelines (tenant, name, definition, source_plugin, source_version,
                    sink_plugin, sink_version, desired, last_error, created_at, transforms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10)",
                params![
                    p.tenant,
                    p.name,
                    serde_json::to_string(&p.spec)?,
                    p.pins.source.name,
                    p.pins.source.version,
                    p.pins.sink.name,
                    p.pins.sink.version,
                    p.desired.as_str(),
                    now_ms() as i64,
                    transforms_column(&p.pins),
                ],
            )
            .with_context(|| format!("cannot store pipeline `{}`", p.name))?;
        Ok(())
    }

    fn pipeline(&self, tenant: &str, name: &str) -> Result<Option<PipelineRow>> {
        Ok(self
            .pipelines_where("tenant = ?1 AND name = ?2", params![tenant, name])?
            .pop())
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineRow>> {
        self.pipelines_where("tenant = ?1", params![tenant])
    }

    fn all_pipelines(&self) -> Result<Vec<PipelineRow>> {
        self.pipelines_where("1 = 1", params![])
    }

    fn set_desired(
        &self,
        tenant: &str,
        name: &str,
        desired: Desired,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE pipelines SET desired = ?3, last_error = ?4 WHERE tenant = ?1 AND name = ?2",
            params![tenant, name, desired.as_str(), error],
        )?;
        Ok(())
    }

    fn set_pins(&self, tenant: &str, name: &str, pins: &Pins) -> Result<()> {
        self.conn().execute(
            "UPDATE pipelines SET source_version = ?3, sink_version = ?4, transforms = ?5
             WHERE tenant = ?1 AND name = ?2",
            params![
                tenant,
                name,
                pins.source.version,
                pins.sink.version,
                transforms_column(pins)
            ],
        )?;
        Ok(())
    }

    fn replace_definition(&self, p: &PipelineRow) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE pipelines SET definition = ?3, source_plugin = ?4, source_version = ?5,
                    sink_plugin = ?6, sink_version = ?7, transforms = ?8, last_error = NULL
                 WHERE tenant = ?1 AND name = ?2",
                params![
                    p.tenant,
                    p.name,
                    serde_json::to_string(&p.spec)?,
                    p.pins.source.name,
                    p.pins.source.version,
                    p.pins.sink.name,
                    p.pins.sink.version,
                    transforms_column(&p.pins),
                ],
            )
            .with_context(|| format!("cannot update pipeline `{}`", p.name))?;
        Ok(())
    }

    fn delete_pipeline(&self, tenant: &str, name: &str) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM pipelines WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        Ok(n > 0)
    }

    fn count_pipelines(&self, tenant: &str) -> Result<u32> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM pipelines WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )?)
    }
}

fn plugin_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PluginVersion> {
    let spec: String = r.get(4)?;
    Ok(PluginVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        sha256: r.get(2)?,
        world: r.get(3)?,
        spec: serde_json::from_str(&spec).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
        })?,
        created_at_ms: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(name: &str) -> Tenant {
        Tenant {
            name: name.into(),
            quotas: Quotas::default(),
            grants: Grants::default(),
        }
    }

    fn pipeline(tenant: &str, name: &str, version: i64) -> PipelineRow {
        PipelineRow {
            tenant: tenant.into(),
            name: name.into(),
            spec: PipelineSpec::from_json(json!({
                "name": name,
                "source": { "plugin": "src" },
                "transforms": [{ "plugin": "jq" }],
                "sink": { "plugin": "sink" },
            }))
            .unwrap(),
            pins: Pins {
                source: PluginRef {
                    name: "src".into(),
                    version,
                },
                transforms: vec![PluginRef {
                    name: "jq".into(),
                    version: 1,
                }],
                sink: PluginRef {
                    name: "sink".into(),
                    version: 1,
                },
            },
            desired: Desired::Running,
            last_error: None,
        }
    }

    /// Through the trait, as the API and supervisor see it: tenants by hashed token,
    /// versions counting up per plugin, pipelines per tenant, and all of it after a reopen.
    #[test]
    fn tenants_versions_and_pipelines_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let r: Box<dyn Registry> = Box::new(SqliteRegistry::open(dir.path()).unwrap());
            r.create_tenant(&tenant("acme"), "token-a").unwrap();
            r.create_tenant(&tenant("beta"), "token-b").unwrap();
            assert!(
                r.create_tenant(&tenant("acme"), "token-c").is_err(),
                "one name"
            );
            assert_eq!(
                r.tenant_by_token("token-a").unwrap().as_deref(),
                Some("acme")
            );
            assert!(r.rotate_token("acme", "token-a2").unwrap());
            assert_eq!(r.tenant_by_token("token-a").unwrap(), None);
            let spec = PluginSpec {
                name: "src".into(),
                ..PluginSpec::default()
            };
            assert_eq!(
                r.add_plugin("acme", "src", "aa", "batch-source", &spec)
                    .unwrap()
                    .version,
                1
            );
            assert_eq!(
                r.add_plugin("acme", "src", "bb", "batch-source", &spec)
                    .unwrap()
                    .version,
                2
            );
            assert_eq!(
                r.add_plugin("beta", "src", "aa", "batch-source", &spec)
                    .unwrap()
                    .version,
                1
            );
            r.insert_pipeline(&pipeline("acme", "orders", 1)).unwrap();
            r.insert_pipeline(&pipeline("beta", "orders", 1)).unwrap();
            r.set_desired("acme", "orders", Desired::Paused, Some("stopped by a test"))
                .unwrap();
            let mut pins = pipeline("acme", "orders", 2).pins;
            pins.transforms[0].version = 3;
            r.set_pins("acme", "orders", &pins).unwrap();
        }
        let r: Box<dyn Registry> = Box::new(SqliteRegistry::open(dir.path()).unwrap());
        assert_eq!(
            r.tenant_by_token("token-a2").unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(
            r.latest_plugin("acme", "src").unwrap().unwrap().sha256,
            "bb"
        );
        assert!(r.plugin_file_used("aa").unwrap(), "beta still uses it");
        let orders = r.pipeline("acme", "orders").unwrap().unwrap();
        assert_eq!(orders.desired, Desired::Paused);
        assert_eq!(orders.last_error.as_deref(), Some("stopped by a test"));
        assert_eq!(orders.pins.source.version, 2);
        assert_eq!(orders.pins.transforms[0].version, 3);
        assert_eq!(
            r.pipelines("acme").unwrap().len(),
            1,
            "only the tenant's own"
        );
        assert_eq!(r.pipelines_using("beta", "src").unwrap().len(), 1);
        assert_eq!(r.pipelines_using("beta", "jq").unwrap().len(), 1);
        assert_eq!(r.pipelines_using("beta", "other").unwrap().len(), 0);
        assert_eq!(r.count_pipelines("acme").unwrap(), 1);
        assert!(r.delete_pipeline("acme", "orders").unwrap());
        assert_eq!(r.all_pipelines().unwrap().len(), 1);
    }
}
