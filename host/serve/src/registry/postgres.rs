//! The registry a cluster shares, in PostgreSQL: the same rows as the SQLite default, plus
//! the bytes of every plugin version (so any node can run a pipeline whose plugin was
//! pushed to another). A trigger announces every change on the channel `weir_registry`,
//! with the table's name as payload, to every node that listens.

use super::*;
use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres::Row;
use weir_checkpoint::postgres::Pg;
use weir_pipeline::now_ms;

/// The channel every registry change is announced on.
pub const CHANNEL: &str = "weir_registry";

pub struct PgRegistry {
    pg: Arc<Pg>,
    plugins_dir: PathBuf,
}

impl PgRegistry {
    /// Sets up the tables (once, whichever node comes first); plugin files are cached in
    /// `dir/plugins`.
    pub fn open(pg: Arc<Pg>, dir: &Path) -> Result<PgRegistry> {
        pg.migrate(
            "CREATE TABLE IF NOT EXISTS weir_tenants (
                name         TEXT PRIMARY KEY,
                token_sha256 TEXT NOT NULL UNIQUE,
                quotas       TEXT NOT NULL,
                grants       TEXT NOT NULL,
                created_at   BIGINT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS weir_plugin_files (
                sha256 TEXT PRIMARY KEY,
                bytes  BYTEA NOT NULL
            );
            CREATE TABLE IF NOT EXISTS weir_plugins (
                tenant     TEXT NOT NULL,
                name       TEXT NOT NULL,
                version    BIGINT NOT NULL,
                sha256     TEXT NOT NULL REFERENCES weir_plugin_files (sha256),
                world      TEXT NOT NULL,
                spec       TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant, name, version)
            );
            CREATE TABLE IF NOT EXISTS weir_pipelines (
                tenant         TEXT NOT NULL,
                name           TEXT NOT NULL,
                definition     TEXT NOT NULL,
                source_plugin  TEXT NOT NULL,
                source_version BIGINT NOT NULL,
                sink_plugin    TEXT NOT NULL,
                sink_version   BIGINT NOT NULL,
                desired        TEXT NOT NULL,
                last_error     TEXT,
                created_at     BIGINT NOT NULL,
                PRIMARY KEY (tenant, name)
            );
            ALTER TABLE weir_pipelines ADD COLUMN IF NOT EXISTS transforms TEXT NOT NULL DEFAULT '[]';
            CREATE OR REPLACE FUNCTION weir_registry_changed() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('weir_registry', TG_TABLE_NAME);
                RETURN NULL;
            END $$ LANGUAGE plpgsql;
            CREATE OR REPLACE TRIGGER weir_tenants_changed
                AFTER INSERT OR UPDATE OR DELETE ON weir_tenants
                FOR EACH STATEMENT EXECUTE FUNCTION weir_registry_changed();
            CREATE OR REPLACE TRIGGER weir_plugins_changed
                AFTER INSERT OR UPDATE OR DELETE ON weir_plugins
                FOR EACH STATEMENT EXECUTE FUNCTION weir_registry_changed();
            CREATE OR REPLACE TRIGGER weir_pipelines_changed
                AFTER INSERT OR UPDATE OR DELETE ON weir_pipelines
                FOR EACH STATEMENT EXECUTE FUNCTION weir_registry_changed()",
        )?;
        let plugins_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugins_dir)
            .with_context(|| format!("cannot create {}", plugins_dir.display()))?;
        Ok(PgRegistry { pg, plugins_dir })
    }

    fn execute(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        self.pg.run(async |c| Ok(c.execute(sql, args).await?))
    }

    fn query(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.pg.run(async |c| Ok(c.query(sql, args).await?))
    }

    fn pipelines_where(
        &self,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<PipelineRow>> {
        let rows = self.query(
            &format!(
                "SELECT tenant, name, definition, source_plugin, source_version, sink_plugin,
                        sink_version, desired, last_error, transforms
                 FROM weir_pipelines WHERE {filter} ORDER BY tenant, name"
            ),
            args,
        )?;
        rows.iter()
            .map(|r| {
                Ok(PipelineRow {
                    tenant: r.get(0),
                    name: r.get(1),
                    spec: serde_json::from_str(r.get(2)).context("a stored definition")?,
                    pins: Pins {
                        source: PluginRef {
                            name: r.get(3),
                            version: r.get(4),
                        },
                        transforms: transforms_from_column(r.get(9))
                            .context("a stored pipeline's transforms")?,
                        sink: PluginRef {
                            name: r.get(5),
                            version: r.get(6),
                        },
                    },
                    desired: Desired::parse(r.get(7)),
                    last_error: r.get(8),
                })
            })
            .collect()
    }

    fn plugins_where(
        &self,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<PluginVersion>> {
        let rows = self.query(
            &format!(
                "SELECT name, version, sha256, world, spec, created_at FROM weir_plugins
                 WHERE {filter} ORDER BY name, version"
            ),
            args,
        )?;
        rows.iter()
            .map(|r| {
                Ok(PluginVersion {
                    name: r.get(0),
                    version: r.get(1),
                    sha256: r.get(2),
                    world: r.get(3),
                    spec: serde_json::from_str(r.get(4)).context("a stored plugin spec")?,
                    created_at_ms: r.get(5),
                })
            })
            .collect()
    }
}

impl Registry for PgRegistry {
    fn create_tenant(&self, t: &Tenant, token: &str) -> Result<()> {
        self.execute(
            "INSERT INTO weir_tenants (name, token_sha256, quotas, grants, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &t.name,
                &sha256_hex(token.as_bytes()),
                &serde_json::to_string(&t.quotas)?,
                &serde_json::to_string(&t.grants)?,
                &(now_ms() as i64),
            ],
        )
        .with_context(|| format!("cannot create tenant `{}`", t.name))?;
        Ok(())
    }

    fn update_tenant(&self, t: &Tenant) -> Result<bool> {
        Ok(self.execute(
            "UPDATE weir_tenants SET quotas = $2, grants = $3 WHERE name = $1",
            &[
                &t.name,
                &serde_json::to_string(&t.quotas)?,
                &serde_json::to_string(&t.grants)?,
            ],
        )? > 0)
    }

    fn rotate_token(&self, name: &str, token: &str) -> Result<bool> {
        Ok(self.execute(
            "UPDATE weir_tenants SET token_sha256 = $2 WHERE name = $1",
            &[&name, &sha256_hex(token.as_bytes())],
        )? > 0)
    }

    /// One statement: the client is shared, so no transaction may span two.
    fn delete_tenant(&self, name: &str) -> Result<bool> {
        let deleted = self
            .query(
                "WITH plugins AS (DELETE FROM weir_plugins WHERE tenant = $1),
                      tenant AS (DELETE FROM weir_tenants WHERE name = $1 RETURNING 1)
                 SELECT COUNT(*) FROM tenant",
                &[&name],
            )?
            .first()
            .is_some_and(|r| r.get::<_, i64>(0) > 0);
        self.forget_unused_bytes()?;
        Ok(deleted)
    }

    fn tenant_by_token(&self, token: &str) -> Result<Option<String>> {
        Ok(self
            .query(
                "SELECT name FROM weir_tenants WHERE token_sha256 = $1",
                &[&sha256_hex(token.as_bytes())],
            )?
            .first()
            .map(|r| r.get(0)))
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        Ok(self.tenants_where("name = $1", &[&name])?.pop())
    }

    fn tenants(&self) -> Result<Vec<Tenant>> {
        self.tenants_where("TRUE", &[])
    }

    fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// Fetched from the shared table when this node has not seen the version yet, checked
    /// against its hash, and written beside the others under a temporary name first.
    fn plugin_file(&self, sha256: &str, name: &str) -> Result<PathBuf> {
        let path = self.plugin_path(sha256, name);
        if path.exists() {
            return Ok(path);
        }
        let rows = self.query(
            "SELECT bytes FROM weir_plugin_files WHERE sha256 = $1",
            &[&sha256],
        )?;
        let bytes: Vec<u8> = rows
            .first()
            .map(|r| r.get(0))
            .with_context(|| format!("the bytes of plugin `{name}` ({sha256}) are not stored"))?;
        ensure!(
            sha256_hex(&bytes) == sha256,
            "the stored bytes of plugin `{name}` do not match their hash {sha256}"
        );
        let dir = path.parent().context("a plugin path has a directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let partial = dir.join(format!(".{}.partial", crate::auth::random_token()?));
        std::fs::write(&partial, &bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    fn plugin_versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>> {
        self.plugins_where("tenant = $1 AND name = $2", &[&tenant, &name])
    }

    fn plugins(&self, tenant: &str) -> Result<Vec<PluginVersion>> {
        self.plugins_where("tenant = $1", &[&tenant])
    }

    /// The bytes go in with the version: the file is already at [`Registry::plugin_path`].
    fn add_plugin(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        world: &str,
        spec: &PluginSpec,
    ) -> Result<PluginVersion> {
        let path = self.plugin_path(sha256, name);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let now = now_ms() as i64;
        let spec_json = serde_json::to_string(spec)?;
        let version: i64 = self.pg.run(async |c| {
            c.execute(
                "INSERT INTO weir_plugin_files (sha256, bytes) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes],
            )
            .await?;
            Ok(c.query_one(
                "INSERT INTO weir_plugins (tenant, name, version, sha256, world, spec, created_at)
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6
                 FROM weir_plugins WHERE tenant = $1 AND name = $2
                 RETURNING version",
                &[&tenant, &name, &sha256, &world, &spec_json, &now],
            )
            .await
            .with_context(|| format!("cannot store a version of plugin `{name}`"))?
            .get(0))
        })?;
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
        let deleted = self.execute(
            "DELETE FROM weir_plugins WHERE tenant = $1 AND name = $2 AND version = $3",
            &[&tenant, &name, &version],
        )? > 0;
        self.forget_unused_bytes()?;
        Ok(deleted)
    }

    fn plugin_file_used(&self, sha256: &str) -> Result<bool> {
        Ok(self
            .query(
                "SELECT EXISTS(SELECT 1 FROM weir_plugins WHERE sha256 = $1)",
                &[&sha256],
            )?
            .first()
            .is_some_and(|r| r.get(0)))
    }

    fn insert_pipeline(&self, p: &PipelineRow) -> Result<()> {
        self.execute(
            "INSERT INTO weir_pipelines (tenant, name, definition, source_plugin, source_version,
                sink_plugin, sink_version, desired, last_error, created_at, transforms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10)",
            &[
                &p.tenant,
                &p.name,
                &serde_json::to_string(&p.spec)?,
                &p.pins.source.name,
                &p.pins.source.version,
                &p.pins.sink.name,
                &p.pins.sink.version,
                &p.desired.as_str(),
                &(now_ms() as i64),
                &transforms_column(&p.pins),
            ],
        )
        .with_context(|| format!("cannot store pipeline `{}`", p.name))?;
        Ok(())
    }

    fn pipeline(&self, tenant: &str, name: &str) -> Result<Option<PipelineRow>> {
        Ok(self
            .pipelines_where("tenant = $1 AND name = $2", &[&tenant, &name])?
            .pop())
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineRow>> {
        self.pipelines_where("tenant = $1", &[&tenant])
    }

    fn all_pipelines(&self) -> Result<Vec<PipelineRow>> {
        self.pipelines_where("TRUE", &[])
    }

    fn set_desired(
        &self,
        tenant: &str,
        name: &str,
        desired: Desired,
        error: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE weir_pipelines SET desired = $3, last_error = $4
             WHERE tenant = $1 AND name = $2",
            &[&tenant, &name, &desired.as_str(), &error],
        )?;
        Ok(())
    }

    fn set_pins(&self, tenant: &str, name: &str, pins: &Pins) -> Result<()> {
        self.execute(
            "UPDATE weir_pipelines SET source_version = $3, sink_version = $4, transforms = $5
             WHERE tenant = $1 AND name = $2",
            &[
                &tenant,
                &name,
                &pins.source.version,
                &pins.sink.version,
                &transforms_column(pins),
            ],
        )?;
        Ok(())
    }

    fn replace_definition(&self, p: &PipelineRow) -> Result<()> {
        self.execute(
            "UPDATE weir_pipelines SET definition = $3, source_plugin = $4, source_version = $5,
                sink_plugin = $6, sink_version = $7, transforms = $8, last_error = NULL
             WHERE tenant = $1 AND name = $2",
            &[
                &p.tenant,
                &p.name,
                &serde_json::to_string(&p.spec)?,
                &p.pins.source.name,
                &p.pins.source.version,
                &p.pins.sink.name,
                &p.pins.sink.version,
                &transforms_column(&p.pins),
            ],
        )
        .with_context(|| format!("cannot update pipeline `{}`", p.name))?;
        Ok(())
    }

    fn delete_pipeline(&self, tenant: &str, name: &str) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM weir_pipelines WHERE tenant = $1 AND name = $2",
            &[&tenant, &name],
        )? > 0)
    }

    fn count_pipelines(&self, tenant: &str) -> Result<u32> {
        let n: i64 = self
            .query(
                "SELECT COUNT(*) FROM weir_pipelines WHERE tenant = $1",
                &[&tenant],
            )?
            .first()
            .map_or(0, |r| r.get(0));
        Ok(n as u32)
    }
}

impl PgRegistry {
    /// Plugin bytes no version refers to any more.
    fn forget_unused_bytes(&self) -> Result<()> {
        self.execute(
            "DELETE FROM weir_plugin_files f
             WHERE NOT EXISTS (SELECT 1 FROM weir_plugins p WHERE p.sha256 = f.sha256)",
            &[],
        )?;
        Ok(())
    }

    fn tenants_where(
        &self,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Tenant>> {
        let rows = self.query(
            &format!("SELECT name, quotas, grants FROM weir_tenants WHERE {filter} ORDER BY name"),
            args,
        )?;
        rows.iter()
            .map(|r| {
                Ok(Tenant {
                    name: r.get(0),
                    quotas: serde_json::from_str(r.get(1)).context("stored quotas")?,
                    grants: serde_json::from_str(r.get(2)).context("stored grants")?,
                })
            })
            .collect()
    }
}
