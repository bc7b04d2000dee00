//! Graph API error answers in Meta's exact shape, with the HTTP status Meta uses for
//! each code. Owns `GraphError` and the code → status table; calls `wire` to encode.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Serialize;

use crate::wire;

/// Generic Graph API failure.
pub const CODE_UNKNOWN: u32 = 1;
/// Service temporarily unavailable.
pub const CODE_SERVICE_TEMPORARILY_UNAVAILABLE: u32 = 2;
/// App-level rate limit.
pub const CODE_APP_RATE_LIMIT: u32 = 4;
/// Invalid parameter (and unknown objects).
pub const CODE_INVALID_PARAMETER: u32 = 100;
/// Access token missing, malformed or expired.
pub const CODE_ACCESS_TOKEN: u32 = 190;
/// Policy block.
pub const CODE_POLICY_BLOCK: u32 = 368;
/// Account-level rate limit.
pub const CODE_ACCOUNT_RATE_LIMIT: u32 = 80007;
/// Cloud API throughput reached.
pub const CODE_THROUGHPUT: u32 = 130429;
/// Something went wrong (transient).
pub const CODE_SOMETHING_WENT_WRONG: u32 = 131000;
/// Required parameter is missing.
pub const CODE_PARAMETER_MISSING: u32 = 131008;
/// Parameter value is not valid.
pub const CODE_PARAMETER_NOT_VALID: u32 = 131009;
/// Service overloaded.
pub const CODE_SERVICE_UNAVAILABLE: u32 = 131016;
/// Message undeliverable (a webhook error, never a synchronous one here).
pub const CODE_UNDELIVERABLE: u32 = 131026;
/// Unsupported message type.
pub const CODE_UNSUPPORTED_TYPE: u32 = 131051;
/// Business/consumer pair rate limit.
pub const CODE_PAIR_RATE_LIMIT: u32 = 131056;

/// Subcode Meta adds to "object does not exist" answers.
const SUBCODE_UNKNOWN_OBJECT: u32 = 33;
/// Characters of a `fbtrace_id`.
const FBTRACE_ID_LENGTH: usize = 23;

/// The HTTP status Meta answers a synchronous error code with.
pub fn status_for_code(code: u32) -> StatusCode {
    match code {
        CODE_ACCESS_TOKEN => StatusCode::UNAUTHORIZED,
        CODE_POLICY_BLOCK => StatusCode::FORBIDDEN,
        CODE_THROUGHPUT | CODE_PAIR_RATE_LIMIT | CODE_APP_RATE_LIMIT | CODE_ACCOUNT_RATE_LIMIT => {
            StatusCode::TOO_MANY_REQUESTS
        }
        CODE_SOMETHING_WENT_WRONG | CODE_UNKNOWN => StatusCode::INTERNAL_SERVER_ERROR,
        CODE_SERVICE_UNAVAILABLE | CODE_SERVICE_TEMPORARILY_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// One Graph API error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    code: u32,
    subcode: Option<u32>,
    error_type: &'static str,
    message: Cow<'static, str>,
    /// `error_data.details`; `None` leaves `error_data` out (as Meta does for
    /// errors that are not WhatsApp's own, such as 190).
    details: Option<Cow<'static, str>>,
}

impl GraphError {
    /// An error with Meta's usual `(#CODE) message` text and WhatsApp details.
    pub fn whatsapp(code: u32, message: &'static str, details: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Owned(format!("(#{code}) {message}")),
            details: Some(details.into()),
        }
    }

    /// 100 "Invalid parameter" with details.
    pub fn invalid_parameter(details: impl Into<Cow<'static, str>>) -> Self {
        Self::whatsapp(CODE_INVALID_PARAMETER, "Invalid parameter", details)
    }

    /// 100 "The parameter X is required." (no details, as Meta answers it).
    pub fn parameter_required(name: &str) -> Self {
        Self {
            code: CODE_INVALID_PARAMETER,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Owned(format!("(#{CODE_INVALID_PARAMETER}) The parameter {name} is required.")),
            details: None,
        }
    }

    /// 131008 "Required parameter is missing".
    pub fn parameter_missing(details: impl Into<Cow<'static, str>>) -> Self {
        Self::whatsapp(CODE_PARAMETER_MISSING, "Required parameter is missing", details)
    }

    /// 131009 "Parameter value is not valid".
    pub fn parameter_not_valid(details: impl Into<Cow<'static, str>>) -> Self {
        Self::whatsapp(CODE_PARAMETER_NOT_VALID, "Parameter value is not valid", details)
    }

    /// 131051 "Unsupported message type".
    pub fn unsupported_type() -> Self {
        Self::whatsapp(
            CODE_UNSUPPORTED_TYPE,
            "Unsupported message type",
            "Message type is not currently supported.",
        )
    }

    /// 131000 "Something went wrong" (HTTP 500), the transient fault.
    pub fn something_went_wrong() -> Self {
        Self::whatsapp(
            CODE_SOMETHING_WENT_WRONG,
            "Something went wrong",
            "Something went wrong",
        )
    }

    /// A configured fault: `code` with Meta's title for it and the HTTP status Meta uses.
    pub fn fault(code: u32) -> Self {
        let title = match code {
            CODE_THROUGHPUT => "Rate limit hit",
            CODE_PAIR_RATE_LIMIT => "(Business Account, Consumer Account) pair rate limit hit",
            131048 => "Spam rate limit hit",
            CODE_APP_RATE_LIMIT => "Application request limit reached",
            CODE_ACCOUNT_RATE_LIMIT => "Rate limit issues",
            CODE_SOMETHING_WENT_WRONG => "Something went wrong",
            CODE_SERVICE_UNAVAILABLE => "Service unavailable",
            CODE_UNKNOWN => "An unknown error occurred",
            CODE_SERVICE_TEMPORARILY_UNAVAILABLE => "Service temporarily unavailable",
            131047 => "Re-engagement message",
            CODE_UNDELIVERABLE => "Message undeliverable",
            131049 => "This message was not delivered to maintain healthy ecosystem engagement",
            131050 => "Unable to deliver the message",
            CODE_POLICY_BLOCK => "Temporarily blocked for policies violations",
            132000 => "Number of parameters does not match the expected number of params",
            132001 => "Template name does not exist in the translation",
            _ => "Simulated fault",
        };
        Self::whatsapp(code, title, "Simulated fault set in the simulator's config")
    }

    /// 190, HTTP 401: the token is missing or not the one configured.
    pub fn invalid_token() -> Self {
        Self {
            code: CODE_ACCESS_TOKEN,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Borrowed("Invalid OAuth access token - Cannot parse access token"),
            details: None,
        }
    }

    /// 100/33: the path names an object that does not exist.
    pub fn unknown_object(id: &str, method: &str) -> Self {
        Self {
            code: CODE_INVALID_PARAMETER,
            subcode: Some(SUBCODE_UNKNOWN_OBJECT),
            error_type: "GraphMethodException",
            message: Cow::Owned(format!(
                "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be \
                 loaded due to missing permissions, or does not support this operation. Please \
                 read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            )),
            details: None,
        }
    }

    /// 2500-style answer for a path the simulator does not serve.
    pub fn unknown_path(path: &str) -> Self {
        Self {
            code: 2500,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Owned(format!("Unknown path components: {path}")),
            details: None,
        }
    }

    /// The Meta error code.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        status_for_code(self.code)
    }

    /// `error.message`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `error.error_data.details`, when present.
    pub fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }

    /// The JSON body, encoded as Meta encodes it.
    pub fn body(&self) -> Vec<u8> {
        let fbtrace_id = fbtrace_id();
        let answer = Answer {
            error: Body {
                message: &self.message,
                error_type: self.error_type,
                code: self.code,
                error_subcode: self.subcode,
                error_data: self.details.as_deref().map(|details| ErrorData {
                    messaging_product: "whatsapp",
                    details,
                }),
                fbtrace_id: &fbtrace_id,
            },
        };
        // Plain strings and numbers always encode; the fallback keeps the shape.
        wire::to_meta_json(&answer)
            .unwrap_or_else(|_| format!(r#"{{"error":{{"code":{},"type":"OAuthException"}}}}"#, self.code).into_bytes())
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if self.code == CODE_ACCESS_TOKEN {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token - Cannot parse access token\"",
                ),
            );
        }
        response
    }
}

#[derive(Serialize)]
struct Answer<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    error_type: &'static str,
    code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_data: Option<ErrorData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_subcode: Option<u32>,
    fbtrace_id: &'a str,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    messaging_product: &'static str,
    details: &'a str,
}

/// A random trace id like the ones Meta returns (`A1b2C3…`).
fn fbtrace_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(FBTRACE_ID_LENGTH);
    id.push('A');
    for _ in 1..FBTRACE_ID_LENGTH {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(error: &GraphError) -> Value {
        serde_json::from_slice(&error.body()).expect("valid json")
    }

    #[test]
    fn button_count_error_is_metas_exact_answer() {
        let error =
            GraphError::parameter_not_valid("Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let mut body = parsed(&error);
        let trace = body["error"]
            .as_object_mut()
            .and_then(|error| error.remove("fbtrace_id"))
            .expect("has a trace id");
        assert!(trace.as_str().is_some_and(|t| t.len() == FBTRACE_ID_LENGTH));
        assert_eq!(
            body,
            json!({"error": {
                "message": "(#131009) Parameter value is not valid",
                "type": "OAuthException",
                "code": 131009,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3"
                }
            }})
        );
    }

    #[test]
    fn token_error_is_401_without_error_data() {
        let error = GraphError::invalid_token();
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        let body = parsed(&error);
        assert_eq!(body["error"]["code"], 190);
        assert!(body["error"].get("error_data").is_none());
        assert!(body["error"].get("error_subcode").is_none());
    }

    #[test]
    fn subcode_is_present_only_when_set() {
        let body = parsed(&GraphError::unknown_object("abc", "post"));
        assert_eq!(body["error"]["error_subcode"], 33);
        assert_eq!(body["error"]["type"], "GraphMethodException");
    }

    #[test]
    fn statuses_follow_metas_table() {
        assert_eq!(
            status_for_code(CODE_SOMETHING_WENT_WRONG),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_for_code(CODE_SERVICE_UNAVAILABLE),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_for_code(CODE_THROUGHPUT), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for_code(CODE_PAIR_RATE_LIMIT), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for_code(CODE_ACCESS_TOKEN), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for_code(CODE_PARAMETER_NOT_VALID), StatusCode::BAD_REQUEST);
        assert_eq!(status_for_code(CODE_UNDELIVERABLE), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn trace_ids_differ() {
        assert_ne!(fbtrace_id(), fbtrace_id());
    }
}
