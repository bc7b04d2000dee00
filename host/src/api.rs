//! The HTTP edge (axum): the `/v1` admin API behind a bearer token, Meta's webhooks, and
//! health checks. Handlers validate, hand work to the store, and answer; they never send.
//! May call the store, the dispatcher's wake handle and the policy runtime (for readiness).

pub mod contacts;
pub mod error;
pub mod messages;
pub mod plugins;
pub mod regions;
pub mod senders;
pub mod webhook;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::ApiError;

use crate::{dispatch::DispatchHandle, policy::PolicyRuntime, store::Store};

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub dispatch: DispatchHandle,
    pub policies: Arc<PolicyRuntime>,
    pub events: Arc<crate::events::Events>,
    pub regions: Arc<crate::regions::RegionHealth>,
    pub senders: Arc<crate::senders::Senders>,
    pub shards: u16,
    /// sha256 of the admin token; compared in constant time.
    pub admin_token_digest: Option<[u8; 32]>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
}

pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    router_with_limits(state, max_body_bytes, crate::config::DEFAULT_MAX_BATCH_BODY_BYTES)
}

/// The router, with its own body limit for `POST /v1/messages/batch`.
pub fn router_with_limits(state: ApiState, max_body_bytes: usize, max_batch_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/messages/batch",
            post(messages::send_batch).layer(DefaultBodyLimit::max(max_batch_body_bytes)),
        )
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/{id}", get(messages::get))
        .route(
            "/v1/plugins/{name}/versions",
            post(plugins::upload).layer(DefaultBodyLimit::max(crate::policy::MAX_COMPONENT_BYTES + 1)),
        )
        .route("/v1/contacts/{wa_id}", get(contacts::get).put(contacts::put))
        .route("/v1/regions", get(regions::list))
        .route("/v1/senders", get(senders::list))
        .route("/v1/senders/{phone_number}", put(senders::put))
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            get(plugins::get).put(plugins::update).delete(plugins::delete),
        )
        .route("/v1/plugins/{name}/activate", post(plugins::activate))
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route(
            "/v1/plugins/{name}/shadow",
            get(plugins::shadow_report)
                .post(plugins::start_shadow)
                .delete(plugins::stop_shadow),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(v1)
        .route("/webhooks/whatsapp", get(webhook::handshake).post(webhook::receive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
    let Some(expected) = state.admin_token_digest else {
        return Err(ApiError::unauthorized("no admin token is configured on this server"));
    };
    if bool::from(token_digest(presented).ct_eq(&expected)) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::unauthorized("the token is not valid"))
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<ApiState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "plugins": state.policies.chain().plugins().map(|plugin| json!({
                "name": &*plugin.name,
                "version": plugin.version,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unavailable"})),
            )
                .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// RFC 3339 with milliseconds, UTC.
pub fn format_time(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|moment| moment.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
