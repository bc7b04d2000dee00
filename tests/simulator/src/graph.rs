//! The Graph API side: `POST /{version}/{phone_number_id}/messages` answered as the
//! Cloud API answers it, and Meta-shaped errors for everything else under `/`.
//!
//! Also serves the template endpoints of the Business Management API (`templates`:
//! create, list, read, delete; see the crate's `templates` module for shapes and rules).
//!
//! Order of checks follows Meta: token, path, body (with `enforce_templates`, the
//! template's status: 132001, 132015, 132016), then the configured faults. An
//! accepted message is logged for `sent()` (a send wasp marks sensitive, by a suffix of its
//! `biz_opaque_callback_data`, without its texts: see [`redacted`]), counted in the webhook
//! backlog and queued for the status scheduler. A send drawn for a reset (`reset_rate`) is not answered:
//! its connection is reset, before or after the message was accepted
//! (`reset_after_accept`). Owns the handlers; calls `validate`, `error`, `wamid`,
//! `wire`, `state`, `connection` and hands work to `webhook::schedule` over its channel.

pub mod error;
pub mod templates;
pub mod validate;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use sha2::Digest as _;
use tokio::time::Instant;

use crate::config::SimulatorConfig;
use crate::connection;
use crate::state::{CounterCells, SentMessage, Shared};
use crate::templates::TemplateStatus;
use crate::webhook::schedule::{Accepted, Tracked};
use crate::wire;
use error::GraphError;
use validate::{MessageKind, Request};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{version}/{node}/messages", post(send_message).fallback(fallback))
        .route(
            "/{version}/{node}/message_templates",
            post(templates::create)
                .get(templates::list)
                .delete(templates::delete)
                .fallback(fallback),
        )
        .route(
            "/{version}/{node}",
            get(templates::read).post(templates::edit).fallback(fallback),
        )
}

/// Any other path or method: Meta's "unsupported request" answers.
pub(crate) async fn fallback(method: Method, uri: Uri) -> Response {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [version, object, ..] if is_version(version) => {
            GraphError::unknown_object(object, &method.as_str().to_ascii_lowercase()).into_response()
        }
        _ => GraphError::unknown_path(uri.path()).into_response(),
    }
}

async fn send_message(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    CounterCells::add(&shared.counters.requests, 1);
    let config = shared.config.snapshot();
    let delay = config.answer_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reset = config.draws_reset();
    if reset && !config.reset_after_accept {
        return reset_connection(&shared);
    }
    let answer = answer(
        &shared,
        &config,
        &version,
        phone_number_id,
        query.as_deref(),
        &headers,
        &body,
    )
    .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            shared.counters.reject(error.code());
            tracing::debug!(code = error.code(), "send refused");
            error.into_response()
        }
    };
    if reset {
        return reset_connection(&shared);
    }
    response
}

/// Resets the connection this request came on instead of answering it: nothing is
/// written, and the socket is closed with an RST (see `connection`).
fn reset_connection(shared: &Shared) -> Response {
    if connection::reset_current() {
        CounterCells::add(&shared.counters.connection_resets, 1);
        tracing::debug!("send answered with a connection reset");
    } else {
        tracing::warn!("no connection to reset; answering 500 instead");
    }
    // Never written when the reset took: the connection fails on its first write.
    GraphError::something_went_wrong().into_response()
}

async fn answer(
    shared: &Shared,
    config: &SimulatorConfig,
    version: &str,
    phone_number_id: String,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, GraphError> {
    if let Some(token) = config.access_token.as_deref()
        && !carries_token(token, headers, query)
    {
        return Err(GraphError::invalid_token());
    }
    if !is_version(version) {
        return Err(GraphError::unknown_path(&format!(
            "/{version}/{phone_number_id}/messages"
        )));
    }
    if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GraphError::unknown_object(&phone_number_id, "post"));
    }
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|_| GraphError::invalid_parameter("Request body is not valid JSON"))?
    };
    let request = validate::validate(&value)?;
    if config.enforce_templates
        && matches!(
            request,
            Request::Send {
                kind: MessageKind::Template,
                ..
            }
        )
    {
        check_template(shared, &value)?;
    }
    if config.error_rate > 0.0 && rand::random::<f64>() < config.error_rate {
        return Err(GraphError::something_went_wrong());
    }
    let (to, kind) = match request {
        Request::MarkRead { .. } => {
            CounterCells::add(&shared.counters.marked_read, 1);
            return Ok(json_response(br#"{"success":true}"#.to_vec()));
        }
        Request::Send { to, kind } => (to.to_owned(), kind),
    };

    let recipient: String = to.chars().filter(char::is_ascii_digit).collect();
    let callback_data = value
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(Box::<str>::from);
    if let Some(code) = config.fault_for(&recipient) {
        return Err(GraphError::fault(code));
    }
    let wamid = shared.wamids.outbound(&recipient);
    let answer = SendAnswer {
        messaging_product: "whatsapp",
        contacts: [ContactAnswer {
            input: &to,
            wa_id: &recipient,
        }],
        messages: [MessageAnswer {
            id: &wamid,
            message_status: (kind == MessageKind::Template).then_some("accepted"),
        }],
    };
    let encoded = wire::to_meta_json(&answer).map_err(|_| GraphError::something_went_wrong())?;
    let failure = config.failure_for(&recipient);

    if config.webhook_url.is_some() {
        shared.counters.backlog_add(1);
        let accepted = Accepted {
            message: Arc::new(Tracked {
                callback_data,
                wamid: wamid.as_str().into(),
                phone_number_id: phone_number_id.as_str().into(),
                recipient: recipient.into_boxed_str(),
                failure,
            }),
            at: Instant::now(),
        };
        if shared.schedule.send(accepted).await.is_err() {
            shared.counters.backlog_sub(1);
            tracing::debug!("status scheduler stopped; no statuses for this message");
        }
    }
    // A sensitive send (wasp marks its callback data) is kept without its body.
    let sensitive = value
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .is_some_and(|data| data.ends_with(SENSITIVE_CALLBACK_SUFFIX));
    let body = if sensitive { redacted(value) } else { value };
    shared.sent.push(SentMessage {
        wamid,
        phone_number_id,
        to,
        body,
        time: SystemTime::now(),
    });
    CounterCells::add(&shared.counters.accepted, 1);
    Ok(json_response(encoded))
}

/// With `enforce_templates`: the named template (name, `language.code`) must be
/// `APPROVED` here; 132015 when paused, 132016 when disabled, else 132001.
fn check_template(shared: &Shared, body: &Value) -> Result<(), GraphError> {
    let template = &body["template"];
    let name = template["name"].as_str().unwrap_or_default();
    let language = template["language"]["code"].as_str().unwrap_or_default();
    match shared.templates.status_for_send(name, language) {
        Some(TemplateStatus::Approved) => Ok(()),
        Some(TemplateStatus::Paused) => Err(GraphError::template_paused()),
        Some(TemplateStatus::Disabled) => Err(GraphError::template_disabled()),
        _ => Err(GraphError::template_does_not_exist(name, language)),
    }
}

/// What wasp's `biz_opaque_callback_data` ends with for a sensitive message (the host's
/// `message::SENSITIVE_CALLBACK_SUFFIX`). Meta keeps the field opaque; the simulator keeps no
/// copy of such a body.
pub const SENSITIVE_CALLBACK_SUFFIX: &str = ";sensitive";

/// What stands in for each text of a redacted body.
pub const REDACTED: &str = "[redacted]";

/// A sensitive send as the sent log keeps it: the message object (the field named by
/// `type`) with every string replaced by [`REDACTED`], `"redacted": true`, and
/// `"redacted_sha256"`: the hex sha256 of those strings, sorted and joined by `\n` (for a text
/// message, the sha256 of its body), so a test can check what arrived without it being kept.
pub fn redacted(mut body: Value) -> Value {
    let kind = body.get("type").and_then(Value::as_str).map(str::to_owned);
    let mut texts = Vec::new();
    if let Some(object) = kind.and_then(|kind| body.get_mut(kind.as_str())) {
        redact_strings(object, &mut texts);
    }
    texts.sort_unstable();
    let digest = hex::encode(sha2::Sha256::digest(texts.join("\n").as_bytes()));
    if let Value::Object(fields) = &mut body {
        fields.insert("redacted".into(), Value::Bool(true));
        fields.insert("redacted_sha256".into(), Value::String(digest));
    }
    body
}

fn redact_strings(value: &mut Value, texts: &mut Vec<String>) {
    match value {
        Value::String(text) => texts.push(std::mem::replace(text, REDACTED.to_owned())),
        Value::Array(items) => items.iter_mut().for_each(|item| redact_strings(item, texts)),
        Value::Object(fields) => fields.values_mut().for_each(|item| redact_strings(item, texts)),
        _ => {}
    }
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Whether the request carries `token` as a bearer header or an `access_token` query.
fn carries_token(token: &str, headers: &HeaderMap, query: Option<&str>) -> bool {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("OAuth ")))
        .is_some_and(|given| given.trim() == token);
    from_header
        || query.is_some_and(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("access_token="))
                .any(|given| given == token)
        })
}

fn json_response(body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

#[derive(Serialize)]
struct SendAnswer<'a> {
    messaging_product: &'static str,
    contacts: [ContactAnswer<'a>; 1],
    messages: [MessageAnswer<'a>; 1],
}

#[derive(Serialize)]
struct ContactAnswer<'a> {
    input: &'a str,
    wa_id: &'a str,
}

#[derive(Serialize)]
struct MessageAnswer<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_status: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensitive_body_is_redacted_with_its_digest() {
        let body = serde_json::json!({"messaging_product": "whatsapp", "to": "6591234567",
            "biz_opaque_callback_data": "m;sensitive", "type": "text", "text": {"body": "code 808080"}});
        let kept = redacted(body);
        assert_eq!(kept["text"]["body"], REDACTED);
        assert_eq!(kept["to"], "6591234567");
        assert_eq!(kept["redacted"], true);
        let digest = hex::encode(sha2::Sha256::digest(b"code 808080"));
        assert_eq!(kept["redacted_sha256"], digest.as_str());
        assert!(!kept.to_string().contains("808080"));
    }

    #[test]
    fn versions_look_like_v_number() {
        assert!(is_version("v21.0"));
        assert!(is_version("v24"));
        assert!(!is_version("21.0"));
        assert!(!is_version("v"));
        assert!(!is_version("vx"));
    }

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert!(!carries_token("t0k", &headers, None));
        assert!(carries_token("t0k", &headers, Some("a=b&access_token=t0k")));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t0k"));
        assert!(carries_token("t0k", &headers, None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert!(!carries_token("t0k", &headers, None));
    }
}
