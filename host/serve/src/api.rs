//! The management API (`/v1/...`), `/metrics` and `/healthz`: HTTP in and out, the
//! operations themselves in `ops`.
//!
//! Tenant calls see only the caller's own plugins and pipelines: every lookup is keyed by
//! the tenant the token belongs to, so another tenant's names simply do not exist here.

use crate::auth::Caller;
use crate::ops::{self, Ops, Upgrade};
use crate::registry::{Desired, Tenant};
use crate::tenant::{Grants, Quotas};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use weir_pipeline::PipelineSpec;

#[derive(Clone)]
pub struct App {
    pub ops: Arc<Ops>,
    pub admin_token: Arc<str>,
    /// Each pipeline's recent counters, for the console's charts.
    pub series: Arc<crate::series::Series>,
    /// Event streams open, per tenant: each holds a task and a registry read a second.
    pub streams: Arc<Streams>,
    /// The cluster's node table, when this process is a node of one.
    #[cfg(feature = "cluster")]
    pub cluster: Option<Arc<crate::cluster::Nodes>>,
}

/// The largest plugin upload: far above any connector we know (Python ones are ~20 MB).
const MAX_UPLOAD: usize = 256 << 20;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/cluster", get(cluster))
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
            get(show_pipeline)
                .put(update_pipeline)
                .delete(delete_pipeline),
        )
        .route("/v1/pipelines/{name}/pause", post(pause_pipeline))
        .route("/v1/pipelines/{name}/resume", post(resume_pipeline))
        .route("/v1/pipelines/{name}/upgrade", post(upgrade_pipeline))
        .route("/v1/pipelines/{name}/streams", get(discover_streams))
        .route("/v1/pipelines/{name}/logs", get(pipeline_logs))
        .route("/v1/pipelines/{name}/history", get(pipeline_history))
        .route("/v1/pipelines/{name}/series", get(pipeline_series))
        .route(
            "/v1/pipelines/{name}/dead-letters",
            get(pipeline_dead_letters),
        )
        .route("/v1/events", get(events))
        .route("/v1/whoami", get(whoami))
        .route(
            "/v1/pipelines/{name}/checkpoint",
            get(show_checkpoint)
                .put(set_checkpoint)
                .delete(reset_checkpoint),
        )
        .merge(crate::console::routes())
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
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
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

/// Each kind of refusal as its status code.
impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        let status = match &e {
            ops::Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            ops::Error::NotFound(_) => StatusCode::NOT_FOUND,
            ops::Error::Conflict(_) => StatusCode::CONFLICT,
            ops::Error::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ops::Error::AtLimit(_) => StatusCode::SERVICE_UNAVAILABLE,
            ops::Error::Internal(e) => return ApiError::internal(anyhow::anyhow!("{e:#}")),
        };
        ApiError::new(status, e.to_string())
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

/// Handlers touch SQLite, compile plugins and wait for pipeline workers to stop: all blocking work.
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

fn tenant_from(value: Value) -> Result<Tenant, ApiError> {
    let body: TenantBody = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid tenant: {e}")))?;
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
        let tenant = tenant_from(parse_body(&headers, &body)?)?;
        let token = app.ops.create_tenant(&tenant)?;
        let mut reply = tenant_json(&tenant);
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
        value["name"] = name.into();
        let tenant = tenant_from(value)?;
        app.ops.update_tenant(&tenant)?;
        ok(StatusCode::OK, tenant_json(&tenant))
    })
    .await
}

async fn list_tenants(State(app): State<App>, caller: Caller) -> Reply {
    caller.admin()?;
    blocking(move || {
        let mut all = Vec::new();
        for t in app.ops.tenants()? {
            // What each uses of its quota, for the console's tenants table.
            let mut shown = tenant_json(&t);
            shown["pipelines"] = app
                .ops
                .registry
                .count_pipelines(&t.name)
                .map_err(ApiError::internal)?
                .into();
            // CPU its pipelines have used on this node, for its quota's `cpu` share.
            let cpu_ns: u64 = app
                .ops
                .supervisor
                .workers()
                .iter()
                .filter(|w| w.tenant == t.name)
                .map(|w| w.meter.read().cpu_ns)
                .sum();
            shown["cpu_seconds"] = (cpu_ns as f64 / 1e9).into();
            all.push(shown);
        }
        ok(StatusCode::OK, all)
    })
    .await
}

async fn show_tenant(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || ok(StatusCode::OK, tenant_json(&app.ops.tenant(&name)?))).await
}

async fn rotate_token(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || {
        let token = app.ops.rotate_token(&name)?;
        ok(StatusCode::OK, json!({ "name": name, "token": token }))
    })
    .await
}

async fn delete_tenant(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    caller.admin()?;
    blocking(move || {
        app.ops.delete_tenant(&name)?;
        ok(StatusCode::OK, json!({ "deleted": name }))
    })
    .await
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
        let pushed = app.ops.push(&tenant, &name, &body)?;
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
    blocking(move || {
        let mut all = Vec::new();
        for v in app.ops.plugins(&tenant)? {
            // Its size on this node's disk (none while a cluster's copy is not fetched).
            let size = std::fs::metadata(app.ops.registry.plugin_path(&v.sha256, &v.name))
                .ok()
                .map(|m| m.len());
            let mut shown = serde_json::to_value(&v).map_err(|e| ApiError::internal(e.into()))?;
            shown["size"] = size.into();
            all.push(shown);
        }
        ok(StatusCode::OK, all)
    })
    .await
}

async fn show_plugin(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let versions = app.ops.plugin_versions(&tenant, &name)?;
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
    blocking(move || {
        ok(
            StatusCode::OK,
            app.ops.plugin_version(&tenant, &name, version)?,
        )
    })
    .await
}

async fn delete_plugin_version(
    State(app): State<App>,
    caller: Caller,
    Path((name, version)): Path<(String, i64)>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        app.ops.delete_plugin_version(&tenant, &name, version)?;
        ok(
            StatusCode::OK,
            json!({ "deleted": { "name": name, "version": version } }),
        )
    })
    .await
}

// --- pipelines ---

async fn create_pipeline(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let spec = PipelineSpec::from_document(parse_body(&headers, &body)?)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        ok(StatusCode::CREATED, app.ops.create_pipeline(&tenant, spec)?)
    })
    .await
}

/// A new definition for an existing pipeline, which keeps its checkpoint.
async fn update_pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let spec = PipelineSpec::from_document(parse_body(&headers, &body)?)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        ok(
            StatusCode::OK,
            app.ops.update_pipeline(&tenant, &name, spec)?,
        )
    })
    .await
}

async fn show_checkpoint(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, app.ops.checkpoint(&tenant, &name)?)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCheckpoint {
    /// The source's own checkpoint, as `GET` shows it.
    checkpoint: String,
}

/// Moves a paused pipeline to `{"checkpoint": "..."}`.
async fn set_checkpoint(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let asked: NewCheckpoint = serde_json::from_slice(&body).map_err(|e| {
            ApiError::unprocessable(format!("expected {{\"checkpoint\": \"...\"}}: {e}"))
        })?;
        let moved = app
            .ops
            .move_checkpoint(&tenant, &name, Some(&asked.checkpoint))?;
        ok(StatusCode::OK, moved)
    })
    .await
}

/// Makes a paused pipeline start from the beginning when resumed.
async fn reset_checkpoint(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        ok(
            StatusCode::OK,
            app.ops.move_checkpoint(&tenant, &name, None)?,
        )
    })
    .await
}

#[derive(serde::Deserialize)]
struct LogPage {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_log_page")]
    limit: usize,
}

fn default_log_page() -> usize {
    100
}

/// The pipeline's recent log lines after `after`, at most `limit` (up to 1000) of them:
/// only the caller's own pipelines.
async fn pipeline_logs(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Query(page): axum::extract::Query<LogPage>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        app.ops.pipeline(&tenant, &name)?;
        let limit = page.limit.clamp(1, 1000);
        let (lines, next) =
            crate::logs::logs().read(&crate::registry::key(&tenant, &name), page.after, limit);
        ok(StatusCode::OK, json!({ "lines": lines, "next": next }))
    })
    .await
}

/// What operators did to the pipeline, oldest first (only the caller's own pipelines).
async fn pipeline_history(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, app.ops.history(&tenant, &name)?)).await
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    skip: usize,
    #[serde(default = "default_log_page")]
    limit: usize,
}

/// A page of the pipeline's dead letters, newest first (`skip` the newest, then `limit`,
/// up to 1000): only the caller's own pipelines.
async fn pipeline_dead_letters(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let limit = page.limit.clamp(1, 1000);
        ok(
            StatusCode::OK,
            app.ops.dead_letters(&tenant, &name, page.skip, limit)?,
        )
    })
    .await
}

/// Who the token is: `{"role": "admin"}` or `{"role": "tenant", "tenant": NAME}`.
async fn whoami(caller: Caller) -> Reply {
    match caller {
        Caller::Admin => ok(StatusCode::OK, json!({ "role": "admin" })),
        Caller::Tenant(t) => ok(StatusCode::OK, json!({ "role": "tenant", "tenant": t })),
    }
}

/// The pipeline's counters sampled over the last 15 minutes, oldest first (only the
/// caller's own pipelines; a pipeline whose counters stood still has no new samples).
async fn pipeline_series(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        app.ops.pipeline(&tenant, &name)?;
        let samples = app.series.of(&tenant, &name);
        let every_ms = crate::series::EVERY.as_millis() as u64;
        ok(
            StatusCode::OK,
            json!({ "every_ms": every_ms, "samples": samples }),
        )
    })
    .await
}

/// How many event streams one tenant may hold open at once (a console per operator).
pub const STREAMS_PER_TENANT: usize = 8;

#[derive(Default)]
pub struct Streams(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One open event stream; dropped (the client gone, the stream ended), its place is free.
struct StreamSlot {
    streams: Arc<Streams>,
    tenant: String,
}

impl Streams {
    fn take(self: &Arc<Self>, tenant: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(tenant.to_string()).or_default();
        if *n >= STREAMS_PER_TENANT {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{STREAMS_PER_TENANT} event streams are open for this tenant already"),
            ));
        }
        *n += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

/// Server-sent events: the caller's pipelines (as `GET /v1/pipelines` lists them) every
/// second. The token is checked again before each event, so a rotated token or a deleted
/// tenant ends the stream; at most [`STREAMS_PER_TENANT`] are open per tenant (429 past it).
async fn events(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let tenant = caller.tenant()?.to_string();
    let token = crate::auth::bearer(&headers)?.to_string();
    let slot = app.streams.take(&tenant)?;
    let tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let stream = futures::stream::unfold(
        (app, tenant, token, tick, slot),
        |(app, tenant, token, mut tick, slot)| async move {
            tick.tick().await;
            let (a, t, k) = (app.clone(), tenant.clone(), token.clone());
            let listed = tokio::task::spawn_blocking(move || match Caller::of(&k, &a) {
                Ok(Caller::Tenant(now)) if now == t => a.ops.pipelines(&t).ok(),
                _ => None,
            })
            .await
            .ok()
            .flatten()?;
            let event = Event::default()
                .json_data(json!({ "pipelines": listed }))
                .ok()?;
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (app, tenant, token, tick, slot),
            ))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn list_pipelines(State(app): State<App>, caller: Caller) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, app.ops.pipelines(&tenant)?)).await
}

async fn show_pipeline(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || ok(StatusCode::OK, app.ops.pipeline(&tenant, &name)?)).await
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

async fn desire(app: App, caller: Caller, name: String, desired: Desired) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        ok(
            StatusCode::OK,
            app.ops.set_desired(&tenant, &name, desired)?,
        )
    })
    .await
}

async fn upgrade_pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let asked: Upgrade = if body.iter().all(u8::is_ascii_whitespace) {
            Upgrade::default()
        } else {
            serde_json::from_value(parse_body(&headers, &body)?)
                .map_err(|e| ApiError::bad_request(format!("invalid upgrade: {e}")))?
        };
        let (status, changed) = app.ops.upgrade(&tenant, &name, &asked)?;
        let mut reply = serde_json::to_value(status).map_err(|e| ApiError::internal(e.into()))?;
        reply["upgraded"] = changed.into();
        ok(StatusCode::OK, reply)
    })
    .await
}

async fn discover_streams(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let tenant = caller.tenant()?.to_string();
    blocking(move || {
        let streams = app.ops.discover(&tenant, &name)?;
        ok(StatusCode::OK, json!({ "name": name, "streams": streams }))
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
        app.ops.delete_pipeline(&tenant, &name)?;
        ok(StatusCode::OK, json!({ "deleted": name }))
    })
    .await
}

// --- metrics ---

/// The nodes, their health, the slots and pipelines each runs. Without `--cluster`, one
/// node: this process, running everything.
async fn cluster(State(app): State<App>, caller: Caller) -> Reply {
    caller.admin()?;
    blocking(move || {
        #[cfg(feature = "cluster")]
        if let Some(nodes) = &app.cluster {
            return ok(StatusCode::OK, nodes.status().map_err(ops::Error::from)?);
        }
        let pipelines: Vec<String> = app
            .ops
            .supervisor
            .workers()
            .iter()
            .map(|w| crate::registry::key(&w.tenant, &w.name))
            .collect();
        ok(
            StatusCode::OK,
            json!({ "node": "", "clustered": false, "nodes": [{ "node": "", "health": "up", "pipelines": pipelines }] }),
        )
    })
    .await
}

async fn metrics(State(app): State<App>, caller: Caller) -> Reply {
    caller.admin()?;
    blocking(move || {
        let text = crate::metrics::render(&app.ops.supervisor);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_refusal_has_its_status() {
        for (e, status) in [
            (ops::Error::BadRequest("b".into()), StatusCode::BAD_REQUEST),
            (ops::Error::NotFound("n".into()), StatusCode::NOT_FOUND),
            (ops::Error::Conflict("c".into()), StatusCode::CONFLICT),
            (
                ops::Error::Refused("r".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                ops::Error::AtLimit("l".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                ops::Error::Internal(anyhow::anyhow!("i")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let text = e.to_string();
            let reply = ApiError::from(e);
            assert_eq!(reply.status, status);
            assert_eq!(reply.message, text);
        }
    }
}
