//! Sender warm-up: the messaging tier a sender number is at, how it moves (up on volume
//! with good quality and time served, down on red quality), the JSON it is kept as in the
//! plugin's key/value state, and the limit that tier puts on the sender's volume.
//!
//! Everything here is pure: the caller reads the stored state, asks [`advance`] where the
//! sender stands now, writes the result back if it changed, and asks [`check`] about the
//! message. Calls only `wasp-sdk` types and serde.

use std::fmt;

use serde::{Deserialize, Serialize};
use wasp_sdk::{Category, Message, Quality, SenderFacts};

use crate::config::{Config, MILLISECONDS_PER_HOUR};

/// [`MILLISECONDS_PER_HOUR`] in the context's time type.
const MILLISECONDS_PER_HOUR_I64: i64 = MILLISECONDS_PER_HOUR as i64;

/// The prefix of the state key a sender's tier is kept under; the phone number id follows.
pub const STATE_KEY_PREFIX: &str = "tier/";

/// The state key of the sender with phone number id `phone_number_id`.
pub fn state_key(phone_number_id: &str) -> String {
    format!("{STATE_KEY_PREFIX}{phone_number_id}")
}

/// A sender's warm-up tier as kept in state: `{"index": 1, "since_ms": 1709335800000}`,
/// with `"demoted": true` when the sender reached this tier by a drop for red quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierState {
    /// Index into `sender_tiers`.
    pub index: usize,
    /// When the sender reached this tier.
    pub since_ms: i64,
    /// The sender reached this tier by a drop for red quality.
    #[serde(default, skip_serializing_if = "is_false")]
    pub demoted: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl TierState {
    /// Reads the stored JSON.
    pub fn from_json(text: &str) -> Result<TierState, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON to store.
    pub fn to_json(self) -> String {
        if self.demoted {
            format!(
                r#"{{"index":{},"since_ms":{},"demoted":true}}"#,
                self.index, self.since_ms
            )
        } else {
            format!(r#"{{"index":{},"since_ms":{}}}"#, self.index, self.since_ms)
        }
    }
}

/// How a sender's tier moved on this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// As stored: nothing to write.
    Held,
    /// First seen (or the stored state was unreadable): starts at `start_tier`.
    Started,
    /// One tier up, from `from`.
    Promoted { from: usize },
    /// One tier down for red quality, from `from`.
    Demoted { from: usize },
    /// The stored index is past the configured tiers (the config lost tiers): clamped to the last.
    Clamped { from: usize },
}

impl Movement {
    /// Whether the state must be written back.
    pub fn changed(self) -> bool {
        self != Movement::Held
    }
}

/// Where a sender stands after looking at its fresh facts: its tier and how it moved.
///
/// - A sender with no stored state starts at `start_tier`, since now.
/// - Red quality with `demote_on_red` drops one tier (not below the first) at once; a
///   sender that stays red drops one more tier per `min_hours_per_tier` spent at the tier
///   it dropped to.
/// - Green or unknown quality, `min_hours_per_tier` served at this tier, and the sender's
///   24-hour volume at least `promote_at_share` of the tier's limit move it up one tier.
///   The unlimited tier is the top; there is nothing above the last tier.
/// - Yellow quality (and red without `demote_on_red`) holds the tier.
pub fn advance(config: &Config, stored: Option<TierState>, sender: &SenderFacts, now_ms: i64) -> (TierState, Movement) {
    let moved = |index: usize, demoted: bool| TierState {
        index,
        since_ms: now_ms,
        demoted,
    };
    let Some(stored) = stored else {
        return (moved(config.start_tier, false), Movement::Started);
    };
    let last = config.sender_tiers.len().saturating_sub(1);
    if stored.index > last {
        return (moved(last, false), Movement::Clamped { from: stored.index });
    }
    let period_ms = i64::from(config.min_hours_per_tier).saturating_mul(MILLISECONDS_PER_HOUR_I64);
    let served = now_ms.saturating_sub(stored.since_ms) >= period_ms;
    match sender.quality {
        Quality::Red if config.demote_on_red && stored.index > 0 && (served || !stored.demoted) => {
            (moved(stored.index - 1, true), Movement::Demoted { from: stored.index })
        }
        Quality::Green | Quality::Unknown
            if served && stored.index < last && reached_share(config, stored.index, sender.sent24h) =>
        {
            (
                moved(stored.index + 1, false),
                Movement::Promoted { from: stored.index },
            )
        }
        _ => (stored, Movement::Held),
    }
}

/// Whether `sent24h` is at least `promote_at_share` of tier `index`'s limit (never for the
/// unlimited tier).
fn reached_share(config: &Config, index: usize, sent24h: u32) -> bool {
    config
        .tier_limit(index)
        .is_some_and(|limit| f64::from(sent24h) >= config.promote_at_share * f64::from(limit))
}

/// A sender that has used up its 24-hour limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierLimitReached {
    /// Business-initiated messages the sender sent in the last 24 h.
    pub sent24h: u32,
    /// The effective limit: the warm-up tier's, or the host's real tier if smaller.
    pub limit: u32,
    /// The warm-up tier index.
    pub tier: usize,
    /// The warm-up tier's own limit (`None`: unlimited).
    pub tier_limit: Option<u32>,
    /// The real tier the host reported, if any.
    pub host_limit: Option<u32>,
}

impl fmt::Display for TierLimitReached {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} of {} business-initiated messages in 24 h (warm-up tier {}: ",
            self.sent24h, self.limit, self.tier
        )?;
        match self.tier_limit {
            Some(limit) => write!(formatter, "{limit}")?,
            None => write!(formatter, "unlimited")?,
        }
        match self.host_limit {
            Some(limit) => write!(formatter, "; number's tier: {limit})"),
            None => write!(formatter, ")"),
        }
    }
}

/// The effective 24-hour limit at `tier`: the smaller of the warm-up tier's and the host's
/// real tier; `None` when both are unlimited.
pub fn effective_limit(config: &Config, tier: &TierState, sender: &SenderFacts) -> Option<u32> {
    match (config.tier_limit(tier.index), sender.tier_limit) {
        (Some(ours), Some(hosts)) => Some(ours.min(hosts)),
        (ours, hosts) => ours.or(hosts),
    }
}

/// Whether `message` must wait for the sender's tier: not a `service` message, of a
/// priority in `over_tier_defer`, from a sender whose 24-hour volume has reached the
/// effective limit.
pub fn check(config: &Config, tier: &TierState, message: &Message, sender: &SenderFacts) -> Option<TierLimitReached> {
    if message.category == Category::Service || !config.defers_over_tier(message.priority) {
        return None;
    }
    let limit = effective_limit(config, tier, sender)?;
    (sender.sent24h >= limit).then(|| TierLimitReached {
        sent24h: sender.sent24h,
        limit,
        tier: tier.index,
        tier_limit: config.tier_limit(tier.index),
        host_limit: sender.tier_limit,
    })
}

#[cfg(test)]
mod tests;
