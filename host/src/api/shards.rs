//! `GET /v1/shards`: the backlog policies see per shard (`context.shard-backlog`), as the
//! dispatcher last counted it, with the total it keeps up to date on every accept and send.

use axum::{
    Json,
    extract::{Query, State},
};
use serde_json::{Value, json};

use super::{ApiState, error::ApiError};

/// Shards listed when `limit` is not given.
const DEFAULT_SHARDS_LISTED: usize = 20;

pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_SHARDS_LISTED;
    for (key, value) in query {
        if key != "limit" {
            return Err(ApiError::invalid(
                key,
                "unknown query parameter; the only one is `limit`",
            ));
        }
        limit = value
            .parse()
            .map_err(|_| ApiError::invalid("limit", format!("{value:?} is not a whole number")))?;
    }
    if !(1..=usize::from(state.shards)).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {} (the number of shards)", state.shards),
        ));
    }
    let shards = state.dispatch.shard_backlogs();
    let busy = shards.len();
    let listed: Vec<Value> = shards
        .into_iter()
        .take(limit)
        .map(|(shard, backlog)| json!({"shard": shard, "backlog": backlog}))
        .collect();
    Ok(Json(json!({
        "backlog": state.dispatch.backlog(),
        "shards_total": state.shards,
        "shards_with_backlog": busy,
        "shards": listed,
    })))
}
