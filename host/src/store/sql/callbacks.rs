//! SQL of callbacks to the business on SQLite: subscribing new messages, the outbox rows
//! written in the same transaction as the history rows they report, the delivery task's
//! reads and outcomes, the dead-letter list and its replay, and each token's callback defaults.
//!
//! A message without a callback URL costs nothing here: the callers only come in with
//! subscribed messages, and every write is one multi-row statement per chunk.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::{Db, DbPool, DbRow, ROWS_PER_STATEMENT, audit, database, parse_text, tokens};
use crate::{
    message::{MessageId, Status},
    store::{
        AcceptOutcome, ApiToken, AuditEntry, CallbackOutcome, CallbackReplay, CallbackTarget, NewMessage,
        PendingCallback, Result, TokenCallback, TokenOutcome, TokenWrite, Transition,
    },
};

/// The history cause of an acceptance (as `insert_messages` writes it).
const ACCEPTED_CAUSE: &str = "accepted over the API";

/// Where a subscribed message's callbacks go: (recipient, url, token id).
pub(super) type Subscriptions = HashMap<MessageId, (Option<String>, String, String)>;

/// One outbox row to write.
struct NewCallback<'a> {
    message_id: MessageId,
    url: &'a str,
    token_id: &'a str,
    status: Status,
    at_ms: i64,
    cause: &'a str,
    recipient: Option<&'a str>,
    error_code: Option<i64>,
}

async fn insert(transaction: &mut Transaction<'_, Db>, rows: &[NewCallback<'_>]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO callback_outbox (delivery_id, message_id, url, token_id, status, at, cause, recipient, \
             error_code, next_at) ",
        );
        query.push_values(chunk, |mut row, callback| {
            row.push_bind(Uuid::now_v7().to_string())
                .push_bind(callback.message_id.0)
                .push_bind(callback.url)
                .push_bind(callback.token_id)
                .push_bind(callback.status.as_str())
                .push_bind(callback.at_ms)
                .push_bind(callback.cause)
                .push_bind(callback.recipient)
                .push_bind(callback.error_code)
                .push_bind(callback.at_ms);
        });
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("enqueue callbacks"))?;
    }
    Ok(())
}

/// After `insert_messages`: the newly accepted messages of `targets` keep their callback URL
/// and token, and their `accepted` callback joins the outbox. Repeats (idempotency) do not.
pub(super) async fn subscribe(
    transaction: &mut Transaction<'_, Db>,
    messages: &[NewMessage],
    outcomes: &[AcceptOutcome],
    targets: &[CallbackTarget],
) -> Result<()> {
    let by_id: HashMap<MessageId, &CallbackTarget> = targets.iter().map(|target| (target.message_id, target)).collect();
    let accepted: Vec<(&NewMessage, &CallbackTarget)> = messages
        .iter()
        .zip(outcomes)
        .filter_map(|(message, outcome)| match outcome {
            AcceptOutcome::Accepted { id } if *id == message.id => by_id.get(id).map(|target| (message, *target)),
            _ => None,
        })
        .collect();
    if accepted.is_empty() {
        return Ok(());
    }
    for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("WITH v (id, url, token) AS (");
        query.push_values(chunk, |mut row, (message, target)| {
            row.push_bind(message.id.0)
                .push_bind(target.url.as_str())
                .push_bind(target.token_id.as_str());
        });
        query.push(
            ") UPDATE messages SET callback_url = v.url, callback_token = v.token FROM v WHERE messages.id = v.id",
        );
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("subscribe callbacks"))?;
    }
    let rows: Vec<NewCallback<'_>> = accepted
        .iter()
        .map(|(message, target)| NewCallback {
            message_id: message.id,
            url: &target.url,
            token_id: &target.token_id,
            status: Status::Accepted,
            at_ms: message.at_ms,
            cause: ACCEPTED_CAUSE,
            recipient: Some(message.submission.to.as_str()),
            error_code: None,
        })
        .collect();
    insert(transaction, &rows).await
}

/// One outbox row per transition of a subscribed message, in the transitions' order (the
/// order of their history rows).
pub(super) async fn enqueue(
    transaction: &mut Transaction<'_, Db>,
    transitions: &[Transition],
    subscribed: &Subscriptions,
) -> Result<()> {
    if subscribed.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewCallback<'_>> = transitions
        .iter()
        .filter_map(|transition| {
            let (recipient, url, token_id) = subscribed.get(&transition.id)?;
            Some(NewCallback {
                message_id: transition.id,
                url,
                token_id,
                status: transition.status,
                at_ms: transition.at_ms,
                cause: &transition.cause,
                recipient: recipient.as_deref(),
                error_code: transition.changes.error_code,
            })
        })
        .collect();
    insert(transaction, &rows).await
}

/// For a history row written outside `apply_transitions` (a cancel): the message's latest
/// history row joins the outbox if the message is subscribed. One statement.
pub(super) async fn enqueue_latest(transaction: &mut Transaction<'_, Db>, id: MessageId) -> Result<()> {
    sqlx::query(
        "INSERT INTO callback_outbox (delivery_id, message_id, url, token_id, status, at, cause, recipient, \
         error_code, next_at) \
         SELECT $2, m.id, m.callback_url, m.callback_token, h.status, h.at, h.cause, m.recipient, m.error_code, h.at \
         FROM messages m JOIN message_history h ON h.message_id = m.id \
         WHERE m.id = $1 AND m.callback_url IS NOT NULL AND m.callback_token IS NOT NULL \
           AND h.seq = (SELECT MAX(seq) FROM message_history WHERE message_id = $1)",
    )
    .bind(id.0)
    .bind(Uuid::now_v7().to_string())
    .execute(&mut **transaction)
    .await
    .map_err(database("enqueue callback"))?;
    Ok(())
}

/// Creates a token, its callback defaults and its audit row.
pub(super) async fn create_token(
    transaction: &mut Transaction<'_, Db>,
    token: &ApiToken,
    callback: &TokenCallback,
    entry: &AuditEntry,
) -> Result<TokenOutcome> {
    let outcome = tokens::write(transaction, &TokenWrite::Create(token.clone()), entry).await?;
    sqlx::query("INSERT INTO token_callbacks (token_id, url, secret) VALUES ($1, $2, $3)")
        .bind(&callback.token_id)
        .bind(callback.url.as_deref())
        .bind(&callback.secret)
        .execute(&mut **transaction)
        .await
        .map_err(database("create token callback"))?;
    Ok(outcome)
}

pub(super) async fn token_callbacks(readers: &DbPool) -> Result<Vec<TokenCallback>> {
    const OPERATION: &str = "read token callbacks";
    sqlx::query("SELECT token_id, url, secret FROM token_callbacks")
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| {
            Ok(TokenCallback {
                token_id: row.try_get("token_id").map_err(database(OPERATION))?,
                url: row.try_get("url").map_err(database(OPERATION))?,
                secret: row.try_get("secret").map_err(database(OPERATION))?,
            })
        })
        .collect()
}

const COLUMNS: &str = "seq, delivery_id, message_id, url, token_id, status, at, cause, recipient, error_code, \
                       attempts, next_at, last_error, dead_at";

fn from_row(row: &DbRow, operation: &'static str) -> Result<PendingCallback> {
    let message_id: Uuid = row.try_get("message_id").map_err(database(operation))?;
    let attempts: i64 = row.try_get("attempts").map_err(database(operation))?;
    Ok(PendingCallback {
        seq: row.try_get("seq").map_err(database(operation))?,
        delivery_id: row.try_get("delivery_id").map_err(database(operation))?,
        message_id: MessageId(message_id),
        url: row.try_get("url").map_err(database(operation))?,
        token_id: row.try_get("token_id").map_err(database(operation))?,
        status: parse_text(row, "status", operation)?,
        at_ms: row.try_get("at").map_err(database(operation))?,
        cause: row.try_get("cause").map_err(database(operation))?,
        recipient: row.try_get("recipient").map_err(database(operation))?,
        error_code: row.try_get("error_code").map_err(database(operation))?,
        attempts: u32::try_from(attempts).unwrap_or_default(),
        next_at_ms: row.try_get("next_at").map_err(database(operation))?,
        last_error: row.try_get("last_error").map_err(database(operation))?,
        dead_at_ms: row.try_get("dead_at").map_err(database(operation))?,
    })
}

/// The due callbacks that head their message's queue: a later callback of a message never
/// goes before an earlier one still waiting.
pub(super) async fn due(readers: &DbPool, now_ms: i64, limit: usize) -> Result<Vec<PendingCallback>> {
    const OPERATION: &str = "due callbacks";
    let query = format!(
        "SELECT {COLUMNS} FROM callback_outbox o \
         WHERE o.dead_at IS NULL AND o.next_at <= $1 \
           AND NOT EXISTS (SELECT 1 FROM callback_outbox e \
                           WHERE e.message_id = o.message_id AND e.dead_at IS NULL AND e.seq < o.seq) \
         ORDER BY o.seq LIMIT $2"
    );
    sqlx::query(&query)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| from_row(row, OPERATION))
        .collect()
}

pub(super) async fn next_due(readers: &DbPool) -> Result<Option<i64>> {
    // Only heads count: a later callback waits for its message's earlier one, whatever its own time.
    sqlx::query_scalar(
        "SELECT MIN(o.next_at) FROM callback_outbox o WHERE o.dead_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM callback_outbox e \
                         WHERE e.message_id = o.message_id AND e.dead_at IS NULL AND e.seq < o.seq)",
    )
    .fetch_one(readers)
    .await
    .map_err(database("next callback due"))
}

pub(super) async fn dead(readers: &DbPool, after_seq: Option<i64>, limit: usize) -> Result<Vec<PendingCallback>> {
    const OPERATION: &str = "dead callbacks";
    let query =
        format!("SELECT {COLUMNS} FROM callback_outbox WHERE dead_at IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2");
    sqlx::query(&query)
        .bind(after_seq.unwrap_or(0))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| from_row(row, OPERATION))
        .collect()
}

/// A failed attempt to record: (seq, attempts, next_at, dead_at, error).
type FailedRow<'a> = (i64, i64, Option<i64>, Option<i64>, &'a str);

/// Delivered rows leave; the others get their attempts, next time or dead time, and error.
pub(super) async fn record(transaction: &mut Transaction<'_, Db>, outcomes: &[CallbackOutcome]) -> Result<()> {
    let delivered: Vec<i64> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            CallbackOutcome::Delivered { seq } => Some(*seq),
            _ => None,
        })
        .collect();
    for chunk in delivered.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("DELETE FROM callback_outbox WHERE seq IN (");
        let mut list = query.separated(", ");
        for seq in chunk {
            list.push_bind(*seq);
        }
        query.push(")");
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("record delivered callbacks"))?;
    }
    let failed: Vec<FailedRow<'_>> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            CallbackOutcome::Delivered { .. } => None,
            CallbackOutcome::Retry {
                seq,
                attempts,
                next_at_ms,
                error,
            } => Some((*seq, i64::from(*attempts), Some(*next_at_ms), None, error.as_str())),
            CallbackOutcome::Dead {
                seq,
                attempts,
                at_ms,
                error,
            } => Some((*seq, i64::from(*attempts), None, Some(*at_ms), error.as_str())),
        })
        .collect();
    for chunk in failed.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("WITH v (seq, attempts, next_at, dead_at, error) AS (");
        query.push_values(chunk, |mut row, (seq, attempts, next_at, dead_at, error)| {
            row.push_bind(*seq)
                .push_bind(*attempts)
                .push_bind(*next_at)
                .push_bind(*dead_at)
                .push_bind(*error);
        });
        query.push(
            ") UPDATE callback_outbox SET attempts = v.attempts, \
               next_at = COALESCE(v.next_at, callback_outbox.next_at), dead_at = v.dead_at, last_error = v.error \
             FROM v WHERE callback_outbox.seq = v.seq",
        );
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("record failed callbacks"))?;
    }
    Ok(())
}

/// Dead callbacks back in the queue, due now with their attempts reset; and the audit row.
pub(super) async fn replay(
    transaction: &mut Transaction<'_, Db>,
    which: &CallbackReplay,
    now_ms: i64,
    entry: &AuditEntry,
) -> Result<u64> {
    const OPERATION: &str = "replay callbacks";
    const SET: &str = "UPDATE callback_outbox SET dead_at = NULL, attempts = 0, last_error = NULL, next_at = ";
    let mut replayed = 0;
    match which {
        CallbackReplay::All => {
            let mut query = QueryBuilder::<Db>::new(SET);
            query.push_bind(now_ms).push(" WHERE dead_at IS NOT NULL");
            replayed += query
                .build()
                .execute(&mut **transaction)
                .await
                .map_err(database(OPERATION))?
                .rows_affected();
        }
        CallbackReplay::Ids(ids) => {
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::<Db>::new(SET);
                query
                    .push_bind(now_ms)
                    .push(" WHERE dead_at IS NOT NULL AND delivery_id IN (");
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                query.push(")");
                replayed += query
                    .build()
                    .execute(&mut **transaction)
                    .await
                    .map_err(database(OPERATION))?
                    .rows_affected();
            }
        }
    }
    audit::insert(transaction, std::slice::from_ref(entry)).await?;
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        message::{Category, Content, PhoneNumber, Priority, Submission, content::TextBody},
        store::{Changes, Store},
    };

    use super::super::fresh;

    use super::super::readers_of as readers;

    async fn outbox_rows(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM callback_outbox")
            .fetch_one(readers(store))
            .await
            .unwrap()
    }

    fn message(to: &str, at_ms: i64) -> NewMessage {
        let submission = Submission {
            to: PhoneNumber::parse(to).unwrap(),
            channel: crate::message::Channel::Whatsapp,
            category: Category::Utility,
            priority: Priority::default_for(Category::Utility),
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

    fn target(id: MessageId) -> CallbackTarget {
        CallbackTarget {
            message_id: id,
            url: "https://hooks.example.com/wasp".into(),
            token_id: "bootstrap".into(),
        }
    }

    fn transition(id: MessageId, status: Status, at_ms: i64) -> Transition {
        Transition {
            id,
            status,
            at_ms,
            cause: format!("to {status}"),
            changes: Changes {
                error_code: (status == Status::Failed).then_some(131_026),
                ..Changes::default()
            },
        }
    }

    #[tokio::test]
    async fn the_outbox_is_written_with_the_transitions_of_subscribed_messages_only() {
        let (store, _directory) = fresh().await;
        let with = message("+6591230001", 1_000);
        let without = message("+6591230002", 1_000);
        let (with_id, without_id) = (with.id, without.id);
        store
            .accept_with_callbacks(vec![with, without], None, vec![target(with_id)])
            .await
            .unwrap();
        assert_eq!(
            outbox_rows(&store).await,
            1,
            "the accepted callback of the subscribed message"
        );
        store
            .record(vec![
                transition(with_id, Status::Queued, 1_001),
                transition(without_id, Status::Queued, 1_001),
                transition(with_id, Status::Sending, 1_002),
                transition(with_id, Status::Failed, 1_003),
            ])
            .await
            .unwrap();
        assert_eq!(outbox_rows(&store).await, 4);

        // Only the head of the message's queue is due: its callbacks go in order.
        let due = store.due_callbacks(10_000, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].message_id, due[0].status), (with_id, Status::Accepted));
        assert_eq!(due[0].recipient.as_deref(), Some("+6591230001"));
        let mut seen = Vec::new();
        loop {
            let due = store.due_callbacks(10_000, 10).await.unwrap();
            let Some(head) = due.first() else { break };
            assert_eq!(due.len(), 1);
            seen.push(head.status);
            if head.status == Status::Failed {
                assert_eq!(head.error_code, Some(131_026));
                assert_eq!(head.cause, "to failed");
            }
            store
                .record_callbacks(vec![CallbackOutcome::Delivered { seq: head.seq }])
                .await
                .unwrap();
        }
        assert_eq!(
            seen,
            [Status::Accepted, Status::Queued, Status::Sending, Status::Failed]
        );
        assert_eq!(outbox_rows(&store).await, 0);
    }

    #[tokio::test]
    async fn a_cancel_of_a_subscribed_message_is_called_back() {
        let (store, _directory) = fresh().await;
        let new = message("+6591230003", 1_000);
        let id = new.id;
        store
            .accept_with_callbacks(vec![new], None, vec![target(id)])
            .await
            .unwrap();
        store.cancel(id, 2_000).await.unwrap();
        let due = store.due_callbacks(10_000, 10).await.unwrap();
        store
            .record_callbacks(vec![CallbackOutcome::Delivered { seq: due[0].seq }])
            .await
            .unwrap();
        let due = store.due_callbacks(10_000, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].status, due[0].at_ms), (Status::Cancelled, 2_000));
    }

    #[tokio::test]
    async fn retries_wait_dead_callbacks_are_listed_and_replays_requeue_them() {
        let (store, _directory) = fresh().await;
        let new = message("+6591230004", 1_000);
        let id = new.id;
        store
            .accept_with_callbacks(vec![new], None, vec![target(id)])
            .await
            .unwrap();
        store.record(vec![transition(id, Status::Queued, 1_001)]).await.unwrap();
        let head = store.due_callbacks(1_000, 10).await.unwrap().remove(0);
        store
            .record_callbacks(vec![CallbackOutcome::Retry {
                seq: head.seq,
                attempts: 1,
                next_at_ms: 5_000,
                error: "answered 500".into(),
            }])
            .await
            .unwrap();
        assert!(
            store.due_callbacks(4_999, 10).await.unwrap().is_empty(),
            "waits, and holds the next back"
        );
        assert_eq!(
            store.next_callback_due_ms().await.unwrap(),
            Some(5_000),
            "the head's time"
        );
        let again = store.due_callbacks(5_000, 10).await.unwrap();
        assert_eq!((again[0].seq, again[0].attempts), (head.seq, 1));
        assert_eq!(again[0].last_error.as_deref(), Some("answered 500"));

        store
            .record_callbacks(vec![CallbackOutcome::Dead {
                seq: head.seq,
                attempts: 2,
                at_ms: 6_000,
                error: "answered 500".into(),
            }])
            .await
            .unwrap();
        // A dead callback holds nobody back.
        let next = store.due_callbacks(6_000, 10).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].status, Status::Queued);
        let dead = store.dead_callbacks(None, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].seq, dead[0].attempts, dead[0].dead_at_ms),
            (head.seq, 2, Some(6_000))
        );
        assert!(store.dead_callbacks(Some(head.seq), 10).await.unwrap().is_empty());

        let audit = crate::store::AuditEntry {
            at_ms: 7_000,
            token_id: "bootstrap".into(),
            action: "callback.replay".into(),
            target: None,
            outcome: "ok".into(),
        };
        let unknown = store
            .replay_callbacks(CallbackReplay::Ids(vec!["nope".into()]), 7_000, audit.clone())
            .await
            .unwrap();
        assert_eq!(unknown, 0);
        let replayed = store
            .replay_callbacks(CallbackReplay::Ids(vec![dead[0].delivery_id.clone()]), 7_000, audit)
            .await
            .unwrap();
        assert_eq!(replayed, 1);
        assert!(store.dead_callbacks(None, 10).await.unwrap().is_empty());
        let due = store.due_callbacks(7_000, 10).await.unwrap();
        assert_eq!((due[0].seq, due[0].attempts, due[0].dead_at_ms), (head.seq, 0, None));
    }
}
