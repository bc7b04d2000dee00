//! The policy's telemetry: one struct per event, whose `emit` writes the debug log line and
//! bumps the counter. Lines carry message ids, sender phone number ids and numbers, never a
//! recipient's number or a message body. Calls only `wasp_sdk::log` and `counter_add`.

use wasp_sdk::{counter_add, log};

use crate::rules::RampExceeded;
use crate::tier::{Movement, TierLimitReached, TierState};

/// Marketing to a recipient who never wrote in: rejected, or deferred until `until_ms`.
pub struct StrangerMarketing<'a> {
    pub message_id: &'a str,
    pub hook: &'static str,
    pub until_ms: Option<i64>,
}

impl StrangerMarketing<'_> {
    pub fn emit(&self) {
        let (counter, outcome) = match self.until_ms {
            None => ("stranger_marketing_rejected", "rejected".to_string()),
            Some(until_ms) => ("stranger_marketing_deferred", format!("deferred until {until_ms}")),
        };
        log::debug(&format!(
            "message {} {}: marketing to a recipient with no interactions {outcome}",
            self.message_id, self.hook
        ));
        counter_add(counter, 1);
    }
}

/// Marketing over the recipient's ramp: rejected, or deferred until `until_ms`.
pub struct OverRamp<'a> {
    pub message_id: &'a str,
    pub exceeded: &'a RampExceeded,
    pub until_ms: Option<i64>,
}

impl OverRamp<'_> {
    pub fn emit(&self) {
        let (counter, outcome) = match self.until_ms {
            None => ("ramp_rejected", "rejected".to_string()),
            Some(until_ms) => ("ramp_deferred", format!("deferred until {until_ms}")),
        };
        log::debug(&format!(
            "message {} on-dispatch: marketing over the ramp ({}) {outcome}",
            self.message_id,
            self.exceeded.limit()
        ));
        counter_add(counter, 1);
    }
}

/// A message over the sender's tier, deferred until `until_ms`.
pub struct OverTier<'a> {
    pub message_id: &'a str,
    pub sender: &'a str,
    pub reached: &'a TierLimitReached,
    pub until_ms: i64,
}

impl OverTier<'_> {
    pub fn emit(&self) {
        log::debug(&format!(
            "message {} on-dispatch: sender {}: {}; deferred until {}",
            self.message_id, self.sender, self.reached, self.until_ms
        ));
        counter_add("tier_deferred", 1);
    }
}

/// A sender's warm-up tier moved (or was first set).
pub struct TierMoved<'a> {
    pub sender: &'a str,
    pub movement: Movement,
    pub state: TierState,
}

impl TierMoved<'_> {
    pub fn emit(&self) {
        let (counter, what) = match self.movement {
            Movement::Held => return,
            Movement::Started => ("tier_started", "starts warm-up at".to_string()),
            Movement::Promoted { from } => ("tier_promoted", format!("promoted from tier {from} to")),
            Movement::Demoted { from } => ("tier_demoted", format!("demoted for red quality from tier {from} to")),
            Movement::Clamped { from } => (
                "tier_clamped",
                format!("clamped from tier {from} (no longer configured) to"),
            ),
        };
        log::debug(&format!("sender {} {what} tier {}", self.sender, self.state.index));
        counter_add(counter, 1);
    }
}

/// The stored tier of a sender could not be read; the sender starts over.
pub struct TierStateUnreadable<'a> {
    pub sender: &'a str,
    pub error: &'a serde_json::Error,
}

impl TierStateUnreadable<'_> {
    pub fn emit(&self) {
        log::warn(&format!(
            "sender {}: stored warm-up tier is unreadable ({}); starting over",
            self.sender, self.error
        ));
        counter_add("tier_state_unreadable", 1);
    }
}
