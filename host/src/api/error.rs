//! The one error shape of the HTTP edge: status plus `{"error": {"code", "message", "field"}}`,
//! and the strict JSON extractor whose rejections take that same shape, naming the field.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// An error about one field of the request.
    pub fn at(status: StatusCode, code: &'static str, message: impl Into<String>, field: &str) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A valid token without the scope the route needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure of ours: the body stays generic, the cause goes to the log.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "{context}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server could not complete the request; it is safe to retry",
        )
    }
}

/// The body of every error answer (and of each refused item of a batch).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Fields in alphabetical order: the order the answer had when it was built with `json!`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_field`, `not_found`, `unauthorized`, ...
    #[schema(example = "invalid_field")]
    pub code: String,
    /// The JSON path or parameter at fault, if one is.
    #[schema(example = "to")]
    pub field: Option<String>,
    /// Every finding of the template checks; only with `lint_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<crate::templates::LintFinding>>,
    /// For people; may change.
    pub message: String,
}

impl From<&ApiError> for ErrorBody {
    fn from(error: &ApiError) -> Self {
        Self {
            error: ErrorDetail {
                code: error.code.to_owned(),
                field: error.field.clone(),
                findings: None,
                message: error.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::from(&self);
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// Set on every error response: its code, which the audit log records as the outcome.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// JSON body read strictly: content type checked, body size bounded by the router's limit,
/// and any error names the JSON path of the field at fault.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// Turns any error answer that is not JSON (a rejection from one of axum's own extractors,
/// such as a path parameter that is not UTF-8) into the one error shape, so no route ever
/// answers an error in another form. JSON answers pass untouched.
pub async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are one line; anything longer is cut, never buffered whole.
    let text = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        status if status.is_server_error() => "unavailable",
        _ => "invalid_request",
    };
    // axum names the parameter at fault in backticks: "Invalid UTF-8 in `name`".
    let field = text
        .split('`')
        .nth(1)
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .map(str::to_owned);
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut answer = ApiError {
        status,
        code,
        message,
        field,
    }
    .into_response();
    // Headers such as `Allow` or `Retry-After` stay; the body's own length and type do not.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// A query string read strictly (unknown keys refused where the type says so); a refusal
/// takes the one error shape and names the parameter at fault.
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(StrictQuery(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                // The extractor names the parameter as `name: what is wrong`.
                let field = detail
                    .split_once(": ")
                    .map(|(field, _)| field)
                    .filter(|field| !field.is_empty() && !field.contains(' '))
                    .map(str::to_owned);
                Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_field",
                    message: detail,
                    field,
                })
            }
        }
    }
}

/// A body that could not be read (too large, cut off) as an error of the one shape; for
/// handlers that take the raw bytes as `Result<Bytes, BytesRejection>`.
pub fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than this server accepts",
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", rejection.body_text())
    }
}

/// Deserialises `bytes`, naming the JSON path of the first field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(super::strict::Strict(&mut deserializer)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        let field = if path == "." { None } else { Some(path) };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: inner.to_string(),
            field,
        }
    })?;
    // One JSON value and nothing after it.
    deserializer.end().map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    Ok(value)
}
