//! `POST /v1/messages`, `POST /v1/messages/batch` and `GET /v1/messages/{id}`: validate, store
//! durably, answer; and show a message with the content as it went upstream and its whole
//! history. A batch is one group-commit write with a result per item. When the dispatcher's
//! backlog is full, both sends answer 429 with `Retry-After` instead of growing it.
//! `GET /v1/messages` lists messages by filter, newest first, a page at a time behind an
//! opaque cursor; `POST /v1/messages/{id}/cancel` stops a message not sent yet.

use axum::{
    Extension, Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower_http::request_id::RequestId;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiState,
    auth::Caller,
    error::{ApiError, ErrorBody, StrictJson},
    format_time,
};
use crate::{
    message::{Category, Channel, Content, MessageId, PhoneNumber, Priority, Status, Submission, Wamid},
    store::{AcceptOutcome, CancelOutcome, MessageFilter, MessageSummary, MessageView, NewMessage},
};

pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 64;
/// Most messages one `POST /v1/messages/batch` takes.
pub const MAX_BATCH_MESSAGES: usize = 1_000;
/// Messages per page of `GET /v1/messages` unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIST_LIMIT: usize = 50;
pub const MAX_LIST_LIMIT: usize = 500;
/// The query parameters `GET /v1/messages` knows.
const LIST_PARAMETERS: &[&str] = &["status", "category", "to", "tag", "since", "until", "limit", "cursor"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+6591234567", "category": "utility", "content": {"type": "text", "text": {"body": "Your order has shipped"}}}))]
pub struct SendRequest {
    /// E.164, such as `+6591234567`.
    #[schema(value_type = String, required = true)]
    pub to: Option<String>,
    /// Read as text, so an unknown one is refused naming the field.
    #[schema(value_type = Category, required = true)]
    pub category: Option<String>,
    /// The category's default when left out.
    #[serde(default)]
    #[schema(value_type = Option<Priority>)]
    pub priority: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A Cloud API message object: `{"type": "text", "text": {"body": ...}}`, a template, ...
    #[schema(value_type = Object, required = true)]
    pub content: Option<Value>,
    /// RFC 3339; not sent by then, the message ends `expired`.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The body is encrypted at rest, never kept by the simulator, and purged once read or
    /// after `store.sensitive_ttl_ms`; each send is audited.
    #[serde(default)]
    pub sensitive: bool,
    /// Every state change is POSTed here, signed (https, or http to loopback); without it,
    /// the token's default callback URL, if any.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// `POST /v1/messages/batch`: `{"messages": [...]}`, each item a `POST /v1/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Read one by one, so one bad item refuses only itself.
    #[schema(value_type = Vec<SendRequest>)]
    pub messages: Vec<Value>,
}

// The answers below list their fields in alphabetical order: the order they had on the wire
// when they were built with `json!` (serde_json sorts object keys), kept byte for byte.

/// A message stored: the answer of `POST /v1/messages`, and an accepted item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: &'static str,
}

impl Accepted {
    fn new(id: MessageId) -> Self {
        Self { id, status: "accepted" }
    }
}

/// One item's result in a batch answer, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Accepted(Accepted),
    Refused(ErrorBody),
}

/// The answer of `POST /v1/messages/batch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchResult>,
}

/// A batch's `400`: every item refused (the batch answer), or the batch itself unreadable.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchRefused {
    AllRefused(BatchAnswer),
    Error(ErrorBody),
}

/// The content as it went upstream, and the plugins that rewrote it on the way.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upstream {
    /// A JSON value, so its keys keep the sorted order they always had on the wire.
    #[schema(value_type = Object)]
    pub content: Value,
    pub rewritten_by: Vec<String>,
}

/// One state change of a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub cause: String,
    pub status: Status,
}

/// The answer of `GET /v1/messages/{id}`: the message, its content and its whole history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub attempts: u32,
    pub category: Category,
    pub channel: Channel,
    /// As submitted; `null` once a sensitive body was purged or when it cannot be read. A JSON
    /// value, so its keys keep the sorted order they always had on the wire.
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
    /// Why a sensitive body cannot be shown.
    pub content_error: Option<String>,
    pub created_at: String,
    /// When a waiting message is due to go; `null` once it is not waiting.
    pub due_at: Option<String>,
    pub error_code: Option<i64>,
    pub history: Vec<HistoryItem>,
    #[schema(value_type = String)]
    pub id: MessageId,
    pub priority: Priority,
    pub purged: bool,
    pub reason: Option<String>,
    pub sensitive: bool,
    pub shard: u16,
    pub status: Status,
    pub tags: Vec<String>,
    #[schema(value_type = String)]
    pub to: PhoneNumber,
    pub updated_at: String,
    pub upstream: Option<Upstream>,
    #[schema(value_type = Option<String>)]
    pub wamid: Option<Wamid>,
}

/// One message of a `GET /v1/messages` page.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageSummaryBody {
    pub category: Category,
    pub channel: Channel,
    pub created_at: String,
    pub error_code: Option<i64>,
    #[schema(value_type = String)]
    pub id: MessageId,
    pub priority: Priority,
    pub reason: Option<String>,
    pub status: Status,
    pub tags: Vec<String>,
    pub to: String,
    pub updated_at: String,
}

/// The answer of `GET /v1/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageSummaryBody>,
    /// Pass back as `cursor` for the next page; `null`: no more.
    pub next_cursor: Option<String>,
}

/// The answer of `POST /v1/messages/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Always `cancelled`.
    #[schema(example = "cancelled")]
    pub status: Status,
}

/// The query of `GET /v1/messages` as documented; the handler reads the pairs itself to name
/// unknown and repeated parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// One status or several, comma-separated; may be repeated.
    pub status: Option<String>,
    pub category: Option<String>,
    /// E.164; the `+` may be left out.
    pub to: Option<String>,
    pub tag: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339, after `since`.
    pub until: Option<String>,
    /// 1 to 500; 50 when left out.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    to: &'a str,
    category: Category,
    priority: Priority,
    tags: &'a [String],
    content: &'a Content,
    /// Left out when false, so the hashes of plain messages stay as they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sensitive: bool,
}

impl SendRequest {
    /// The deadline in `expires_at`, which must lie ahead.
    pub fn deadline_ms(&self, now_ms: i64) -> Result<Option<i64>, ApiError> {
        let Some(text) = &self.expires_at else {
            return Ok(None);
        };
        let moment = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|error| ApiError::invalid("expires_at", format!("is not an RFC 3339 time: {error}")))?;
        let ms = i64::try_from(moment.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| ApiError::invalid("expires_at", "is out of range"))?;
        if ms <= now_ms {
            return Err(ApiError::invalid("expires_at", "lies in the past"));
        }
        Ok(Some(ms))
    }

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
        let content = self
            .content
            .ok_or_else(|| ApiError::invalid("content", "is required"))?;
        let content = Content::from_json(content).map_err(|error| ApiError::invalid(error.field, error.message))?;
        Ok(Submission {
            to,
            channel: crate::message::Channel::Whatsapp,
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
    request_hash_of(submission, false)
}

/// [`request_hash`] of a message that may be sensitive.
fn request_hash_of(submission: &Submission, sensitive: bool) -> String {
    let canonical = Canonical {
        to: submission.to.as_str(),
        category: submission.category,
        priority: submission.priority,
        tags: &submission.tags,
        content: &submission.content,
        sensitive,
    };
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// A request checked and ready to be stored. `can_seal`: an encryption key is active, so a
/// sensitive message can be stored.
fn prepare(request: SendRequest, state: &ApiState, now_ms: i64, can_seal: bool) -> Result<NewMessage, ApiError> {
    let shards = state.shards;
    let expires_at_ms = request.deadline_ms(now_ms)?;
    let sensitive = request.sensitive;
    if sensitive && !can_seal {
        return Err(ApiError::invalid(
            "sensitive",
            "no encryption key configured (store.encryption_keys and store.active_key_id), so a sensitive message cannot be stored",
        ));
    }
    let submission = request.validate()?;
    if let Content::Template { template } = &submission.content {
        // The Cloud API would refuse it (132001) after a trip through the queue: say so now.
        state
            .templates
            .check(&template.name, &template.language.code, template_parameters(template))
            .map_err(|refusal| {
                ApiError::at(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "template_not_approved",
                    refusal.reason,
                    refusal.field,
                )
            })?;
    }
    Ok(NewMessage {
        id: MessageId::new(),
        shard: submission.to.shard(shards),
        request_hash: request_hash_of(&submission, sensitive),
        at_ms: now_ms,
        submission,
        expires_at_ms,
        sensitive,
    })
}

/// The header and body parameters a template message fills.
fn template_parameters(template: &crate::message::content::Template) -> crate::templates::registry::ParameterShape {
    let count = |kind: &str| {
        template
            .components
            .iter()
            .filter(|component| component.kind == kind)
            .map(|component| component.parameters.len())
            .sum()
    };
    crate::templates::registry::ParameterShape {
        header: count("header"),
        body: count("body"),
    }
}

/// Stores messages; sensitive ones are audited on behalf of the caller in the same write.
async fn store_messages(
    state: &ApiState,
    caller: &Caller,
    messages: Vec<NewMessage>,
    callbacks: Vec<crate::store::CallbackTarget>,
) -> crate::store::Result<Vec<AcceptOutcome>> {
    let sensitive = messages.iter().any(|message| message.sensitive);
    if !callbacks.is_empty() {
        let audited_by = sensitive.then_some(&*caller.token_id);
        state.store.accept_with_callbacks(messages, audited_by, callbacks).await
    } else if sensitive {
        state.store.accept_audited(messages, &caller.token_id).await
    } else {
        state.store.accept(messages).await
    }
}

/// 429 with `Retry-After` when the dispatcher's backlog is full.
fn backlog_full(state: &ApiState) -> Option<Response> {
    let retry_after_ms = state.dispatch.backpressure()?;
    let seconds = retry_after_ms.div_ceil(1_000).max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "backlog_full",
        format!(
            "{} messages are waiting to be sent; try again in {seconds} s",
            state.dispatch.backlog()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

fn key_reused(id: MessageId, field: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "idempotency_key_reused",
        message: format!("this idempotency key was used for message {id} with a different request"),
        field: Some(field),
    }
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    request_body = SendRequest,
    responses(
        (status = 202, description = "Stored durably; a repeat with the same idempotency key answers the same id", body = Accepted),
        (status = 400, description = "A field is invalid, or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:send`", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with a different request", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "The template is not approved", body = ErrorBody),
        (status = 429, description = "The dispatcher's backlog is full; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    StrictJson(mut request): StrictJson<SendRequest>,
) -> Result<Response, ApiError> {
    if let Some(response) = backlog_full(&state) {
        return Ok(response);
    }
    let callback = super::callbacks::resolve(&caller, request.callback_url.take())?;
    let message = prepare(request, &state, crate::store::now_ms(), state.store.can_seal())?;
    let callbacks = callback
        .map(|callback| callback.target(message.id))
        .into_iter()
        .collect();
    let outcome = store_messages(&state, &caller, vec![message], callbacks)
        .await
        .map_err(|error| ApiError::internal("accepting a message", &error))?;
    match outcome.into_iter().next() {
        Some(AcceptOutcome::Accepted { id }) => {
            // The request id meets the message id here; the dispatcher's spans carry the latter.
            tracing::info!(request_id = request_id_of(&request_id), message_id = %id, "message accepted");
            state.dispatch.accepted(1);
            state.dispatch.wake();
            Ok(accepted(id))
        }
        Some(AcceptOutcome::Duplicate { id }) => Ok(accepted(id)),
        Some(AcceptOutcome::KeyReused { id }) => Err(key_reused(id, "idempotency_key".into())),
        None => Err(ApiError::internal("accepting a message", &"the store answered nothing")),
    }
}

/// `POST /v1/messages/batch`: every valid item is stored in one write; the answer has one
/// result per item, in order: `{"id", "status": "accepted"}` or `{"error": {...}}` naming the
/// field as `messages[i].field`. The whole batch is refused only when it is not JSON of the
/// right shape or holds more than [`MAX_BATCH_MESSAGES`] items.
#[utoipa::path(
    post,
    path = "/v1/messages/batch",
    tag = "messages",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "At least one item stored; a result per item", body = BatchAnswer),
        (status = 400, description = "Every item refused (the batch answer), or the batch itself is invalid (an error)", body = BatchRefused),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:send`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts for a batch", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 429, description = "The dispatcher's backlog is full; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_batch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    StrictJson(batch): StrictJson<BatchRequest>,
) -> Result<Response, ApiError> {
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH_MESSAGES {
        return Err(ApiError::invalid(
            "messages",
            format!("holds 1 to {MAX_BATCH_MESSAGES} messages, not {}", batch.messages.len()),
        ));
    }
    if let Some(response) = backlog_full(&state) {
        return Ok(response);
    }
    let now_ms = crate::store::now_ms();
    let can_seal = state.store.can_seal();
    let mut results: Vec<Result<usize, ApiError>> = Vec::with_capacity(batch.messages.len());
    let mut messages = Vec::with_capacity(batch.messages.len());
    let mut callbacks = Vec::new();
    for (index, item) in batch.messages.into_iter().enumerate() {
        let prepared = serde_path_to_error::deserialize::<_, SendRequest>(super::strict::Strict(item))
            .map_err(|error| {
                let path = error.path().to_string();
                let field = if path == "." { String::new() } else { format!(".{path}") };
                ApiError::invalid(format!("messages[{index}]{field}"), error.into_inner().to_string())
            })
            .and_then(|mut request| {
                let callback = super::callbacks::resolve(&caller, request.callback_url.take())?;
                let message = prepare(request, &state, now_ms, can_seal)?;
                if let Some(callback) = callback {
                    callbacks.push(callback.target(message.id));
                }
                Ok(message)
            })
            .map_err(|mut error| {
                if let Some(field) = &error.field
                    && !field.starts_with("messages[")
                {
                    error.field = Some(format!("messages[{index}].{field}"));
                }
                error
            });
        results.push(prepared.map(|message| {
            messages.push(message);
            messages.len() - 1
        }));
    }
    let outcomes = if messages.is_empty() {
        Vec::new()
    } else {
        store_messages(&state, &caller, messages, callbacks)
            .await
            .map_err(|error| ApiError::internal("accepting a batch", &error))?
    };
    let mut accepted_count = 0;
    let mut rejected_count = 0;
    let items: Vec<BatchResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| {
            let outcome = result.and_then(|slot| {
                outcomes
                    .get(slot)
                    .cloned()
                    .ok_or_else(|| ApiError::internal("accepting a batch", &"the store answered too few outcomes"))
            });
            match outcome {
                Ok(AcceptOutcome::Accepted { id }) => {
                    accepted_count += 1;
                    tracing::debug!(request_id = request_id_of(&request_id), message_id = %id, "message accepted");
                    BatchResult::Accepted(Accepted::new(id))
                }
                Ok(AcceptOutcome::Duplicate { id }) => BatchResult::Accepted(Accepted::new(id)),
                Ok(AcceptOutcome::KeyReused { id }) => {
                    rejected_count += 1;
                    BatchResult::Refused(ErrorBody::from(&key_reused(
                        id,
                        format!("messages[{index}].idempotency_key"),
                    )))
                }
                Err(error) => {
                    rejected_count += 1;
                    BatchResult::Refused(ErrorBody::from(&error))
                }
            }
        })
        .collect();
    if accepted_count > 0 {
        tracing::info!(
            request_id = request_id_of(&request_id),
            accepted = accepted_count,
            rejected = rejected_count,
            "batch accepted (message ids at debug)"
        );
        state.dispatch.accepted(accepted_count);
        state.dispatch.wake();
    }
    let status = if rejected_count == items.len() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    let answer = BatchAnswer {
        accepted: items.len() - rejected_count,
        rejected: rejected_count,
        results: items,
    };
    Ok((status, Json(answer)).into_response())
}

/// The `x-request-id` the edge set or kept, for log lines; empty when there is none.
fn request_id_of(request_id: &Option<Extension<RequestId>>) -> &str {
    request_id
        .as_ref()
        .and_then(|Extension(id)| id.header_value().to_str().ok())
        .unwrap_or_default()
}

fn accepted(id: MessageId) -> Response {
    (StatusCode::ACCEPTED, Json(Accepted::new(id))).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "The message with its content and history", body = MessageBody),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<MessageBody>, ApiError> {
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "is not a message id (a UUID)"))?;
    let view = state
        .store
        .message(id)
        .await
        .map_err(|error| ApiError::internal("reading a message", &error))?
        .ok_or_else(|| ApiError::not_found(format!("no message {id}")))?;
    Ok(Json(MessageBody::from(view)))
}

/// Content as a JSON value (object keys sorted).
fn content_value(content: &Content) -> Value {
    // Content is plain data with string keys: this cannot fail.
    serde_json::to_value(content).unwrap_or_default()
}

impl From<MessageView> for MessageBody {
    fn from(view: MessageView) -> Self {
        Self {
            attempts: view.attempts,
            category: view.category,
            channel: view.channel,
            content: view.content.as_ref().map(content_value),
            content_error: view.unreadable,
            created_at: format_time(view.created_at_ms),
            due_at: view.status.is_pending().then(|| format_time(view.due_at_ms)),
            error_code: view.error_code,
            history: view
                .history
                .into_iter()
                .map(|entry| HistoryItem {
                    at: format_time(entry.at_ms),
                    cause: entry.cause,
                    status: entry.status,
                })
                .collect(),
            id: view.id,
            priority: view.priority,
            purged: view.purged,
            reason: view.reason,
            sensitive: view.sensitive,
            shard: view.shard,
            status: view.status,
            tags: view.tags,
            to: view.to,
            updated_at: format_time(view.updated_at_ms),
            upstream: view.content_sent.as_ref().map(|content| Upstream {
                content: content_value(content),
                rewritten_by: view.rewritten_by,
            }),
            wamid: view.wamid,
        }
    }
}

/// An RFC 3339 time in a query string, in ms. A `+` in the offset arrives as a space (form
/// encoding), so a space there is read as `+`.
fn query_time(field: &str, text: &str) -> Result<i64, ApiError> {
    let format = &time::format_description::well_known::Rfc3339;
    let moment = time::OffsetDateTime::parse(text, format)
        .or_else(|error| time::OffsetDateTime::parse(&text.replace(' ', "+"), format).map_err(|_| error))
        .map_err(|error| ApiError::invalid(field, format!("is not an RFC 3339 time: {error}")))?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).map_err(|_| ApiError::invalid(field, "is out of range"))
}

/// Reads `GET /v1/messages`'s query, naming the parameter at fault. `status` may be given
/// several times and holds one status or several, comma-separated; the others once each.
pub fn list_filter(pairs: Vec<(String, String)>) -> Result<MessageFilter, ApiError> {
    let mut filter = MessageFilter {
        limit: DEFAULT_LIST_LIMIT,
        ..MessageFilter::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs {
        if !LIST_PARAMETERS.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                name,
                format!(
                    "is not a parameter of this route; expected {}",
                    LIST_PARAMETERS.join(", ")
                ),
            ));
        }
        if name != "status" {
            if seen.contains(&name) {
                return Err(ApiError::invalid(name, "is given more than once"));
            }
            seen.push(name.clone());
        }
        let value = value.trim();
        match name.as_str() {
            "status" => {
                for part in value.split(',').map(str::trim) {
                    let status = part
                        .parse()
                        .map_err(|error: String| ApiError::invalid("status", error))?;
                    if !filter.statuses.contains(&status) {
                        filter.statuses.push(status);
                    }
                }
            }
            "category" => {
                filter.category = Some(
                    value
                        .parse()
                        .map_err(|error: String| ApiError::invalid("category", error))?,
                );
            }
            "to" => {
                // `+` arrives as a space unless encoded (`%2B`); digits alone are fine too.
                let digits = value.trim_start_matches('+');
                filter.to = Some(
                    PhoneNumber::parse(&format!("+{digits}"))
                        .map_err(|error| ApiError::invalid("to", error.to_string()))?,
                );
            }
            "tag" => {
                if value.is_empty() || value.chars().count() > MAX_TAG_CHARS {
                    return Err(ApiError::invalid(
                        "tag",
                        format!("must be 1 to {MAX_TAG_CHARS} characters"),
                    ));
                }
                filter.tag = Some(value.to_owned());
            }
            "since" => filter.since_ms = Some(query_time("since", value)?),
            "until" => filter.until_ms = Some(query_time("until", value)?),
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=MAX_LIST_LIMIT).contains(limit))
                    .ok_or_else(|| {
                        ApiError::invalid("limit", format!("must be a whole number from 1 to {MAX_LIST_LIMIT}"))
                    })?;
            }
            "cursor" => {
                filter.before =
                    Some(value.parse().map_err(|_| {
                        ApiError::invalid("cursor", "is not a cursor this API handed out (next_cursor)")
                    })?);
            }
            _ => {}
        }
    }
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms)
        && until <= since
    {
        return Err(ApiError::invalid("until", "must lie after since"));
    }
    Ok(filter)
}

impl From<MessageSummary> for MessageSummaryBody {
    fn from(message: MessageSummary) -> Self {
        Self {
            category: message.category,
            channel: message.channel,
            created_at: format_time(message.created_at_ms),
            error_code: message.error_code,
            id: message.id,
            priority: message.priority,
            reason: message.reason,
            status: message.status,
            tags: message.tags,
            to: message.to,
            updated_at: format_time(message.updated_at_ms),
        }
    }
}

/// `GET /v1/messages`: `{"messages": [...], "next_cursor"}`, newest first. Pass `next_cursor`
/// back as `cursor` for the next page; `null` means there is no more. A page may hold fewer
/// than `limit` messages (even none) while `next_cursor` is set: each page looks at a bounded
/// stretch of the store.
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of messages, newest first", body = MessagePage),
        (status = 400, description = "A parameter is invalid, unknown or repeated", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(pairs) =
        query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text()))?;
    let filter = list_filter(pairs)?;
    let page = state
        .store
        .list_messages(&filter)
        .await
        .map_err(|error| ApiError::internal("listing messages", &error))?;
    Ok(Json(MessagePage {
        messages: page.messages.into_iter().map(MessageSummaryBody::from).collect(),
        next_cursor: page.next_cursor.map(|id| id.0.simple().to_string()),
    }))
}

/// `POST /v1/messages/{id}/cancel`: a message not yet sent (accepted, queued or deferred, and
/// not in a dispatch worker's hands) ends `cancelled` and is never sent; otherwise `409`
/// naming its status, and nothing changes.
#[utoipa::path(
    post,
    path = "/v1/messages/{id}/cancel",
    tag = "messages",
    params(("id" = String, Path, description = "The message id (a UUID)")),
    responses(
        (status = 200, description = "Cancelled: it will never be sent", body = Cancelled),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:send`", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "Too late: the message is sent, or being sent", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Cancelled>, ApiError> {
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "is not a message id (a UUID)"))?;
    let outcome = state
        .store
        .cancel(id, crate::store::now_ms())
        .await
        .map_err(|error| ApiError::internal("cancelling a message", &error))?;
    match outcome {
        CancelOutcome::Cancelled => {
            state.dispatch.left_backlog(1);
            Ok(Json(Cancelled {
                id,
                status: Status::Cancelled,
            }))
        }
        CancelOutcome::TooLate { status, leased } => {
            let message = if leased {
                format!("message {id} is {status} and a dispatch worker is sending it: too late to cancel")
            } else if status.is_pending() {
                format!("message {id} is {status} (its send was interrupted and may have arrived): too late to cancel")
            } else {
                format!("message {id} is {status}: too late to cancel")
            };
            Err(ApiError::at(StatusCode::CONFLICT, "not_cancellable", message, "status"))
        }
        CancelOutcome::UnknownMessage => Err(ApiError::not_found(format!("no message {id}"))),
    }
}
