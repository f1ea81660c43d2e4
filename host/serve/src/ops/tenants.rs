//! Tenants (admin only): what each may run and reach, and its token.

use super::{Error, Ops, Result, check_name};
use crate::auth::random_token;
use crate::registry::{PluginVersion, Registry, Tenant};

impl Ops {
    /// Stores a new tenant; returns its token, the only time it is shown (only its hash
    /// is kept).
    pub fn create_tenant(&self, tenant: &Tenant) -> Result<String> {
        self.check_tenant(tenant)?;
        if self.registry.tenant(&tenant.name)?.is_some() {
            return Err(Error::Conflict(format!("tenant `{}` exists", tenant.name)));
        }
        let token = random_token()?;
        self.registry.create_tenant(tenant, &token)?;
        Ok(token)
    }

    /// Replaces a tenant's quotas and grants.
    pub fn update_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.check_tenant(tenant)?;
        if !self.registry.update_tenant(tenant)? {
            return Err(Error::not_found(format!("tenant `{}`", tenant.name)));
        }
        Ok(())
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.registry.tenants()?)
    }

    pub fn tenant(&self, name: &str) -> Result<Tenant> {
        self.registry
            .tenant(name)?
            .ok_or_else(|| Error::not_found(format!("tenant `{name}`")))
    }

    /// A new token; the old one stops working.
    pub fn rotate_token(&self, name: &str) -> Result<String> {
        let token = random_token()?;
        if !self.registry.rotate_token(name, &token)? {
            return Err(Error::not_found(format!("tenant `{name}`")));
        }
        Ok(token)
    }

    /// Only a tenant without pipelines: deleting running pipelines is the tenant's own
    /// call, one by one, so nothing stops by accident. Its plugin files go too.
    pub fn delete_tenant(&self, name: &str) -> Result<()> {
        let _one = self.one_change();
        self.tenant(name)?;
        let left = self.registry.count_pipelines(name)?;
        if left > 0 {
            return Err(Error::Conflict(format!(
                "tenant `{name}` still has {left} pipeline(s); delete them first"
            )));
        }
        let plugins = self.registry.plugins(name)?;
        self.registry.delete_tenant(name)?;
        for v in plugins {
            remove_unused_file(self.registry.as_ref(), &v)?;
        }
        Ok(())
    }

    /// Its name, grants and quotas usable: no grant of the server's own directories.
    fn check_tenant(&self, t: &Tenant) -> Result<()> {
        check_name("tenant", &t.name)?;
        t.grants
            .check(&self.reserved)
            .and_then(|()| t.quotas.check())
            .map_err(|e| Error::BadRequest(e.to_string()))
    }
}

/// Deletes a plugin file once no version of any tenant refers to its bytes.
pub(super) fn remove_unused_file(registry: &dyn Registry, v: &PluginVersion) -> Result<()> {
    if !registry.plugin_file_used(&v.sha256)? {
        let path = registry.plugin_path(&v.sha256, &v.name);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(())
}
