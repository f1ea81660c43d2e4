//! Who is calling: the admin (token from `WEIR_ADMIN_TOKEN`) or a tenant (a token whose
//! SHA-256 is in the registry). Anything else gets 401 and no data.

use crate::api::{ApiError, App};
use anyhow::Result;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl Caller {
    /// The tenant a tenant-scoped call acts for: a tenant's own token only, so one
    /// tenant cannot name another's resources at all.
    pub fn tenant(&self) -> Result<&str, ApiError> {
        match self {
            Caller::Tenant(t) => Ok(t),
            Caller::Admin => Err(ApiError::forbidden(
                "this call acts for a tenant: use the tenant's token",
            )),
        }
    }

    pub fn admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::forbidden("this call needs the admin token")),
        }
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Caller::of(bearer(&parts.headers)?, app)
    }
}

/// The request's bearer token.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))
}

impl Caller {
    /// Who `token` is: the admin, a tenant, or nobody (401).
    pub fn of(token: &str, app: &App) -> Result<Caller, ApiError> {
        if same(token, &app.admin_token) {
            return Ok(Caller::Admin);
        }
        match app.ops.registry.tenant_by_token(token) {
            Ok(Some(tenant)) => Ok(Caller::Tenant(tenant)),
            Ok(None) => Err(ApiError::unauthorized("invalid token")),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

/// Compares digests, so the time taken says nothing about how much of a guess matched.
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// 32 random bytes, hex: a tenant token, or a unique scratch name.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}
