//! The per-message decisions: marketing to strangers (rule 1), the marketing ramp per
//! recipient (rule 2), and how they combine with the sender's tier limit (rule 3, from
//! [`crate::tier`]) into one decision per hook. Pure: facts in, decision out; no logging,
//! counters or state. Calls only `wasp-sdk` types and the config and tier modules.

use std::fmt;

use wasp_sdk::{Category, Context, Message, RecipientFacts};

use crate::config::{Config, OverRamp, StrangerMarketing};
use crate::tier::{self, TierLimitReached, TierState};

/// What the policy decides about one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Allow,
    /// Not before `until_ms`, because of `hit`.
    Defer {
        until_ms: i64,
        hit: Hit,
    },
    /// Final, because of the hit; its text is the reason.
    Reject(Hit),
}

/// The rule a message ran into.
#[derive(Clone, Debug, PartialEq)]
pub enum Hit {
    Stranger(Stranger),
    Ramp(RampExceeded),
    Tier(TierLimitReached),
}

impl fmt::Display for Hit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hit::Stranger(stranger) => stranger.fmt(formatter),
            Hit::Ramp(exceeded) => exceeded.fmt(formatter),
            Hit::Tier(reached) => reached.fmt(formatter),
        }
    }
}

/// Marketing to a recipient who has not written to the business yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stranger {
    /// The recipient, masked (see [`mask`]).
    pub recipient: String,
}

impl fmt::Display for Stranger {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "marketing to {}: the recipient has not written to this business yet (0 interactions); \
             only authentication, utility and service messages may reach them",
            self.recipient
        )
    }
}

/// The window a ramp limit counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Day,
    Week,
}

impl Window {
    /// As reasons and logs spell it.
    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "24 h",
            Window::Week => "7 days",
        }
    }
}

/// Marketing over the recipient's ramp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RampExceeded {
    /// The recipient, masked (see [`mask`]).
    pub recipient: String,
    pub window: Window,
    /// Marketing messages already sent to the recipient in the window.
    pub sent: u32,
    /// Marketing messages the ramp step allows in the window.
    pub allowed: u32,
    /// The recipient's inbound interactions, which chose the step.
    pub interactions: u32,
}

impl RampExceeded {
    /// The limit and the numbers, without the recipient (for logs).
    pub fn limit(&self) -> String {
        format!(
            "{} of {} allowed in {} for {} interaction{}",
            self.sent,
            self.allowed,
            self.window.label(),
            self.interactions,
            if self.interactions == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for RampExceeded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "marketing to {}: {}", self.recipient, self.limit())
    }
}

/// The recipient's inbound interactions. A recipient the host says wrote in
/// (`last_inbound_ms`) counts as at least one, whatever `interactions` says.
pub fn interactions(recipient: &RecipientFacts) -> u32 {
    if recipient.last_inbound_ms.is_some() {
        recipient.interactions.max(1)
    } else {
        recipient.interactions
    }
}

/// A recipient who has not written to the business yet.
pub fn is_stranger(recipient: &RecipientFacts) -> bool {
    interactions(recipient) == 0
}

/// A phone number as reasons show it: the country calling code and the last two digits,
/// `+49…78`. Reasons are stored with the message and may reach logs; the whole number
/// need not.
pub fn mask(to: &str, country_code: u16) -> String {
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    let code = country_code.to_string();
    let prefix = if country_code != 0 && digits.starts_with(&code) {
        code.len()
    } else {
        0
    };
    let tail_start = digits.len().saturating_sub(2).max(prefix);
    // Only ASCII digits: every index is a character boundary.
    format!("+{}…{}", &digits[..prefix], &digits[tail_start..])
}

/// Rule 1: marketing to a stranger is refused, or waits `stranger_retry_ms`.
pub fn check_stranger(config: &Config, message: &Message, context: &Context) -> Decision {
    if message.category != Category::Marketing || !is_stranger(&context.recipient) {
        return Decision::Allow;
    }
    let hit = Hit::Stranger(Stranger {
        recipient: mask(&message.to, context.recipient.country_code),
    });
    match config.stranger_marketing {
        StrangerMarketing::Reject => Decision::Reject(hit),
        StrangerMarketing::Defer => Decision::Defer {
            until_ms: later(context.now_ms, config.stranger_retry_ms),
            hit,
        },
    }
}

/// Rule 2: marketing to a recipient who wrote in, over their ramp step's 24-hour or
/// 7-day limit (counted from the host's `sent24h`/`sent7d`), waits `ramp_retry_ms` or is
/// refused. The 24-hour limit is checked first. Strangers are rule 1's.
pub fn check_ramp(config: &Config, message: &Message, context: &Context) -> Decision {
    let recipient = &context.recipient;
    if message.category != Category::Marketing || is_stranger(recipient) {
        return Decision::Allow;
    }
    let interactions = interactions(recipient);
    let Some(step) = config.ramp_step(interactions) else {
        return Decision::Allow;
    };
    let windows = [
        (Window::Day, recipient.sent24h.marketing, step.marketing_per_24h),
        (Window::Week, recipient.sent7d.marketing, step.marketing_per_7d),
    ];
    let Some((window, sent, allowed)) = windows.into_iter().find(|(_, sent, allowed)| sent >= allowed) else {
        return Decision::Allow;
    };
    let hit = Hit::Ramp(RampExceeded {
        recipient: mask(&message.to, recipient.country_code),
        window,
        sent,
        allowed,
        interactions,
    });
    match config.over_ramp {
        OverRamp::Reject => Decision::Reject(hit),
        OverRamp::Defer => Decision::Defer {
            until_ms: later(context.now_ms, config.ramp_retry_ms),
            hit,
        },
    }
}

/// Rule 3: a message the sender's tier cannot take now waits `over_tier_retry_ms`.
pub fn check_tier(config: &Config, tier: &TierState, message: &Message, context: &Context) -> Decision {
    match tier::check(config, tier, message, &context.sender) {
        Some(reached) => Decision::Defer {
            until_ms: later(context.now_ms, config.over_tier_retry_ms),
            hit: Hit::Tier(reached),
        },
        None => Decision::Allow,
    }
}

/// On submit: rule 1 only (the ramp and the tier are judged on fresh facts at dispatch).
pub fn decide_submit(config: &Config, message: &Message, context: &Context) -> Decision {
    check_stranger(config, message, context)
}

/// On dispatch: rule 1 again (a message deferred as a stranger's comes back here), rule 2
/// and rule 3, with the sender at `tier`. The strictest wins: a reject over a defer, the
/// later of two defers.
pub fn decide_dispatch(config: &Config, tier: &TierState, message: &Message, context: &Context) -> Decision {
    [
        check_stranger(config, message, context),
        check_ramp(config, message, context),
        check_tier(config, tier, message, context),
    ]
    .into_iter()
    .fold(Decision::Allow, strictest)
}

/// The stricter of two decisions; on a tie, the first.
fn strictest(first: Decision, second: Decision) -> Decision {
    match (&first, &second) {
        (Decision::Reject(_), _) | (_, Decision::Allow) => first,
        (_, Decision::Reject(_)) | (Decision::Allow, _) => second,
        (Decision::Defer { until_ms: mine, .. }, Decision::Defer { until_ms: theirs, .. }) => {
            if theirs > mine {
                second
            } else {
                first
            }
        }
    }
}

/// `retry_ms` after `now_ms`.
fn later(now_ms: i64, retry_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(retry_ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
