//! SQL of the facts policies decide on, on SQLite: WhatsApp sends rolled up per contact, hour
//! and category (and per hour for the whole account) as sends are recorded; the sender
//! numbers' tier and quality; and the fallback of a message to another channel, done in one
//! transaction so a read that races it is never overwritten.

use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::{QueryBuilder, Row, Transaction};

use super::{Db, DbPool, ROWS_PER_STATEMENT, apply_transitions, database, insert_sealed, parse_text};
use crate::{
    message::{Category, MessageId, Quality, Status},
    store::{AcceptOutcome, Changes, Error, FallBackOutcome, NewMessage, Result, SendCounts, SenderNumber, Transition},
};

const HOUR_MS: i64 = 3_600_000;
/// Hours the rollups keep: the 7-day window.
const HOURS_KEPT: i64 = 7 * 24;

/// The last hour the rollups were pruned in; pruning runs once an hour at most.
static PRUNED_HOUR: AtomicI64 = AtomicI64::new(0);

fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS)
}

/// This process's slot of the account's hourly send counts: nodes add to their own row of the
/// hour, so their writers never wait on one another for it (the read sums the slots).
static WRITER_SLOT: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| rand::random_range(0..64));

/// Counts the messages `sent` now (Meta accepted them) into the rollups. The hour is each
/// message's `updated_at`, which the same transaction just set to the send time.
pub(super) async fn record_sends(transaction: &mut Transaction<'_, Db>, sent: &[MessageId], now_ms: i64) -> Result<()> {
    const OPERATION: &str = "count sends";
    for chunk in sent.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO contact_sends (wa_id, hour, category, count) \
             SELECT substr(recipient, 2), updated_at / 3600000, category, COUNT(*) FROM messages \
             WHERE channel = 'whatsapp' AND id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.0);
        }
        query.push(
            ") GROUP BY 1, 2, 3 \
             ON CONFLICT (wa_id, hour, category) DO UPDATE SET count = contact_sends.count + excluded.count",
        );
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;

        let mut query =
            QueryBuilder::<Db>::new("INSERT INTO account_sends (hour, slot, count) SELECT updated_at / 3600000, ");
        query.push_bind(*WRITER_SLOT).push(
            ", COUNT(*) FROM messages \
             WHERE channel = 'whatsapp' AND category != 'service' AND id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.0);
        }
        query.push(") GROUP BY 1 ON CONFLICT (hour, slot) DO UPDATE SET count = account_sends.count + excluded.count");
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    }
    let hour = hour_of(now_ms);
    if PRUNED_HOUR.swap(hour, Ordering::Relaxed) != hour {
        for statement in [
            "DELETE FROM contact_sends WHERE hour <= $1",
            "DELETE FROM account_sends WHERE hour <= $1",
        ] {
            sqlx::query(statement)
                .bind(hour - HOURS_KEPT)
                .execute(&mut **transaction)
                .await
                .map_err(database("prune send counts"))?;
        }
    }
    Ok(())
}

pub(super) async fn send_counts(
    readers: &DbPool,
    wa_ids: &[&str],
    now_ms: i64,
) -> Result<std::collections::HashMap<String, SendCounts>> {
    const OPERATION: &str = "read send counts";
    let hour = hour_of(now_ms);
    let mut counts: std::collections::HashMap<String, SendCounts> = std::collections::HashMap::new();
    for chunk in wa_ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("SELECT wa_id, category, CAST(SUM(CASE WHEN hour > ");
        query
            .push_bind(hour - 24)
            .push(" THEN count ELSE 0 END) AS BIGINT) AS day, CAST(SUM(count) AS BIGINT) AS week FROM contact_sends WHERE hour > ")
            .push_bind(hour - HOURS_KEPT)
            .push(" AND wa_id IN (");
        let mut list = query.separated(", ");
        for wa_id in chunk {
            list.push_bind(*wa_id);
        }
        query.push(") GROUP BY wa_id, category");
        for row in query.build().fetch_all(readers).await.map_err(database(OPERATION))? {
            let category: Category = parse_text(&row, "category", OPERATION)?;
            let day: i64 = row.try_get("day").map_err(database(OPERATION))?;
            let week: i64 = row.try_get("week").map_err(database(OPERATION))?;
            let entry = counts
                .entry(row.try_get("wa_id").map_err(database(OPERATION))?)
                .or_default();
            entry.last_24h.add(category, u32::try_from(day).unwrap_or(u32::MAX));
            entry.last_7d.add(category, u32::try_from(week).unwrap_or(u32::MAX));
        }
    }
    Ok(counts)
}

pub(super) async fn account_sends_24h(readers: &DbPool, now_ms: i64) -> Result<u32> {
    let total: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(count) AS BIGINT) FROM account_sends WHERE hour > $1")
        .bind(hour_of(now_ms) - 24)
        .fetch_one(readers)
        .await
        .map_err(database("read account sends"))?;
    Ok(u32::try_from(total.unwrap_or(0)).unwrap_or(u32::MAX))
}

pub(super) async fn sender_numbers(readers: &DbPool) -> Result<Vec<SenderNumber>> {
    const OPERATION: &str = "read sender numbers";
    let rows = sqlx::query("SELECT * FROM sender_numbers ORDER BY updated_at DESC")
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?;
    rows.iter()
        .map(|row| {
            let tier_limit: Option<i64> = row.try_get("tier_limit").map_err(database(OPERATION))?;
            Ok(SenderNumber {
                phone_number: row.try_get("phone_number").map_err(database(OPERATION))?,
                tier_limit: tier_limit.map(|limit| u32::try_from(limit).unwrap_or(u32::MAX)),
                quality: parse_text::<Quality>(row, "quality", OPERATION)?,
                last_event: row.try_get("last_event").map_err(database(OPERATION))?,
                source: row.try_get("source").map_err(database(OPERATION))?,
                updated_at_ms: row.try_get("updated_at").map_err(database(OPERATION))?,
            })
        })
        .collect()
}

pub(super) async fn put_sender_number(transaction: &mut Transaction<'_, Db>, number: &SenderNumber) -> Result<()> {
    sqlx::query(
        "INSERT INTO sender_numbers (phone_number, tier_limit, quality, last_event, source, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (phone_number) DO UPDATE SET
            tier_limit = excluded.tier_limit, quality = excluded.quality, last_event = excluded.last_event,
            source = excluded.source, updated_at = excluded.updated_at",
    )
    .bind(&number.phone_number)
    .bind(number.tier_limit.map(i64::from))
    .bind(number.quality.as_str())
    .bind(number.last_event.as_deref())
    .bind(&number.source)
    .bind(number.updated_at_ms)
    .execute(&mut **transaction)
    .await
    .map_err(database("write sender number"))?;
    Ok(())
}

/// Whether a message in `status` may fall back: it left over WhatsApp and was not read.
fn may_fall_back(status: Status) -> bool {
    matches!(status, Status::Sent | Status::Delivered | Status::Failed)
}

pub(super) async fn fall_back(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut super::stats::Tally,
    original: MessageId,
    follow_up: &NewMessage,
    sealed: &[Option<String>],
) -> Result<FallBackOutcome> {
    const OPERATION: &str = "fall back";
    let Some(row) = sqlx::query("SELECT status FROM messages WHERE id = $1")
        .bind(original.0)
        .fetch_optional(&mut **transaction)
        .await
        .map_err(database(OPERATION))?
    else {
        return Ok(FallBackOutcome::UnknownOriginal);
    };
    let status: Status = parse_text(&row, "status", OPERATION)?;
    if !may_fall_back(status) {
        return Ok(FallBackOutcome::Skipped { status });
    }
    let outcome = insert_sealed(transaction, tally, std::slice::from_ref(follow_up), sealed).await?;
    let id = match outcome.first() {
        Some(AcceptOutcome::Accepted { id } | AcceptOutcome::Duplicate { id } | AcceptOutcome::KeyReused { id }) => *id,
        None => {
            return Err(Error::Corrupt {
                operation: OPERATION,
                detail: format!("the fallback of message {original} was neither accepted nor found"),
            });
        }
    };
    let channel = follow_up.submission.channel;
    apply_transitions(
        transaction,
        tally,
        &[Transition {
            id: original,
            status: Status::FellBack,
            at_ms: follow_up.at_ms,
            cause: format!("fell back from {status}: sent again over {channel} as message {id}"),
            changes: Changes {
                reason: Some(format!("fell back to {channel} as message {id}")),
                ..Changes::default()
            },
        }],
    )
    .await?;
    Ok(FallBackOutcome::FellBack { follow_up: id })
}
