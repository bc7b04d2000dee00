//! `GET /metrics`: the Prometheus text exposition, outside `/v1` and its API tokens. When
//! `server.metrics_token` is set a scraper must present it as `Authorization: Bearer …`
//! (compared in constant time); unset, the route is open to whoever reaches the listen
//! address. Also the middleware that counts every HTTP request by its route template.
//! Calls only [`crate::telemetry::metrics`].

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::telemetry::metrics;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Every series, in the Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "`server.metrics_token` is set and the request does not carry it as a bearer token", body = super::error::ErrorBody),
    )
)]
pub async fn serve(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token
        && !presents(&headers, expected)
    {
        return ApiError::unauthorized("GET /metrics needs the metrics token as a bearer token").into_response();
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        metrics::render(),
    )
        .into_response()
}

/// Whether `Authorization: Bearer <expected>` is present.
fn presents(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes())))
}

/// Counts the request under its matched route template, never the raw path (which carries
/// message ids and phone numbers); requests no route matched count as `unmatched`.
pub async fn count_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics::http_request(route, &method, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!presents(&headers, "s3cret"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(presents(&headers, "s3cret"));
        assert!(!presents(&headers, "s3cre"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!presents(&headers, "s3cret"));
    }
}
