//! The `send-window` policy: each category may only be sent inside its windows on the
//! recipient's local clock (by default marketing 09:00 to 20:00, utility 07:00 to 22:00,
//! authentication and service any time), overridable per country calling code. A message
//! that comes up for sending outside its windows is deferred to the next opening, computed
//! in the recipient's IANA time zone with daylight saving taken into account. Priorities in
//! `bypass_priorities` (critical by default) are never held back.
//!
//! The check runs in `on-dispatch`, which the host calls right before each send (again after
//! a deferral, with fresh facts), so a message deferred at night is judged again when its
//! window opens. `on-submit` allows everything.
//!
//! This file owns the decision ([`decide`], pure) and the policy around it (logging and
//! counters). [`config`] owns the config, [`window`] the wall-clock rules and [`opening`]
//! the zones and instants. Calls `wasp-sdk` and jiff; never a clock: "now" is the context's.

pub mod config;
pub mod opening;
pub mod window;

use jiff::Timestamp;
use wasp_sdk::{Category, Context, Message, Policy, Verdict, counter_add, log};

pub use config::Config;
use opening::{RecipientZone, ZoneSource};
use window::Schedule;

/// What the policy decides about one message at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The message's priority is in `bypass_priorities`.
    Bypass,
    /// The category's schedule is open now, or is `any`.
    Open,
    /// Closed now: not before `until_ms`, the next opening, in the recipient's `zone`.
    Defer { until_ms: i64, zone: ZoneSource },
    /// No opening could be computed (`now_ms` out of the range of dates the tz database
    /// covers, or no opening within eight days, which a valid config rules out). The message
    /// goes rather than being held without a date.
    Unresolved { zone: ZoneSource },
}

/// Decides whether `message` may be sent at `context.now_ms`, under `config`.
pub fn decide(config: &Config, message: &Message, context: &Context) -> Decision {
    if config.bypasses(message.priority) {
        return Decision::Bypass;
    }
    let schedule = config.schedule(context.recipient.country_code, message.category);
    if *schedule == Schedule::Always {
        return Decision::Open;
    }
    let zone = RecipientZone::resolve(&context.recipient.time_zone, context.recipient.utc_offset_minutes);
    let Ok(now) = Timestamp::from_millisecond(context.now_ms) else {
        return Decision::Unresolved { zone: zone.source };
    };
    if opening::is_open(schedule, &zone.zone, now) {
        return Decision::Open;
    }
    match opening::next_opening(schedule, &zone.zone, now) {
        Some(opening) => Decision::Defer {
            until_ms: opening.as_millisecond(),
            zone: zone.source,
        },
        None => Decision::Unresolved { zone: zone.source },
    }
}

/// The contract's name of a category, for log lines.
pub fn category_name(category: Category) -> &'static str {
    match category {
        Category::Authentication => "authentication",
        Category::Utility => "utility",
        Category::Marketing => "marketing",
        Category::Service => "service",
    }
}

/// The policy: [`decide`] at dispatch, with a log line and a counter for each deferral.
pub struct SendWindow {
    config: Config,
}

impl SendWindow {
    fn judge(&self, message: &Message, context: &Context) -> Verdict {
        match decide(&self.config, message, context) {
            Decision::Bypass | Decision::Open => Verdict::Allow,
            Decision::Defer { until_ms, zone } => {
                note_unknown_zone(&zone);
                let until = Timestamp::from_millisecond(until_ms)
                    .map_or_else(|_| format!("{until_ms} ms"), |at| at.to_string());
                log::info(&format!(
                    "message {}: {} window closed in {}; deferred until {until}",
                    message.id,
                    category_name(message.category),
                    zone.describe(),
                ));
                counter_add("deferred", 1);
                Verdict::Defer(until_ms)
            }
            Decision::Unresolved { zone } => {
                note_unknown_zone(&zone);
                log::warn(&format!(
                    "message {}: no opening of the {} window found in {} at {} ms; allowed",
                    message.id,
                    category_name(message.category),
                    zone.describe(),
                    context.now_ms,
                ));
                counter_add("unresolved", 1);
                Verdict::Allow
            }
        }
    }
}

/// Logs and counts a recipient zone the bundled tz database does not know.
fn note_unknown_zone(zone: &ZoneSource) {
    if let ZoneSource::Offset { unknown_name, .. } = zone {
        log::debug(&format!(
            "time zone {unknown_name:?} unknown; using the offset {}",
            zone.describe()
        ));
        counter_add("unknown_zone", 1);
    }
}

impl Policy for SendWindow {
    fn init(config: &str) -> Result<Self, String> {
        Ok(SendWindow {
            config: Config::parse(config)?,
        })
    }

    fn on_dispatch(&self, message: Message, context: &Context) -> Verdict {
        self.judge(&message, context)
    }
}

wasp_sdk::export_policy!(SendWindow);

#[cfg(test)]
mod tests;
