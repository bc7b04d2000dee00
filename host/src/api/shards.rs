//! `GET /v1/shards`: the backlog policies see per shard (`context.shard-backlog`), as the
//! dispatcher last counted it, with the total it keeps up to date on every accept and send.

use axum::{
    Json,
    extract::{Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiState,
    error::{ApiError, ErrorBody},
};

/// Shards listed when `limit` is not given.
const DEFAULT_SHARDS_LISTED: usize = 20;

/// The query as documented; the handler reads the pairs itself to name an unknown parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShardsQuery {
    /// Shards listed, busiest first: 1 to the number of shards; 20 when left out.
    #[param(minimum = 1)]
    pub limit: Option<usize>,
}

// Fields in alphabetical order: the order they had on the wire when they were built with
// `json!` (serde_json sorts object keys), kept byte for byte.

/// One shard's backlog.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShardBody {
    pub backlog: u32,
    pub shard: u16,
}

/// The answer of `GET /v1/shards`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShardsBody {
    /// Messages waiting, all shards.
    pub backlog: u64,
    /// The busiest shards, at most `limit`.
    pub shards: Vec<ShardBody>,
    pub shards_total: u16,
    pub shards_with_backlog: usize,
}

#[utoipa::path(
    get,
    path = "/v1/shards",
    tag = "shards",
    params(ShardsQuery),
    responses(
        (status = 200, description = "The backlog per shard", body = ShardsBody),
        (status = 400, description = "A parameter is invalid or unknown", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<ShardsBody>, ApiError> {
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
    let listed = shards
        .into_iter()
        .take(limit)
        .map(|(shard, backlog)| ShardBody { backlog, shard })
        .collect();
    Ok(Json(ShardsBody {
        backlog: state.dispatch.backlog(),
        shards: listed,
        shards_total: state.shards,
        shards_with_backlog: busy,
    }))
}
