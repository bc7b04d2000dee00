//! Rule (b), SMS fallback: a WhatsApp message of a covered category that is not `read`
//! within `unread_after_ms` of `delivered`, or that `failed` with an undeliverable error
//! code, is sent again over SMS as a follow-up tagged [`wasp_sdk::fallback_tag`] of the
//! original; the host then ends the original `fell_back` (or drops the follow-up if the
//! original was read meanwhile).
//!
//! Mechanics, all in `on-event`: `delivered` sets a timer (key: the message id; payload: a
//! [`TimerPayload`] with everything the SMS needs); `read` cancels it; the timer sends the
//! follow-up; an undeliverable `failed` sends it at once. With `cancel_on_inbound`, the
//! recipient's pending message ids are kept in state under [`PENDING_KEY_PREFIX`]`{to}` and
//! an inbound message from them cancels those timers. Owns the payload, the SMS text and
//! that state key; calls `plain` and `wasp-sdk`.

use serde::{Deserialize, Serialize};
use wasp_sdk::{
    Action, Category, Channel, Content, DeliveryStatus, Event, FollowUp, InboundMessage, Message, Priority,
    StatusEvent, TimerEvent, TimerRequest, counter_add, fallback_of, fallback_tag, log, state,
};

use crate::config::{CategoryName, SmsConfig};
use crate::plain;

/// The state key under which a recipient's messages with a pending fallback timer are kept.
pub const PENDING_KEY_PREFIX: &str = "sms-pending:";
/// How much longer than `unread_after_ms` a recipient's pending list is kept.
pub const PENDING_GRACE_MS: u64 = 3_600_000;
/// Pending message ids kept per recipient; the oldest are dropped past this.
pub const MAX_PENDING_PER_RECIPIENT: usize = 20;
/// What joins the body parameters of a template that has no SMS text of its own.
pub const PARAMETER_SEPARATOR: &str = ", ";

/// The payload of a fallback timer: what the SMS needs, fixed when the message was
/// delivered. The timer's key is the original message's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerPayload {
    /// The recipient, E.164 with `+`.
    pub to: String,
    pub category: CategoryName,
    pub priority: PriorityName,
    /// The original message's tags.
    pub tags: Vec<String>,
    /// The SMS text.
    pub text: String,
}

/// A priority as the timer payload spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityName {
    Critical,
    High,
    Normal,
    Bulk,
}

impl PriorityName {
    pub fn priority(self) -> Priority {
        match self {
            PriorityName::Critical => Priority::Critical,
            PriorityName::High => Priority::High,
            PriorityName::Normal => Priority::Normal,
            PriorityName::Bulk => Priority::Bulk,
        }
    }

    pub fn of(priority: Priority) -> PriorityName {
        match priority {
            Priority::Critical => PriorityName::Critical,
            Priority::High => PriorityName::High,
            Priority::Normal => PriorityName::Normal,
            Priority::Bulk => PriorityName::Bulk,
        }
    }
}

/// The rule for one event: the actions to carry out.
pub fn on_event(config: &SmsConfig, event: &Event) -> Vec<Action> {
    match event {
        Event::Status(status) => on_status(config, status),
        Event::Timer(timer) => on_timer(config, timer),
        Event::Inbound(inbound) => on_inbound(config, inbound),
    }
}

/// Whether a message's statuses concern this rule: sent over WhatsApp, of a covered
/// category, and not itself a fallback.
fn covered(config: &SmsConfig, message: &Message) -> bool {
    message.channel == Channel::Whatsapp
        && config.covers(message.category)
        && !message.tags.iter().any(|tag| fallback_of(tag).is_some())
}

fn on_status(config: &SmsConfig, status: &StatusEvent) -> Vec<Action> {
    let message = &status.message;
    if !covered(config, message) {
        return Vec::new();
    }
    match status.status {
        DeliveryStatus::Delivered => {
            let Some(text) = sms_text(config, &message.content) else {
                counter_add("sms_skipped_no_text", 1);
                log::debug(&format!(
                    "message {}: {} has no SMS text, no fallback timer",
                    message.id,
                    message.content.kind()
                ));
                return Vec::new();
            };
            let payload = TimerPayload {
                to: message.to.clone(),
                category: CategoryName::of(message.category),
                priority: PriorityName::of(message.priority),
                tags: message.tags.clone(),
                text,
            };
            let payload = match serde_json::to_string(&payload) {
                Ok(payload) => payload,
                Err(error) => {
                    log::error(&format!("message {}: encoding the fallback timer: {error}", message.id));
                    return Vec::new();
                }
            };
            if config.cancel_on_inbound {
                remember_pending(config, &message.to, &message.id);
            }
            counter_add("sms_timers_set", 1);
            let at_ms = status
                .at_ms
                .saturating_add(i64::try_from(config.unread_after_ms).unwrap_or(i64::MAX));
            log::debug(&format!(
                "message {}: delivered, SMS fallback at {at_ms} unless read",
                message.id
            ));
            vec![Action::SetTimer(TimerRequest {
                key: message.id.clone(),
                payload,
                at_ms,
            })]
        }
        DeliveryStatus::Read => {
            if config.cancel_on_inbound {
                forget_pending(config, &message.to, &message.id);
            }
            counter_add("sms_timers_cancelled", 1);
            log::debug(&format!("message {}: read, SMS fallback cancelled", message.id));
            vec![Action::CancelTimer(message.id.clone())]
        }
        DeliveryStatus::Failed => {
            let undeliverable = status
                .error_code
                .is_some_and(|code| config.undeliverable_codes.contains(&code));
            if !undeliverable {
                return Vec::new();
            }
            let Some(text) = sms_text(config, &message.content) else {
                counter_add("sms_skipped_no_text", 1);
                log::debug(&format!(
                    "message {}: undeliverable, but {} has no SMS text",
                    message.id,
                    message.content.kind()
                ));
                return Vec::new();
            };
            counter_add("sms_sent_undeliverable", 1);
            log::debug(&format!(
                "message {}: failed with {}, sent again over SMS",
                message.id,
                status.error_code.unwrap_or_default()
            ));
            vec![follow_up(
                &message.id,
                message.to.clone(),
                message.category,
                message.priority,
                message.tags.clone(),
                text,
            )]
        }
        DeliveryStatus::Sent => Vec::new(),
    }
}

fn on_timer(config: &SmsConfig, timer: &TimerEvent) -> Vec<Action> {
    let payload: TimerPayload = match serde_json::from_str(&timer.payload) {
        Ok(payload) => payload,
        Err(error) => {
            counter_add("sms_timer_payload_invalid", 1);
            log::warn(&format!(
                "fallback timer {}: payload not understood: {error}",
                timer.key
            ));
            return Vec::new();
        }
    };
    if config.cancel_on_inbound {
        forget_pending(config, &payload.to, &timer.key);
    }
    let category = payload.category.category();
    if !config.covers(category) {
        log::debug(&format!(
            "message {}: its category no longer falls back, no SMS",
            timer.key
        ));
        return Vec::new();
    }
    counter_add("sms_sent_unread", 1);
    log::debug(&format!("message {}: not read in time, sent again over SMS", timer.key));
    vec![follow_up(
        &timer.key,
        payload.to,
        category,
        payload.priority.priority(),
        payload.tags,
        payload.text,
    )]
}

fn on_inbound(config: &SmsConfig, inbound: &InboundMessage) -> Vec<Action> {
    if !config.cancel_on_inbound {
        return Vec::new();
    }
    let key = pending_key(&inbound.from);
    let pending = pending_ids(&key);
    if pending.is_empty() {
        return Vec::new();
    }
    state::delete(&key);
    counter_add("sms_timers_cancelled", pending.len() as u64);
    log::debug(&format!(
        "inbound {}: the recipient wrote, {} SMS fallback(s) cancelled",
        inbound.wamid,
        pending.len()
    ));
    pending.into_iter().map(Action::CancelTimer).collect()
}

/// The SMS follow-up of the message `original_id`: its tags plus the fallback tag.
fn follow_up(
    original_id: &str,
    to: String,
    category: Category,
    priority: Priority,
    mut tags: Vec<String>,
    text: String,
) -> Action {
    tags.push(fallback_tag(original_id));
    Action::Send(FollowUp {
        to,
        channel: Channel::Sms,
        category,
        priority,
        content: Content::text(text),
        tags,
    })
}

/// The SMS text of a message's content, within `max_chars`; `None` when there is nothing
/// to say.
///
/// - text: the body as it is;
/// - template: its text in `templates` with `{{n}}` filled from the body parameters, or
///   else `default_prefix` followed by the body parameters joined by `", "` (none when it
///   has no body parameters);
/// - buttons and lists: header, body, numbered options and footer;
/// - image, document, video, audio: caption, file name and link.
pub fn sms_text(config: &SmsConfig, content: &Content) -> Option<String> {
    let text = match content {
        Content::Text(text) => text.body.clone(),
        Content::Template(template) => {
            let parameters = plain::body_parameters(template);
            match config.templates.get(&template.name) {
                Some(text) => plain::fill_placeholders(text, &parameters),
                None if parameters.is_empty() => return None,
                None => format!("{}{}", config.default_prefix, parameters.join(PARAMETER_SEPARATOR)),
            }
        }
        Content::InteractiveButtons(buttons) => plain::buttons_text(buttons, ""),
        Content::InteractiveList(list) => plain::list_text(list, ""),
        Content::Image(media) | Content::Document(media) | Content::Video(media) | Content::Audio(media) => {
            plain::media_text(media)?
        }
    };
    let text = text.trim();
    (!text.is_empty()).then(|| plain::fit(text, config.max_chars as usize))
}

/// The state key of a recipient's pending fallbacks.
pub fn pending_key(to: &str) -> String {
    format!("{PENDING_KEY_PREFIX}{to}")
}

fn pending_ids(key: &str) -> Vec<String> {
    state::get(key)
        .and_then(|value| serde_json::from_str::<Vec<String>>(&value).ok())
        .unwrap_or_default()
}

fn store_pending(config: &SmsConfig, key: &str, ids: &[String]) {
    if ids.is_empty() {
        state::delete(key);
        return;
    }
    match serde_json::to_string(ids) {
        Ok(value) => state::set(
            key,
            &value,
            Some(config.unread_after_ms.saturating_add(PENDING_GRACE_MS)),
        ),
        Err(error) => log::error(&format!("encoding the pending fallbacks: {error}")),
    }
}

fn remember_pending(config: &SmsConfig, to: &str, message_id: &str) {
    let key = pending_key(to);
    let mut ids = pending_ids(&key);
    if ids.iter().any(|id| id == message_id) {
        return;
    }
    ids.push(message_id.to_string());
    if ids.len() > MAX_PENDING_PER_RECIPIENT {
        ids.drain(..ids.len() - MAX_PENDING_PER_RECIPIENT);
    }
    store_pending(config, &key, &ids);
}

fn forget_pending(config: &SmsConfig, to: &str, message_id: &str) {
    let key = pending_key(to);
    let mut ids = pending_ids(&key);
    let before = ids.len();
    ids.retain(|id| id != message_id);
    if ids.len() != before {
        store_pending(config, &key, &ids);
    }
}

#[cfg(test)]
mod tests;
