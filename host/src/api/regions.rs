//! `GET /v1/regions`: each country calling code's upstream error rate, median latency and
//! whether it is degraded, as this node sees it.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::{ApiState, format_time};

pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    let now = crate::store::now_ms();
    let regions: Vec<Value> = state
        .regions
        .all(now)
        .into_iter()
        .map(|region| {
            json!({
                "country_code": region.country_code,
                "error_rate": region.error_rate,
                "samples": region.samples,
                "p50_latency_ms": region.p50_latency_ms,
                "degraded": region.degraded,
                "changed_at": region.changed_at_ms.map(format_time),
            })
        })
        .collect();
    Json(json!({"regions": regions}))
}
