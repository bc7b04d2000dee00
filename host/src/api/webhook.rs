//! `GET/POST /webhooks/whatsapp`: Meta's subscription handshake, and status and inbound
//! webhooks. The signature (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body under the app
//! secret) is checked in constant time before anything is read; a bad one changes nothing.
//! An inbound text that is an opt-out or opt-in keyword ([`OptKeywords`]) changes the
//! contact's opt-out in the same store write that records the message.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    ApiState,
    error::{ApiError, ErrorBody},
};
use crate::{
    message::{Status, Wamid},
    policy::wit,
    store::{ContactWrite, StatusUpdate},
};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The opt-out and opt-in keywords of `[contacts]`, compared in upper case.
#[derive(Debug, Clone, Default)]
pub struct OptKeywords {
    opt_out: Vec<String>,
    opt_in: Vec<String>,
}

impl OptKeywords {
    pub fn new(config: &crate::config::ContactsConfig) -> Self {
        let normalised = |words: &[String]| words.iter().map(|word| normalise(word)).collect();
        Self {
            opt_out: normalised(&config.opt_out_keywords),
            opt_in: normalised(&config.opt_in_keywords),
        }
    }

    /// `Some(true)`: the text opts its sender out; `Some(false)`: back in. Only a text whose
    /// whole body is a keyword counts (trimmed, any case, a trailing `.` or `!` allowed):
    /// "stop" does, "please stop sending" does not.
    pub fn consent(&self, text: &str) -> Option<bool> {
        let word = normalise(text);
        if self.opt_out.contains(&word) {
            Some(true)
        } else if self.opt_in.contains(&word) {
            Some(false)
        } else {
            None
        }
    }
}

fn normalise(text: &str) -> String {
    text.trim().trim_end_matches(['.', '!']).trim_end().to_uppercase()
}

/// Checks `sha256=<hex>` against the HMAC of the raw body, in constant time.
pub fn signature_is_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_digest) = header.and_then(|value| value.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Meta batches up to 1,000 updates in one POST (several hundred KB), more than the API's own
/// body limit allows; a body is read whole before its signature is checked, so this stays bounded.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The handshake's query as documented; the handler reads it as a map (the names hold dots).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandshakeQuery {
    /// `subscribe`.
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    /// Must equal the configured verify token.
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    /// Answered back as the body on success.
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Meta's subscription check: the challenge back when the verify token matches.
#[utoipa::path(
    get,
    path = "/webhooks/whatsapp",
    tag = "webhooks",
    params(HandshakeQuery),
    responses(
        (status = 200, description = "The verify token matches: `hub.challenge`, as plain text", body = String, content_type = "text/plain"),
        (status = 403, description = "Not a subscribe request with the configured verify token", body = ErrorBody),
    )
)]
pub async fn handshake(State(state): State<ApiState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token").map(String::as_bytes);
    let challenge = query.get("hub.challenge");
    let expected = state.verify_token.as_deref().map(str::as_bytes);
    let token_matches = match (token, expected) {
        (Some(token), Some(expected)) => subtle::ConstantTimeEq::ct_eq(token, expected).into(),
        _ => false,
    };
    match (mode, challenge) {
        (Some("subscribe"), Some(challenge)) if token_matches => (StatusCode::OK, challenge.clone()).into_response(),
        _ => {
            ApiError::forbidden("verification failed: hub.mode must be subscribe with the configured hub.verify_token")
                .into_response()
        }
    }
}

// Meta's payload, read leniently: every field may be missing, ids and times are strings.
#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize, Default)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Deserialize, Default)]
struct ChangeValue {
    #[serde(default)]
    statuses: Vec<StatusItem>,
    #[serde(default)]
    messages: Vec<serde_json::Value>,
    // `phone_number_quality_update`: a sender number's tier and quality moved.
    #[serde(default)]
    display_phone_number: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    current_limit: Option<String>,
    // `message_template_status_update` / `template_category_update`: a template moved.
    #[serde(default)]
    message_template_id: Option<serde_json::Value>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    rejection_info: Option<RejectionInfo>,
    #[serde(default)]
    new_quality_score: Option<String>,
    #[serde(default)]
    new_category: Option<String>,
}

#[derive(Deserialize, Default)]
struct RejectionInfo {
    #[serde(default)]
    reason: Option<String>,
}

/// A `phone_number_quality_update` change.
struct QualityUpdate {
    phone_number: String,
    event: Option<String>,
    current_limit: Option<String>,
}

#[derive(Deserialize)]
struct StatusItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    errors: Vec<StatusError>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
}

#[derive(Deserialize)]
struct StatusError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
}

/// The answer of `POST /webhooks/whatsapp`: what the payload held and what came of it. Fields in
/// alphabetical order: the order they had on the wire when built with `json!`, kept.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// Statuses that moved a message.
    pub applied: usize,
    /// Statuses held until the message's send is recorded.
    pub held: usize,
    /// Statuses that changed nothing (stale, repeated).
    pub ignored: usize,
    pub inbound_messages: usize,
    pub quality_updates: usize,
    /// Status items received.
    pub statuses: usize,
    pub template_updates: usize,
}

/// Status, inbound, quality and template webhooks; signed by Meta with the app secret.
#[utoipa::path(
    post,
    path = "/webhooks/whatsapp",
    tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body under the app secret")),
    request_body(content = Object, description = "Meta's webhook payload (`{\"object\": \"whatsapp_business_account\", \"entry\": [...]}`), read leniently"),
    responses(
        (status = 200, description = "Read and applied", body = WebhookAnswer),
        (status = 400, description = "The body is not JSON, or could not be read", body = ErrorBody),
        (status = 401, description = "The signature is missing or wrong; nothing changed", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 503, description = "No app secret is configured, or the store did not answer", body = ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(super::error::body_rejection)?;
    let Some(secret) = state.app_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "no app secret is configured (WASP_APP_SECRET), so no webhook can be verified",
        ));
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|value| value.to_str().ok());
    if !signature_is_valid(secret.as_bytes(), &body, signature) {
        return Err(ApiError::unauthorized("missing or invalid X-Hub-Signature-256"));
    }
    let payload: Payload = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("webhook body: {error}"),
        )
    })?;

    let now = crate::store::now_ms();
    let mut updates = Vec::new();
    let mut unknown = 0usize;
    let mut inbound = Vec::new();
    let mut quality_updates = Vec::new();
    let mut template_changes = Vec::new();
    for change in payload.entry.into_iter().flat_map(|entry| entry.changes) {
        if matches!(
            change.field.as_deref(),
            Some("message_template_status_update" | "template_category_update")
        ) {
            let value = change.value;
            // Meta writes the id as a number; read either.
            let meta_id = value.message_template_id.as_ref().and_then(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .or_else(|| id.as_u64().map(|id| id.to_string()))
            });
            if let Some(meta_id) = meta_id {
                template_changes.push(crate::templates::sync::TemplateChange {
                    meta_id,
                    event: value.event,
                    reason: value.reason,
                    detail: value.rejection_info.and_then(|info| info.reason),
                    new_quality_score: value.new_quality_score,
                    new_category: value.new_category,
                });
            }
            continue;
        }
        if change.field.as_deref() == Some("phone_number_quality_update") {
            if let Some(phone_number) = change.value.display_phone_number.clone() {
                quality_updates.push(QualityUpdate {
                    phone_number,
                    event: change.value.event.clone(),
                    current_limit: change.value.current_limit.clone(),
                });
            }
            continue;
        }
        inbound.extend(
            change
                .value
                .messages
                .iter()
                .filter_map(|message| inbound_message(message, now)),
        );
        for item in change.value.statuses {
            let Some(wamid) = item.id.filter(|id| !id.is_empty()) else {
                unknown += 1;
                continue;
            };
            let status = match item.status.as_deref().unwrap_or_default() {
                "sent" => Status::Sent,
                "delivered" => Status::Delivered,
                // A played voice message has been listened to: as good as read.
                "read" | "played" => Status::Read,
                "failed" => Status::Failed,
                _ => {
                    unknown += 1;
                    continue;
                }
            };
            let at_ms = item
                .timestamp
                .as_deref()
                .and_then(|seconds| seconds.parse::<i64>().ok())
                .map_or(now, |seconds| seconds.saturating_mul(1_000));
            let error = item.errors.into_iter().next();
            updates.push(StatusUpdate {
                wamid: Wamid(wamid),
                status,
                at_ms,
                error_code: error.as_ref().and_then(|error| error.code),
                error_title: error.and_then(|error| error.title),
                callback_data: item.biz_opaque_callback_data,
            });
        }
    }
    let received = updates.len();
    crate::telemetry::metrics::webhook_events("status", received);
    crate::telemetry::metrics::webhook_events("inbound", inbound.len());
    crate::telemetry::metrics::webhook_events("quality", quality_updates.len());
    crate::telemetry::metrics::webhook_events("template", template_changes.len());
    let report = if updates.is_empty() {
        Default::default()
    } else {
        // Meta retries a webhook that is not answered 200: a store failure must not be acknowledged.
        state
            .store
            .apply_statuses(updates)
            .await
            .map_err(|error| ApiError::internal("applying webhook statuses", &error))?
    };
    let inbound_count = inbound.len();
    let contact_writes: Vec<ContactWrite> = inbound
        .iter()
        .filter(|message| message.from.len() > 1)
        .map(|message| ContactWrite::Inbound {
            wamid: message.wamid.clone(),
            wa_id: message.from.trim_start_matches('+').to_owned(),
            kind: message.kind.clone(),
            at_ms: message.at_ms,
            // Typed text only: a button or list reply is the business's wording, not the customer's.
            opted_out: (message.kind == "text")
                .then(|| {
                    message
                        .text
                        .as_deref()
                        .and_then(|text| state.opt_keywords.consent(text))
                })
                .flatten(),
        })
        .collect();
    let consent_changes = contact_writes
        .iter()
        .filter(|write| matches!(write, ContactWrite::Inbound { opted_out: Some(_), .. }))
        .count();
    if consent_changes > 0 {
        // No number in the log: the contact's opt-out is in the store.
        tracing::info!(consent_changes, "inbound opt-out or opt-in keywords");
    }
    // Facts first: a webhook is acknowledged only once what it says is kept (an opt-out too).
    state
        .store
        .contact_writes(contact_writes)
        .await
        .map_err(|error| ApiError::internal("recording inbound messages", &error))?;
    let quality_count = quality_updates.len();
    for update in quality_updates {
        tracing::info!(
            phone_number = %update.phone_number,
            event = update.event.as_deref().unwrap_or("-"),
            current_limit = update.current_limit.as_deref().unwrap_or("-"),
            "sender number quality update"
        );
        state
            .senders
            .quality_update(
                &update.phone_number,
                update.event.as_deref(),
                update.current_limit.as_deref(),
                now,
            )
            .await
            .map_err(|error| ApiError::internal("recording a sender quality update", &error))?;
    }
    let template_count = template_changes.len();
    for change in template_changes {
        crate::templates::sync::apply_webhook(&state.store, &state.templates, change)
            .await
            .map_err(|error| ApiError::internal("recording a template status update", &error))?;
    }
    tracing::debug!(
        received,
        applied = report.applied.len(),
        ignored = report.ignored,
        held = report.held,
        unknown,
        inbound = inbound_count,
        "webhook"
    );
    state.events.statuses(report.applied.clone());
    state.events.inbound(inbound);
    Ok((
        StatusCode::OK,
        Json(WebhookAnswer {
            applied: report.applied.len(),
            held: report.held,
            ignored: report.ignored,
            inbound_messages: inbound_count,
            quality_updates: quality_count,
            statuses: received,
            template_updates: template_count,
        }),
    )
        .into_response())
}

/// A customer's message as plugins see it; `None` for items without an id (nothing to key on).
fn inbound_message(message: &serde_json::Value, now_ms: i64) -> Option<wit::InboundMessage> {
    let text_at = |pointer: &str| {
        message
            .pointer(pointer)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    let wamid = text_at("/id").filter(|id| !id.is_empty())?;
    let from = text_at("/from").unwrap_or_default();
    let at_ms = text_at("/timestamp")
        .and_then(|seconds| seconds.parse::<i64>().ok())
        .map_or(now_ms, |seconds| seconds.saturating_mul(1_000));
    Some(wit::InboundMessage {
        from: if from.is_empty() || from.starts_with('+') {
            from
        } else {
            format!("+{from}")
        },
        wamid,
        at_ms,
        kind: text_at("/type").unwrap_or_else(|| "unknown".into()),
        text: text_at("/text/body")
            .or_else(|| text_at("/button/text"))
            .or_else(|| text_at("/interactive/button_reply/title"))
            .or_else(|| text_at("/interactive/list_reply/title")),
        reply_id: text_at("/interactive/button_reply/id")
            .or_else(|| text_at("/interactive/list_reply/id"))
            .or_else(|| text_at("/button/payload")),
        context_wamid: text_at("/context/id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_replies_carry_the_choice_and_the_message_answered() {
        let message = serde_json::json!({"from": "16315551234", "id": "wamid.X", "timestamp": "1700000000",
            "type": "interactive", "context": {"from": "15550000000", "id": "wamid.ASKED"},
            "interactive": {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Tuesday"}}});
        let inbound = inbound_message(&message, 0).unwrap();
        assert_eq!(inbound.from, "+16315551234");
        assert_eq!(inbound.reply_id.as_deref(), Some("row-2"));
        assert_eq!(inbound.text.as_deref(), Some("Tuesday"));
        assert_eq!(inbound.context_wamid.as_deref(), Some("wamid.ASKED"));
        assert_eq!(inbound.at_ms, 1_700_000_000_000);
        assert!(inbound_message(&serde_json::json!({"from": "1"}), 0).is_none());
    }

    #[test]
    fn only_a_whole_keyword_changes_consent() {
        let keywords = OptKeywords::new(&crate::config::ContactsConfig::default());
        assert_eq!(keywords.consent("STOP"), Some(true));
        assert_eq!(keywords.consent("  stop \n"), Some(true));
        assert_eq!(keywords.consent("Unsubscribe!"), Some(true));
        assert_eq!(keywords.consent("start"), Some(false));
        assert_eq!(keywords.consent("please stop"), None);
        assert_eq!(keywords.consent("stopp"), None);
        assert_eq!(
            keywords.consent("cancel"),
            None,
            "CANCEL is a business reply, not an opt-out"
        );
        assert_eq!(keywords.consent(""), None);
    }

    #[test]
    fn meta_test_vector_verifies() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756";
        assert!(signature_is_valid(b"test_app_secret", body, Some(header)));
        assert!(!signature_is_valid(b"other_secret", body, Some(header)));
        assert!(!signature_is_valid(b"test_app_secret", b"{}", Some(header)));
        assert!(!signature_is_valid(b"test_app_secret", body, None));
        assert!(!signature_is_valid(b"test_app_secret", body, Some("sha1=abc")));
        assert!(!signature_is_valid(b"test_app_secret", body, Some("sha256=zz")));
    }
}
