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
/// The template (name and language) does not exist or is not approved.
pub const CODE_TEMPLATE_DOES_NOT_EXIST: u32 = 132001;
/// The template is paused for low quality.
pub const CODE_TEMPLATE_PAUSED: u32 = 132015;
/// The template is disabled (paused too often).
pub const CODE_TEMPLATE_DISABLED: u32 = 132016;

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
        CODE_TEMPLATE_DOES_NOT_EXIST => StatusCode::NOT_FOUND,
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
    /// `error_user_title` and `error_user_msg` (with `is_transient: false`), as the
    /// WhatsApp Business Management API answers template errors.
    user: Option<Box<UserFacing>>,
    /// `error_data.blame_field_specs` (instead of WhatsApp details): the field at fault.
    blame_field: Option<&'static str>,
}

/// The user-facing half of a Business Management API error.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UserFacing {
    title: Cow<'static, str>,
    message: Cow<'static, str>,
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
            user: None,
            blame_field: None,
        }
    }

    /// 100 "Invalid parameter" with details.
    pub fn invalid_parameter(details: impl Into<Cow<'static, str>>) -> Self {
        Self::whatsapp(CODE_INVALID_PARAMETER, "Invalid parameter", details)
    }

    /// A WhatsApp Business Management API refusal (template endpoints): code 100,
    /// `"message":"Invalid parameter"`, the `error_subcode`, `is_transient: false`,
    /// `error_user_title` and `error_user_msg`, as Meta answers them.
    pub fn management(
        subcode: Option<u32>,
        title: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code: CODE_INVALID_PARAMETER,
            subcode,
            error_type: "OAuthException",
            message: Cow::Borrowed("Invalid parameter"),
            details: None,
            user: Some(Box::new(UserFacing {
                title: title.into(),
                message: message.into(),
            })),
            blame_field: None,
        }
    }

    /// Adds `error_data.blame_field_specs: [[field]]`.
    #[must_use]
    pub fn blaming(mut self, field: &'static str) -> Self {
        self.blame_field = Some(field);
        self
    }

    /// 100 with Meta's plain `(#100) message` and no details (Graph-level checks such as
    /// a query parameter of the wrong type).
    pub fn plain_invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: CODE_INVALID_PARAMETER,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Owned(format!("(#{CODE_INVALID_PARAMETER}) {}", message.into())),
            details: None,
            user: None,
            blame_field: None,
        }
    }

    /// 132001, HTTP 404: no approved template of this name in this language.
    pub fn template_does_not_exist(name: &str, language: &str) -> Self {
        Self::whatsapp(
            CODE_TEMPLATE_DOES_NOT_EXIST,
            "Template name does not exist in the translation",
            format!("template name ({name}) does not exist in {language}"),
        )
    }

    /// 132015: the template is paused.
    pub fn template_paused() -> Self {
        Self::whatsapp(
            CODE_TEMPLATE_PAUSED,
            "Template is Paused",
            "Template is paused due to low quality so it cannot be sent in a template message.",
        )
    }

    /// 132016: the template is disabled.
    pub fn template_disabled() -> Self {
        Self::whatsapp(
            CODE_TEMPLATE_DISABLED,
            "Template is Disabled",
            "Template has been paused too many times due to low quality and is now permanently disabled.",
        )
    }

    /// 100 "The parameter X is required." (no details, as Meta answers it).
    pub fn parameter_required(name: &str) -> Self {
        Self {
            code: CODE_INVALID_PARAMETER,
            subcode: None,
            error_type: "OAuthException",
            message: Cow::Owned(format!("(#{CODE_INVALID_PARAMETER}) The parameter {name} is required.")),
            details: None,
            user: None,
            blame_field: None,
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
            CODE_TEMPLATE_DOES_NOT_EXIST => "Template name does not exist in the translation",
            CODE_TEMPLATE_PAUSED => "Template is Paused",
            CODE_TEMPLATE_DISABLED => "Template is Disabled",
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
            user: None,
            blame_field: None,
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
            user: None,
            blame_field: None,
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
            user: None,
            blame_field: None,
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
                error_data: match (self.details.as_deref(), self.blame_field) {
                    (Some(details), _) => Some(ErrorData::WhatsApp {
                        messaging_product: "whatsapp",
                        details,
                    }),
                    (None, Some(field)) => Some(ErrorData::Blame {
                        blame_field_specs: [[field]],
                    }),
                    (None, None) => None,
                },
                is_transient: self.user.as_ref().map(|_| false),
                error_user_title: self.user.as_ref().map(|user| &*user.title),
                error_user_msg: self.user.as_ref().map(|user| &*user.message),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    is_transient: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_user_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_user_msg: Option<&'a str>,
    fbtrace_id: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ErrorData<'a> {
    WhatsApp {
        messaging_product: &'static str,
        details: &'a str,
    },
    Blame {
        blame_field_specs: [[&'static str; 1]; 1],
    },
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
    fn management_errors_keep_metas_key_order() {
        let error = GraphError::management(
            Some(2_388_046),
            "Name Format is Incorrect",
            "The message template name can only have lowercase letters and underscores.",
        )
        .blaming("name");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let body = String::from_utf8(error.body()).expect("ascii");
        let expected = r#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_data":{"blame_field_specs":[["name"]]},"error_subcode":2388046,"is_transient":false,"error_user_title":"Name Format is Incorrect","error_user_msg":"The message template name can only have lowercase letters and underscores.","fbtrace_id":""#;
        assert!(body.starts_with(expected), "{body}");
    }

    #[test]
    fn template_send_errors_have_metas_codes_and_statuses() {
        let missing = GraphError::template_does_not_exist("promo", "en_US");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            missing.message(),
            "(#132001) Template name does not exist in the translation"
        );
        assert_eq!(missing.details(), Some("template name (promo) does not exist in en_US"));
        assert_eq!(GraphError::template_paused().status(), StatusCode::BAD_REQUEST);
        assert_eq!(GraphError::template_paused().message(), "(#132015) Template is Paused");
        assert_eq!(GraphError::template_disabled().code(), CODE_TEMPLATE_DISABLED);
        assert_eq!(GraphError::fault(132_001).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn trace_ids_differ() {
        assert_ne!(fbtrace_id(), fbtrace_id());
    }
}
