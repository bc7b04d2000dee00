//! The one task that turns accepted messages into statuses at the right time and cuts
//! them into webhook batches.
//!
//! Due statuses live in a min-heap keyed by (due time, sequence); one timer sleeps until
//! the earliest. When a status falls due it joins the pending batch and the message's
//! next status is pushed (`sent` → `delivered` or `failed` → maybe `read`), so the heap
//! holds about one entry per message in flight. A batch leaves when it reaches
//! `webhook_batch_max` or has waited `webhook_flush_ms`, and only when the poster has
//! room, so a slow receiver gets fuller batches instead of a queue of small ones.
//!
//! Webhook faults happen here too: with `webhook_delay_ms` a status that happened goes
//! back into the heap, due that much later, and joins a batch only then (its timestamp
//! is when it happened, and throughput is not cut); with `webhook_duplicate_rate` a copy
//! of a status just handed to the poster waits in the next batch; with `webhook_reorder`
//! each batch is shuffled before it leaves.
//! Owns `Scheduler`, `Accepted`, `Tracked`, `StatusKind` and `StatusUpdate`; reads the
//! config and bumps the backlog counter; hands batches to the poster over a channel.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::payload::StatusError;
use crate::config::{ConfigCell, SimulatorConfig};
use crate::state::{CounterCells, unix_seconds};

/// Most accepted messages taken off the queue in one wake-up.
const INTAKE_BURST: usize = 1_024;

/// A message whose statuses are to be simulated.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub wamid: Box<str>,
    pub phone_number_id: Box<str>,
    /// Digits only.
    pub recipient: Box<str>,
    /// When set, the message gets `sent` then `failed` with this error.
    pub failure: Option<&'static StatusError>,
    /// The sender's `biz_opaque_callback_data`, echoed on every status as Meta does.
    pub callback_data: Option<Box<str>>,
}

/// A message the Graph API just accepted.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub message: Arc<Tracked>,
    pub at: Instant,
}

/// A status Meta reports for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    /// Left Meta's servers.
    Sent,
    /// Reached the phone.
    Delivered,
    /// Opened by the recipient.
    Read,
    /// Could not be delivered.
    Failed,
}

impl StatusKind {
    /// The `status` string in the webhook.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

/// A status that fell due, ready to be posted.
#[derive(Clone, Debug)]
pub(crate) struct StatusUpdate {
    pub message: Arc<Tracked>,
    pub status: StatusKind,
    /// Unix seconds.
    pub timestamp: u64,
    /// A copy posted a second time on purpose; never copied again.
    pub duplicate: bool,
}

struct Due {
    at: Instant,
    sequence: u64,
    message: Arc<Tracked>,
    status: StatusKind,
    /// Set (Unix seconds) when the status already happened and only waits out
    /// `webhook_delay_ms` before it joins a batch.
    happened: Option<u64>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.sequence == other.sequence
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

/// The scheduling and batching task.
pub(crate) struct Scheduler {
    config: Arc<ConfigCell>,
    counters: Arc<CounterCells>,
    incoming: mpsc::Receiver<Accepted>,
    batches: mpsc::Sender<Vec<StatusUpdate>>,
    shutdown: watch::Receiver<bool>,
    heap: BinaryHeap<Due>,
    pending: Vec<StatusUpdate>,
    pending_since: Instant,
    sequence: u64,
}

impl Scheduler {
    pub(crate) fn new(
        config: Arc<ConfigCell>,
        counters: Arc<CounterCells>,
        incoming: mpsc::Receiver<Accepted>,
        batches: mpsc::Sender<Vec<StatusUpdate>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            counters,
            incoming,
            batches,
            shutdown,
            heap: BinaryHeap::new(),
            pending: Vec::new(),
            pending_since: Instant::now(),
            sequence: 0,
        }
    }

    /// Runs until shutdown; statuses not yet posted then are dropped.
    pub(crate) async fn run(mut self) {
        let mut intake_open = true;
        while !*self.shutdown.borrow() {
            let config = self.config.snapshot();
            let now = Instant::now();
            let next_due = self.heap.peek().map(|due| due.at);
            let flush_at = self.flush_at(&config);
            let flush_ready = flush_at.is_some_and(|at| at <= now);
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = sleep_until(next_due.unwrap_or(now)), if next_due.is_some() => {
                    self.fire_due(Instant::now(), &config);
                }
                // An owned permit leaves `self` free for the other branches.
                permit = self.batches.clone().reserve_owned(), if flush_ready => {
                    let Ok(permit) = permit else { break };
                    let mut batch = take_batch(&mut self.pending, config.webhook_batch_max);
                    if config.webhook_reorder {
                        batch.shuffle(&mut rand::rng());
                    }
                    if config.webhook_duplicate_rate > 0.0 {
                        self.duplicate(&batch, config.webhook_duplicate_rate);
                    }
                    permit.send(batch);
                }
                () = sleep_until(flush_at.unwrap_or(now)), if flush_at.is_some() && !flush_ready => {}
                accepted = self.incoming.recv(), if intake_open => {
                    match accepted {
                        Some(accepted) => {
                            self.accept(accepted, &config);
                            for _ in 1..INTAKE_BURST {
                                let Ok(more) = self.incoming.try_recv() else { break };
                                self.accept(more, &config);
                            }
                        }
                        None => intake_open = false,
                    }
                }
            }
        }
        let abandoned = self.heap.len() + self.pending.len();
        self.counters.backlog_sub(abandoned);
    }

    fn flush_at(&self, config: &SimulatorConfig) -> Option<Instant> {
        if self.pending.is_empty() {
            None
        } else if self.pending.len() >= config.webhook_batch_max {
            Some(self.pending_since)
        } else {
            Some(self.pending_since + Duration::from_millis(config.webhook_flush_ms))
        }
    }

    /// Schedules the first status; whoever accepted the message already counted it in
    /// the backlog, so a poll of the backlog never misses a message still in the queue.
    fn accept(&mut self, accepted: Accepted, config: &SimulatorConfig) {
        let at = accepted.at + Duration::from_millis(config.sent_after_ms);
        self.insert(at, accepted.message, StatusKind::Sent);
    }

    /// Schedules a follow-up status and counts it in the backlog.
    fn push(&mut self, at: Instant, message: Arc<Tracked>, status: StatusKind) {
        self.insert(at, message, status);
        self.counters.backlog_add(1);
    }

    fn insert(&mut self, at: Instant, message: Arc<Tracked>, status: StatusKind) {
        self.insert_due(at, message, status, None);
    }

    fn insert_due(&mut self, at: Instant, message: Arc<Tracked>, status: StatusKind, happened: Option<u64>) {
        self.sequence += 1;
        self.heap.push(Due {
            at,
            sequence: self.sequence,
            message,
            status,
            happened,
        });
    }

    /// Adds a status to the batch being filled.
    fn add_pending(&mut self, update: StatusUpdate, now: Instant) {
        if self.pending.is_empty() {
            self.pending_since = now;
        }
        self.pending.push(update);
    }

    /// Queues, in the batch after `batch`, a copy of a share `rate` of its statuses
    /// (copies are not copied again).
    fn duplicate(&mut self, batch: &[StatusUpdate], rate: f64) {
        let now = Instant::now();
        let mut copies = 0;
        for update in batch {
            if !update.duplicate && rand::random::<f64>() < rate {
                self.add_pending(
                    StatusUpdate {
                        duplicate: true,
                        ..update.clone()
                    },
                    now,
                );
                copies += 1;
            }
        }
        self.counters.backlog_add(copies);
        CounterCells::add(&self.counters.webhook_duplicates, copies as u64);
    }

    fn fire_due(&mut self, now: Instant, config: &SimulatorConfig) {
        let timestamp = unix_seconds();
        while self.heap.peek().is_some_and(|due| due.at <= now) {
            let Some(due) = self.heap.pop() else { break };
            if let Some(happened) = due.happened {
                // Waited out `webhook_delay_ms`; its follow-up is already scheduled.
                let update = StatusUpdate {
                    message: due.message,
                    status: due.status,
                    timestamp: happened,
                    duplicate: false,
                };
                self.add_pending(update, now);
                continue;
            }
            if config.webhook_delay_ms > 0 {
                let at = due.at + Duration::from_millis(config.webhook_delay_ms);
                self.insert_due(at, Arc::clone(&due.message), due.status, Some(timestamp));
            } else {
                let update = StatusUpdate {
                    message: Arc::clone(&due.message),
                    status: due.status,
                    timestamp,
                    duplicate: false,
                };
                self.add_pending(update, now);
            }
            match due.status {
                StatusKind::Sent => {
                    let next = if due.message.failure.is_some() {
                        StatusKind::Failed
                    } else {
                        StatusKind::Delivered
                    };
                    let at = due.at + Duration::from_millis(config.delivered_after_ms);
                    self.push(at, due.message, next);
                }
                StatusKind::Delivered => {
                    if config.read_ratio > 0.0 && rand::random::<f64>() < config.read_ratio {
                        let at = due.at + Duration::from_millis(config.read_after_ms);
                        self.push(at, due.message, StatusKind::Read);
                    }
                }
                StatusKind::Read | StatusKind::Failed => {}
            }
        }
    }
}

/// Takes up to `batch_max` of the oldest pending statuses.
fn take_batch(pending: &mut Vec<StatusUpdate>, batch_max: usize) -> Vec<StatusUpdate> {
    if pending.len() <= batch_max {
        std::mem::take(pending)
    } else {
        let rest = pending.split_off(batch_max);
        std::mem::replace(pending, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::payload::UNDELIVERABLE;

    struct Harness {
        accepted: mpsc::Sender<Accepted>,
        batches: mpsc::Receiver<Vec<StatusUpdate>>,
        counters: Arc<CounterCells>,
        _shutdown: watch::Sender<bool>,
    }

    fn start(config: SimulatorConfig) -> Harness {
        let (accepted, incoming) = mpsc::channel(64);
        let (batch_sender, batches) = mpsc::channel(1);
        let (shutdown_sender, shutdown) = watch::channel(false);
        let counters = Arc::new(CounterCells::default());
        let scheduler = Scheduler::new(
            Arc::new(ConfigCell::new(config)),
            Arc::clone(&counters),
            incoming,
            batch_sender,
            shutdown,
        );
        tokio::spawn(scheduler.run());
        Harness {
            accepted,
            batches,
            counters,
            _shutdown: shutdown_sender,
        }
    }

    fn tracked(wamid: &str, failure: Option<&'static StatusError>) -> Arc<Tracked> {
        Arc::new(Tracked {
            callback_data: None,
            wamid: wamid.into(),
            phone_number_id: "106540352242922".into(),
            recipient: "16505551234".into(),
            failure,
        })
    }

    fn config() -> SimulatorConfig {
        SimulatorConfig {
            sent_after_ms: 10,
            delivered_after_ms: 100,
            read_after_ms: 1_000,
            read_ratio: 1.0,
            webhook_batch_max: 10,
            webhook_flush_ms: 5,
            ..SimulatorConfig::default()
        }
    }

    async fn next_batch(harness: &mut Harness) -> (Duration, Vec<(String, StatusKind)>) {
        let started = Instant::now();
        let batch = harness.batches.recv().await.expect("scheduler alive");
        let statuses = batch
            .iter()
            .map(|update| (update.message.wamid.to_string(), update.status))
            .collect();
        (started.elapsed(), statuses)
    }

    #[tokio::test(start_paused = true)]
    async fn statuses_follow_the_configured_delays_in_order() {
        let mut harness = start(config());
        let start = Instant::now();
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.A", None),
                at: start,
            })
            .await
            .expect("scheduler alive");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (_, batch) = next_batch(&mut harness).await;
            seen.push((start.elapsed().as_millis(), batch));
        }
        assert_eq!(
            seen,
            vec![
                (15, vec![("wamid.A".into(), StatusKind::Sent)]),
                (115, vec![("wamid.A".into(), StatusKind::Delivered)]),
                (1_115, vec![("wamid.A".into(), StatusKind::Read)]),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failing_messages_get_sent_then_failed_and_never_read() {
        let mut harness = start(config());
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.F", Some(&UNDELIVERABLE)),
                at: Instant::now(),
            })
            .await
            .expect("scheduler alive");
        let (_, first) = next_batch(&mut harness).await;
        let (_, second) = next_batch(&mut harness).await;
        assert_eq!(first, vec![("wamid.F".into(), StatusKind::Sent)]);
        assert_eq!(second, vec![("wamid.F".into(), StatusKind::Failed)]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(harness.batches.try_recv().is_err(), "no read after failed");
    }

    #[tokio::test(start_paused = true)]
    async fn read_ratio_zero_stops_at_delivered() {
        let mut harness = start(SimulatorConfig {
            read_ratio: 0.0,
            ..config()
        });
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.D", None),
                at: Instant::now(),
            })
            .await
            .expect("scheduler alive");
        next_batch(&mut harness).await;
        next_batch(&mut harness).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(harness.batches.try_recv().is_err());
        // The follow-up is counted here; the first status is counted by the Graph API.
        assert_eq!(harness.counters.snapshot().webhook_backlog, 1, "poster not run");
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_leave_at_once_and_the_rest_after_the_flush_wait() {
        let mut harness = start(SimulatorConfig {
            read_ratio: 0.0,
            ..config()
        });
        let at = Instant::now();
        for index in 0..25 {
            harness
                .accepted
                .send(Accepted {
                    message: tracked(&format!("wamid.{index}"), None),
                    at,
                })
                .await
                .expect("scheduler alive");
        }
        let (_, first) = next_batch(&mut harness).await;
        let (waited, second) = next_batch(&mut harness).await;
        let (third_wait, third) = next_batch(&mut harness).await;
        assert_eq!(first.len(), 10);
        assert_eq!(second.len(), 10);
        assert_eq!(waited, Duration::ZERO, "a full batch does not wait");
        assert_eq!(third.len(), 5);
        assert_eq!(
            third_wait,
            Duration::from_millis(5),
            "a partial batch waits the flush time"
        );
        assert_eq!(first[0].0, "wamid.0", "oldest first");
        assert!(third.iter().all(|(_, status)| *status == StatusKind::Sent));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_delays_deliver_everything_in_one_batch_in_order() {
        let mut harness = start(SimulatorConfig {
            sent_after_ms: 0,
            delivered_after_ms: 0,
            read_after_ms: 0,
            webhook_flush_ms: 0,
            ..config()
        });
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.Z", None),
                at: Instant::now(),
            })
            .await
            .expect("scheduler alive");
        let (_, batch) = next_batch(&mut harness).await;
        let statuses: Vec<StatusKind> = batch.into_iter().map(|(_, status)| status).collect();
        assert_eq!(
            statuses,
            vec![StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn webhook_delay_shifts_every_status_by_the_same_amount() {
        let mut harness = start(SimulatorConfig {
            webhook_delay_ms: 500,
            ..config()
        });
        let start = Instant::now();
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.L", None),
                at: start,
            })
            .await
            .expect("scheduler alive");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (_, batch) = next_batch(&mut harness).await;
            seen.push((start.elapsed().as_millis(), batch));
        }
        assert_eq!(
            seen,
            vec![
                (515, vec![("wamid.L".into(), StatusKind::Sent)]),
                (615, vec![("wamid.L".into(), StatusKind::Delivered)]),
                (1_615, vec![("wamid.L".into(), StatusKind::Read)]),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_come_in_the_next_batch_once() {
        let mut harness = start(SimulatorConfig {
            read_ratio: 0.0,
            webhook_duplicate_rate: 1.0,
            ..config()
        });
        harness
            .accepted
            .send(Accepted {
                message: tracked("wamid.C", None),
                at: Instant::now(),
            })
            .await
            .expect("scheduler alive");
        let mut batches = Vec::new();
        for _ in 0..3 {
            let batch = harness.batches.recv().await.expect("scheduler alive");
            batches.push(
                batch
                    .iter()
                    .map(|update| (update.status, update.duplicate))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            batches,
            vec![
                vec![(StatusKind::Sent, false)],
                vec![(StatusKind::Sent, true)],
                vec![(StatusKind::Delivered, false)],
            ]
        );
        let (_, last) = next_batch(&mut harness).await;
        assert_eq!(last, vec![("wamid.C".into(), StatusKind::Delivered)]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(harness.batches.try_recv().is_err(), "a copy is not copied");
        assert_eq!(harness.counters.snapshot().webhook_duplicates, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reorder_shuffles_within_a_batch() {
        let mut harness = start(SimulatorConfig {
            sent_after_ms: 0,
            delivered_after_ms: 0,
            read_after_ms: 0,
            webhook_batch_max: 1_000,
            webhook_reorder: true,
            ..config()
        });
        let at = Instant::now();
        for index in 0..30 {
            harness
                .accepted
                .send(Accepted {
                    message: tracked(&format!("wamid.{index}"), None),
                    at,
                })
                .await
                .expect("scheduler alive");
        }
        let mut statuses = Vec::new();
        while statuses.len() < 90 {
            let (_, batch) = next_batch(&mut harness).await;
            statuses.extend(batch);
        }
        let in_order: Vec<(String, StatusKind)> = (0..30)
            .flat_map(|index| {
                [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
                    .map(|status| (format!("wamid.{index}"), status))
            })
            .collect();
        assert_ne!(statuses, in_order, "shuffled");
        statuses.sort_by_key(|(wamid, status)| (wamid[6..].parse::<u32>().unwrap_or(u32::MAX), *status as u8));
        assert_eq!(statuses, in_order, "nothing lost or added");
    }

    #[test]
    fn take_batch_keeps_the_rest_in_order() {
        let message = tracked("wamid.T", None);
        let mut pending: Vec<StatusUpdate> = (0..5)
            .map(|timestamp| StatusUpdate {
                message: Arc::clone(&message),
                status: StatusKind::Sent,
                timestamp,
                duplicate: false,
            })
            .collect();
        let batch = take_batch(&mut pending, 3);
        assert_eq!(batch.iter().map(|u| u.timestamp).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(pending.iter().map(|u| u.timestamp).collect::<Vec<_>>(), [3, 4]);
    }
}
