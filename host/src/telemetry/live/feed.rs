//! What feeds the live event stream: the store's change feed as `message` events, region health
//! flips as `region` events, and once a second a `tick` with this node's numbers (kept in the
//! history every [`super::HISTORY_INTERVAL_MS`]). Health rules publish their own events.
//! May call the store (the change feed), the dispatcher's backlog counts and region health;
//! only reads them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::broadcast::error::RecvError;

use super::{Live, LiveEvent, MessageEvent, RegionEvent, TickCounter, TickSample};
use crate::{
    dispatch::DispatchHandle,
    message::Priority,
    regions::RegionHealth,
    store::{Change, Store},
};

/// How often a tick goes out.
pub const TICK_INTERVAL_MS: u64 = 1_000;

/// What the feed reads.
pub struct Sources {
    pub store: Store,
    pub dispatch: DispatchHandle,
    pub regions: Arc<RegionHealth>,
    pub node_id: String,
}

/// A change the store committed, as the stream shows it.
pub fn message_event(change: &Change) -> MessageEvent {
    MessageEvent {
        at_ms: change.at_ms,
        category: Some(change.category.as_str().to_owned()),
        error_code: change.error_code,
        id: change.id.to_string(),
        region: change.region,
        status: change.status.as_str().to_owned(),
        template: change.template.clone(),
    }
}

/// Every priority class at 0, so a class with nothing waiting still shows.
fn empty_backlog() -> BTreeMap<String, u64> {
    Priority::ALL
        .iter()
        .map(|priority| (priority.as_str().to_owned(), 0))
        .collect()
}

/// Starts the feed; it runs until the process ends.
pub fn spawn(live: Live, sources: Sources) {
    let counter = Arc::new(std::sync::Mutex::new(TickCounter::default()));
    let mut changes = sources.store.subscribe_changes();
    let publisher = live.clone();
    let counted = counter.clone();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(batch) => {
                    let events: Vec<MessageEvent> = batch.iter().map(message_event).collect();
                    {
                        let mut counter = counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        for event in &events {
                            counter.count(event);
                        }
                    }
                    if publisher.has_subscribers() {
                        for event in events {
                            publisher.publish(LiveEvent::Message(event));
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the live feed fell behind the store's change feed; counts miss those batches"
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    tokio::spawn(async move {
        let started_at_ms = crate::store::now_ms();
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut degraded: BTreeMap<u16, bool> = BTreeMap::new();
        loop {
            ticker.tick().await;
            let now_ms = crate::store::now_ms();
            // The dispatcher's own count of the store (every few seconds): no scan of our own.
            let mut backlog_by_priority = empty_backlog();
            for (priority, count) in sources.dispatch.backlog_by_priority() {
                backlog_by_priority.insert(priority.as_str().to_owned(), count);
            }
            let mut regions_degraded = Vec::new();
            for region in sources.regions.all(now_ms) {
                let was = degraded.insert(region.country_code, region.degraded).unwrap_or(false);
                if region.degraded != was {
                    live.publish(LiveEvent::Region(RegionEvent {
                        at_ms: region.changed_at_ms.unwrap_or(now_ms),
                        country_code: region.country_code,
                        degraded: region.degraded,
                        error_rate: region.error_rate,
                    }));
                }
                if region.degraded {
                    regions_degraded.push(region.country_code);
                }
            }
            let (last_second, since_start, sending) = counter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take_second(now_ms);
            live.publish_tick(TickSample {
                at_ms: now_ms,
                backlog: sources.dispatch.backlog(),
                backlog_by_priority,
                last_second,
                node_id: sources.node_id.clone(),
                regions_degraded,
                rules_firing: live.rules_firing(),
                sending,
                since_start,
                started_at_ms,
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Category, MessageId, Status};

    #[test]
    fn a_change_becomes_a_message_event() {
        let id = MessageId::new();
        let event = message_event(&Change {
            id,
            status: Status::Failed,
            at_ms: 42,
            category: Category::Marketing,
            template: Some("spring_sale".into()),
            region: Some(49),
            error_code: Some(131_026),
        });
        assert_eq!(
            event,
            MessageEvent {
                at_ms: 42,
                category: Some("marketing".into()),
                error_code: Some(131_026),
                id: id.to_string(),
                region: Some(49),
                status: "failed".into(),
                template: Some("spring_sale".into()),
            }
        );
    }

    #[test]
    fn every_class_shows_in_the_backlog() {
        let backlog = empty_backlog();
        let classes: Vec<&str> = backlog.keys().map(String::as_str).collect();
        assert_eq!(classes, ["bulk", "critical", "high", "normal"]);
    }
}
