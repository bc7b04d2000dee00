//! `GET /v1/regions`: each country calling code's upstream error rate, median latency and
//! whether it is degraded, as this node sees it.

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiState, error::ErrorBody, format_time};

// Fields in alphabetical order: the order they had on the wire when they were built with
// `json!` (serde_json sorts object keys), kept byte for byte.

/// One country calling code's upstream health.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionBody {
    /// When `degraded` last flipped.
    pub changed_at: Option<String>,
    pub country_code: u16,
    pub degraded: bool,
    pub error_rate: f64,
    pub p50_latency_ms: u32,
    pub samples: u64,
}

/// The answer of `GET /v1/regions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionList {
    pub regions: Vec<RegionBody>,
}

#[utoipa::path(
    get,
    path = "/v1/regions",
    tag = "regions",
    responses(
        (status = 200, description = "Every region seen", body = RegionList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<ApiState>) -> Json<RegionList> {
    let now = crate::store::now_ms();
    let regions = state
        .regions
        .all(now)
        .into_iter()
        .map(|region| RegionBody {
            changed_at: region.changed_at_ms.map(format_time),
            country_code: region.country_code,
            degraded: region.degraded,
            error_rate: region.error_rate,
            p50_latency_ms: region.p50_latency_ms,
            samples: region.samples,
        })
        .collect();
    Json(RegionList { regions })
}
