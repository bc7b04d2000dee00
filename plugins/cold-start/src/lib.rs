//! The `cold-start` policy: warms up recipients and sender numbers so that marketing does
//! not get a business number blocked.
//!
//! 1. Strangers (no inbound interaction yet) get no marketing: rejected, or deferred
//!    (`stranger_marketing`), on submit and again on dispatch.
//! 2. After their first message, a recipient's marketing is ramped: at most so many per
//!    24 h and per 7 days, more as they interact more (`ramp`), judged on dispatch.
//! 3. A sender number's business-initiated volume per 24 h follows warm-up tiers
//!    (`sender_tiers`), kept per sender in the plugin's state and moved on each dispatch;
//!    over the tier, messages of the priorities in `over_tier_defer` wait.
//!
//! This file owns the [`ColdStart`] policy: reading and writing the tier state around the
//! pure decisions of [`rules`] and [`tier`], emitting [`events`], and turning decisions
//! into verdicts. [`config`] owns the config. Calls only `wasp-sdk` and these modules.

pub mod config;
pub mod events;
pub mod rules;
pub mod tier;

use wasp_sdk::{Context, Message, Policy, Verdict, state};

pub use config::Config;
use rules::{Decision, Hit};
use tier::TierState;

/// The policy: a validated [`Config`].
pub struct ColdStart {
    config: Config,
}

impl ColdStart {
    /// The sender's tier now: the stored one, moved by the fresh facts, written back if it
    /// moved.
    fn sender_tier(&self, message: &Message, context: &Context) -> TierState {
        let sender = sender_id(message, context);
        let key = tier::state_key(sender);
        let stored = state::get(&key).and_then(|text| match TierState::from_json(&text) {
            Ok(stored) => Some(stored),
            Err(error) => {
                events::TierStateUnreadable { sender, error: &error }.emit();
                None
            }
        });
        let (current, movement) = tier::advance(&self.config, stored, &context.sender, context.now_ms);
        if movement.changed() {
            state::set(&key, &current.to_json(), None);
            events::TierMoved {
                sender,
                movement,
                state: current,
            }
            .emit();
        }
        current
    }
}

/// Emits the decision's event and returns its verdict.
fn verdict(hook: &'static str, message: &Message, context: &Context, decision: Decision) -> Verdict {
    let message_id = message.id.as_str();
    let (hit, until_ms) = match decision {
        Decision::Allow => return Verdict::Allow,
        Decision::Defer { until_ms, hit } => (hit, Some(until_ms)),
        Decision::Reject(hit) => (hit, None),
    };
    match &hit {
        Hit::Stranger(_) => events::StrangerMarketing {
            message_id,
            hook,
            until_ms,
        }
        .emit(),
        Hit::Ramp(exceeded) => events::OverRamp {
            message_id,
            exceeded,
            until_ms,
        }
        .emit(),
        Hit::Tier(reached) => {
            if let Some(until_ms) = until_ms {
                events::OverTier {
                    message_id,
                    sender: sender_id(message, context),
                    reached,
                    until_ms,
                }
                .emit();
            }
        }
    }
    match until_ms {
        Some(until_ms) => Verdict::Defer(until_ms),
        None => Verdict::Reject(hit.to_string()),
    }
}

/// The sender's phone number id: the context's, or the message's when the host gave none.
fn sender_id<'a>(message: &'a Message, context: &'a Context) -> &'a str {
    if context.sender.phone_number_id.is_empty() {
        &message.sender
    } else {
        &context.sender.phone_number_id
    }
}

impl Policy for ColdStart {
    fn init(config: &str) -> Result<Self, String> {
        Ok(ColdStart {
            config: Config::parse(config)?,
        })
    }

    fn on_submit(&self, message: Message, context: &Context) -> Verdict {
        let decision = rules::decide_submit(&self.config, &message, context);
        verdict("on-submit", &message, context, decision)
    }

    fn on_dispatch(&self, message: Message, context: &Context) -> Verdict {
        let tier = self.sender_tier(&message, context);
        let decision = rules::decide_dispatch(&self.config, &tier, &message, context);
        verdict("on-dispatch", &message, context, decision)
    }
}

wasp_sdk::export_policy!(ColdStart);

#[cfg(test)]
mod tests;
