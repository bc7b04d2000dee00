//! The dispatcher: claims due messages from the store, routes each to the worker that owns
//! its shard, and runs it through the policies and out through the channel.
//!
//! One claimer takes batches (highest class first) under a lease and owns the routing table
//! ([`routing`]): shard `s` starts on worker `s % workers` and moves to a less busy worker
//! only when none of its messages is in flight, so one shard's in-flight messages (and with
//! them a recipient's) always meet one worker, which handles its batches one after another
//! and a recipient's messages in order within a batch. A claimed message reports back to the
//! claimer when its worker is done with it (recorded, or let go for its lease to run out).
//! Every state change is written in batches through the store's group commit.
//!
//! The dispatcher also keeps the backlog count the API's backpressure reads (initialised
//! from the store at start, moved by acceptances and by messages leaving the queue, and
//! counted again every [`BACKLOG_RESYNC`]),
//! the rate limits ([`limits`]), and the drain on shutdown: no new claims, in-flight sends
//! finish and are recorded. The health rules ([`crate::health`]) steer it through the handle:
//! degraded mode (no `bulk` is claimed, it stays queued; policies see `degraded-mode`) and
//! extra in-flight slots while the upstream fails.
//! May call the store, the policy runtime and the channels.

pub mod limits;
mod routing;
mod worker;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{
    channel::{CloudApi, SmsChannel},
    cluster::Cluster,
    config::{CloudApiConfig, DispatchConfig},
    policy::PolicyRuntime,
    regions::RegionHealth,
    store::{self, PendingMessage, Store},
};

/// A claimed message and its place in the in-flight budget.
///
/// Fields drop in order: the claimer hears the message is finished before its permit is back.
pub struct Claimed {
    pub message: PendingMessage,
    _finished: Finished,
    _permit: OwnedSemaphorePermit,
}

/// What a claimed message reports to the claimer when its worker lets go of it: its shard and
/// the worker it was routed to.
type FinishedReport = (u16, usize);

/// Tells the claimer, when dropped, that one message of `shard` has left `worker`.
struct Finished {
    shard: u16,
    worker: usize,
    report: mpsc::UnboundedSender<FinishedReport>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        // The claimer has stopped: nothing is routed any more, so nothing needs telling.
        let _ = self.report.send((self.shard, self.worker));
    }
}

/// How often the in-memory backlog is set again from the store, so messages accepted by
/// other paths (plugin follow-ups) and any drift are counted.
const BACKLOG_RESYNC: Duration = Duration::from_secs(10);

/// Messages waiting to be sent: accepted, queued, deferred or sending. The total moves with
/// every accept and send; the per-shard counts are a snapshot taken at each resync.
#[derive(Clone, Default)]
pub struct Backlog {
    total: Arc<AtomicI64>,
    by_shard: Arc<std::sync::RwLock<HashMap<u16, u32>>>,
    /// Per priority class, in the whole store, at the last resync.
    by_priority: Arc<std::sync::RwLock<Vec<(crate::message::Priority, u64)>>>,
}

impl Backlog {
    fn set(&self, by_shard: Vec<(u16, u64)>) {
        let total: u64 = by_shard.iter().map(|(_, count)| count).sum();
        self.total
            .store(i64::try_from(total).unwrap_or(i64::MAX), Ordering::Relaxed);
        let snapshot = by_shard
            .into_iter()
            .map(|(shard, count)| (shard, u32::try_from(count).unwrap_or(u32::MAX)))
            .collect();
        match self.by_shard.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    fn set_by_priority(&self, by_priority: Vec<(crate::message::Priority, u64)>) {
        match self.by_priority.write() {
            Ok(mut guard) => *guard = by_priority,
            Err(poisoned) => *poisoned.into_inner() = by_priority,
        }
    }

    pub fn get(&self) -> u64 {
        u64::try_from(self.total.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// The store's backlog per priority class at the last resync (at most [`BACKLOG_RESYNC`]
    /// old); classes with nothing waiting may be missing.
    pub fn by_priority(&self) -> Vec<(crate::message::Priority, u64)> {
        match self.by_priority.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The shard's backlog at the last resync (at most [`BACKLOG_RESYNC`] old).
    pub fn shard(&self, shard: u16) -> u32 {
        let read = |map: &HashMap<u16, u32>| map.get(&shard).copied().unwrap_or(0);
        match self.by_shard.read() {
            Ok(guard) => read(&guard),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// Every shard with messages waiting at the last resync, the largest backlog first.
    pub fn shards(&self) -> Vec<(u16, u32)> {
        let collect = |map: &HashMap<u16, u32>| {
            let mut shards: Vec<(u16, u32)> = map.iter().map(|(shard, count)| (*shard, *count)).collect();
            shards.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
            shards
        };
        match self.by_shard.read() {
            Ok(guard) => collect(&guard),
            Err(poisoned) => collect(&poisoned.into_inner()),
        }
    }

    pub fn add(&self, count: usize) {
        self.total
            .fetch_add(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn remove(&self, count: usize) {
        self.total
            .fetch_sub(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// Where messages leave, and what the workers learn from sending them.
#[derive(Clone)]
pub struct Outbound {
    pub cloud_api: Arc<CloudApi>,
    /// None: no SMS provider is configured.
    pub sms: Option<Arc<SmsChannel>>,
    pub regions: Arc<RegionHealth>,
    /// The sender's tier, quality and daily volume, for the policies' context.
    pub senders: Arc<crate::senders::Senders>,
    /// Cloud API calls and those answered 5xx or not at all, for the health rules.
    pub upstream: Arc<crate::health::upstream::UpstreamOutcomes>,
}

/// Wakes the claimer when new work is accepted; says when the backlog is full; drains.
#[derive(Clone)]
pub struct DispatchHandle {
    wake: Arc<Notify>,
    backlog: Backlog,
    max_backlog: u64,
    backlog_retry_after_ms: u64,
    stopping: Arc<AtomicBool>,
    in_flight: Arc<Semaphore>,
    in_flight_total: u32,
    /// Slots added to `in_flight_total` by the health rules now.
    extra_in_flight: Arc<std::sync::Mutex<u32>>,
    /// Degraded mode: bulk is not claimed and policies are told.
    degraded: Arc<AtomicBool>,
}

impl DispatchHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What wakes the claimer, for a source of work outside this process.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Counts newly accepted messages into the backlog.
    pub fn accepted(&self, count: usize) {
        self.backlog.add(count);
    }

    /// Counts messages that left the backlog without a worker (cancelled over the API).
    pub fn left_backlog(&self, count: usize) {
        self.backlog.remove(count);
    }

    pub fn backlog(&self) -> u64 {
        self.backlog.get()
    }

    /// The store's backlog per priority class, as last counted.
    pub fn backlog_by_priority(&self) -> Vec<(crate::message::Priority, u64)> {
        self.backlog.by_priority()
    }

    /// The shard's backlog at the last count (seconds old at most).
    pub fn shard_backlog(&self, shard: u16) -> u32 {
        self.backlog.shard(shard)
    }

    /// Shards with messages waiting at the last count, the largest backlog first.
    pub fn shard_backlogs(&self) -> Vec<(u16, u32)> {
        self.backlog.shards()
    }

    /// When the backlog has reached its bound: how long a client should wait, in ms.
    pub fn backpressure(&self) -> Option<u64> {
        (self.backlog.get() >= self.max_backlog).then_some(self.backlog_retry_after_ms)
    }

    /// Whether the node is in degraded mode.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Degraded mode on or off: while on, `bulk` is not claimed (it stays queued) and the
    /// policies' context says `degraded-mode`.
    pub fn set_degraded(&self, degraded: bool) {
        if self.degraded.swap(degraded, Ordering::SeqCst) != degraded {
            tracing::warn!(degraded, "degraded mode changed");
            // Bulk held back may go again.
            self.wake.notify_one();
        }
    }

    /// In-flight slots beyond the configured number, now: slots added go to work at once;
    /// slots taken back are taken as they come free.
    pub fn set_extra_in_flight(&self, permits: u32) {
        let mut extra = self
            .extra_in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *extra == permits {
            return;
        }
        if permits > *extra {
            self.in_flight
                .add_permits(usize::try_from(permits - *extra).unwrap_or(usize::MAX));
            self.wake.notify_one();
        } else {
            let surplus = usize::try_from(*extra - permits).unwrap_or(usize::MAX);
            let forgotten = self.in_flight.forget_permits(surplus);
            let busy = surplus - forgotten;
            if busy > 0 {
                let in_flight = self.in_flight.clone();
                tokio::spawn(async move {
                    if let Ok(permits) = in_flight
                        .acquire_many_owned(u32::try_from(busy).unwrap_or(u32::MAX))
                        .await
                    {
                        permits.forget();
                    }
                });
            }
        }
        tracing::info!(extra = permits, "dispatch in-flight slots changed");
        *extra = permits;
    }

    /// Stops claiming and waits (up to `timeout`) until every claimed message is through its
    /// sends and recorded. Returns whether everything finished in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let extra = *self
            .extra_in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let all = self
            .in_flight
            .clone()
            .acquire_many_owned(self.in_flight_total.saturating_add(extra));
        match tokio::time::timeout(timeout, all).await {
            Ok(Ok(permits)) => {
                drop(permits);
                true
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }
}

pub struct Dispatcher;

impl Dispatcher {
    /// Starts the claimer and the workers; they run until the process ends.
    /// Starts the claimer and the workers with the rate limits of `cloud_api`.
    pub async fn start(
        config: DispatchConfig,
        cloud_api: &CloudApiConfig,
        store: Store,
        policies: Arc<PolicyRuntime>,
        outbound: Outbound,
        cluster: Arc<Cluster>,
    ) -> store::Result<DispatchHandle> {
        // One node owns a SQLite file: no claim of it is still running. A shared store's
        // claims belong to the nodes that made them (a node taking a shard over frees them).
        if !store.is_shared() {
            let released = store.release_leases().await?;
            if released > 0 {
                tracing::info!(released, "messages claimed before the last stop are pending again");
            }
        }
        let backlog = Backlog::default();
        backlog.set(store.pending_by_shard().await?);
        let limits = Arc::new(limits::Limits::new(cloud_api, config.rate_limit_hold_ms));
        let stopping = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let in_flight_total = config.workers * config.sends_in_flight_per_worker * 2;
        let in_flight = Arc::new(Semaphore::new(in_flight_total));
        let degraded = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.push(sender);
            let worker = worker::Worker {
                index,
                config: config.clone(),
                store: store.clone(),
                policies: policies.clone(),
                outbound: outbound.clone(),
                wake: wake.clone(),
                limits: limits.clone(),
                backlog: backlog.clone(),
                cluster: cluster.clone(),
                degraded: degraded.clone(),
            };
            tokio::spawn(worker.run(receiver));
        }
        let handle = DispatchHandle {
            wake: wake.clone(),
            backlog,
            max_backlog: config.max_backlog,
            backlog_retry_after_ms: config.backlog_retry_after_ms,
            stopping: stopping.clone(),
            in_flight: in_flight.clone(),
            in_flight_total: u32::try_from(in_flight_total).unwrap_or(u32::MAX),
            extra_in_flight: Arc::default(),
            degraded: degraded.clone(),
        };
        let (resync_store, resync_backlog) = (store.clone(), handle.backlog.clone());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(BACKLOG_RESYNC);
            // The shards last named in `wasp_shard_backlog_messages`.
            let mut top_shards = Vec::with_capacity(crate::telemetry::metrics::TOP_SHARDS);
            loop {
                // The first tick is at once: the gauges are set from the start.
                ticker.tick().await;
                match resync_store.pending_backlog().await {
                    Ok(pending) => {
                        resync_backlog.set(pending.by_shard);
                        crate::telemetry::metrics::shard_backlogs(&resync_backlog.shards(), &mut top_shards);
                        crate::telemetry::metrics::backlog_by_priority(&pending.by_priority);
                        resync_backlog.set_by_priority(pending.by_priority);
                    }
                    Err(error) => tracing::warn!(%error, "counting the backlog failed"),
                }
            }
        });
        tokio::spawn(async move {
            Claimer {
                config,
                store,
                workers: senders,
                in_flight,
                wake,
                limits,
                stopping,
                cluster,
                degraded,
            }
            .run()
            .await;
            tracing::info!("dispatcher stopped claiming");
        });
        Ok(handle)
    }
}

/// The claim loop and what it works with.
struct Claimer {
    config: DispatchConfig,
    store: Store,
    workers: Vec<mpsc::UnboundedSender<Claimed>>,
    in_flight: Arc<Semaphore>,
    wake: Arc<Notify>,
    limits: Arc<limits::Limits>,
    stopping: Arc<AtomicBool>,
    cluster: Arc<Cluster>,
    degraded: Arc<AtomicBool>,
}

impl Claimer {
    async fn run(self) {
        let Self {
            config,
            store,
            workers,
            in_flight,
            wake,
            limits,
            stopping,
            cluster,
            degraded,
        } = self;
        let poll = Duration::from_millis(config.poll_interval_ms);
        let mut routing = routing::Routing::new(config.shards, workers.len());
        // The shard count the rate share was last set from: it is set again only on a change.
        let mut shared_for = None;
        let (report, mut finished) = mpsc::unbounded_channel::<FinishedReport>();
        loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            // This node's share of each number's rate follows its share of the shards.
            let held = cluster.held_count();
            if shared_for != Some(held) {
                limits.set_share(held, cluster.shard_count());
                shared_for = Some(held);
            }
            // No more than the sender's rate limit lets out soon: the rest would only go back.
            let headroom = limits.sender_headroom();
            if headroom == 0 {
                tokio::time::sleep(Duration::from_millis(config.rate_limit_hold_ms.clamp(1, 50))).await;
                continue;
            }
            let free = in_flight.available_permits().min(config.claim_batch).min(headroom);
            if free == 0 {
                // Every slot is busy: wait for one to come back rather than spinning.
                match in_flight.clone().acquire_owned().await {
                    Ok(permit) => drop(permit),
                    Err(_) => return,
                }
                continue;
            }
            let now = store::now_ms();
            let lease_until = now + i64::try_from(config.lease_ms).unwrap_or(i64::MAX / 2);
            // Degraded mode: bulk stays queued, nothing of it is lost.
            let classes = if degraded.load(Ordering::Relaxed) {
                store::ClaimClasses::AllButBulk
            } else {
                store::ClaimClasses::All
            };
            let claimed = match store
                .claim_due_classes(now, free, lease_until, cluster.node_id(), classes)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "claiming due messages failed; trying again");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            while let Ok((shard, worker)) = finished.try_recv() {
                routing.finished(shard, worker);
            }
            if let Some(moved) = routing.rebalance() {
                tracing::debug!(
                    shard = moved.shard,
                    from = moved.from,
                    to = moved.to,
                    from_in_flight = moved.from_in_flight,
                    to_in_flight = moved.to_in_flight,
                    moves = routing.moves(),
                    "shard moved to a less busy worker"
                );
            }
            for message in claimed {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    tracing::warn!("no in-flight slot (draining); message waits for its lease to end");
                    continue;
                };
                let shard = message.shard;
                let worker = routing.claimed(shard);
                if workers[worker]
                    .send(Claimed {
                        message,
                        _finished: Finished {
                            shard,
                            worker,
                            report: report.clone(),
                        },
                        _permit: permit,
                    })
                    .is_err()
                {
                    tracing::error!(worker, "dispatch worker has stopped");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn the_backlog_keeps_a_total_and_a_per_shard_snapshot() {
        let backlog = Backlog::default();
        backlog.set(vec![(7, 3), (200, 12), (9, 3)]);
        assert_eq!(backlog.get(), 18);
        assert_eq!((backlog.shard(200), backlog.shard(7), backlog.shard(1)), (12, 3, 0));
        assert_eq!(backlog.shards(), vec![(200, 12), (7, 3), (9, 3)]);
        // Accepts and sends move the total between counts; the snapshot waits for the next one.
        backlog.add(5);
        backlog.remove(2);
        assert_eq!(backlog.get(), 21);
        assert_eq!(backlog.shard(200), 12);
        backlog.set(Vec::new());
        assert_eq!((backlog.get(), backlog.shards()), (0, Vec::new()));
    }
}
