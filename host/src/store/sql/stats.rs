//! Receipts and rates: what each write batch moved, gathered as its statements run, turned
//! into the change feed (sent after the commit) and into per-minute rollups (written in the
//! same transaction, one multi-row upsert per table); and the reads over those rollups.
//!
//! A message is counted under the key it was accepted with (category, template, region) and
//! the sender it left from, in the minute each status happened. Steps only count forward: a
//! status that skips one (read without delivered) counts the skipped one too, a repeated or
//! backwards one counts nothing. May call nothing outside the store.

use std::collections::{BTreeMap, HashMap};

use sqlx::{QueryBuilder, Row, Transaction};

use super::{Db, DbPool, DbRow, ROWS_PER_STATEMENT, database, parse_text};
use crate::message::{Category, MessageId, Status};
use crate::store::{
    Change, Counts, Error, NewMessage, Result, STATS_PRUNE_BATCH, StatsDimension, StatsFigures, StatsGroup, StatsKey,
    StatsQuery, StatsReport, Transition,
};

pub(super) const MINUTE_MS: i64 = 60_000;

/// Upper bounds (inclusive, ms) of the latency buckets; one more bucket holds the rest.
const LATENCY_BOUNDS_MS: [i64; 14] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000,
];

/// This process's slot of the rollups: nodes add to their own rows, so their writers never
/// wait on one another for a row (reads sum the slots).
static WRITER_SLOT: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| rand::random_range(0..64));

/// What a rollup row is keyed by, besides the minute and the writer's slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    minute: i64,
    category: &'static str,
    /// '' for a message that is not a template.
    template: String,
    /// 0 when the recipient's country is not known.
    region: i64,
    /// '' until the message was sent from a known number.
    sender: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Measure {
    Delivered,
    Read,
}

impl Measure {
    fn as_str(self) -> &'static str {
        match self {
            Measure::Delivered => "delivered",
            Measure::Read => "read",
        }
    }
}

/// The columns of `messages` [`Tally::track`] reads.
pub(super) const TRACKED_COLUMNS: &str = "id, status, category, template_name, region, sender, sent_at";

/// A message the batch moved: how it was counted so far.
#[derive(Debug, Clone)]
struct Tracked {
    category: Category,
    template: Option<String>,
    region: Option<u16>,
    sender: Option<String>,
    /// The furthest delivery step already counted ([`Status::delivery_rank`]).
    rank: u8,
    sent_at_ms: Option<i64>,
}

/// What one write batch moved. Built afresh for each attempt at the batch, so a batch run
/// again after a deadlock counts once.
#[derive(Debug, Default)]
pub(super) struct Tally {
    tracked: HashMap<MessageId, Tracked>,
    changes: Vec<Change>,
    counters: BTreeMap<Key, Counts>,
    latency: BTreeMap<(Key, Measure, usize), i64>,
    failures: BTreeMap<(Key, i64), i64>,
}

/// The bucket a latency falls in.
fn latency_bucket(elapsed_ms: i64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| elapsed_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

impl Tally {
    /// The messages of `messages` that `accepted` says were newly accepted (not repeats).
    pub(super) fn accepted(&mut self, messages: &[NewMessage], accepted: impl Fn(&NewMessage) -> bool) {
        for message in messages.iter().filter(|message| accepted(message)) {
            let submission = &message.submission;
            self.tracked.insert(
                message.id,
                Tracked {
                    category: submission.category,
                    template: template_name(&submission.content).map(str::to_owned),
                    region: submission.to.country_code(),
                    sender: None,
                    rank: 0,
                    sent_at_ms: None,
                },
            );
            self.moved(message.id, Status::Accepted, message.at_ms, None, None);
        }
    }

    /// Reads how the messages of `ids` stand, for those the batch has not moved yet; before
    /// the batch moves them.
    pub(super) async fn load(&mut self, transaction: &mut Transaction<'_, Db>, ids: &[MessageId]) -> Result<()> {
        const OPERATION: &str = "read messages before their change";
        let mut unknown: Vec<MessageId> = ids
            .iter()
            .filter(|id| !self.tracked.contains_key(id))
            .copied()
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for chunk in unknown.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Db>::new(&format!("SELECT {TRACKED_COLUMNS} FROM messages WHERE id IN ("));
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            query.push(")");
            for row in query
                .build()
                .fetch_all(&mut **transaction)
                .await
                .map_err(database(OPERATION))?
            {
                self.track(&row, OPERATION)?;
            }
        }
        Ok(())
    }

    /// Takes how one message stands from a row read before the batch moves it: a row with
    /// the [`TRACKED_COLUMNS`], as the status path's own read of its messages has, so that
    /// read serves here too and [`load`](Self::load) skips them.
    pub(super) fn track(&mut self, row: &DbRow, operation: &'static str) -> Result<()> {
        let id = MessageId(row.try_get("id").map_err(database(operation))?);
        // Moved earlier in this batch: already counted from there.
        if self.tracked.contains_key(&id) {
            return Ok(());
        }
        let status: Status = parse_text(row, "status", operation)?;
        let region: Option<i64> = row.try_get("region").map_err(database(operation))?;
        self.tracked.insert(
            id,
            Tracked {
                category: parse_text(row, "category", operation)?,
                template: row.try_get("template_name").map_err(database(operation))?,
                region: region.and_then(|region| u16::try_from(region).ok()),
                sender: row.try_get("sender").map_err(database(operation))?,
                rank: status.delivery_rank(),
                sent_at_ms: row.try_get("sent_at").map_err(database(operation))?,
            },
        );
        Ok(())
    }

    /// Transitions the batch applied, in order (their messages loaded first).
    pub(super) fn transitions(&mut self, transitions: &[Transition]) {
        for transition in transitions {
            self.moved(
                transition.id,
                transition.status,
                transition.at_ms,
                transition.changes.error_code,
                transition.changes.sender.as_deref(),
            );
        }
    }

    /// One message moved to `status` at `at_ms`; a message never loaded (not in the store)
    /// is passed over.
    pub(super) fn moved(
        &mut self,
        id: MessageId,
        status: Status,
        at_ms: i64,
        error_code: Option<i64>,
        sender: Option<&str>,
    ) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if let Some(sender) = sender {
            tracked.sender = Some(sender.to_owned());
        }
        self.changes.push(Change {
            id,
            status,
            at_ms,
            category: tracked.category,
            template: tracked.template.clone(),
            region: tracked.region,
            error_code,
        });
        let key = Key {
            minute: at_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            category: tracked.category.as_str(),
            template: tracked.template.clone().unwrap_or_default(),
            region: tracked.region.map_or(0, i64::from),
            sender: tracked.sender.clone().unwrap_or_default(),
        };
        let mut samples = Vec::new();
        let counts = self.counters.entry(key.clone()).or_default();
        match status {
            Status::Accepted => counts.accepted += 1,
            Status::Sent | Status::Delivered | Status::Read => {
                let reached = status.delivery_rank();
                let from = tracked.rank.max(Status::Sending.delivery_rank());
                for step in (from + 1)..=reached {
                    match step {
                        2 => counts.sent += 1,
                        3 => counts.delivered += 1,
                        _ => counts.read += 1,
                    }
                }
                if reached > tracked.rank {
                    tracked.rank = reached;
                    match status {
                        Status::Sent => {
                            tracked.sent_at_ms.get_or_insert(at_ms);
                        }
                        Status::Delivered => samples.push(Measure::Delivered),
                        _ => samples.push(Measure::Read),
                    }
                }
            }
            Status::Failed => {
                counts.failed += 1;
                if let Some(code) = error_code {
                    *self.failures.entry((key.clone(), code)).or_default() += 1;
                }
            }
            Status::FellBack => counts.fell_back += 1,
            Status::Rejected => counts.rejected += 1,
            Status::Expired => counts.expired += 1,
            Status::Queued | Status::Deferred | Status::Sending | Status::Cancelled => {}
        }
        if status.is_final() {
            tracked.rank = tracked.rank.max(Status::Failed.delivery_rank());
        }
        // Measured from a real `sent`; a message that skipped it has no time to show.
        if let Some(sent_at_ms) = tracked.sent_at_ms {
            for measure in samples {
                let bucket = latency_bucket(at_ms.saturating_sub(sent_at_ms).max(0));
                *self.latency.entry((key.clone(), measure, bucket)).or_default() += 1;
            }
        }
    }

    /// Adds the batch's counts to the rollups: one upsert per table (per
    /// [`ROWS_PER_STATEMENT`] rows), rows in key order so concurrent writers lock alike.
    pub(super) async fn write(&self, transaction: &mut Transaction<'_, Db>) -> Result<()> {
        const OPERATION: &str = "add to the stats rollups";
        let slot = *WRITER_SLOT;
        let counters: Vec<(&Key, &Counts)> = self.counters.iter().filter(|(_, counts)| !counts.is_zero()).collect();
        for chunk in counters.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Db>::new(
                "INSERT INTO stats_minutes (minute, category, template, region, sender, slot, accepted, sent, \
                 delivered, read, failed, fell_back, rejected, expired) ",
            );
            query.push_values(chunk, |mut row, (key, counts)| {
                push_key(&mut row, key, slot);
                row.push_bind(counts.accepted)
                    .push_bind(counts.sent)
                    .push_bind(counts.delivered)
                    .push_bind(counts.read)
                    .push_bind(counts.failed)
                    .push_bind(counts.fell_back)
                    .push_bind(counts.rejected)
                    .push_bind(counts.expired);
            });
            query.push(
                " ON CONFLICT (minute, category, template, region, sender, slot) DO UPDATE SET \
                 accepted = stats_minutes.accepted + excluded.accepted, \
                 sent = stats_minutes.sent + excluded.sent, \
                 delivered = stats_minutes.delivered + excluded.delivered, \
                 read = stats_minutes.read + excluded.read, \
                 failed = stats_minutes.failed + excluded.failed, \
                 fell_back = stats_minutes.fell_back + excluded.fell_back, \
                 rejected = stats_minutes.rejected + excluded.rejected, \
                 expired = stats_minutes.expired + excluded.expired",
            );
            query
                .build()
                .execute(&mut **transaction)
                .await
                .map_err(database(OPERATION))?;
        }
        let latency: Vec<_> = self.latency.iter().collect();
        for chunk in latency.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Db>::new(
                "INSERT INTO stats_latency (minute, category, template, region, sender, slot, measure, bucket, count) ",
            );
            query.push_values(chunk, |mut row, ((key, measure, bucket), count)| {
                push_key(&mut row, key, slot);
                row.push_bind(measure.as_str())
                    .push_bind(i64::try_from(*bucket).unwrap_or(i64::MAX))
                    .push_bind(**count);
            });
            query.push(
                " ON CONFLICT (minute, category, template, region, sender, slot, measure, bucket) DO UPDATE SET \
                 count = stats_latency.count + excluded.count",
            );
            query
                .build()
                .execute(&mut **transaction)
                .await
                .map_err(database(OPERATION))?;
        }
        let failures: Vec<_> = self.failures.iter().collect();
        for chunk in failures.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Db>::new(
                "INSERT INTO stats_failures (minute, category, template, region, sender, slot, code, count) ",
            );
            query.push_values(chunk, |mut row, ((key, code), count)| {
                push_key(&mut row, key, slot);
                row.push_bind(*code).push_bind(**count);
            });
            query.push(
                " ON CONFLICT (minute, category, template, region, sender, slot, code) DO UPDATE SET \
                 count = stats_failures.count + excluded.count",
            );
            query
                .build()
                .execute(&mut **transaction)
                .await
                .map_err(database(OPERATION))?;
        }
        Ok(())
    }

    /// The status changes, in the order the batch made them, for the change feed.
    pub(super) fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}

fn push_key(row: &mut sqlx::query_builder::Separated<'_, '_, Db, &'static str>, key: &Key, slot: i64) {
    row.push_bind(key.minute)
        .push_bind(key.category)
        .push_bind(key.template.clone())
        .push_bind(key.region)
        .push_bind(key.sender.clone())
        .push_bind(slot);
}

/// The template a message's content names, if it is a template message.
pub(super) fn template_name(content: &crate::message::Content) -> Option<&str> {
    match content {
        crate::message::Content::Template { template } => Some(template.name.as_str()),
        _ => None,
    }
}

/// The column a dimension groups the rollups by.
fn group_column(by: StatsDimension) -> &'static str {
    match by {
        StatsDimension::Category => "category",
        StatsDimension::Template => "template",
        StatsDimension::Region => "region",
        StatsDimension::Sender => "sender",
        StatsDimension::Minute => "minute",
    }
}

fn stats_key(row: &DbRow, by: StatsDimension, operation: &'static str) -> Result<StatsKey> {
    let text = |row: &DbRow| -> Result<Option<String>> {
        let value: String = row.try_get("grouped").map_err(database(operation))?;
        Ok((!value.is_empty()).then_some(value))
    };
    Ok(match by {
        StatsDimension::Category => StatsKey::Category(parse_text(row, "grouped", operation)?),
        StatsDimension::Template => StatsKey::Template(text(row)?),
        StatsDimension::Sender => StatsKey::Sender(text(row)?),
        StatsDimension::Region => {
            let region: i64 = row.try_get("grouped").map_err(database(operation))?;
            StatsKey::Region(u16::try_from(region).ok().filter(|region| *region != 0))
        }
        StatsDimension::Minute => StatsKey::Minute(row.try_get("grouped").map_err(database(operation))?),
    })
}

/// A group as it is summed up: counts, both latency histograms, failures by code.
#[derive(Debug, Default)]
struct Accumulated {
    counts: Counts,
    delivered: [i64; LATENCY_BOUNDS_MS.len() + 1],
    read: [i64; LATENCY_BOUNDS_MS.len() + 1],
    failures: BTreeMap<i64, i64>,
}

impl Accumulated {
    fn add(&mut self, other: &Accumulated) {
        self.counts.add(&other.counts);
        for (sum, part) in self.delivered.iter_mut().zip(other.delivered) {
            *sum += part;
        }
        for (sum, part) in self.read.iter_mut().zip(other.read) {
            *sum += part;
        }
        for (code, count) in &other.failures {
            *self.failures.entry(*code).or_default() += count;
        }
    }

    fn figures(&self) -> StatsFigures {
        StatsFigures {
            counts: self.counts,
            median_ms_to_delivered: median_ms(&self.delivered),
            median_ms_to_read: median_ms(&self.read),
            failure_codes: self.failures.iter().map(|(code, count)| (*code, *count)).collect(),
        }
    }
}

/// The median of a latency histogram: the bucket where half the samples are reached, with
/// the samples taken as spread evenly across it; the open last bucket answers its lower
/// bound. None without samples.
fn median_ms(buckets: &[i64]) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total <= 0 {
        return None;
    }
    let half = total as f64 / 2.0;
    let mut below = 0_i64;
    for (index, count) in buckets.iter().enumerate() {
        if *count > 0 && (below + count) as f64 >= half {
            let lower = if index == 0 { 0 } else { LATENCY_BOUNDS_MS[index - 1] };
            let Some(upper) = LATENCY_BOUNDS_MS.get(index) else {
                return Some(lower);
            };
            let share = (half - below as f64) / *count as f64;
            return Some(lower + ((upper - lower) as f64 * share).round() as i64);
        }
        below += count;
    }
    None
}

/// Reads the rollups of `query`'s window, grouped: three statements (counters, latency,
/// failures), each summing the window's rows by the group's column.
pub(super) async fn read(readers: &DbPool, query: &StatsQuery) -> Result<StatsReport> {
    const OPERATION: &str = "read stats";
    let from_ms = query.from_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let to_ms = query.to_ms.saturating_add(MINUTE_MS - 1).div_euclid(MINUTE_MS) * MINUTE_MS;
    let column = group_column(query.by);
    let mut groups: BTreeMap<StatsKey, Accumulated> = BTreeMap::new();
    let rows = sqlx::query(&format!(
        "SELECT {column} AS grouped, CAST(SUM(accepted) AS BIGINT) AS accepted, CAST(SUM(sent) AS BIGINT) AS sent, \
         CAST(SUM(delivered) AS BIGINT) AS delivered, CAST(SUM(read) AS BIGINT) AS read, \
         CAST(SUM(failed) AS BIGINT) AS failed, CAST(SUM(fell_back) AS BIGINT) AS fell_back, \
         CAST(SUM(rejected) AS BIGINT) AS rejected, CAST(SUM(expired) AS BIGINT) AS expired \
         FROM stats_minutes WHERE minute >= $1 AND minute < $2 GROUP BY {column}"
    ))
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?;
    for row in &rows {
        let counts = &mut groups.entry(stats_key(row, query.by, OPERATION)?).or_default().counts;
        let field = |name: &str| -> Result<i64> { row.try_get(name).map_err(database(OPERATION)) };
        counts.accepted += field("accepted")?;
        counts.sent += field("sent")?;
        counts.delivered += field("delivered")?;
        counts.read += field("read")?;
        counts.failed += field("failed")?;
        counts.fell_back += field("fell_back")?;
        counts.rejected += field("rejected")?;
        counts.expired += field("expired")?;
    }
    let rows = sqlx::query(&format!(
        "SELECT {column} AS grouped, measure, bucket, CAST(SUM(count) AS BIGINT) AS count FROM stats_latency \
         WHERE minute >= $1 AND minute < $2 GROUP BY {column}, measure, bucket"
    ))
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?;
    for row in &rows {
        let group = groups.entry(stats_key(row, query.by, OPERATION)?).or_default();
        let measure: String = row.try_get("measure").map_err(database(OPERATION))?;
        let bucket: i64 = row.try_get("bucket").map_err(database(OPERATION))?;
        let count: i64 = row.try_get("count").map_err(database(OPERATION))?;
        let histogram = match measure.as_str() {
            "delivered" => &mut group.delivered,
            "read" => &mut group.read,
            other => {
                return Err(Error::Corrupt {
                    operation: OPERATION,
                    detail: format!("unknown latency measure {other:?}"),
                });
            }
        };
        let slot = usize::try_from(bucket)
            .ok()
            .and_then(|bucket| histogram.get_mut(bucket))
            .ok_or_else(|| Error::Corrupt {
                operation: OPERATION,
                detail: format!("latency bucket {bucket} out of range"),
            })?;
        *slot += count;
    }
    let rows = sqlx::query(&format!(
        "SELECT {column} AS grouped, code, CAST(SUM(count) AS BIGINT) AS count FROM stats_failures \
         WHERE minute >= $1 AND minute < $2 GROUP BY {column}, code"
    ))
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?;
    for row in &rows {
        let group = groups.entry(stats_key(row, query.by, OPERATION)?).or_default();
        let code: i64 = row.try_get("code").map_err(database(OPERATION))?;
        *group.failures.entry(code).or_default() += row.try_get::<i64, _>("count").map_err(database(OPERATION))?;
    }
    if query.by == StatsDimension::Minute {
        let mut minute = from_ms;
        while minute < to_ms {
            groups.entry(StatsKey::Minute(minute)).or_default();
            minute += MINUTE_MS;
        }
    }
    let mut total = Accumulated::default();
    for group in groups.values() {
        total.add(group);
    }
    Ok(StatsReport {
        from_ms,
        to_ms,
        groups: groups
            .into_iter()
            .map(|(key, group)| StatsGroup {
                key,
                figures: group.figures(),
            })
            .collect(),
        total: total.figures(),
    })
}

/// Deletes the rollup rows of the oldest minutes before `before_ms`: whole minutes, about
/// [`STATS_PRUNE_BATCH`] counter rows (and their latency and failure rows) at a time.
pub(super) async fn prune(transaction: &mut Transaction<'_, Db>, before_ms: i64) -> Result<u64> {
    const OPERATION: &str = "prune stats";
    let batch = i64::try_from(STATS_PRUNE_BATCH).unwrap_or(i64::MAX);
    let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(minute) FROM stats_minutes WHERE minute < $1")
        .bind(before_ms)
        .fetch_one(&mut **transaction)
        .await
        .map_err(database(OPERATION))?;
    // Latency and failure rows exist only beside a counter row of their minute and key.
    let Some(oldest) = oldest else {
        return Ok(0);
    };
    // The minute the batch-th row is in: everything before it goes (and that minute too when
    // it is the oldest, so each call makes progress).
    let boundary: Option<i64> =
        sqlx::query_scalar("SELECT minute FROM stats_minutes WHERE minute < $1 ORDER BY minute LIMIT 1 OFFSET $2")
            .bind(before_ms)
            .bind(batch)
            .fetch_optional(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    let cutoff = match boundary {
        None => before_ms,
        Some(minute) if minute <= oldest => (minute + MINUTE_MS).min(before_ms),
        Some(minute) => minute,
    };
    let mut deleted = 0;
    for table in ["stats_minutes", "stats_latency", "stats_failures"] {
        deleted += sqlx::query(&format!("DELETE FROM {table} WHERE minute < $1"))
            .bind(cutoff)
            .execute(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
            .rows_affected();
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_log_scale_buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(250), 0);
        assert_eq!(latency_bucket(251), 1);
        assert_eq!(latency_bucket(86_400_000), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(latency_bucket(86_400_001), LATENCY_BOUNDS_MS.len());
    }

    #[test]
    fn medians_interpolate_within_their_bucket() {
        let mut buckets = [0_i64; LATENCY_BOUNDS_MS.len() + 1];
        assert_eq!(median_ms(&buckets), None);
        // Four samples in (1 s, 2 s]: the median is half way through it.
        buckets[3] = 4;
        assert_eq!(median_ms(&buckets), Some(1_500));
        // Two more below: the median moves a quarter of the way in.
        buckets[0] = 2;
        assert_eq!(median_ms(&buckets), Some(1_250));
        // Mostly beyond a day: the open last bucket answers its lower bound.
        buckets[LATENCY_BOUNDS_MS.len()] = 100;
        assert_eq!(median_ms(&buckets), Some(86_400_000));
    }
}
