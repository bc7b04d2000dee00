//! The HTTP edge (axum): the `/v1` admin API behind scoped bearer tokens ([`auth`]), Meta's
//! webhooks, health checks, and the dashboard's static page ([`dashboard`]). Handlers validate,
//! hand work to the store, and answer; they never send.
//! May call the store, the dispatcher's wake handle and the policy runtime (for readiness).

pub mod audit;
pub mod auth;
pub mod callbacks;
pub mod cluster;
pub mod contacts;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod plugins;
pub mod regions;
pub mod senders;
pub mod shards;
pub mod stats;
pub mod stream;
pub mod strict;
pub mod templates;
pub mod tokens;
pub mod webhook;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{MethodRouter, delete, get, post, put},
};
use sha2::{Digest, Sha256};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::ApiError;

use crate::{dispatch::DispatchHandle, policy::PolicyRuntime, store::Store};

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// This node's membership and shard leases.
    pub cluster: Arc<crate::cluster::Cluster>,
    pub dispatch: DispatchHandle,
    pub policies: Arc<PolicyRuntime>,
    pub events: Arc<crate::events::Events>,
    pub regions: Arc<crate::regions::RegionHealth>,
    pub senders: Arc<crate::senders::Senders>,
    pub shards: u16,
    /// The tokens that may call `/v1`: the bootstrap admin token and the live stored ones.
    pub tokens: Arc<auth::Tokens>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    /// The bearer token `GET /metrics` asks for (`server.metrics_token`); `None`: open.
    pub metrics_token: Option<String>,
    /// Inbound texts that opt a contact out or back in.
    pub opt_keywords: Arc<webhook::OptKeywords>,
    /// Where each template stands, for the check at submit and for listing.
    pub templates: Arc<crate::templates::Registry>,
    /// How new template versions are reviewed; `None` when no business account is
    /// configured (templates are then not managed).
    pub template_review: Option<crate::templates::Review>,
    /// This node's live event stream (`GET /v1/events/stream`).
    pub live: crate::telemetry::live::Live,
    /// How far back `GET /v1/stats` may look (`stats.retention_days`).
    pub stats_retention_days: u32,
    /// The health rules' state, degraded mode and the templates flagged for review.
    pub health: Arc<crate::health::Health>,
}

pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    router_with_limits(state, max_body_bytes, crate::config::DEFAULT_MAX_BATCH_BODY_BYTES)
}

/// The router, with its own body limit for `POST /v1/messages/batch`.
pub fn router_with_limits(state: ApiState, max_body_bytes: usize, max_batch_body_bytes: usize) -> Router {
    let mut v1 = Router::new();
    for route in auth::ROUTES {
        match handler(route, max_batch_body_bytes) {
            Some(method_router) => {
                let guard = auth::Guard {
                    state: state.clone(),
                    route,
                };
                v1 = v1.route(
                    route.path,
                    method_router.route_layer(middleware::from_fn_with_state(guard, auth::authorize)),
                );
            }
            None => tracing::error!(method = route.verb.as_str(), path = route.path, "route has no handler"),
        }
    }
    Router::new()
        .merge(v1)
        .route(
            "/webhooks/whatsapp",
            get(webhook::handshake)
                .post(webhook::receive)
                .layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::serve))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/dashboard.js", get(dashboard::script))
        .route("/dashboard/dashboard.css", get(dashboard::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the request-id layers; `Router::layer` wraps each route, so the matched
        // template is known to it.
        .layer(middleware::from_fn(metrics::count_request))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::map_response(error::errors_as_json))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The handler of one entry of [`auth::ROUTES`]: the router serves only what that table names,
/// so no route exists without its scope. A new route is one entry there and one arm here.
fn handler(route: &auth::Route, max_batch_body_bytes: usize) -> Option<MethodRouter<ApiState>> {
    use auth::Verb::{Delete, Get, Post, Put};
    Some(match (route.verb, route.path) {
        (Post, "/v1/messages") => post(messages::send),
        (Get, "/v1/messages") => get(messages::list),
        (Post, "/v1/messages/batch") => post(messages::send_batch).layer(DefaultBodyLimit::max(max_batch_body_bytes)),
        (Get, "/v1/messages/{id}") => get(messages::get),
        (Post, "/v1/messages/{id}/cancel") => post(messages::cancel),
        (Post, "/v1/plugins/{name}/versions") => {
            post(plugins::upload).layer(DefaultBodyLimit::max(crate::policy::MAX_COMPONENT_BYTES + 1))
        }
        (Get, "/v1/plugins") => get(plugins::list),
        (Get, "/v1/plugins/{name}") => get(plugins::get),
        (Put, "/v1/plugins/{name}") => put(plugins::update),
        (Delete, "/v1/plugins/{name}") => delete(plugins::delete),
        (Post, "/v1/plugins/{name}/activate") => post(plugins::activate),
        (Post, "/v1/plugins/{name}/rollback") => post(plugins::rollback),
        (Get, "/v1/plugins/{name}/shadow") => get(plugins::shadow_report),
        (Post, "/v1/plugins/{name}/shadow") => post(plugins::start_shadow),
        (Delete, "/v1/plugins/{name}/shadow") => delete(plugins::stop_shadow),
        (Get, "/v1/contacts/{wa_id}") => get(contacts::get),
        (Put, "/v1/contacts/{wa_id}") => put(contacts::put),
        (Get, "/v1/templates") => get(templates::list),
        (Post, "/v1/templates") => post(templates::create),
        (Post, "/v1/templates/lint") => post(templates::lint_only),
        (Get, "/v1/templates/{name}") => get(templates::get),
        (Post, "/v1/templates/{name}/{language}/review") => post(templates::review),
        (Get, "/v1/regions") => get(regions::list),
        (Get, "/v1/shards") => get(shards::list),
        (Get, "/v1/cluster") => get(cluster::get),
        (Get, "/v1/stats") => get(stats::get),
        (Get, "/v1/health/rules") => get(health::rules),
        (Get, "/v1/events/stream") => get(stream::stream),
        (Get, "/v1/senders") => get(senders::list),
        (Put, "/v1/senders/{phone_number}") => put(senders::put),
        (Get, "/v1/tokens") => get(tokens::list),
        (Post, "/v1/tokens") => post(tokens::create),
        (Delete, "/v1/tokens/{id}") => delete(tokens::revoke),
        (Get, "/v1/audit") => get(audit::list),
        (Get, "/v1/callbacks/dead") => get(callbacks::dead),
        (Post, "/v1/callbacks/dead/replay") => post(callbacks::replay),
        _ => return None,
    })
}

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `{"status": ...}` of the health checks.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready`, or `store unavailable`.
    pub status: &'static str,
}

/// A plugin in the live chain.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReadyPlugin {
    pub name: String,
    pub version: String,
}

/// `GET /readyz` when ready. Fields in alphabetical order: the order they had on the wire when
/// built with `json!`, kept.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub plugins: Vec<ReadyPlugin>,
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers; lists the live chain.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The store does not answer (`{\"status\": \"store unavailable\"}`)", body = Health),
    )
)]
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Readiness {
            plugins: state
                .policies
                .chain()
                .plugins()
                .map(|plugin| ReadyPlugin {
                    name: plugin.name.to_string(),
                    version: plugin.version.to_string(),
                })
                .collect(),
            status: "ready",
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "store unavailable",
                }),
            )
                .into_response()
        }
    }
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not answer {method}"),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_in_the_scope_table_has_a_handler() {
        for route in auth::ROUTES {
            assert!(
                handler(route, 1).is_some(),
                "{} {} is in auth::ROUTES but has no handler",
                route.verb.as_str(),
                route.path
            );
        }
    }
}
