//! The SMS side: a Twilio-compatible `POST /2010-04-01/Accounts/{sid}/Messages.json` (form
//! body `To`, `From`, `Body`; HTTP basic auth with the account sid as user), answered in
//! Twilio's JSON shape, with Twilio's error codes for what it refuses. Accepted messages go
//! to a log of their own. Owns the handler; calls `state`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    time::SystemTime,
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;

use crate::state::Shared;

/// Longest SMS body Twilio accepts (it splits into segments up to this).
pub const MAX_SMS_BODY_CHARS: usize = 1_600;
const SMS_LOG_CAPACITY: usize = 20_000;

/// An SMS the simulator accepted.
#[derive(Clone, Debug, Serialize)]
pub struct SmsMessage {
    /// Twilio's message sid (`SM…`).
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    #[serde(skip)]
    pub time: SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct SmsLog {
    entries: Mutex<VecDeque<SmsMessage>>,
}

impl SmsLog {
    fn push(&self, message: SmsMessage) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= SMS_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(message);
    }

    pub(crate) fn all(&self) -> Vec<SmsMessage> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(send_sms))
}

/// Twilio's error body.
fn twilio_error(status: StatusCode, code: u32, message: String) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|digits| (8..=15).contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit()))
}

async fn send_sms(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.counters.sms_requests.fetch_add(1, Ordering::Relaxed);
    match basic_user(&headers) {
        Some((user, password)) if user == account_sid && !password.is_empty() => {}
        _ => return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate".into()),
    }
    let to = form.get("To").cloned().unwrap_or_default();
    let from = form.get("From").cloned().unwrap_or_default();
    let body = form.get("Body").cloned().unwrap_or_default();
    if to.is_empty() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.".into(),
        );
    }
    if !is_e164(&to) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if from.is_empty() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.".into(),
        );
    }
    if body.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.".into());
    }
    if body.chars().count() > MAX_SMS_BODY_CHARS {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.".into(),
        );
    }
    let number = shared.counters.sms_accepted.fetch_add(1, Ordering::Relaxed) + 1;
    let sid = format!("SM{:032x}", (u128::from(number) << 64) | u128::from(shared.sms_salt));
    shared.sms.push(SmsMessage {
        sid: sid.clone(),
        account_sid: account_sid.clone(),
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
        time: SystemTime::now(),
    });
    (
        StatusCode::CREATED,
        Json(json!({
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": from,
            "body": body,
            "status": "queued",
            "num_segments": body.chars().count().div_ceil(153).max(1).to_string(),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": null,
            "error_message": null,
            "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_is_checked() {
        assert!(is_e164("+6591234567"));
        assert!(!is_e164("6591234567"));
        assert!(!is_e164("+65 9123 4567"));
    }
}
