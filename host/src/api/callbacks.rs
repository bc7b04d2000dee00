//! Callbacks at the HTTP edge: which URL a new message's callbacks go to (its own
//! `callback_url`, else its token's default), and the dead-letter routes (scope `admin`):
//! `GET /v1/callbacks/dead` a page at a time, `POST /v1/callbacks/dead/replay` back into the
//! queue, audited in the same transaction. May call the store.

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiState,
    auth::{AuditWritten, Caller, entry},
    error::{ApiError, ErrorBody, StrictJson},
    format_time,
};
use crate::{
    message::MessageId,
    store::{CallbackReplay, CallbackTarget, PendingCallback},
};

pub const DEFAULT_DEAD_LIMIT: usize = 50;
pub const MAX_DEAD_LIMIT: usize = 500;
/// Most ids one replay names.
pub const MAX_REPLAY_IDS: usize = 1_000;

/// Where a message's callbacks go, once it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    url: String,
    token_id: String,
}

impl Callback {
    pub fn target(&self, message_id: MessageId) -> CallbackTarget {
        CallbackTarget {
            message_id,
            url: self.url.clone(),
            token_id: self.token_id.clone(),
        }
    }
}

/// The callback of a new message: its own `callback_url` (checked; a `400` naming the field),
/// else the caller's default, else none.
pub fn resolve(caller: &Caller, requested: Option<String>) -> Result<Option<Callback>, ApiError> {
    let url = match requested {
        Some(url) => {
            crate::callbacks::check_url(&url).map_err(|error| ApiError::invalid("callback_url", error))?;
            if !caller.callback.signed {
                return Err(ApiError::invalid(
                    "callback_url",
                    "this token has no callback signing secret (for the bootstrap token: set callbacks.secret)",
                ));
            }
            url
        }
        None => match (&caller.callback.url, caller.callback.signed) {
            (Some(url), true) => url.to_string(),
            _ => return Ok(None),
        },
    };
    Ok(Some(Callback {
        url,
        token_id: caller.token_id.to_string(),
    }))
}

// The answers below list their fields in alphabetical order: the order they had on the wire
// when they were built with `json!` (serde_json sorts object keys), kept byte for byte.

/// A callback that gave up.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadCallback {
    /// When the state change it reports happened.
    pub at: String,
    pub attempts: u32,
    pub dead_at: Option<String>,
    /// The delivery id (`X-Wasp-Delivery`): what a replay names.
    pub id: String,
    pub last_error: Option<String>,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    /// Outbox order (`X-Wasp-Event-Seq`).
    pub seq: i64,
    /// The message status it reports.
    pub status: &'static str,
    pub url: String,
}

impl From<PendingCallback> for DeadCallback {
    fn from(callback: PendingCallback) -> Self {
        Self {
            at: format_time(callback.at_ms),
            attempts: callback.attempts,
            dead_at: callback.dead_at_ms.map(format_time),
            id: callback.delivery_id,
            last_error: callback.last_error,
            message_id: callback.message_id,
            seq: callback.seq,
            status: callback.status.as_str(),
            url: callback.url,
        }
    }
}

/// The answer of `GET /v1/callbacks/dead`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadPage {
    pub callbacks: Vec<DeadCallback>,
    /// Pass back as `cursor` for the next page; `null`: no more.
    pub next_cursor: Option<String>,
}

/// The answer of `POST /v1/callbacks/dead/replay`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// Callbacks put back in the queue.
    pub replayed: u64,
}

/// The query as documented; the handler reads it as a map to name an unknown parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// 1 to 500; 50 when left out.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// `GET /v1/callbacks/dead?limit=&cursor=`: oldest first; `next_cursor` until the end.
#[utoipa::path(
    get,
    path = "/v1/callbacks/dead",
    tag = "callbacks",
    params(DeadQuery),
    responses(
        (status = 200, description = "A page of dead callbacks, oldest first", body = DeadPage),
        (status = 400, description = "A parameter is invalid or unknown", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn dead(
    State(state): State<ApiState>,
    Query(parameters): Query<HashMap<String, String>>,
) -> Result<Json<DeadPage>, ApiError> {
    if let Some(unknown) = parameters
        .keys()
        .find(|key| !matches!(key.as_str(), "limit" | "cursor"))
    {
        return Err(ApiError::invalid(unknown.clone(), "is not a parameter of this route"));
    }
    let limit = match parameters.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_DEAD_LIMIT).contains(limit))
            .ok_or_else(|| ApiError::invalid("limit", format!("1 to {MAX_DEAD_LIMIT}")))?,
        None => DEFAULT_DEAD_LIMIT,
    };
    let after = match parameters.get("cursor") {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor from this route"))?,
        ),
        None => None,
    };
    let mut page = state
        .store
        .dead_callbacks(after, limit + 1)
        .await
        .map_err(|error| ApiError::internal("listing dead callbacks", &error))?;
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|callback| callback.seq.to_string())
    } else {
        None
    };
    Ok(Json(DeadPage {
        callbacks: page.into_iter().map(DeadCallback::from).collect(),
        next_cursor,
    }))
}

/// `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// 1 to 1000 delivery ids.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/callbacks/dead/replay`: `{"ids": [...]}` or `{"all": true}`; `{"replayed": n}`.
#[utoipa::path(
    post,
    path = "/v1/callbacks/dead/replay",
    tag = "callbacks",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Put back in the queue", body = Replayed),
        (status = 400, description = "A field is invalid, or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    StrictJson(request): StrictJson<ReplayRequest>,
) -> Result<Response, ApiError> {
    let which = match (request.ids, request.all) {
        (Some(_), true) => return Err(ApiError::invalid("all", "give either ids or all, not both")),
        (None, true) => CallbackReplay::All,
        (Some(ids), false) if !ids.is_empty() && ids.len() <= MAX_REPLAY_IDS => CallbackReplay::Ids(ids),
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "ids",
                format!("name 1 to {MAX_REPLAY_IDS} callbacks"),
            ));
        }
        (None, false) => return Err(ApiError::invalid("ids", "give ids, or all: true")),
    };
    let target = match &which {
        CallbackReplay::All => "all".to_owned(),
        CallbackReplay::Ids(ids) => ids.join(","),
    };
    let replayed = state
        .store
        .replay_callbacks(
            which,
            crate::store::now_ms(),
            entry(&caller, "callback.replay", Some(target), "ok"),
        )
        .await
        .map_err(|error| ApiError::internal("replaying callbacks", &error))?;
    tracing::info!(replayed, by = %caller.token_id, "dead callbacks replayed");
    let mut response = Json(Replayed { replayed }).into_response();
    response.extensions_mut().insert(AuditWritten);
    Ok(response)
}
