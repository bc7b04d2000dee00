//! The dispatcher: claims due messages from the store, routes each to the worker that owns
//! its shard, and runs it through the policies and out through the channel.
//!
//! One claimer takes batches (highest class first) under a lease; worker `w` owns the shards
//! with `shard % workers == w`, so one recipient's messages always meet one worker, which
//! handles its batches one after another and a recipient's messages in order within a batch.
//! Every state change is written in batches through the store's group commit.
//! May call the store, the policy runtime and the channels.

mod worker;

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{
    channel::CloudApi,
    config::DispatchConfig,
    policy::PolicyRuntime,
    store::{self, PendingMessage, Store},
};

/// A claimed message and its place in the in-flight budget.
pub struct Claimed {
    pub message: PendingMessage,
    _permit: OwnedSemaphorePermit,
}

/// Wakes the claimer when new work is accepted.
#[derive(Clone)]
pub struct DispatchHandle {
    wake: Arc<Notify>,
}

impl DispatchHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub struct Dispatcher;

impl Dispatcher {
    /// Starts the claimer and the workers; they run until the process ends.
    pub async fn start(
        config: DispatchConfig,
        store: Store,
        policies: Arc<PolicyRuntime>,
        channel: Arc<CloudApi>,
    ) -> store::Result<DispatchHandle> {
        let released = store.release_leases().await?;
        if released > 0 {
            tracing::info!(released, "messages claimed before the last stop are pending again");
        }
        let wake = Arc::new(Notify::new());
        let in_flight = Arc::new(Semaphore::new(config.workers * config.sends_in_flight_per_worker * 2));
        let mut senders = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.push(sender);
            let worker = worker::Worker {
                index,
                config: config.clone(),
                store: store.clone(),
                policies: policies.clone(),
                channel: channel.clone(),
                wake: wake.clone(),
            };
            tokio::spawn(worker.run(receiver));
        }
        tokio::spawn(claim_loop(config, store, senders, in_flight, wake.clone()));
        Ok(DispatchHandle { wake })
    }
}

async fn claim_loop(
    config: DispatchConfig,
    store: Store,
    workers: Vec<mpsc::UnboundedSender<Claimed>>,
    in_flight: Arc<Semaphore>,
    wake: Arc<Notify>,
) {
    let poll = Duration::from_millis(config.poll_interval_ms);
    loop {
        let free = in_flight.available_permits().min(config.claim_batch);
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
        let claimed = match store.claim_due(now, free, lease_until).await {
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
        for message in claimed {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                tracing::error!("in-flight budget overrun; message waits for its lease to end");
                continue;
            };
            let worker = usize::from(message.shard) % workers.len();
            if workers[worker]
                .send(Claimed {
                    message,
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
