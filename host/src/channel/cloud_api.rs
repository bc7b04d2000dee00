//! The WhatsApp Cloud API client: `POST {base_url}/{version}/{phone_number_id}/messages` with
//! a bearer token and Meta's JSON body; reads the wamid from `messages[0].id` and Meta's error
//! object (`error.code`, `error_subcode`, `message`, `error_data.details`) on failure.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    config::CloudApiConfig,
    message::{Content, PhoneNumber, Wamid},
};

/// How the dispatcher should treat a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try again with backoff.
    Retry,
    /// A rate limit: wait longer before trying again.
    RateLimited,
    /// Final: the message fails with Meta's code and message.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("Cloud API answered HTTP {http_status}, code {code}: {message}")]
    Rejected {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        details: Option<String>,
    },
    #[error("Cloud API unreachable: {0}")]
    Transport(String),
    #[error("Cloud API answer not understood (HTTP {http_status}): {detail}")]
    Malformed { http_status: u16, detail: String },
}

impl SendError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::Rejected { code, http_status, .. } => classify(*code, *http_status),
            SendError::Transport(_) => ErrorClass::Retry,
            SendError::Malformed { http_status, .. } if *http_status >= 500 => ErrorClass::Retry,
            SendError::Malformed { .. } => ErrorClass::Permanent,
        }
    }

    /// Meta's error code, when Meta gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Meta's error codes by what to do about them.
pub fn classify(code: i64, http_status: u16) -> ErrorClass {
    match code {
        // Throughput, pair rate, spam rate, application and account rate limits.
        130429 | 131056 | 131048 | 4 | 80007 => ErrorClass::RateLimited,
        // Service errors and overload; an expired token is an operator's fix, not the message's fault.
        131000 | 131016 | 1 | 2 | 190 => ErrorClass::Retry,
        _ if http_status >= 500 => ErrorClass::Retry,
        _ => ErrorClass::Permanent,
    }
}

pub struct CloudApi {
    client: reqwest::Client,
    endpoint: String,
    access_token: Option<String>,
    phone_number_id: String,
}

#[derive(Deserialize)]
struct SuccessBody {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: MetaError,
}

#[derive(Deserialize)]
struct MetaError {
    message: String,
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl CloudApi {
    pub fn new(config: &CloudApiConfig) -> Result<Self, SendError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| SendError::Transport(format!("building the HTTP client: {error}")))?;
        Ok(Self {
            client,
            endpoint: format!(
                "{}/{}/{}/messages",
                config.base_url.trim_end_matches('/'),
                config.api_version,
                config.phone_number_id
            ),
            access_token: config.access_token.clone(),
            phone_number_id: config.phone_number_id.clone(),
        })
    }

    /// The sender id messages leave from.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Meta's request body for `content` to `to`.
    pub fn body(to: &PhoneNumber, content: &Content) -> Value {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
        });
        if let (Value::Object(target), Ok(Value::Object(fields))) = (&mut body, serde_json::to_value(content)) {
            target.extend(fields);
        }
        body
    }

    pub async fn send(&self, to: &PhoneNumber, content: &Content) -> Result<Wamid, SendError> {
        let mut request = self.client.post(&self.endpoint).json(&Self::body(to, content));
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| SendError::Transport(error.to_string()))?;
        let http_status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| SendError::Transport(format!("reading the answer: {error}")))?;
        if (200..300).contains(&http_status) {
            let body: SuccessBody = serde_json::from_slice(&bytes).map_err(|error| SendError::Malformed {
                http_status,
                detail: error.to_string(),
            })?;
            let first = body.messages.into_iter().next().ok_or_else(|| SendError::Malformed {
                http_status,
                detail: "no messages[0].id in a success answer".into(),
            })?;
            return Ok(Wamid(first.id));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) => Err(SendError::Rejected {
                http_status,
                code: error.code,
                subcode: error.error_subcode,
                message: error.message,
                details: error.error_data.and_then(|data| data.details),
            }),
            Err(_) => Err(SendError::Malformed {
                http_status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_meta_shape() {
        let to = PhoneNumber::parse("+6591234567").unwrap();
        let content: Content = serde_json::from_value(json!({"type": "text", "text": {"body": "hi"}})).unwrap();
        assert_eq!(
            CloudApi::body(&to, &content),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "6591234567",
                   "type": "text", "text": {"body": "hi"}})
        );
    }

    #[test]
    fn error_codes_are_classified() {
        assert_eq!(classify(130429, 429), ErrorClass::RateLimited);
        assert_eq!(classify(131056, 400), ErrorClass::RateLimited);
        assert_eq!(classify(131000, 500), ErrorClass::Retry);
        assert_eq!(classify(131047, 400), ErrorClass::Permanent);
        assert_eq!(classify(131009, 400), ErrorClass::Permanent);
        assert_eq!(classify(132001, 404), ErrorClass::Permanent);
        assert_eq!(classify(99999, 503), ErrorClass::Retry);
    }
}
