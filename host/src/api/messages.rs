//! `POST /v1/messages` and `GET /v1/messages/{id}`: validate, store durably, answer; and show a
//! message with the content as it went upstream and its whole history.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ApiState, error::ApiError, error::StrictJson, format_time};
use crate::{
    message::{Category, Content, MessageId, PhoneNumber, Priority, Submission},
    store::{AcceptOutcome, MessageView, NewMessage},
};

pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: Option<String>,
    pub category: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub content: Option<Value>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    to: &'a str,
    category: Category,
    priority: Priority,
    tags: &'a [String],
    content: &'a Content,
}

impl SendRequest {
    /// Checks every field, naming the first one at fault.
    pub fn validate(self) -> Result<Submission, ApiError> {
        let to = self.to.ok_or_else(|| ApiError::invalid("to", "is required"))?;
        let to = PhoneNumber::parse(&to).map_err(|error| ApiError::invalid("to", error.to_string()))?;
        let category: Category = self
            .category
            .ok_or_else(|| ApiError::invalid("category", "is required"))?
            .parse()
            .map_err(|error: String| ApiError::invalid("category", error))?;
        let priority = match self.priority {
            Some(priority) => priority
                .parse()
                .map_err(|error: String| ApiError::invalid("priority", error))?,
            None => Priority::default_for(category),
        };
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS)
        {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ApiError::invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        if let Some(index) = self
            .tags
            .iter()
            .position(|tag| tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS)
        {
            return Err(ApiError::invalid(
                format!("tags[{index}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
        let content = self.content.ok_or_else(|| ApiError::invalid("content", "is required"))?;
        let content =
            Content::from_json(content).map_err(|error| ApiError::invalid(error.field, error.message))?;
        Ok(Submission {
            to,
            category,
            priority,
            idempotency_key: self.idempotency_key,
            tags: self.tags,
            content,
        })
    }
}

/// Identifies what was asked, so a reused idempotency key with another request is caught.
pub fn request_hash(submission: &Submission) -> String {
    let canonical = Canonical {
        to: submission.to.as_str(),
        category: submission.category,
        priority: submission.priority,
        tags: &submission.tags,
        content: &submission.content,
    };
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

pub async fn send(State(state): State<ApiState>, StrictJson(request): StrictJson<SendRequest>) -> Result<Response, ApiError> {
    let submission = request.validate()?;
    let message = NewMessage {
        id: MessageId::new(),
        shard: submission.to.shard(state.shards),
        request_hash: request_hash(&submission),
        at_ms: crate::store::now_ms(),
        submission,
    };
    let outcome = state
        .store
        .accept(vec![message])
        .await
        .map_err(|error| ApiError::internal("accepting a message", &error))?;
    match outcome.into_iter().next() {
        Some(AcceptOutcome::Accepted { id }) => {
            state.dispatch.wake();
            Ok(accepted(id))
        }
        Some(AcceptOutcome::Duplicate { id }) => Ok(accepted(id)),
        Some(AcceptOutcome::KeyReused { id }) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "idempotency_key_reused",
            message: format!("this idempotency key was used for message {id} with a different request"),
            field: Some("idempotency_key".into()),
        }),
        None => Err(ApiError::internal("accepting a message", &"the store answered nothing")),
    }
}

fn accepted(id: MessageId) -> Response {
    (StatusCode::ACCEPTED, Json(json!({"id": id, "status": "accepted"}))).into_response()
}

pub async fn get(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "is not a message id (a UUID)"))?;
    let view = state
        .store
        .message(id)
        .await
        .map_err(|error| ApiError::internal("reading a message", &error))?
        .ok_or_else(|| ApiError::not_found(format!("no message {id}")))?;
    Ok(Json(view_json(&view)))
}

pub fn view_json(view: &MessageView) -> Value {
    json!({
        "id": view.id,
        "to": view.to,
        "category": view.category,
        "priority": view.priority,
        "channel": view.channel,
        "shard": view.shard,
        "tags": view.tags,
        "status": view.status,
        "wamid": view.wamid,
        "reason": view.reason,
        "error_code": view.error_code,
        "attempts": view.attempts,
        "created_at": format_time(view.created_at_ms),
        "updated_at": format_time(view.updated_at_ms),
        "content": view.content,
        "upstream": view.content_sent.as_ref().map(|content| json!({
            "content": content,
            "rewritten_by": view.rewritten_by,
        })),
        "history": view.history.iter().map(|entry| json!({
            "status": entry.status,
            "at": format_time(entry.at_ms),
            "cause": entry.cause,
        })).collect::<Vec<_>>(),
    })
}
