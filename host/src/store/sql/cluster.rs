//! SQL of the cluster: node heartbeats, shard leases with their fencing epochs, the fence a
//! pre-send write is checked against, and the change feed that tells nodes to reload what an
//! admin changed. Times here are the database's clock (one clock for every node), read once
//! per operation. Called by the writer (writes) and the store (reads).

use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Row, Transaction};

use super::{Db, DbPool, ROWS_PER_STATEMENT, apply_transitions, database, dialect};
use crate::message::MessageId;
use crate::store::{ClusterNode, ClusterSnapshot, HeldLease, LeaseRequest, LeaseRow, Result, Transition};

/// Nodes silent this long are forgotten; change-feed rows this old are pruned.
const FORGET_AFTER_MS: i64 = 3_600_000;

async fn database_now<'c, E>(executor: E) -> Result<i64>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    sqlx::query_scalar(&format!("SELECT {}", dialect::NOW_MS))
        .fetch_one(executor)
        .await
        .map_err(database("read the database clock"))
}

/// Records a heartbeat of `node` and answers the cluster as it stands (nodes and leases,
/// with the database's time).
pub(super) async fn heartbeat(transaction: &mut Transaction<'_, Db>, node: &ClusterNode) -> Result<ClusterSnapshot> {
    const OPERATION: &str = "cluster heartbeat";
    let now = database_now(&mut **transaction).await?;
    sqlx::query(
        "INSERT INTO cluster_nodes (id, address, started_at, heartbeat_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_at = excluded.heartbeat_at",
    )
    .bind(&node.id)
    .bind(&node.address)
    .bind(node.started_at_ms)
    .bind(now)
    .execute(&mut **transaction)
    .await
    .map_err(database(OPERATION))?;
    for statement in [
        "DELETE FROM cluster_nodes WHERE heartbeat_at < $1",
        "DELETE FROM config_changes WHERE at < $1",
    ] {
        sqlx::query(statement)
            .bind(now - FORGET_AFTER_MS)
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    }
    read_snapshot(transaction).await
}

fn node_from_row(row: &super::DbRow, operation: &'static str) -> Result<ClusterNode> {
    Ok(ClusterNode {
        id: row.try_get("id").map_err(database(operation))?,
        address: row.try_get("address").map_err(database(operation))?,
        started_at_ms: row.try_get("started_at").map_err(database(operation))?,
        heartbeat_at_ms: row.try_get("heartbeat_at").map_err(database(operation))?,
    })
}

fn push_shards(query: &mut QueryBuilder<'_, Db>, shards: &[u16]) {
    let mut list = query.separated(", ");
    for shard in shards {
        list.push_bind(i64::from(*shard));
    }
}

/// Releases, renews and acquires shard leases for one node, in one transaction. A lease is
/// taken only where it is free, expired or already this node's; taking one over (from
/// another node, or back after it ran out) moves its fencing epoch on, and frees the claims
/// of that shard's messages not yet `sending`: the node that held them can no longer write
/// their `sending` transition, so they are safe to claim at once.
pub(super) async fn renew_leases(
    transaction: &mut Transaction<'_, Db>,
    request: &LeaseRequest,
) -> Result<Vec<HeldLease>> {
    const OPERATION: &str = "renew shard leases";
    let now = database_now(&mut **transaction).await?;
    if !request.release.is_empty() {
        let mut query = QueryBuilder::<Db>::new("UPDATE shard_leases SET expires_at = ");
        query
            .push_bind(now)
            .push(" WHERE node_id = ")
            .push_bind(request.node_id.as_str())
            .push(" AND shard IN (");
        push_shards(&mut query, &request.release);
        query.push(")");
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    }
    if request.want.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Db>::new("INSERT INTO shard_leases (shard) ");
    query.push_values(&request.want, |mut row, shard| {
        row.push_bind(i64::from(*shard));
    });
    query.push(" ON CONFLICT (shard) DO NOTHING");
    query
        .build()
        .execute(&mut **transaction)
        .await
        .map_err(database(OPERATION))?;

    // The leases this node holds and renews (the rest it takes over, or cannot take).
    let mut query = QueryBuilder::<Db>::new("SELECT shard FROM shard_leases WHERE node_id = ");
    query
        .push_bind(request.node_id.as_str())
        .push(" AND expires_at > ")
        .push_bind(now)
        .push(" AND shard IN (");
    push_shards(&mut query, &request.want);
    query.push(")");
    let mut renewing = HashSet::with_capacity(request.want.len());
    for row in query
        .build()
        .fetch_all(&mut **transaction)
        .await
        .map_err(database(OPERATION))?
    {
        renewing.insert(row.try_get::<i64, _>("shard").map_err(database(OPERATION))?);
    }

    let mut query = QueryBuilder::<Db>::new("UPDATE shard_leases SET epoch = CASE WHEN node_id = ");
    query
        .push_bind(request.node_id.as_str())
        .push(" AND expires_at > ")
        .push_bind(now)
        .push(" THEN epoch ELSE epoch + 1 END, acquired_at = CASE WHEN node_id = ")
        .push_bind(request.node_id.as_str())
        .push(" AND expires_at > ")
        .push_bind(now)
        .push(" THEN acquired_at ELSE ")
        .push_bind(now)
        .push(" END, node_id = ")
        .push_bind(request.node_id.as_str())
        .push(", expires_at = ")
        .push_bind(now + request.ttl_ms)
        .push(" WHERE (node_id = ")
        .push_bind(request.node_id.as_str())
        .push(" OR node_id IS NULL OR expires_at <= ")
        .push_bind(now)
        .push(") AND shard IN (");
    push_shards(&mut query, &request.want);
    query.push(") RETURNING shard, epoch");
    let mut held = Vec::with_capacity(request.want.len());
    for row in query
        .build()
        .fetch_all(&mut **transaction)
        .await
        .map_err(database(OPERATION))?
    {
        let shard: i64 = row.try_get("shard").map_err(database(OPERATION))?;
        held.push(HeldLease {
            shard: u16::try_from(shard).unwrap_or_default(),
            epoch: row.try_get("epoch").map_err(database(OPERATION))?,
            taken_over: !renewing.contains(&shard),
        });
    }
    held.sort_by_key(|lease| lease.shard);
    let taken: Vec<u16> = held
        .iter()
        .filter(|lease| lease.taken_over)
        .map(|lease| lease.shard)
        .collect();
    if !taken.is_empty() {
        let mut query = QueryBuilder::<Db>::new(
            "UPDATE messages SET lease_until = NULL \
             WHERE status IN ('accepted', 'queued', 'deferred') AND lease_until IS NOT NULL AND shard IN (",
        );
        push_shards(&mut query, &taken);
        query.push(")");
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    }
    Ok(held)
}

/// A node leaving: its leases end now and its row goes, so the others take over at once.
pub(super) async fn leave(transaction: &mut Transaction<'_, Db>, node_id: &str) -> Result<()> {
    const OPERATION: &str = "leave the cluster";
    let now = database_now(&mut **transaction).await?;
    sqlx::query("UPDATE shard_leases SET expires_at = $1 WHERE node_id = $2 AND expires_at > $1")
        .bind(now)
        .bind(node_id)
        .execute(&mut **transaction)
        .await
        .map_err(database(OPERATION))?;
    sqlx::query("DELETE FROM cluster_nodes WHERE id = $1")
        .bind(node_id)
        .execute(&mut **transaction)
        .await
        .map_err(database(OPERATION))?;
    Ok(())
}

/// Applies the transitions of messages whose shard this node still holds at the epoch it
/// believes (`epochs`), checked in the same transaction as the write (PostgreSQL also locks
/// the lease rows until the commit, so a takeover waits for it). Answers the messages refused.
pub(super) async fn record_fenced(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut super::stats::Tally,
    transitions: &[Transition],
    shards: &[u16],
    node_id: &str,
    epochs: &[(u16, i64)],
) -> Result<Vec<MessageId>> {
    const OPERATION: &str = "record fenced transitions";
    let mut wanted: Vec<u16> = shards.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let believed: HashMap<u16, i64> = epochs.iter().copied().collect();
    let mut valid: HashSet<u16> = HashSet::with_capacity(wanted.len());
    let now = database_now(&mut **transaction).await?;
    for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("SELECT shard, epoch FROM shard_leases WHERE node_id = ");
        query
            .push_bind(node_id)
            .push(" AND expires_at > ")
            .push_bind(now)
            .push(" AND shard IN (");
        push_shards(&mut query, chunk);
        query.push(")").push(dialect::FOR_SHARE);
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            let shard = u16::try_from(row.try_get::<i64, _>("shard").map_err(database(OPERATION))?).unwrap_or_default();
            let epoch: i64 = row.try_get("epoch").map_err(database(OPERATION))?;
            if believed.get(&shard) == Some(&epoch) {
                valid.insert(shard);
            }
        }
    }
    let mut allowed = Vec::with_capacity(transitions.len());
    let mut refused = Vec::new();
    for (transition, shard) in transitions.iter().zip(shards) {
        if valid.contains(shard) {
            allowed.push(transition.clone());
        } else if !refused.contains(&transition.id) {
            refused.push(transition.id);
        }
    }
    if !allowed.is_empty() {
        apply_transitions(transaction, tally, &allowed).await?;
    }
    Ok(refused)
}

/// Notes that an admin changed `kind` (plugins, templates, tokens): other nodes reload it.
pub(super) async fn note_change(transaction: &mut Transaction<'_, Db>, kind: &str, at_ms: i64) -> Result<()> {
    sqlx::query("INSERT INTO config_changes (kind, at) VALUES ($1, $2)")
        .bind(kind)
        .bind(at_ms)
        .execute(&mut **transaction)
        .await
        .map_err(database("note a config change"))?;
    Ok(())
}

/// The changes noted at or after `since_ms`: sequence number, kind, time.
pub(super) async fn changes_since(readers: &DbPool, since_ms: i64) -> Result<Vec<(i64, String, i64)>> {
    sqlx::query_as("SELECT seq, kind, at FROM config_changes WHERE at >= $1 ORDER BY seq")
        .bind(since_ms)
        .fetch_all(readers)
        .await
        .map_err(database("read config changes"))
}

/// Nodes and leases as they stand, with the database's time to age them by.
pub(super) async fn snapshot(readers: &DbPool) -> Result<ClusterSnapshot> {
    let mut connection = readers.acquire().await.map_err(database("read the cluster"))?;
    read_snapshot(&mut connection).await
}

async fn read_snapshot(connection: &mut super::DbConnection) -> Result<ClusterSnapshot> {
    const OPERATION: &str = "read the cluster";
    let now_ms = database_now(&mut *connection).await?;
    let nodes = sqlx::query("SELECT id, address, started_at, heartbeat_at FROM cluster_nodes ORDER BY id")
        .fetch_all(&mut *connection)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| node_from_row(row, OPERATION))
        .collect::<Result<Vec<_>>>()?;
    let leases = sqlx::query("SELECT shard, node_id, epoch, acquired_at, expires_at FROM shard_leases ORDER BY shard")
        .fetch_all(&mut *connection)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| {
            Ok(LeaseRow {
                shard: u16::try_from(row.try_get::<i64, _>("shard").map_err(database(OPERATION))?).unwrap_or_default(),
                node_id: row.try_get("node_id").map_err(database(OPERATION))?,
                epoch: row.try_get("epoch").map_err(database(OPERATION))?,
                acquired_at_ms: row.try_get("acquired_at").map_err(database(OPERATION))?,
                expires_at_ms: row.try_get("expires_at").map_err(database(OPERATION))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ClusterSnapshot { now_ms, nodes, leases })
}
