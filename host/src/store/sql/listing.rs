//! Listing and cancelling messages on SQLite: `GET /v1/messages` and
//! `POST /v1/messages/{id}/cancel`.
//!
//! A listing walks the primary key newest first (ids are UUIDv7, so by acceptance time):
//! the cursor and `since`/`until` become bounds on the key, and the other filters (status,
//! category, recipient, tag) are checked on the rows walked. No index beyond the key: an
//! index on `(recipient, id)` puts each accepted message on a page of its own, so a group
//! commit writes about one index page per message (measured with 300,000 messages to 20,000
//! recipients in commits of 500: an insert went from about 14 to 46 µs a row, on every accept,
//! for the sake of an admin query). Instead each page examines at most [`SCAN_ROWS`] messages
//! (about 8 ms) and, if it found too few, hands back a cursor where it stopped: a filter that
//! matches little costs a few milliseconds a page, never a scan of the whole table in one
//! request. `since`/`until` narrow the stretch walked.
//!
//! A cancel is one conditional `UPDATE` in the writer: it wins only while the message is not
//! sent and not leased, exactly the rows a claim may take, so a cancel and a claim never both
//! win. Called by the SQLite backend only.

use sqlx::{QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::{Db, DbPool, database, insert_history, parse_json, parse_text};
use crate::{
    message::{MessageId, Status},
    store::{CancelOutcome, Changes, MessageFilter, MessagePage, MessageSummary, Result, Transition},
};

/// Most messages one page examines when it filters on more than the key.
pub const SCAN_ROWS: usize = 50_000;

/// How far a message's creation time may lie from the time in its id (both are read at
/// acceptance, moments apart): `since`/`until` bound the key this much wider, and
/// `created_at` decides exactly.
const ID_CLOCK_SLACK_MS: i64 = 60_000;

/// What a cancel writes into the history and `reason`.
pub const CANCEL_CAUSE: &str = "cancelled over the API";

/// The smallest UUIDv7 of millisecond `ms`: every id made at or after `ms` sorts at or after it.
fn first_id_at(ms: i64) -> Uuid {
    let ms = u128::try_from(ms.clamp(0, (1 << 48) - 1)).unwrap_or_default();
    Uuid::from_u128(ms << 80)
}

/// The key range a filter allows: `[lower, upper)`.
fn key_bounds(filter: &MessageFilter) -> (Option<Uuid>, Option<Uuid>) {
    let lower = filter
        .since_ms
        .map(|since| first_id_at(since.saturating_sub(ID_CLOCK_SLACK_MS)));
    let by_time = filter
        .until_ms
        .map(|until| first_id_at(until.saturating_add(ID_CLOCK_SLACK_MS)));
    let upper = match (filter.before.map(|id| id.0), by_time) {
        (Some(cursor), Some(time)) => Some(cursor.min(time)),
        (cursor, time) => cursor.or(time),
    };
    (lower, upper)
}

fn push_key_bounds(query: &mut QueryBuilder<'_, Db>, lower: Option<Uuid>, upper: Option<Uuid>) {
    if let Some(lower) = lower {
        query.push(" AND id >= ").push_bind(lower);
    }
    if let Some(upper) = upper {
        query.push(" AND id < ").push_bind(upper);
    }
}

/// Whether the filter checks anything on the rows themselves (beyond the key range).
fn filters_rows(filter: &MessageFilter) -> bool {
    !filter.statuses.is_empty() || filter.category.is_some() || filter.to.is_some() || filter.tag.is_some()
}

pub(super) async fn list(readers: &DbPool, filter: &MessageFilter) -> Result<MessagePage> {
    list_scanning(readers, filter, SCAN_ROWS).await
}

async fn list_scanning(readers: &DbPool, filter: &MessageFilter, scan_rows: usize) -> Result<MessagePage> {
    const OPERATION: &str = "list messages";
    let limit = filter.limit.max(1);
    let (lower, upper) = key_bounds(filter);

    // The oldest message this page may examine: `scan_rows` into the key range.
    let floor: Option<Uuid> = if filters_rows(filter) {
        let mut query = QueryBuilder::<Db>::new("SELECT id FROM messages WHERE 1 = 1");
        push_key_bounds(&mut query, lower, upper);
        query
            .push(" ORDER BY id DESC LIMIT 1 OFFSET ")
            .push_bind(i64::try_from(scan_rows.max(1) - 1).unwrap_or(i64::MAX));
        query
            .build()
            .fetch_optional(readers)
            .await
            .map_err(database(OPERATION))?
            .map(|row| row.try_get("id"))
            .transpose()
            .map_err(database(OPERATION))?
    } else {
        None
    };

    let mut query = QueryBuilder::<Db>::new(
        "SELECT id, recipient, category, priority, channel, status, tags, reason, error_code, created_at, \
         updated_at FROM messages WHERE 1 = 1",
    );
    push_key_bounds(&mut query, floor.max(lower), upper);
    if let Some(since) = filter.since_ms {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until_ms {
        query.push(" AND created_at < ").push_bind(until);
    }
    if !filter.statuses.is_empty() {
        query.push(" AND status IN (");
        let mut list = query.separated(", ");
        for status in &filter.statuses {
            list.push_bind(status.as_str());
        }
        query.push(")");
    }
    if let Some(category) = filter.category {
        query.push(" AND category = ").push_bind(category.as_str());
    }
    if let Some(to) = &filter.to {
        query.push(" AND recipient = ").push_bind(to.as_str().to_owned());
    }
    if let Some(tag) = &filter.tag {
        super::dialect::push_has_tag(&mut query, tag);
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    let rows = query.build().fetch_all(readers).await.map_err(database(OPERATION))?;
    let mut messages = rows
        .iter()
        .map(|row| {
            let id: Uuid = row.try_get("id").map_err(database(OPERATION))?;
            let tags: String = row.try_get("tags").map_err(database(OPERATION))?;
            Ok(MessageSummary {
                id: MessageId(id),
                to: row.try_get("recipient").map_err(database(OPERATION))?,
                category: parse_text(row, "category", OPERATION)?,
                priority: parse_text(row, "priority", OPERATION)?,
                channel: parse_text(row, "channel", OPERATION)?,
                status: parse_text(row, "status", OPERATION)?,
                tags: parse_json(&tags, OPERATION)?,
                reason: row.try_get("reason").map_err(database(OPERATION))?,
                error_code: row.try_get("error_code").map_err(database(OPERATION))?,
                created_at_ms: row.try_get("created_at").map_err(database(OPERATION))?,
                updated_at_ms: row.try_get("updated_at").map_err(database(OPERATION))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next_cursor = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|message| message.id)
    } else {
        // Too few found within the examined stretch: the next page goes on below it.
        floor
            .filter(|floor| lower.is_none_or(|lower| *floor > lower))
            .map(MessageId)
    };
    Ok(MessagePage { messages, next_cursor })
}

/// Ends the message `cancelled` if it is accepted, queued or deferred and not leased by a
/// dispatch worker (the rows a claim may take, so a claim and a cancel never both win).
pub(super) async fn cancel(transaction: &mut Transaction<'_, Db>, id: MessageId, now_ms: i64) -> Result<CancelOutcome> {
    const OPERATION: &str = "cancel message";
    // The class comes back with the update (no extra read), for the status counter.
    let cancelled = sqlx::query(
        "UPDATE messages SET status = 'cancelled', reason = $3, updated_at = $2, lease_until = NULL \
         WHERE id = $1 AND status IN ('accepted', 'queued', 'deferred') \
           AND (lease_until IS NULL OR lease_until < $2) \
         RETURNING category, priority",
    )
    .bind(id.0)
    .bind(now_ms)
    .bind(CANCEL_CAUSE)
    .fetch_optional(&mut **transaction)
    .await
    .map_err(database(OPERATION))?;
    if let Some(class) = cancelled {
        // Counted inside the group commit: a batch that then fails to commit over-counts by
        // its cancels, which the writer's error log shows.
        crate::telemetry::metrics::status(
            Status::Cancelled,
            parse_text(&class, "category", OPERATION)?,
            parse_text(&class, "priority", OPERATION)?,
        );
        insert_history(
            transaction,
            &[Transition {
                id,
                status: Status::Cancelled,
                at_ms: now_ms,
                cause: CANCEL_CAUSE.into(),
                changes: Changes::default(),
            }],
        )
        .await?;
        return Ok(CancelOutcome::Cancelled);
    }
    let Some(row) = sqlx::query("SELECT status, lease_until FROM messages WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut **transaction)
        .await
        .map_err(database(OPERATION))?
    else {
        return Ok(CancelOutcome::UnknownMessage);
    };
    let status: Status = parse_text(&row, "status", OPERATION)?;
    let lease_until: Option<i64> = row.try_get("lease_until").map_err(database(OPERATION))?;
    Ok(CancelOutcome::TooLate {
        status,
        leased: status.is_pending() && lease_until.is_some_and(|until| until >= now_ms),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{
        message::{Category, Content, PhoneNumber, Priority, Submission, content::TextBody},
        store::{NewMessage, Store},
    };

    use super::super::fresh;

    use super::super::readers_of as readers;

    fn message(to: &str, category: Category, tags: &[&str], at_ms: i64) -> NewMessage {
        let submission = Submission {
            to: PhoneNumber::parse(to).unwrap(),
            channel: crate::message::Channel::Whatsapp,
            category,
            priority: Priority::default_for(category),
            idempotency_key: None,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            content: Content::Text {
                text: TextBody {
                    body: "hi".into(),
                    preview_url: false,
                },
            },
        };
        NewMessage {
            // Ids in order of `at_ms`, as acceptance makes them.
            id: MessageId(uuid::Uuid::from_u128(
                (u128::try_from(at_ms).unwrap() << 80) | (0x7 << 76) | u128::from(rand::random::<u64>()),
            )),
            shard: submission.to.shard(256),
            request_hash: String::new(),
            submission,
            at_ms,
            expires_at_ms: None,
            sensitive: false,
        }
    }

    fn filter(limit: usize) -> MessageFilter {
        MessageFilter {
            limit,
            ..MessageFilter::default()
        }
    }

    fn page_ids(page: &MessagePage) -> Vec<MessageId> {
        page.messages.iter().map(|message| message.id).collect()
    }

    /// Ten messages, one a second from t = 1,000 s: even ones to A (utility, tag `order`),
    /// odd ones to B (marketing, tags `promo` and `sale`). Returns their ids, oldest first.
    async fn seed(store: &Store) -> Vec<MessageId> {
        let messages: Vec<NewMessage> = (0..10)
            .map(|index| {
                let at_ms = 1_000_000 + index * 1_000;
                if index % 2 == 0 {
                    message("+6591110000", Category::Utility, &["order"], at_ms)
                } else {
                    message("+6592220000", Category::Marketing, &["promo", "sale"], at_ms)
                }
            })
            .collect();
        let ids = messages.iter().map(|message| message.id).collect();
        store.accept(messages).await.unwrap();
        ids
    }

    #[tokio::test]
    async fn each_filter_narrows_the_list_newest_first() {
        let (store, _directory) = fresh().await;
        let ids = seed(&store).await;
        let newest_first: Vec<MessageId> = ids.iter().rev().copied().collect();

        let all = store.list_messages(&filter(50)).await.unwrap();
        assert_eq!(page_ids(&all), newest_first);
        assert_eq!(all.next_cursor, None);
        let first = &all.messages[0];
        assert_eq!(first.to, "+6592220000");
        assert_eq!(first.status, Status::Accepted);
        assert_eq!(first.tags, vec!["promo".to_owned(), "sale".to_owned()]);
        assert_eq!(first.created_at_ms, 1_009_000);

        let to_a = store
            .list_messages(&MessageFilter {
                to: Some(PhoneNumber::parse("+6591110000").unwrap()),
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&to_a), vec![ids[8], ids[6], ids[4], ids[2], ids[0]]);

        let marketing = store
            .list_messages(&MessageFilter {
                category: Some(Category::Marketing),
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&marketing), vec![ids[9], ids[7], ids[5], ids[3], ids[1]]);

        let sale = store
            .list_messages(&MessageFilter {
                tag: Some("sale".into()),
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&sale), page_ids(&marketing));
        let part_of_a_tag = store
            .list_messages(&MessageFilter {
                tag: Some("sal".into()),
                ..filter(50)
            })
            .await
            .unwrap();
        assert!(part_of_a_tag.messages.is_empty());

        // since is inclusive, until exclusive, both on the creation time.
        let window = store
            .list_messages(&MessageFilter {
                since_ms: Some(1_003_000),
                until_ms: Some(1_006_000),
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&window), vec![ids[5], ids[4], ids[3]]);

        // Statuses: cancel two, then ask for one status and for several.
        assert_eq!(store.cancel(ids[2], 2_000_000).await.unwrap(), CancelOutcome::Cancelled);
        assert_eq!(store.cancel(ids[3], 2_000_000).await.unwrap(), CancelOutcome::Cancelled);
        let cancelled = store
            .list_messages(&MessageFilter {
                statuses: vec![Status::Cancelled],
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&cancelled), vec![ids[3], ids[2]]);
        assert_eq!(cancelled.messages[0].reason.as_deref(), Some(CANCEL_CAUSE));
        let either = store
            .list_messages(&MessageFilter {
                statuses: vec![Status::Cancelled, Status::Accepted],
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(either.messages.len(), 10);

        // Filters combine.
        let combined = store
            .list_messages(&MessageFilter {
                statuses: vec![Status::Accepted],
                to: Some(PhoneNumber::parse("+6591110000").unwrap()),
                tag: Some("order".into()),
                since_ms: Some(1_001_000),
                ..filter(50)
            })
            .await
            .unwrap();
        assert_eq!(page_ids(&combined), vec![ids[8], ids[6], ids[4]]);
    }

    #[tokio::test]
    async fn pages_follow_each_other_without_duplicates_or_gaps_while_messages_arrive() {
        let (store, _directory) = fresh().await;
        let ids = seed(&store).await;
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store
                .list_messages(&MessageFilter {
                    before: cursor,
                    ..filter(3)
                })
                .await
                .unwrap();
            assert!(page.messages.len() <= 3);
            seen.extend(page_ids(&page));
            pages += 1;
            // A message accepted meanwhile is newer than any cursor: it never joins this walk.
            store
                .accept(vec![message("+6593330000", Category::Utility, &[], 5_000_000 + pages)])
                .await
                .unwrap();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 4, "3 + 3 + 3 + 1");
        assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());

        // A page that ends exactly at the last message says there is no more.
        let exact = store.list_messages(&filter(14)).await.unwrap();
        assert_eq!(exact.messages.len(), 14);
        assert_eq!(exact.next_cursor, None);
    }

    #[tokio::test]
    async fn a_sparse_filter_examines_a_bounded_stretch_per_page_and_misses_nothing() {
        let (store, _directory) = fresh().await;
        let ids = seed(&store).await;
        let only_a = MessageFilter {
            to: Some(PhoneNumber::parse("+6591110000").unwrap()),
            ..filter(2)
        };
        // Four messages examined a page: pages may be short, and the walk still finds all five.
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = list_scanning(
                readers(&store),
                &MessageFilter {
                    before: cursor,
                    ..only_a.clone()
                },
                4,
            )
            .await
            .unwrap();
            seen.extend(page_ids(&page));
            pages += 1;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, vec![ids[8], ids[6], ids[4], ids[2], ids[0]]);
        assert!(pages >= 3, "{pages} pages");
        let unique: HashSet<MessageId> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len());
    }

    #[tokio::test]
    async fn a_cancel_wins_only_before_a_claim_and_a_cancelled_message_is_never_claimed() {
        let (store, _directory) = fresh().await;
        let messages = vec![
            message("+6591110000", Category::Utility, &[], 1_000),
            message("+6592220000", Category::Utility, &[], 1_001),
            message("+6593330000", Category::Utility, &[], 1_002),
        ];
        let ids: Vec<MessageId> = messages.iter().map(|message| message.id).collect();
        store.accept(messages).await.unwrap();

        // The first is cancelled before any claim.
        assert_eq!(store.cancel(ids[0], 2_000).await.unwrap(), CancelOutcome::Cancelled);
        let view = store.message(ids[0]).await.unwrap().unwrap();
        assert_eq!(view.status, Status::Cancelled);
        assert_eq!(view.history.last().unwrap().cause, CANCEL_CAUSE);
        assert_eq!(view.reason.as_deref(), Some(CANCEL_CAUSE));
        assert_eq!(
            store.cancel(ids[0], 2_001).await.unwrap(),
            CancelOutcome::TooLate {
                status: Status::Cancelled,
                leased: false
            }
        );

        // The claim takes the other two (never the cancelled one) under a lease until 60,000.
        let claimed: HashSet<MessageId> = store
            .claim_due(2_000, 10, 60_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .iter()
            .map(|message| message.id)
            .collect();
        assert_eq!(claimed, HashSet::from([ids[1], ids[2]]));
        let pending: u64 = store
            .pending_by_shard()
            .await
            .unwrap()
            .iter()
            .map(|(_, count)| count)
            .sum();
        assert_eq!(pending, 2, "a cancelled message is not in the backlog");

        // Leased: a worker holds it, so the cancel is too late and changes nothing.
        assert_eq!(
            store.cancel(ids[1], 3_000).await.unwrap(),
            CancelOutcome::TooLate {
                status: Status::Accepted,
                leased: true
            }
        );
        assert_eq!(store.message(ids[1]).await.unwrap().unwrap().status, Status::Accepted);

        // The worker puts it back for a retry (the lease ends): now it may be cancelled, and
        // no later claim takes it.
        store
            .record(vec![Transition {
                id: ids[1],
                status: Status::Queued,
                at_ms: 3_100,
                cause: "retry".into(),
                changes: Changes {
                    due_at_ms: Some(4_000),
                    ..Changes::default()
                },
            }])
            .await
            .unwrap();
        assert_eq!(store.cancel(ids[1], 3_200).await.unwrap(), CancelOutcome::Cancelled);
        assert!(
            store
                .claim_due(100_000, 10, 200_000, crate::store::TEST_NODE)
                .await
                .unwrap()
                .iter()
                .all(|m| m.id == ids[2])
        );

        // Sending, then sent: too late either way.
        store
            .record(vec![Transition {
                id: ids[2],
                status: Status::Sending,
                at_ms: 100_001,
                cause: "sending".into(),
                changes: Changes::default(),
            }])
            .await
            .unwrap();
        assert_eq!(
            store.cancel(ids[2], 100_002).await.unwrap(),
            CancelOutcome::TooLate {
                status: Status::Sending,
                leased: true
            }
        );
        store
            .record(vec![Transition {
                id: ids[2],
                status: Status::Sent,
                at_ms: 100_003,
                cause: "sent".into(),
                changes: Changes::default(),
            }])
            .await
            .unwrap();
        assert_eq!(
            store.cancel(ids[2], 100_004).await.unwrap(),
            CancelOutcome::TooLate {
                status: Status::Sent,
                leased: false
            }
        );
        assert_eq!(
            store.cancel(MessageId::new(), 100_005).await.unwrap(),
            CancelOutcome::UnknownMessage
        );
    }

    #[test]
    fn time_bounds_widen_the_key_range_by_the_clock_slack() {
        let (lower, upper) = key_bounds(&MessageFilter {
            since_ms: Some(100_000),
            until_ms: Some(200_000),
            ..MessageFilter::default()
        });
        assert_eq!(lower, Some(first_id_at(40_000)));
        assert_eq!(upper, Some(first_id_at(260_000)));
        let made_at_since = MessageId::new();
        assert!(first_id_at(crate::store::now_ms() - ID_CLOCK_SLACK_MS) <= made_at_since.0);
        assert_eq!(first_id_at(-5), Uuid::nil());
    }
}
