//! `/v1/plugins`: upload component versions, list them, and change which one is live, which
//! one runs in shadow, and how a plugin is bound into the chain. Every change is handed to
//! the policy runtime, which swaps the chain atomically.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    ApiState,
    error::{ApiError, ErrorBody, StrictJson, body_rejection},
    format_time,
};
use crate::policy::{self, PluginStatus, SettingsPatch, StatsSnapshot, Uploaded};

/// Disagreements listed by `GET /v1/plugins/{name}/shadow`.
const SHADOW_SAMPLES: usize = 20;

impl From<policy::Error> for ApiError {
    fn from(error: policy::Error) -> Self {
        use policy::Error;
        let message = error.to_string();
        match error {
            Error::TooLarge { .. } => {
                ApiError::at(StatusCode::PAYLOAD_TOO_LARGE, "component_too_large", message, "body")
            }
            Error::NotComponent { .. } => ApiError::at(StatusCode::BAD_REQUEST, "not_a_component", message, "body"),
            Error::DoesNotCompile { .. } => {
                ApiError::at(StatusCode::UNPROCESSABLE_ENTITY, "does_not_compile", message, "body")
            }
            Error::WorldMismatch { .. } => {
                ApiError::at(StatusCode::UNPROCESSABLE_ENTITY, "world_mismatch", message, "body")
            }
            Error::ConfigRefused { .. } => {
                ApiError::at(StatusCode::UNPROCESSABLE_ENTITY, "config_refused", message, "config")
            }
            Error::Invalid { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", message),
            Error::UnknownPlugin(_) => ApiError::not_found(message),
            Error::UnknownVersion { .. } => ApiError::at(StatusCode::NOT_FOUND, "not_found", message, "version"),
            Error::NothingToRollBack(_) => ApiError::new(StatusCode::CONFLICT, "nothing_to_roll_back", message),
            Error::Engine(_) | Error::Read { .. } | Error::Directory { .. } | Error::Store { .. } => {
                ApiError::internal("plugin operation", &message)
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionRequest {
    /// The sha256 an upload answered.
    #[schema(value_type = String, required = true)]
    pub version: Option<String>,
    /// The config this version runs with; none: the plugin's current config.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// A component: the `.wasm` bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Component(pub Vec<u8>);

// The answers below list their fields in alphabetical order: the order they had on the wire
// when they were built with `json!` (serde_json sorts object keys), kept byte for byte.

/// What an upload produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedBody {
    /// The hooks the component exports.
    pub hooks: Vec<String>,
    pub name: String,
    pub size_bytes: usize,
    /// sha256 of the component, hex: what `activate` and `shadow` name.
    pub version: String,
}

impl From<Uploaded> for UploadedBody {
    fn from(uploaded: Uploaded) -> Self {
        Self {
            hooks: uploaded.hooks,
            name: uploaded.name,
            size_bytes: uploaded.size_bytes,
            version: uploaded.version,
        }
    }
}

/// A version's call statistics since it was loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBody {
    pub calls: u64,
    pub consecutive_faults: u64,
    pub faults: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl From<StatsSnapshot> for StatsBody {
    fn from(stats: StatsSnapshot) -> Self {
        Self {
            calls: stats.calls,
            consecutive_faults: stats.consecutive_faults,
            faults: stats.faults,
            p50_us: stats.p50_us,
            p99_us: stats.p99_us,
        }
    }
}

/// One uploaded version of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionBody {
    pub live: bool,
    pub size_bytes: i64,
    pub uploaded_at: String,
    pub version: String,
}

/// A plugin: how it is bound into the chain, its versions and how they run.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginBody {
    #[schema(value_type = Object)]
    pub config: Value,
    /// The live version's counters (`counter-add`), by name.
    pub counters: std::collections::BTreeMap<String, u64>,
    pub enabled: bool,
    /// `closed` or `open`.
    pub failure: String,
    pub hooks: Vec<String>,
    #[schema(value_type = Object)]
    pub limits: Value,
    pub live_version: Option<String>,
    pub name: String,
    pub pending_timers: u64,
    pub position: i64,
    /// What `rollback` returns to, most recent last.
    pub previous_versions: Vec<String>,
    pub quarantined: bool,
    #[schema(value_type = Option<Object>)]
    pub shadow_config: Option<Value>,
    pub shadow_stats: Option<StatsBody>,
    pub shadow_version: Option<String>,
    pub stats: Option<StatsBody>,
    pub updated_at: String,
    pub versions: Vec<VersionBody>,
}

impl From<PluginStatus> for PluginBody {
    fn from(status: PluginStatus) -> Self {
        let binding = status.binding;
        let versions = status
            .versions
            .into_iter()
            .map(|version| VersionBody {
                live: binding.live_version.as_deref() == Some(version.version.as_str()),
                size_bytes: version.size_bytes,
                uploaded_at: format_time(version.uploaded_at_ms),
                version: version.version,
            })
            .collect();
        Self {
            config: binding.config,
            counters: status.counters,
            enabled: binding.enabled,
            failure: binding.failure,
            hooks: binding.hooks,
            limits: binding.limits,
            live_version: binding.live_version,
            name: binding.name,
            pending_timers: status.pending_timers,
            position: binding.position,
            previous_versions: binding
                .previous_versions
                .into_iter()
                .map(|previous| previous.version)
                .collect(),
            quarantined: status.quarantined,
            shadow_config: binding.shadow_config,
            shadow_stats: status.shadow_stats.map(StatsBody::from),
            shadow_version: binding.shadow_version,
            stats: status.live_stats.map(StatsBody::from),
            updated_at: format_time(binding.updated_at_ms),
            versions,
        }
    }
}

/// The answer of `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginBody>,
}

/// A message on which the shadow's verdict differed from the live one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disagreement {
    pub at: String,
    pub hook: String,
    /// The live version's verdict.
    pub live: String,
    #[schema(value_type = String)]
    pub message_id: crate::message::MessageId,
    /// The shadow version's verdict.
    pub shadow: String,
}

/// The answer of `GET /v1/plugins/{name}/shadow`: how often the shadow agreed with live.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowReportBody {
    pub agreed: u64,
    /// `agreed / compared`; `null` before anything was compared.
    pub agreement: Option<f64>,
    pub compared: u64,
    /// The latest disagreements, newest first.
    pub disagreements: Vec<Disagreement>,
    pub live_version: Option<String>,
    pub name: String,
    pub version: String,
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/versions",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body(content((inline(Component) = "application/wasm"), (inline(Component) = "application/octet-stream")), description = "The component's bytes"),
    responses(
        (status = 201, description = "Stored and compiled; not live until activated", body = UploadedBody),
        (status = 400, description = "A field is invalid, the body is not JSON, or not a component", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent with the documented content type", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/wasm" && content_type != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the component bytes with Content-Type: application/wasm",
        ));
    }
    let body = body.map_err(body_rejection)?;
    if body.is_empty() {
        return Err(ApiError::invalid("body", "is empty: send the .wasm component"));
    }
    let uploaded = state.policies.upload(&name, body.to_vec()).await?;
    tracing::info!(plugin = %name, version = %&uploaded.version[..12], size_bytes = uploaded.size_bytes, "plugin version uploaded");
    Ok((StatusCode::CREATED, Json(UploadedBody::from(uploaded))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    responses(
        (status = 200, description = "Every plugin, in chain order", body = PluginList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:read`", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<PluginList>, ApiError> {
    let statuses = state.policies.statuses().await?;
    Ok(Json(PluginList {
        plugins: statuses.into_iter().map(PluginBody::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The plugin", body = PluginBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:read`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<PluginBody>, ApiError> {
    Ok(Json(state.policies.status(&name).await?.into()))
}

#[utoipa::path(
    put,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Changed; the chain was swapped", body = PluginBody),
        (status = 400, description = "A field is invalid, the body is not JSON, or not a component", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent with the documented content type", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(patch): StrictJson<SettingsPatch>,
) -> Result<Json<PluginBody>, ApiError> {
    Ok(Json(state.policies.update(&name, patch).await?.into()))
}

fn required_version(request: &VersionRequest) -> Result<String, ApiError> {
    request
        .version
        .clone()
        .filter(|version| !version.is_empty())
        .ok_or_else(|| ApiError::invalid("version", "is required: the sha256 an upload answered"))
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/activate",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body = VersionRequest,
    responses(
        (status = 200, description = "The version is live", body = PluginBody),
        (status = 400, description = "A field is invalid, the body is not JSON, or not a component", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent with the documented content type", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn activate(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(request): StrictJson<VersionRequest>,
) -> Result<Json<PluginBody>, ApiError> {
    let version = required_version(&request)?;
    Ok(Json(
        state.policies.activate(&name, &version, request.config).await?.into(),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/rollback",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The previous version is live again", body = PluginBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 409, description = "No earlier version to roll back to", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rollback(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<PluginBody>, ApiError> {
    Ok(Json(state.policies.rollback(&name).await?.into()))
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body = VersionRequest,
    responses(
        (status = 200, description = "The version runs in shadow beside live", body = PluginBody),
        (status = 400, description = "A field is invalid, the body is not JSON, or not a component", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent with the documented content type", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn start_shadow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(request): StrictJson<VersionRequest>,
) -> Result<Json<PluginBody>, ApiError> {
    let version = required_version(&request)?;
    Ok(Json(
        state
            .policies
            .shadow(&name, Some(&version), request.config)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "No shadow runs any more", body = PluginBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stop_shadow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PluginBody>, ApiError> {
    Ok(Json(state.policies.shadow(&name, None, None).await?.into()))
}

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "How the shadow compares with live", body = ShadowReportBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:read`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn shadow_report(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ShadowReportBody>, ApiError> {
    let status = state.policies.status(&name).await?;
    let Some(version) = status.binding.shadow_version.clone() else {
        return Err(ApiError::not_found(format!(
            "plugin {name} has no shadow version running"
        )));
    };
    let report = state
        .policies
        .store()
        .shadow_report(&name, &version, SHADOW_SAMPLES)
        .await
        .map_err(|error| ApiError::internal("reading the shadow report", &error))?;
    let agreement = (report.compared != 0).then(|| report.agreed as f64 / report.compared as f64);
    Ok(Json(ShadowReportBody {
        agreed: report.agreed,
        agreement,
        compared: report.compared,
        disagreements: report
            .disagreements
            .into_iter()
            .map(|record| Disagreement {
                at: format_time(record.at_ms),
                hook: record.hook,
                live: record.live_verdict,
                message_id: record.message_id,
                shadow: record.shadow_verdict,
            })
            .collect(),
        live_version: status.binding.live_version,
        name,
        version,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 204, description = "Deleted with its versions and state"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `plugins:write`", body = ErrorBody),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 422, description = "The plugin refused the change: does not compile, wrong world, config refused", body = ErrorBody),
        (status = 503, description = "The store or engine did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(State(state): State<ApiState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.policies.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
