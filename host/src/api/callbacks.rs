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
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiState,
    auth::{AuditWritten, Caller, entry},
    error::{ApiError, StrictJson},
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

fn dead_json(callback: &PendingCallback) -> Value {
    json!({
        "id": callback.delivery_id,
        "seq": callback.seq,
        "message_id": callback.message_id,
        "status": callback.status.as_str(),
        "at": format_time(callback.at_ms),
        "url": callback.url,
        "attempts": callback.attempts,
        "last_error": callback.last_error,
        "dead_at": callback.dead_at_ms.map(format_time),
    })
}

/// `GET /v1/callbacks/dead?limit=&cursor=`: oldest first; `next_cursor` until the end.
pub async fn dead(
    State(state): State<ApiState>,
    Query(parameters): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "callbacks": page.iter().map(dead_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/callbacks/dead/replay`: `{"ids": [...]}` or `{"all": true}`; `{"replayed": n}`.
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
    let mut response = Json(json!({"replayed": replayed})).into_response();
    response.extensions_mut().insert(AuditWritten);
    Ok(response)
}
