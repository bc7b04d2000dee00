//! The `fallback` policy: what to do when WhatsApp cannot carry a message as it is.
//!
//! Three rules, each a module and a config section, each able to be turned off:
//!
//! - [`degraded`] (`on-dispatch`): while the recipient's region is degraded, images go as
//!   text and documents, videos and audio wait for the region to recover (then, at the
//!   longest, go as text with their link);
//! - [`sms`] (`on-event`): a message of a covered category that is not read in time, or that
//!   is undeliverable, is sent again over SMS, tagged as the original's fallback;
//! - [`old_device`] (`on-dispatch`): a recipient on an old device gets plain text: no emoji,
//!   ASCII punctuation, buttons and lists as numbered options.
//!
//! This file owns the [`Fallback`] policy, which runs the rules in that order and turns
//! their outcomes into a verdict; [`config`] owns the config and [`plain`] the text
//! renderings the rules share. Calls only `wasp-sdk`.

pub mod config;
pub mod degraded;
pub mod old_device;
pub mod plain;
pub mod sms;

use wasp_sdk::{Action, Channel, Context, Event, Message, Policy, Verdict, counter_add, log};

pub use config::Config;

/// The policy: a validated config, and the rules applied under it.
pub struct Fallback {
    config: Config,
}

impl Fallback {
    /// The policy under an already validated config.
    pub fn new(config: Config) -> Fallback {
        Fallback { config }
    }
}

impl Policy for Fallback {
    fn init(config: &str) -> Result<Self, String> {
        Ok(Fallback::new(Config::parse(config)?))
    }

    /// Rule (a), then rule (c) on what (a) left: a waiting document is deferred as it is; an
    /// image that became text for a degraded region is still cleaned for an old device.
    /// Only WhatsApp messages are touched: an SMS (such as this plugin's own fallback)
    /// neither depends on WhatsApp's regions nor is drawn by a WhatsApp app.
    fn on_dispatch(&self, message: Message, context: &Context) -> Verdict {
        if message.channel != Channel::Whatsapp {
            return Verdict::Allow;
        }
        let mut content = None;
        if self.config.degraded_region.enabled {
            match degraded::apply(&self.config.degraded_region, &message, context) {
                degraded::Outcome::Unchanged => {}
                degraded::Outcome::Rewrite(rewritten) => content = Some(rewritten),
                degraded::Outcome::Defer(until_ms) => return Verdict::Defer(until_ms),
            }
        }
        let old_device = &self.config.old_device;
        if old_device.enabled && old_device.matches(&context.recipient.device_hints) {
            let current = content.as_ref().unwrap_or(&message.content);
            if let Some(cleaned) = old_device::rewrite(old_device, current) {
                counter_add("old_device_rewritten", 1);
                log::debug(&format!(
                    "message {}: old device, {} sent as plain text",
                    message.id,
                    current.kind()
                ));
                content = Some(cleaned);
            }
        }
        match content {
            Some(content) => Verdict::Rewrite(message.with_content(content)),
            None => Verdict::Allow,
        }
    }

    /// Rule (b).
    fn on_event(&self, event: Event, _context: &Context) -> Vec<Action> {
        if !self.config.sms.enabled {
            return Vec::new();
        }
        sms::on_event(&self.config.sms, &event)
    }
}

wasp_sdk::export_policy!(Fallback);

#[cfg(test)]
mod tests;
