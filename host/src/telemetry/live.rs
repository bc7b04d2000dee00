//! The live event stream of this node: what `GET /v1/events/stream` (Server-Sent Events), the
//! dashboard and `wasp top` read. Parts publish [`LiveEvent`]s into one broadcast channel; a
//! subscriber that falls behind loses the oldest events (it is told how many) rather than
//! slowing the publishers down. Nothing is kept: the store is the record, this is the view.
//! Calls nothing else in wasp.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegionEvent {
    pub at_ms: i64,
    pub country_code: u16,
    pub degraded: bool,
    pub error_rate: f64,
}

/// The publishing end, cloned into every part that publishes.
#[derive(Clone)]
pub struct Live {
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self { sender }
    }

    /// Sends `event` to every subscriber now; with none, it is dropped.
    pub fn publish(&self, event: LiveEvent) {
        // An error only says no one listens.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Whether anyone listens: publishers skip building events no one reads.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
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
}
