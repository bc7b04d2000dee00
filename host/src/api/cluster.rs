//! `GET /v1/cluster`: the nodes sharing this store, the shards each holds a lease on, how old
//! those leases are and how much waits in their shards, as the store has it now (the answer is
//! the same from every node).

use std::collections::HashMap;

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    ApiState,
    error::{ApiError, ErrorBody},
};

/// The smallest and largest of a set of durations, in ms.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub struct Span {
    pub max: i64,
    pub min: i64,
}

impl Span {
    fn of(values: impl Iterator<Item = i64>) -> Option<Self> {
        values.fold(None, |span, value| {
            Some(match span {
                None => Self { min: value, max: value },
                Some(Self { min, max }) => Self {
                    min: min.min(value),
                    max: max.max(value),
                },
            })
        })
    }
}

// Fields in alphabetical order: every answer of the API lists its keys sorted.

/// One node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeBody {
    /// Where its API listens (`cluster.advertise_address`).
    pub address: String,
    /// Messages waiting in its shards at the last count.
    pub backlog: u64,
    pub heartbeat_age_ms: i64,
    pub id: String,
    /// Time since each of its leases was acquired; none without shards.
    pub lease_age_ms: Option<Span>,
    /// Time until each of its leases runs out unless renewed; none without shards.
    pub lease_expires_in_ms: Option<Span>,
    /// Heartbeating within the lease TTL.
    pub live: bool,
    /// The shards it holds an unexpired lease on.
    pub shards: Vec<u16>,
    pub started_at_ms: i64,
}

/// The answer of `GET /v1/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterBody {
    /// The database's time the answer was read at.
    pub at_ms: i64,
    pub lease_ttl_ms: u64,
    /// The node that answered.
    pub node_id: String,
    pub nodes: Vec<NodeBody>,
    pub shard_count: u16,
    /// `sqlite` (one node) or `postgres`.
    pub store: &'static str,
    /// Shards no node holds an unexpired lease on (briefly, during a handover).
    pub unowned_shards: Vec<u16>,
}

#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    responses(
        (status = 200, description = "The nodes and their shard leases", body = ClusterBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<ApiState>) -> Result<Json<ClusterBody>, ApiError> {
    let snapshot = state
        .store
        .cluster_snapshot()
        .await
        .map_err(|error| ApiError::internal("reading the cluster", &error))?;
    let pending = state
        .store
        .pending_by_shard()
        .await
        .map_err(|error| ApiError::internal("counting the backlog per shard", &error))?;
    let backlog: HashMap<u16, u64> = pending.into_iter().collect();
    let ttl_ms = i64::try_from(state.cluster.lease_ttl().as_millis()).unwrap_or(i64::MAX);
    let now = snapshot.now_ms;
    let shard_count = state.cluster.shard_count();
    let mut held_by: HashMap<&str, Vec<&crate::store::LeaseRow>> = HashMap::new();
    let mut owned = vec![false; usize::from(shard_count)];
    for lease in &snapshot.leases {
        if let Some(node) = lease.node_id.as_deref()
            && lease.expires_at_ms > now
        {
            held_by.entry(node).or_default().push(lease);
            if let Some(slot) = owned.get_mut(usize::from(lease.shard)) {
                *slot = true;
            }
        }
    }
    let nodes = snapshot
        .nodes
        .iter()
        .map(|node| {
            let leases = held_by.get(node.id.as_str()).map(Vec::as_slice).unwrap_or_default();
            NodeBody {
                id: node.id.clone(),
                address: node.address.clone(),
                live: now - node.heartbeat_at_ms < ttl_ms,
                heartbeat_age_ms: (now - node.heartbeat_at_ms).max(0),
                started_at_ms: node.started_at_ms,
                shards: leases.iter().map(|lease| lease.shard).collect(),
                lease_age_ms: Span::of(leases.iter().map(|lease| (now - lease.acquired_at_ms).max(0))),
                lease_expires_in_ms: Span::of(leases.iter().map(|lease| (lease.expires_at_ms - now).max(0))),
                backlog: leases
                    .iter()
                    .map(|lease| backlog.get(&lease.shard).copied().unwrap_or(0))
                    .sum(),
            }
        })
        .collect();
    Ok(Json(ClusterBody {
        node_id: state.cluster.node_id().to_owned(),
        store: state.store.backend_name(),
        shard_count,
        lease_ttl_ms: u64::try_from(ttl_ms).unwrap_or_default(),
        at_ms: now,
        nodes,
        unowned_shards: (0..shard_count).filter(|shard| !owned[usize::from(*shard)]).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn a_span_is_the_least_and_the_most() {
        assert_eq!(Span::of([5, 2, 9].into_iter()), Some(Span { min: 2, max: 9 }));
        assert_eq!(Span::of(std::iter::empty()), None);
    }
}
