//! `/v1/plugins`: upload component versions, list them, and change which one is live, which
//! one runs in shadow, and how a plugin is bound into the chain. Every change is handed to
//! the policy runtime, which swaps the chain atomically.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiState, error::ApiError, error::StrictJson, format_time};
use crate::policy::{self, PluginStatus, SettingsPatch, StatsSnapshot};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRequest {
    pub version: Option<String>,
    /// The config this version runs with; none: the plugin's current config.
    #[serde(default)]
    pub config: Option<Value>,
}

fn stats_json(stats: Option<StatsSnapshot>) -> Value {
    stats.map_or(Value::Null, |stats| json!(stats))
}

pub fn status_json(status: &PluginStatus) -> Value {
    let binding = &status.binding;
    json!({
        "name": binding.name,
        "live_version": binding.live_version,
        "shadow_version": binding.shadow_version,
        "shadow_config": binding.shadow_config,
        "previous_versions": binding.previous_versions.iter().map(|previous| previous.version.clone()).collect::<Vec<_>>(),
        "position": binding.position,
        "hooks": binding.hooks,
        "failure": binding.failure,
        "limits": binding.limits,
        "config": binding.config,
        "enabled": binding.enabled,
        "quarantined": status.quarantined,
        "pending_timers": status.pending_timers,
        "counters": status.counters,
        "updated_at": format_time(binding.updated_at_ms),
        "versions": status.versions.iter().map(|version| json!({
            "version": version.version,
            "size_bytes": version.size_bytes,
            "uploaded_at": format_time(version.uploaded_at_ms),
            "live": binding.live_version.as_deref() == Some(version.version.as_str()),
        })).collect::<Vec<_>>(),
        "stats": stats_json(status.live_stats),
        "shadow_stats": stats_json(status.shadow_stats),
    })
}

pub async fn upload(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
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
    if body.is_empty() {
        return Err(ApiError::invalid("body", "is empty: send the .wasm component"));
    }
    let uploaded = state.policies.upload(&name, body.to_vec()).await?;
    tracing::info!(plugin = %name, version = %&uploaded.version[..12], size_bytes = uploaded.size_bytes, "plugin version uploaded");
    Ok((StatusCode::CREATED, Json(json!(uploaded))).into_response())
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let statuses = state.policies.statuses().await?;
    Ok(Json(
        json!({"plugins": statuses.iter().map(status_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state.policies.status(&name).await?)))
}

pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(patch): StrictJson<SettingsPatch>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state.policies.update(&name, patch).await?)))
}

fn required_version(request: &VersionRequest) -> Result<String, ApiError> {
    request
        .version
        .clone()
        .filter(|version| !version.is_empty())
        .ok_or_else(|| ApiError::invalid("version", "is required: the sha256 an upload answered"))
}

pub async fn activate(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(request): StrictJson<VersionRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = required_version(&request)?;
    Ok(Json(status_json(
        &state.policies.activate(&name, &version, request.config).await?,
    )))
}

pub async fn rollback(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state.policies.rollback(&name).await?)))
}

pub async fn start_shadow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    StrictJson(request): StrictJson<VersionRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = required_version(&request)?;
    Ok(Json(status_json(
        &state.policies.shadow(&name, Some(&version), request.config).await?,
    )))
}

pub async fn stop_shadow(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state.policies.shadow(&name, None, None).await?)))
}

pub async fn shadow_report(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
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
    let agreement = if report.compared == 0 {
        Value::Null
    } else {
        json!(report.agreed as f64 / report.compared as f64)
    };
    Ok(Json(json!({
        "name": name,
        "version": version,
        "live_version": status.binding.live_version,
        "compared": report.compared,
        "agreed": report.agreed,
        "agreement": agreement,
        "disagreements": report.disagreements.iter().map(|record| json!({
            "message_id": record.message_id,
            "hook": record.hook,
            "live": record.live_verdict,
            "shadow": record.shadow_verdict,
            "at": format_time(record.at_ms),
        })).collect::<Vec<_>>(),
    })))
}

pub async fn delete(State(state): State<ApiState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.policies.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
