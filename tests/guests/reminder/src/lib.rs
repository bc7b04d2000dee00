//! A test guest for the event path: when a message tagged `remind` is delivered, it sets a
//! timer `delay_ms` later (config, default 200); when the timer fires, it sends the recipient
//! a follow-up text (over WhatsApp or, by config, SMS) and counts it. Exercises `on-event` statuses, durable timers, follow-up
//! actions, state and counters. Calls only `wasp-sdk`.

use serde::Deserialize;
use wasp_sdk::{
    Action, Category, Channel, Content, Context, DeliveryStatus, Event, FollowUp, Policy, Priority, TimerRequest,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Config {
    delay_ms: Option<i64>,
    /// `whatsapp` (default) or `sms`.
    channel: Option<String>,
}

pub struct Reminder {
    delay_ms: i64,
    channel: Channel,
}

impl Policy for Reminder {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = wasp_sdk::parse_config(config)?;
        let delay_ms = config.delay_ms.unwrap_or(200);
        if delay_ms < 0 {
            return Err("config field `delay_ms` must not be negative".into());
        }
        let channel = match config.channel.as_deref() {
            None | Some("whatsapp") => Channel::Whatsapp,
            Some("sms") => Channel::Sms,
            Some(other) => return Err(format!("config field `channel`: unknown channel {other:?}")),
        };
        Ok(Self { delay_ms, channel })
    }

    fn on_event(&self, event: Event, context: &Context) -> Vec<Action> {
        match event {
            Event::Status(status)
                if status.status == DeliveryStatus::Delivered
                    && status.message.tags.iter().any(|tag| tag == "remind") =>
            {
                wasp_sdk::state::set(
                    &format!("pending:{}", status.message.id),
                    &status.message.to,
                    Some(86_400_000),
                );
                vec![Action::SetTimer(TimerRequest {
                    key: status.message.id.clone(),
                    payload: status.message.to.clone(),
                    at_ms: context.now_ms + self.delay_ms,
                })]
            }
            Event::Timer(timer) => {
                wasp_sdk::state::delete(&format!("pending:{}", timer.key));
                wasp_sdk::counter_add("reminders_sent", 1);
                vec![Action::Send(FollowUp {
                    to: timer.payload,
                    channel: self.channel,
                    category: Category::Utility,
                    priority: Priority::High,
                    content: Content::text(format!("reminder for {}", timer.key)),
                    tags: vec!["follow-up".into()],
                })]
            }
            _ => Vec::new(),
        }
    }
}

wasp_sdk::export_policy!(Reminder);
