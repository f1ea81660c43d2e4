//! The management API (`/v1/...`), `/metrics` and `/healthz`.
//!
//! Tenant calls see only the caller's own plugins and pipelines: every lookup is keyed by
//! the tenant the token belongs to, so another tenant's names simply do not exist here.

use crate::auth::{Caller, random_token};
use crate::push::{Plugins, check_name, fits, world_named};
use crate::registry::{Desired, PipelineRow, PluginRef, Registry, Tenant, key};
use crate::supervisor::{self, Supervisor};
use crate::tenant::{Grants, Quotas};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use weir_pipeline::{PipelineSpec, Side};
use weir_runtime::Runtime;

#[derive(Clone)]
pub struct App {
    pub registry: Arc<dyn Registry>,
    pub supervisor: Arc<Supervisor>,
    pub runtime: Arc<Runtime>,
    pub admin_token: Arc<str>,
    pub push_lock: Arc<Mutex<()>>,
    /// The server's own directories (data, watched plugins): no tenant may be granted them.
    pub reserved: Arc<[std::path::PathBuf]>,
}

impl App {
    pub fn plugins(&self) -> Plugins<'_> {
        Plugins {
            runtime: &self.runtime,
            registry: self.registry.as_ref(),
            supervisor: &self.supervisor,
            lock: &self.push_lock,
        }
    }
}

/// The largest plugin upload: far above any connector we know (Python ones are ~20 MB).
const MAX_UPLOAD: usize = 256 << 20;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/v1/tenants/{name}",
            get(show_tenant).put(update_tenant).delete(delete_tenant),
        )
        .route("/v1/tenants/{name}/token", post(rotate_token))
        .route("/v1/plugins", get(list_plugins))
        .route(
            "/v1/plugins/{name}",
            get(show_plugin).post(push_plugin).put(push_plugin),
        )
        .route(
            "/v1/plugins/{name}/{version}",
            get(show_plugin_version).delete(delete_plugin_version),
        )
        .route("/v1/pipelines", get(list_pipelines).post(create_pipeline))
        .route(
            "/v1/pipelines/{name}",
            get(show_pipeline).delete(delete_pipeline),
        )
        .route("/v1/pipelines/{name}/pause", post(pause_pipeline))
        .route("/v1/pipelines/{name}/resume", post(resume_pipeline))
        .route("/v1/pipelines/{name}/upgrade", post(upgrade_pipeline))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(app)
}

// --- errors ---

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn unauthorized(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, m)
    }
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    pub fn unprocessable(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
    }
    pub fn internal(e: anyhow::Error) -> ApiError {
        tracing::error!(error = %format!("{e:#}"), "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, body: impl serde::Serialize) -> Reply {
    Ok((status, axum::Json(body)).into_response())
}

/// Handlers touch SQLite, compile plugins and join worker threads: all blocking work.
async fn blocking<F>(f: F) -> Reply
where
    F: FnOnce() -> Reply + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(anyhow::anyhow!("handler panicked: {e}"))))
}

/// A TOML or JSON body, by its content type (TOML unless it says JSON).
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if json {
        serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    } else {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid TOML: {e}")))?;
        serde_json::to_value(table).map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

// --- tenants (admin) ---

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    name: String,
    #[serde(default)]
    quotas: Quotas,
    #[serde(default)]
    grants: Grants,
}

/// A tenant from a request body, its name, quotas and grants checked.
fn tenant_from(app: &App, value: Value) -> Result<Tenant, ApiError> {
    let body: TenantBody = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid tenant: {e}")))?;
    check_name("tenant", &body.name)?;
    body.grants
        .check(&app.reserved)
        .and_then(|()| body.quotas.check())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Tenant {
        name: body.name,
        quotas: body.quotas,
        grants: body.grants,
    })
}

fn tenant_json(t: &Tenant) -> Value {
    json!({ "name": t.name, "quotas": t.quotas, "grants": t.grants })
}

async fn create_tenant(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    caller.admin()?;
    blocking(move || {
        let tenant = tenant_from(&app, parse_body(&headers, &body)?)?;
        if app.registry.tenant(&tenant.name)?.is_some() {
            return Err(ApiError::conflict(format!(
                "tenant `{}` exists",
                tenant.name
            )));
        }
        let token = random_token()?;
        app.registry.create_tenant(&tenant, &token)?;
        let mut reply = tenant_json(&tenant);
        // The only time the token is shown: only its hash is kept.
        reply["token"] = token.into();
        ok(StatusCode::CREATED, reply)
    })
    .await
}

async fn update_tenant(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    caller.admin()?;
    blocking(move || {
        let mut value = parse_body(&headers, &body)?;
        value["name"] = name.clone().into();
        let tenant = tenant_from(&app, value)?;
        if !app.registry.update_tenant(&tenant)? {
            return Err(ApiError::not_found(format!("tenant `{name}`")));
        }
        ok(StatusCode::OK, tenant_json(&tenant))
    })
    .await
}

async fn list_tenants(State(app): State<App>, caller: Caller) -> Reply {
    caller.admin()?;
    blocking(move || {
        let all: Vec<Value> = app.registry.tenants()?.iter().map(tenant_json).collect();
        ok(StatusCode::OK, all)
    })
    .await
}

async fn show_tenant(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || match app.registry.tenant(&name)? {
        Some(t) => ok(StatusCode::OK, tenant_json(&t)),
        None => Err(ApiError::not_found(format!("tenant `{name}`"))),
    })
    .await
}

async fn rotate_token(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || {
        let token = random_token()?;
        if !app.registry.rotate_token(&name, &token)? {
            return Err(ApiError::not_found(format!("tenant `{name}`")));
        }
        ok(StatusCode::OK, json!({ "name": name, "token": token }))
    })
    .await
}

/// Only a tenant without pipelines: deleting running pipelines is the tenant's own call,
/// one by one, so nothing stops by accident.
async fn delete_tenant(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || {
        let _one = app.push_lock.lock().unwrap_or_else(|e| e.into_inner());
        if app.registry.tenant(&name)?.is_none() {
            return Err(ApiError::not_found(format!("tenant `{name}`")));
        }
        let left = app.registry.count_pipelines(&name)?;
        if left > 0 {
            return Err(ApiError::conflict(format!(
                "tenant `{name}` still has {left} pipeline(s); delete them first"
            )));
        }
        let plugins = app.registry.plugins(&name)?;
        app.registry.delete_tenant(&name)?;
        for v in plugins {
            remove_unused_file(app.registry.as_ref(), &v)?;
        }
        ok(StatusCode::OK, json!({ "deleted": name }))
    })
    .await
}

/// Deletes a plugin file once no version of any tenant refers to its bytes.
fn remove_unused_file(
    registry: &dyn Registry,
    v: &crate::registry::PluginVersion,
) -> anyhow::Result<()> {
    if !registry.plugin_file_used(&v.sha256)? {
        let path = registry.plugin_path(&v.sha256, &v.name);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(())
}

// --- plugins ---

async fn push_plugin(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let pushed = app.plugins().push(&tenant, &name, &body)?;
        let status = if pushed.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        ok(status, pushed)
    })
    .await
}

async fn list_plugins(State(app): State<App>, caller: Caller) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, app.registry.plugins(&tenant)?)).await
}

async fn show_plugin(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let versions = app.registry.plugin_versions(&tenant, &name)?;
        if versions.is_empty() {
            return Err(ApiError::not_found(format!("plugin `{name}`")));
        }
        ok(
            StatusCode::OK,
            json!({ "name": name, "versions": versions }),
        )
    })
    .await
}

async fn show_plugin_version(
    State(app): State<App>,
    caller: Caller,
    Path((name, version)): Path<(String, i64)>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(
        move || match app.registry.plugin(&tenant, &name, version)? {
            Some(v) => ok(StatusCode::OK, v),
            None => Err(ApiError::not_found(format!(
                "plugin `{name}` version {version}"
            ))),
        },
    )
    .await
}

async fn delete_plugin_version(
    State(app): State<App>,
    caller: Caller,
    Path((name, version)): Path<(String, i64)>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let _one = app.push_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(v) = app.registry.plugin(&tenant, &name, version)? else {
            return Err(ApiError::not_found(format!(
                "plugin `{name}` version {version}"
            )));
        };
        let pinned = PluginRef {
            name: name.clone(),
            version,
        };
        let users: Vec<String> = app
            .registry
            .pipelines_using(&tenant, &name)?
            .into_iter()
            .filter(|p| p.source == pinned || p.sink == pinned)
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "plugin `{name}` version {version} is used by pipeline(s): {}",
                users.join(", ")
            )));
        }
        app.registry.delete_plugin(&tenant, &name, version)?;
        remove_unused_file(app.registry.as_ref(), &v)?;
        ok(
            StatusCode::OK,
            json!({ "deleted": { "name": name, "version": version } }),
        )
    })
    .await
}

// --- pipelines ---

/// `name` or `name@version`: the named version, or the latest.
fn pin(
    registry: &dyn Registry,
    tenant: &str,
    reference: &str,
    at: &str,
) -> Result<(PluginRef, weir_runtime::World, Value), ApiError> {
    let (name, version) = match reference.split_once('@') {
        Some((n, v)) => (
            n,
            Some(v.parse::<i64>().map_err(|_| {
                ApiError::unprocessable(format!(
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
        ApiError::unprocessable(format!(
            "{at}: no plugin `{reference}` (push it first: weir plugin push)"
        ))
    })?;
    let world = world_named(&v.world).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "stored plugin has unknown world {}",
            v.world
        ))
    })?;
    Ok((
        PluginRef {
            name: v.name,
            version: v.version,
        },
        world,
        v.spec,
    ))
}

async fn create_pipeline(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let mut definition = parse_body(&headers, &body)?;
        // A pipeline file's `[[pipeline]]` with one entry is accepted as is.
        if let Some([one]) = definition
            .get("pipeline")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            definition = one.clone();
        }
        let mut spec = PipelineSpec::from_json(definition)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        let name = spec.name.clone();
        check_name("pipeline", &name)?;
        let t = app
            .registry
            .tenant(&tenant)?
            .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}`")))?;
        if app.registry.pipeline(&tenant, &name)?.is_some() {
            return Err(ApiError::conflict(format!("pipeline `{name}` exists")));
        }
        if app.registry.count_pipelines(&tenant)? >= t.quotas.max_pipelines {
            return Err(ApiError::unprocessable(format!(
                "the tenant's quota of {} pipelines is used up",
                t.quotas.max_pipelines
            )));
        }
        spec.limits = spec
            .limits
            .within(&t.quotas.limits())
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        let (source, source_world, source_spec) = pin(
            app.registry.as_ref(),
            &tenant,
            spec.plugin(Side::Source),
            "source.plugin",
        )?;
        let (sink, sink_world, sink_spec) = pin(
            app.registry.as_ref(),
            &tenant,
            spec.plugin(Side::Sink),
            "sink.plugin",
        )?;
        let row = PipelineRow {
            tenant: tenant.clone(),
            name: name.clone(),
            spec,
            source,
            sink,
            desired: Desired::Running,
            last_error: None,
        };
        let mut problems = Vec::new();
        if let Err(e) = fits(&row, &row.source.name, source_world, &source_spec) {
            problems.push(format!("source.plugin `{}`: {e}", row.source.name));
        }
        if let Err(e) = fits(&row, &row.sink.name, sink_world, &sink_spec) {
            problems.push(format!("sink.plugin `{}`: {e}", row.sink.name));
        }
        if !problems.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "pipeline `{name}`:\n  - {}",
                problems.join("\n  - ")
            )));
        }
        supervisor::build(app.registry.as_ref(), &t.grants, &row)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        app.registry.insert_pipeline(&row)?;
        // A pipeline of this name may have existed before: its position is not this one's.
        app.supervisor.checkpoints().reset(&row.key())?;
        if let Err(e) = app.supervisor.spawn(&row) {
            // Out of threads or memory maps: say so, and keep nothing half-made.
            app.registry.delete_pipeline(&tenant, &name)?;
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{e:#}: the host is at its limit; nothing was created"),
            ));
        }
        ok(StatusCode::CREATED, status(&app, &tenant, &name)?)
    })
    .await
}

fn status(app: &App, tenant: &str, name: &str) -> Result<Value, ApiError> {
    let row = app
        .registry
        .pipeline(tenant, name)?
        .ok_or_else(|| ApiError::not_found(format!("pipeline `{name}`")))?;
    let mut reply = serde_json::to_value(app.supervisor.snapshot(tenant, name))
        .map_err(|e| ApiError::internal(e.into()))?;
    if reply.is_null() {
        reply = json!({ "name": name });
    }
    reply["desired"] = serde_json::to_value(row.desired).unwrap_or_default();
    reply["pinned"] = json!({ "source": row.source, "sink": row.sink });
    reply["definition"] =
        serde_json::to_value(&row.spec).map_err(|e| ApiError::internal(e.into()))?;
    Ok(reply)
}

async fn list_pipelines(State(app): State<App>, caller: Caller) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let all = app
            .registry
            .pipelines(&tenant)?
            .iter()
            .map(|p| status(&app, &tenant, &p.name))
            .collect::<Result<Vec<_>, _>>()?;
        ok(StatusCode::OK, all)
    })
    .await
}

async fn show_pipeline(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, status(&app, &tenant, &name)?)).await
}

fn existing(app: &App, tenant: &str, name: &str) -> Result<PipelineRow, ApiError> {
    app.registry
        .pipeline(tenant, name)?
        .ok_or_else(|| ApiError::not_found(format!("pipeline `{name}`")))
}

async fn pause_pipeline(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    desire(app, caller, name, Desired::Paused).await
}

async fn resume_pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    desire(app, caller, name, Desired::Running).await
}

/// Pause or resume: stored first, so a restart of the server keeps what was asked.
async fn desire(app: App, caller: Caller, name: String, desired: Desired) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        existing(&app, &tenant, &name)?;
        app.registry.set_desired(&tenant, &name, desired, None)?;
        match desired {
            Desired::Running => app.supervisor.resume(&tenant, &name),
            Desired::Paused | Desired::Failed => app.supervisor.pause(&tenant, &name),
        }
        ok(StatusCode::OK, status(&app, &tenant, &name)?)
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpgradeBody {
    source_version: Option<i64>,
    sink_version: Option<i64>,
}

/// Moves a pipeline to the given (or latest) versions of its plugins, at its next
/// checkpoint boundary.
async fn upgrade_pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let asked: UpgradeBody = if body.iter().all(u8::is_ascii_whitespace) {
            UpgradeBody::default()
        } else {
            serde_json::from_value(parse_body(&headers, &body)?)
                .map_err(|e| ApiError::bad_request(format!("invalid upgrade: {e}")))?
        };
        let _one = app.push_lock.lock().unwrap_or_else(|e| e.into_inner());
        let row = existing(&app, &tenant, &name)?;
        let target = |r: &PluginRef, v: Option<i64>| match v {
            Some(v) => format!("{}@{v}", r.name),
            None => r.name.clone(),
        };
        let (source, source_world, source_spec) = pin(
            app.registry.as_ref(),
            &tenant,
            &target(&row.source, asked.source_version),
            "source_version",
        )?;
        let (sink, sink_world, sink_spec) = pin(
            app.registry.as_ref(),
            &tenant,
            &target(&row.sink, asked.sink_version),
            "sink_version",
        )?;
        for (r, world, spec) in [
            (&source, source_world, &source_spec),
            (&sink, sink_world, &sink_spec),
        ] {
            fits(&row, &r.name, world, spec).map_err(|e| {
                ApiError::unprocessable(format!(
                    "pipeline `{name}` stays on its current versions: `{}` version {}: {e}",
                    r.name, r.version
                ))
            })?;
        }
        let changed = source != row.source || sink != row.sink;
        if changed {
            app.registry
                .set_versions(&tenant, &name, source.version, sink.version)?;
            app.supervisor.swap(&tenant, &name);
        }
        let mut reply = status(&app, &tenant, &name)?;
        reply["upgraded"] = changed.into();
        ok(StatusCode::OK, reply)
    })
    .await
}

async fn delete_pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        existing(&app, &tenant, &name)?;
        // Waits for the batch in flight, so no run commits after the checkpoint is gone.
        app.supervisor.remove(&tenant, &name);
        app.registry.delete_pipeline(&tenant, &name)?;
        app.supervisor.checkpoints().reset(&key(&tenant, &name))?;
        ok(StatusCode::OK, json!({ "deleted": name }))
    })
    .await
}

// --- metrics ---

async fn metrics(State(app): State<App>, caller: Caller) -> Reply {
    caller.admin()?;
    blocking(move || {
        let text = crate::metrics::render(&app.supervisor);
        Ok((
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response())
    })
    .await
}
