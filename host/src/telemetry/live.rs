//! The live event stream of this node: what `GET /v1/events/stream` (Server-Sent Events), the
//! dashboard and `wasp top` read. Parts publish [`LiveEvent`]s into one broadcast channel; a
//! subscriber that falls behind loses the oldest events (it is told how many) rather than
//! slowing the publishers down. The store is the record, this is the view: all that is kept is
//! an hour of tick samples (one per [`HISTORY_INTERVAL_MS`]) so a new subscriber can draw the
//! last hour at once, and which health rules fire now.
//!
//! [`TickCounter`] turns message events into the numbers a tick carries; [`feed`] is the task
//! that feeds the bus. This file calls nothing else in wasp.

pub mod feed;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// Events a slow subscriber may fall behind by before it loses the oldest.
const CAPACITY: usize = 4_096;

/// One thing that happened, as the stream sends it: the `event:` line is [`LiveEvent::kind`],
/// the `data:` line this as JSON (keys sorted).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum LiveEvent {
    /// A message changed state (accepted, sent, delivered, read, failed, fell back, ...).
    Message(MessageEvent),
    /// A health rule started or stopped firing.
    Rule(RuleEvent),
    /// A region turned degraded or healthy again.
    Region(RegionEvent),
    /// Once a second: the node's numbers now.
    Tick(serde_json::Value),
}

impl LiveEvent {
    /// The SSE event name a client can listen for.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveEvent::Message(_) => "message",
            LiveEvent::Rule(_) => "rule",
            LiveEvent::Region(_) => "region",
            LiveEvent::Tick(_) => "tick",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageEvent {
    pub at_ms: i64,
    pub category: Option<String>,
    /// Meta's error code of a failure.
    pub error_code: Option<i64>,
    pub id: String,
    /// The recipient's country calling code (never the number).
    pub region: Option<u16>,
    pub status: String,
    /// The template's name, for a template message.
    pub template: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleEvent {
    /// What the rule did: such as `scale_out`, `degrade`, `flag_template`.
    pub action: String,
    pub at_ms: i64,
    pub name: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// What it fired on, such as a template's name; `None` for a rule over the whole node.
    pub subject: Option<String>,
    pub threshold: f64,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegionEvent {
    pub at_ms: i64,
    pub country_code: u16,
    pub degraded: bool,
    pub error_rate: f64,
}

/// How far apart the kept tick samples are.
pub const HISTORY_INTERVAL_MS: i64 = 10_000;
/// Tick samples kept: one hour of them.
pub const HISTORY_SAMPLES: usize = 360;

/// How many messages reached each step. A status that skips a step (read without delivered)
/// counts only itself: these follow what was reported, the stats rollups count the funnel.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepCounts {
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub fell_back: u64,
    pub read: u64,
    pub sent: u64,
}

impl StepCounts {
    /// Counts one status; one of no step (queued, cancelled, ...) counts nothing.
    pub fn count(&mut self, status: &str) {
        let step = match status {
            "accepted" => &mut self.accepted,
            "sent" => &mut self.sent,
            "delivered" => &mut self.delivered,
            "read" => &mut self.read,
            "failed" => &mut self.failed,
            "fell_back" => &mut self.fell_back,
            _ => return,
        };
        *step += 1;
    }
}

/// One tick: this node's numbers at `at_ms`. Fields in alphabetical order: it goes out as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TickSample {
    pub at_ms: i64,
    /// Messages waiting to be sent in this node's shards.
    pub backlog: u64,
    /// Messages waiting per priority class in the whole store, at the dispatcher's last count
    /// (every few seconds); a class with none is 0.
    pub backlog_by_priority: BTreeMap<String, u64>,
    /// What happened in the second before `at_ms`.
    pub last_second: StepCounts,
    pub node_id: String,
    /// Country calling codes of the regions degraded now.
    pub regions_degraded: Vec<u16>,
    /// The rules firing now, as `name` or `name:subject`.
    pub rules_firing: Vec<String>,
    /// Messages between their send attempt and its answer, as the change feed told it.
    pub sending: u64,
    /// What happened since this node started.
    pub since_start: StepCounts,
    pub started_at_ms: i64,
}

/// The `data` of the `history` event a subscriber gets first: the kept samples, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub interval_ms: i64,
    pub samples: Vec<TickSample>,
}

/// The last hour of ticks, one per [`HISTORY_INTERVAL_MS`]: a ring of [`HISTORY_SAMPLES`].
#[derive(Debug, Default)]
pub struct TickHistory {
    samples: VecDeque<TickSample>,
}

impl TickHistory {
    /// Keeps `sample` when it is the first or [`HISTORY_INTERVAL_MS`] after the last kept
    /// one, dropping the oldest beyond [`HISTORY_SAMPLES`]; answers whether it was kept.
    pub fn offer(&mut self, sample: &TickSample) -> bool {
        if self
            .samples
            .back()
            .is_some_and(|last| sample.at_ms - last.at_ms < HISTORY_INTERVAL_MS)
        {
            return false;
        }
        if self.samples.len() == HISTORY_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample.clone());
        true
    }

    pub fn snapshot(&self) -> History {
        History {
            interval_ms: HISTORY_INTERVAL_MS,
            samples: self.samples.iter().cloned().collect(),
        }
    }
}

/// What a tick counts from the message events: per second, since start, and which messages
/// are being sent now.
#[derive(Debug, Default)]
pub struct TickCounter {
    second: StepCounts,
    since_start: StepCounts,
    /// Messages seen `sending` and not yet past it, with when.
    sending: HashMap<String, i64>,
}

/// A message seen `sending` longer than this is no longer counted as in flight: the change
/// that ended it was lost to a lag, or it went on from another node.
pub const SENDING_FORGOTTEN_AFTER_MS: i64 = 300_000;

impl TickCounter {
    pub fn count(&mut self, event: &MessageEvent) {
        self.second.count(&event.status);
        self.since_start.count(&event.status);
        if event.status == "sending" {
            self.sending.insert(event.id.clone(), event.at_ms);
        } else {
            self.sending.remove(&event.id);
        }
    }

    /// The counts of the second that ends now (and starts the next), and how many messages
    /// are being sent at `now_ms`.
    pub fn take_second(&mut self, now_ms: i64) -> (StepCounts, StepCounts, u64) {
        self.sending
            .retain(|_, since_ms| now_ms - *since_ms < SENDING_FORGOTTEN_AFTER_MS);
        let second = std::mem::take(&mut self.second);
        (second, self.since_start, self.sending.len() as u64)
    }
}

/// A rule and what it fires on (`None`: the whole node).
type RuleSubject = (String, Option<String>);

/// The publishing end, cloned into every part that publishes.
#[derive(Clone)]
pub struct Live {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    history: Arc<Mutex<TickHistory>>,
    /// Rules firing now, by (name, subject), from the rule events published.
    firing: Arc<Mutex<BTreeSet<RuleSubject>>>,
    /// Set once when the server shuts down: open streams end, so the shutdown does not wait
    /// on them.
    closing: Arc<watch::Sender<bool>>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self {
            sender,
            history: Arc::default(),
            firing: Arc::default(),
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// Sends `event` to every subscriber now; with none, it is dropped.
    pub fn publish(&self, event: LiveEvent) {
        if let LiveEvent::Rule(rule) = &event {
            let key = (rule.name.clone(), rule.subject.clone());
            let mut firing = self.firing.lock().unwrap_or_else(PoisonError::into_inner);
            if rule.state == "firing" {
                firing.insert(key);
            } else {
                firing.remove(&key);
            }
        }
        // An error only says no one listens.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Publishes a tick and keeps it in the history when one is due.
    pub fn publish_tick(&self, sample: TickSample) {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .offer(&sample);
        if self.has_subscribers() {
            match serde_json::to_value(&sample) {
                Ok(value) => self.publish(LiveEvent::Tick(value)),
                Err(error) => tracing::error!(%error, "a tick did not serialize"),
            }
        }
    }

    /// The kept ticks of the last hour, oldest first.
    pub fn history(&self) -> History {
        self.history.lock().unwrap_or_else(PoisonError::into_inner).snapshot()
    }

    /// The rules firing now, as `name` or `name:subject`.
    pub fn rules_firing(&self) -> Vec<String> {
        self.firing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, subject)| match subject {
                Some(subject) => format!("{name}:{subject}"),
                None => name.clone(),
            })
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Whether anyone listens: publishers skip building events no one reads.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Ends every open stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Changes to `true` when the streams are to end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_what_is_published_after_they_joined() {
        let live = Live::new();
        live.publish(LiveEvent::Tick(serde_json::json!({"before": true})));
        assert!(!live.has_subscribers());
        let mut receiver = live.subscribe();
        let event = LiveEvent::Region(RegionEvent {
            at_ms: 1,
            country_code: 65,
            degraded: true,
            error_rate: 0.5,
        });
        live.publish(event.clone());
        assert_eq!(*receiver.recv().await.unwrap(), event);
        assert_eq!(event.kind(), "region");
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"at_ms":1,"country_code":65,"degraded":true,"error_rate":0.5}"#
        );
    }

    fn sample(at_ms: i64) -> TickSample {
        TickSample {
            at_ms,
            ..TickSample::default()
        }
    }

    #[test]
    fn the_history_keeps_one_tick_per_interval_for_an_hour() {
        let mut history = TickHistory::default();
        assert!(history.offer(&sample(1_000)));
        assert!(!history.offer(&sample(2_000)), "a second later");
        assert!(!history.offer(&sample(1_000 + HISTORY_INTERVAL_MS - 1)));
        assert!(history.offer(&sample(1_000 + HISTORY_INTERVAL_MS)));
        let kept: Vec<i64> = history.snapshot().samples.iter().map(|tick| tick.at_ms).collect();
        assert_eq!(kept, [1_000, 11_000]);

        // Two hours of ticks, one a second: the last hour stays, oldest first.
        let mut history = TickHistory::default();
        for second in 0..7_200 {
            history.offer(&sample(second * 1_000));
        }
        let snapshot = history.snapshot();
        assert_eq!(snapshot.interval_ms, HISTORY_INTERVAL_MS);
        assert_eq!(snapshot.samples.len(), HISTORY_SAMPLES);
        assert_eq!(snapshot.samples.first().map(|tick| tick.at_ms), Some(3_600_000));
        assert_eq!(snapshot.samples.last().map(|tick| tick.at_ms), Some(7_190_000));
    }

    #[tokio::test]
    async fn a_tick_is_published_and_kept() {
        let live = Live::new();
        let mut receiver = live.subscribe();
        live.publish_tick(TickSample {
            node_id: "alpha".into(),
            ..sample(5)
        });
        let event = receiver.recv().await.unwrap();
        assert_eq!(event.kind(), "tick");
        let LiveEvent::Tick(value) = &*event else {
            panic!("not a tick: {event:?}");
        };
        assert_eq!(value["node_id"], "alpha");
        assert_eq!(live.history().samples.len(), 1);
    }

    fn message(id: &str, status: &str, at_ms: i64) -> MessageEvent {
        MessageEvent {
            at_ms,
            category: Some("utility".into()),
            error_code: None,
            id: id.into(),
            region: Some(65),
            status: status.into(),
            template: None,
        }
    }

    #[test]
    fn the_counter_counts_per_second_since_start_and_in_flight() {
        let mut counter = TickCounter::default();
        for (id, status) in [("a", "accepted"), ("b", "accepted"), ("a", "queued"), ("a", "sending")] {
            counter.count(&message(id, status, 1_000));
        }
        let (second, since_start, sending) = counter.take_second(1_500);
        assert_eq!((second.accepted, since_start.accepted, sending), (2, 2, 1));

        for status in ["sent", "delivered", "read"] {
            counter.count(&message("a", status, 2_000));
        }
        counter.count(&message("b", "sending", 2_000));
        counter.count(&message("b", "failed", 2_100));
        let (second, since_start, sending) = counter.take_second(2_500);
        assert_eq!(
            second,
            StepCounts {
                accepted: 0,
                delivered: 1,
                failed: 1,
                fell_back: 0,
                read: 1,
                sent: 1,
            }
        );
        assert_eq!((since_start.accepted, since_start.read, sending), (2, 1, 0));

        counter.count(&message("c", "sending", 3_000));
        assert_eq!(counter.take_second(3_000 + SENDING_FORGOTTEN_AFTER_MS - 1).2, 1);
        assert_eq!(
            counter.take_second(3_000 + SENDING_FORGOTTEN_AFTER_MS).2,
            0,
            "forgotten"
        );
    }

    #[test]
    fn rule_events_say_which_rules_fire_now() {
        let live = Live::new();
        let rule = |name: &str, subject: Option<&str>, state: &str| {
            LiveEvent::Rule(RuleEvent {
                action: "degrade".into(),
                at_ms: 1,
                name: name.into(),
                state: state.into(),
                subject: subject.map(str::to_owned),
                threshold: 0.2,
                value: 0.5,
            })
        };
        live.publish(rule("error-rate", None, "firing"));
        live.publish(rule("template-failures", Some("order_shipped"), "firing"));
        assert_eq!(live.rules_firing(), ["error-rate", "template-failures:order_shipped"]);
        live.publish(rule("error-rate", None, "resolved"));
        assert_eq!(live.rules_firing(), ["template-failures:order_shipped"]);
    }

    #[tokio::test]
    async fn closing_tells_the_streams() {
        let live = Live::new();
        let mut closing = live.closing();
        assert!(!*closing.borrow());
        live.close();
        closing.changed().await.unwrap();
        assert!(*closing.borrow());
    }
}
