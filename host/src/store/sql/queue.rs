//! The dispatcher's queue: which due messages a claim takes, in what order, and how
//! big the backlog is.
//!
//! A claim fills its slots by class: first a small floor for each class below critical
//! ([`FLOOR_PERCENT`] of the slots each, at least one), so bulk is never starved, then the
//! rest strictly highest class first. Within a class the oldest due message goes first. A
//! message is not taken while an earlier message of the same recipient and class is leased,
//! waiting for a retry, or due later than it: one recipient's messages of one class leave in
//! the order they were accepted, retries included. Deferred messages (a policy's decision)
//! hold nobody back. In degraded mode a claim leaves `bulk` out: it stays queued for later.
//! Called by the SQLite backend's writer only.

use sqlx::{QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::{Db, DbPool, ROWS_PER_STATEMENT, database, pending_from_row};
use crate::store::{ClaimClasses, PendingMessage, Result};

/// Share of each claim's slots offered first to each class below critical, in percent.
pub const FLOOR_PERCENT: usize = 5;

/// Priority ranks, highest class first (see `Priority::rank`).
const RANKS: [i64; 4] = [0, 1, 2, 3];

/// Slots per class taken before the strict pass: nothing for critical (it leads the strict
/// pass), a floor for each class below it.
fn floors(limit: usize) -> [usize; 4] {
    if limit < RANKS.len() {
        return [0; 4];
    }
    let floor = (limit * FLOOR_PERCENT / 100).max(1);
    [0, floor, floor, floor]
}

/// An interrupted send (found `sending`, unleased) waits this long after its attempt before it
/// goes again, so a status proving it arrived (matched by `biz_opaque_callback_data`) can come
/// first and spare the recipient a duplicate.
pub const RESEND_GRACE_MS: i64 = 2_000;

/// The shards `$1` holds a live lease on. On PostgreSQL the claim locks their lease rows
/// (`FOR UPDATE SKIP LOCKED`) until it commits: claims of one shard never run at once, a
/// takeover waits for a claim under way, and a shard whose row another node is changing is
/// passed over this time. (Message rows are not skipped when locked: skipping a recipient's
/// earlier message would let a later one out first.)
static HELD_SHARDS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT shard FROM shard_leases WHERE node_id = $1 AND expires_at > {now}{lock}",
        now = super::dialect::NOW_MS,
        lock = super::dialect::FOR_UPDATE_SKIP_LOCKED,
    )
});

/// Due messages of one class, in queue order, among the shards listed in `$6`.
static CANDIDATES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT m.id FROM messages AS m \
         WHERE m.status IN ('accepted', 'queued', 'deferred', 'sending') \
           AND m.priority_rank = $1 AND m.due_at <= $2 AND (m.lease_until IS NULL OR m.lease_until < $2) \
           AND (m.status <> 'sending' OR m.updated_at <= $5) \
           AND {in_shards} \
           AND NOT EXISTS (SELECT 1 FROM messages AS e \
               WHERE e.recipient = m.recipient AND e.priority_rank = m.priority_rank AND e.id < m.id \
                 AND e.status IN ('accepted', 'queued', 'deferred', 'sending') AND e.status <> 'deferred' \
                 AND (e.due_at > $2 OR e.lease_until >= $2 OR e.due_at > m.due_at \
                      OR (e.status = 'sending' AND e.updated_at > $5))) \
         ORDER BY m.due_at, m.id LIMIT $3 OFFSET $4",
        in_shards = super::dialect::SHARD_IN_LIST,
    )
});

async fn candidates(
    transaction: &mut Transaction<'_, Db>,
    rank: i64,
    now_ms: i64,
    (limit, offset): (usize, usize),
    shards: &super::dialect::ShardList,
) -> Result<Vec<Uuid>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&CANDIDATES)
        .bind(rank)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(now_ms - RESEND_GRACE_MS)
        .bind(shards)
        .fetch_all(&mut **transaction)
        .await
        .map_err(database("claim due messages"))?;
    rows.iter()
        .map(|row| row.try_get("id").map_err(database("claim due messages")))
        .collect()
}

/// Takes up to `limit` due messages of `classes` of the shards `node_id` holds under a lease
/// until `lease_until_ms`, in queue order.
pub(super) async fn claim(
    transaction: &mut Transaction<'_, Db>,
    now_ms: i64,
    limit: usize,
    lease_until_ms: i64,
    node_id: &str,
    classes: ClaimClasses,
) -> Result<Vec<PendingMessage>> {
    const OPERATION: &str = "claim due messages";
    let held: Vec<i64> = sqlx::query_scalar(&HELD_SHARDS)
        .bind(node_id)
        .fetch_all(&mut **transaction)
        .await
        .map_err(database(OPERATION))?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let shards = super::dialect::shard_list(held);
    let ranks = match classes {
        ClaimClasses::All => &RANKS[..],
        ClaimClasses::AllButBulk => &RANKS[..RANKS.len() - 1],
    };
    let floors = floors(limit);
    let mut taken = [0usize; 4];
    let mut ids: Vec<Uuid> = Vec::with_capacity(limit);
    for (index, rank) in ranks.iter().enumerate() {
        let found = candidates(transaction, *rank, now_ms, (floors[index], 0), &shards).await?;
        taken[index] = found.len();
        ids.extend(found);
    }
    for (index, rank) in ranks.iter().enumerate() {
        let room = limit.saturating_sub(ids.len());
        if room == 0 {
            break;
        }
        let found = candidates(transaction, *rank, now_ms, (room, taken[index]), &shards).await?;
        taken[index] += found.len();
        ids.extend(found);
    }

    let mut claimed = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("UPDATE messages SET lease_until = ");
        query.push_bind(lease_until_ms).push(" WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(") RETURNING *");
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            let due_at: i64 = row.try_get("due_at").map_err(database(OPERATION))?;
            let rank: i64 = row.try_get("priority_rank").map_err(database(OPERATION))?;
            claimed.push(((rank, due_at), pending_from_row(&row, OPERATION)?));
        }
    }
    // RETURNING has no order: restore the queue's.
    claimed.sort_by(|(left_key, left), (right_key, right)| left_key.cmp(right_key).then(left.id.cmp(&right.id)));
    Ok(claimed.into_iter().map(|(_, message)| message).collect())
}

/// Messages not yet sent upstream nor ended (the backlog the API's backpressure bounds), per
/// shard and priority class, in one scan; pairs with none left out.
pub(super) async fn pending(readers: &DbPool) -> Result<Vec<(u16, String, u64)>> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT shard, priority, COUNT(*) FROM messages WHERE status IN ('accepted', 'queued', 'deferred', 'sending') \
         GROUP BY shard, priority",
    )
    .fetch_all(readers)
    .await
    .map_err(database("count pending messages"))?;
    Ok(rows
        .into_iter()
        .map(|(shard, priority, count)| {
            (
                u16::try_from(shard).unwrap_or_default(),
                priority,
                u64::try_from(count).unwrap_or_default(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::floors;
    use crate::{
        message::{Category, Content, MessageId, PhoneNumber, Priority, Status, Submission, content::TextBody},
        store::{Changes, NewMessage, Store, Transition},
    };

    #[test]
    fn every_class_below_critical_gets_a_floor() {
        assert_eq!(floors(2), [0, 0, 0, 0]);
        assert_eq!(floors(4), [0, 1, 1, 1]);
        assert_eq!(floors(512), [0, 25, 25, 25]);
    }

    use super::super::fresh;

    fn message(to: &str, priority: Priority, at_ms: i64) -> NewMessage {
        let submission = Submission {
            to: PhoneNumber::parse(to).unwrap(),
            channel: crate::message::Channel::Whatsapp,
            category: Category::Utility,
            priority,
            idempotency_key: None,
            tags: Vec::new(),
            content: Content::Text {
                text: TextBody {
                    body: "hi".into(),
                    preview_url: false,
                },
            },
        };
        NewMessage {
            id: MessageId::new(),
            shard: submission.to.shard(256),
            request_hash: String::new(),
            submission,
            at_ms,
            expires_at_ms: None,
            sensitive: false,
        }
    }

    async fn accept(store: &Store, messages: Vec<NewMessage>) -> Vec<MessageId> {
        let ids = messages.iter().map(|message| message.id).collect();
        store.accept(messages).await.unwrap();
        ids
    }

    #[tokio::test]
    async fn a_later_message_waits_while_an_earlier_one_of_its_recipient_and_class_is_out() {
        let (store, _directory) = fresh().await;
        let ids = accept(
            &store,
            vec![
                message("+6591234567", Priority::High, 1_000),
                message("+6591234567", Priority::High, 1_001),
                message("+6591234567", Priority::Critical, 1_002),
                message("+6591234999", Priority::High, 1_003),
            ],
        )
        .await;
        // The first is leased (being sent): the second of its class waits; another class and
        // another recipient go.
        let first = store
            .claim_due(2_000, 1, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap();
        assert_eq!(
            first.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![ids[2]],
            "critical leads"
        );
        let second = store
            .claim_due(2_000, 1, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap();
        assert_eq!(second[0].id, ids[0]);
        let rest: Vec<MessageId> = store
            .claim_due(2_000, 10, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(rest, vec![ids[3]]);

        // The first goes back for a retry at 5,000: the second still waits, then both go in order.
        store
            .record(vec![Transition {
                id: ids[0],
                status: Status::Queued,
                at_ms: 2_100,
                cause: "retry".into(),
                changes: Changes {
                    due_at_ms: Some(5_000),
                    ..Changes::default()
                },
            }])
            .await
            .unwrap();
        assert!(
            store
                .claim_due(3_000, 10, 60_000, crate::store::TEST_NODE)
                .await
                .unwrap()
                .is_empty()
        );
        let both: Vec<MessageId> = store
            .claim_due(5_000, 10, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            both,
            vec![ids[0]],
            "the later one waits while the earlier is due later than it"
        );
        let pending: u64 = store
            .pending_by_shard()
            .await
            .unwrap()
            .iter()
            .map(|(_, count)| count)
            .sum();
        assert_eq!(pending, 4);
    }

    #[tokio::test]
    async fn degraded_mode_leaves_bulk_queued_and_takes_the_rest() {
        let (store, _directory) = fresh().await;
        let ids = accept(
            &store,
            vec![
                message("+6598760001", Priority::Bulk, 500),
                message("+6598760002", Priority::Normal, 600),
                message("+6598760003", Priority::Critical, 700),
            ],
        )
        .await;
        let claimed: Vec<MessageId> = store
            .claim_due_classes(
                2_000,
                10,
                60_000,
                crate::store::TEST_NODE,
                crate::store::ClaimClasses::AllButBulk,
            )
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(claimed, vec![ids[2], ids[1]], "no bulk, even with room for it");
        // Back to normal: the bulk message is still there, and goes.
        let rest = store
            .claim_due(2_000, 10, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap();
        assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0]]);
    }

    #[tokio::test]
    async fn bulk_gets_its_floor_under_a_full_critical_queue() {
        let (store, _directory) = fresh().await;
        let mut messages: Vec<NewMessage> = (0..50)
            .map(|index| message(&format!("+65912{index:05}"), Priority::Critical, 1_000))
            .collect();
        messages.push(message("+6598765432", Priority::Bulk, 500));
        let ids = accept(&store, messages).await;
        let claimed = store
            .claim_due(2_000, 20, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 20);
        assert!(claimed.iter().any(|m| m.id == ids[50]), "bulk is never starved");
        assert_eq!(claimed.iter().filter(|m| m.priority == Priority::Critical).count(), 19);
        assert_eq!(
            claimed[0].priority,
            Priority::Critical,
            "critical goes first within the claim"
        );
    }
}
