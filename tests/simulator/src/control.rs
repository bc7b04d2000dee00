//! The control surface under `/_sim/`, for black-box tests, the binary and the demo:
//! counters, the logs of accepted messages and SMS, live config changes, inbound
//! injection, the message templates (`GET /_sim/templates`; `POST
//! /_sim/templates/{id}/status` forces a status and posts its webhook) and a reset.
//! Errors use wasp's shape `{"error":{"code","message","field"}}`, not Meta's.
//!
//! Owns the handlers; calls `config`, `state`, `templates` and `webhook::post_inbound`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State, rejection::QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::inbound::Inbound;
use crate::state::{SENT_LOG_CAPACITY, Shared};
use crate::templates::{self, TemplateStatus};
use crate::webhook;

/// Entries `GET /_sim/sent` returns when no `limit` is given.
pub const DEFAULT_SENT_LIMIT: usize = 100;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/counters", get(counters))
        .route("/_sim/sent", get(sent))
        .route("/_sim/sms", get(sms_sent))
        .route("/_sim/config", get(read_config).put(update_config))
        .route("/_sim/inbound", post(inbound))
        .route("/_sim/reset", post(reset))
        .route("/_sim/templates", get(list_templates))
        .route("/_sim/templates/{id}/status", post(set_template_status))
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.counters.snapshot()).into_response()
}

#[derive(Deserialize)]
struct SentQuery {
    limit: Option<usize>,
}

async fn sent(State(shared): State<Arc<Shared>>, query: Result<Query<SentQuery>, QueryRejection>) -> Response {
    let limit = match query {
        Ok(Query(query)) => query.limit.unwrap_or(DEFAULT_SENT_LIMIT),
        Err(rejection) => {
            return ControlError::bad_request("invalid_query", rejection.body_text(), Some("limit")).into_response();
        }
    };
    Json(shared.sent.recent(limit.min(SENT_LOG_CAPACITY))).into_response()
}

/// Every SMS accepted on the Twilio-compatible API, oldest first.
async fn sms_sent(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.sms.all()).into_response()
}

async fn read_config(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.config.snapshot().masked()).into_response()
}

async fn update_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(error) => {
            return ControlError::bad_request("invalid_json", error.to_string(), None).into_response();
        }
    };
    match shared.config.snapshot().patched(patch) {
        Ok(next) => {
            tracing::info!(config = ?next.masked(), "simulator config changed");
            let shown = next.masked();
            shared.config.replace(next);
            Json(shown).into_response()
        }
        Err(Error::InvalidConfig { field, reason }) => {
            ControlError::bad_request("invalid_config", reason, Some(field)).into_response()
        }
        Err(other) => ControlError::internal(other.to_string()).into_response(),
    }
}

async fn inbound(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let inbound: Inbound = match serde_json::from_slice(&body) {
        Ok(inbound) => inbound,
        Err(error) => {
            return ControlError::bad_request("invalid_inbound", error.to_string(), None).into_response();
        }
    };
    let mut shutdown = shared.shutdown.clone();
    match webhook::post_inbound(&shared, &inbound, &mut shutdown).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error @ (Error::InvalidInbound(_) | Error::NoWebhookUrl)) => {
            ControlError::bad_request("invalid_inbound", error.to_string(), None).into_response()
        }
        Err(error) => ControlError {
            status: StatusCode::BAD_GATEWAY,
            code: "webhook_failed",
            message: error.to_string(),
            field: None,
        }
        .into_response(),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.reset();
    shared.sent.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// Every message template, oldest first, with its WABA, status and reason.
async fn list_templates(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.templates.all()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
    reason: Option<String>,
}

/// Forces a template's status (`PAUSED`, `APPROVED`, `REJECTED`, `DISABLED`) and
/// reason (default `NONE`), posts its `message_template_status_update` webhook (when a
/// `webhook_url` is set), then answers the template.
async fn set_template_status(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let change: StatusChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => {
            return ControlError::bad_request("invalid_status", error.to_string(), None).into_response();
        }
    };
    let status = match TemplateStatus::parse(&change.status) {
        Some(status) if status != TemplateStatus::Pending => status,
        _ => {
            return ControlError::bad_request(
                "invalid_status",
                format!(
                    "status must be one of PAUSED, APPROVED, REJECTED, DISABLED, got {:?}",
                    change.status
                ),
                Some("status"),
            )
            .into_response();
        }
    };
    let reason = change
        .reason
        .unwrap_or_else(|| templates::review::REASON_NONE.to_owned());
    if reason.is_empty() || !reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return ControlError::bad_request(
            "invalid_status",
            format!("reason is upper case letters and underscores (e.g. INVALID_FORMAT), got {reason:?}"),
            Some("reason"),
        )
        .into_response();
    }
    let Some(template) = shared.templates.force(&id, status, &reason) else {
        return ControlError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no template with id {id}"),
            field: None,
        }
        .into_response();
    };
    templates::announce(&shared, &template).await;
    Json(template).into_response()
}

struct ControlError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl ControlError {
    fn bad_request(code: &'static str, message: String, field: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
            field,
        }
    }

    fn internal(message: String) -> Self {
        tracing::warn!(%message, "control request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".to_owned(),
            field: None,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
