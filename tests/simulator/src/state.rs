//! What a running simulator remembers: counters, the log of accepted messages, and the
//! handles every part shares (config, wamid generator, scheduler queue, HTTP client).
//!
//! Owns `Shared`, `Counters` and `SentMessage`. Locks here are never held across an
//! `.await`. Calls `config`, `wamid` and `templates` (for the book it holds) only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::{mpsc, watch};

use crate::config::ConfigCell;
use crate::templates::TemplateBook;
use crate::wamid::WamidGenerator;
use crate::webhook::schedule::Accepted;

/// Most accepted messages kept for `sent()`; older ones are dropped first. The
/// counters stay exact whatever this holds.
pub const SENT_LOG_CAPACITY: usize = 20_000;

/// A snapshot of the simulator's counters (also the body of `GET /_sim/counters`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests to the Graph API messages endpoint (any outcome).
    pub requests: u64,
    /// Messages accepted (answered with a wamid).
    pub accepted: u64,
    /// Mark-as-read requests answered `{"success":true}`.
    pub marked_read: u64,
    /// Requests refused, by Meta error code.
    pub rejected: BTreeMap<u32, u64>,
    /// Sends answered by resetting the connection (`reset_rate`), accepted or not.
    pub connection_resets: u64,
    /// Webhook POSTs the receiver answered 2xx (status batches and inbound messages).
    pub webhook_posts: u64,
    /// Statuses delivered in those POSTs.
    pub webhook_statuses: u64,
    /// Inbound messages delivered.
    pub webhook_messages: u64,
    /// `message_template_status_update` webhooks delivered.
    #[serde(default)]
    pub webhook_template_updates: u64,
    /// Webhook POST attempts that failed (non-2xx or connection error), retries included.
    pub webhook_failures: u64,
    /// Statuses given up on after every retry failed, or dropped because no
    /// `webhook_url` was set when they fell due.
    pub webhook_dropped: u64,
    /// Statuses scheduled or being posted, not yet delivered or dropped.
    pub webhook_backlog: u64,
    /// Statuses queued for a second POST on purpose (`webhook_duplicate_rate`); the
    /// copies count in `webhook_statuses` once delivered.
    pub webhook_duplicates: u64,
    /// Requests to the SMS endpoint (any outcome).
    #[serde(default)]
    pub sms_requests: u64,
    /// SMS accepted.
    #[serde(default)]
    pub sms_accepted: u64,
}

impl Counters {
    /// All refused requests, whatever the code.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The live counters behind `Counters`.
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub marked_read: AtomicU64,
    rejected: Mutex<BTreeMap<u32, u64>>,
    pub connection_resets: AtomicU64,
    pub webhook_posts: AtomicU64,
    pub webhook_statuses: AtomicU64,
    pub webhook_messages: AtomicU64,
    pub webhook_template_updates: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub webhook_dropped: AtomicU64,
    pub webhook_backlog: AtomicI64,
    pub webhook_duplicates: AtomicU64,
    pub sms_requests: AtomicU64,
    pub sms_accepted: AtomicU64,
}

impl CounterCells {
    pub(crate) fn reject(&self, code: u32) {
        let mut rejected = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        *rejected.entry(code).or_default() += 1;
    }

    pub(crate) fn add(cell: &AtomicU64, amount: u64) {
        cell.fetch_add(amount, Ordering::Relaxed);
    }

    pub(crate) fn backlog_add(&self, amount: usize) {
        self.webhook_backlog
            .fetch_add(i64::try_from(amount).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn backlog_sub(&self, amount: usize) {
        self.webhook_backlog
            .fetch_sub(i64::try_from(amount).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        Counters {
            requests: load(&self.requests),
            accepted: load(&self.accepted),
            marked_read: load(&self.marked_read),
            rejected: self.rejected.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            connection_resets: load(&self.connection_resets),
            webhook_posts: load(&self.webhook_posts),
            webhook_statuses: load(&self.webhook_statuses),
            webhook_messages: load(&self.webhook_messages),
            webhook_template_updates: load(&self.webhook_template_updates),
            webhook_failures: load(&self.webhook_failures),
            webhook_dropped: load(&self.webhook_dropped),
            webhook_backlog: u64::try_from(self.webhook_backlog.load(Ordering::Relaxed)).unwrap_or(0),
            webhook_duplicates: load(&self.webhook_duplicates),
            sms_requests: load(&self.sms_requests),
            sms_accepted: load(&self.sms_accepted),
        }
    }

    /// Zeroes every counter except the backlog, which tracks work still under way.
    pub(crate) fn reset(&self) {
        for cell in [
            &self.requests,
            &self.accepted,
            &self.marked_read,
            &self.connection_resets,
            &self.webhook_posts,
            &self.webhook_statuses,
            &self.webhook_messages,
            &self.webhook_template_updates,
            &self.webhook_failures,
            &self.webhook_dropped,
            &self.webhook_duplicates,
        ] {
            cell.store(0, Ordering::Relaxed);
        }
        self.rejected.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// One accepted message, as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SentMessage {
    /// The id the send was answered with.
    pub wamid: String,
    /// The business phone number id from the path.
    pub phone_number_id: String,
    /// The recipient exactly as sent.
    pub to: String,
    /// The request body.
    pub body: serde_json::Value,
    /// When it was accepted (serialised as Unix milliseconds, `time_unix_ms`).
    #[serde(rename = "time_unix_ms", serialize_with = "unix_millis")]
    pub time: SystemTime,
}

fn unix_millis<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    serializer.serialize_u64(millis)
}

/// Bounded log of accepted messages.
#[derive(Debug, Default)]
pub(crate) struct SentLog {
    entries: Mutex<VecDeque<SentMessage>>,
}

impl SentLog {
    pub(crate) fn push(&self, message: SentMessage) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= SENT_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(message);
    }

    /// The last `limit` entries, oldest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<SentMessage> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = entries.len().saturating_sub(limit);
        entries.iter().skip(skip).cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// Everything the request handlers and background tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<ConfigCell>,
    pub counters: Arc<CounterCells>,
    pub sent: SentLog,
    pub sms: crate::sms::SmsLog,
    /// Makes SMS sids differ between simulator runs.
    pub sms_salt: u64,
    pub wamids: WamidGenerator,
    /// Message templates created through the Graph API.
    pub templates: TemplateBook,
    pub schedule: mpsc::Sender<Accepted>,
    pub http: reqwest::Client,
    /// Flips to `true` when the simulator shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Seconds since the Unix epoch, as Meta puts in `timestamp`.
pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(index: usize) -> SentMessage {
        SentMessage {
            wamid: format!("wamid.{index}"),
            phone_number_id: "1".into(),
            to: "2".into(),
            body: serde_json::Value::Null,
            time: UNIX_EPOCH,
        }
    }

    #[test]
    fn sent_log_keeps_the_newest() {
        let log = SentLog::default();
        for index in 0..SENT_LOG_CAPACITY + 5 {
            log.push(message(index));
        }
        let recent = log.recent(2);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[1].wamid, format!("wamid.{}", SENT_LOG_CAPACITY + 4));
        assert_eq!(log.recent(usize::MAX).len(), SENT_LOG_CAPACITY);
    }

    #[test]
    fn rejected_counts_by_code() {
        let cells = CounterCells::default();
        cells.reject(131009);
        cells.reject(131009);
        cells.reject(190);
        let counters = cells.snapshot();
        assert_eq!(counters.rejected.get(&131009), Some(&2));
        assert_eq!(counters.rejected_total(), 3);
        cells.reset();
        assert_eq!(cells.snapshot().rejected_total(), 0);
    }

    #[test]
    fn sent_message_serialises_time_as_millis() {
        let value = serde_json::to_value(message(1)).expect("serialises");
        assert_eq!(value["time_unix_ms"], 0);
    }
}
