//! Rule (a), degraded regions: while the recipient's region is degraded (or the host is in
//! degraded mode, with `follow_degraded_mode`), an image goes as
//! text (caption and link, with a link preview), and a document, video or audio waits
//! (deferred `recheck_ms` at a time) for the region to recover, at most `max_wait_ms` from
//! its first deferral, then goes as text with its link.
//!
//! The first deferral time is kept in the plugin's state under
//! [`WAIT_KEY_PREFIX`]`{message id}`, with a TTL, so the wait survives instance restarts and
//! is shared by every instance. Owns that state key and the decision; calls `plain` for the
//! texts and `wasp-sdk` for state, logs and counters.

use wasp_sdk::{Content, Context, Media, Message, TextBody, counter_add, log, state};

use crate::config::{CLOUD_API_MAX_TEXT_CHARS, DegradedRegionConfig};
use crate::plain;

/// The state key under which a waiting message's first deferral time is kept.
pub const WAIT_KEY_PREFIX: &str = "degraded-wait:";
/// How much longer than `max_wait_ms` a first deferral time is kept: room for the
/// dispatcher to come back to the message after its last deferral.
pub const WAIT_STATE_GRACE_MS: u64 = 3_600_000;

/// What the rule does with one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Not media, not degraded, or nothing to change.
    Unchanged,
    /// Send this content instead.
    Rewrite(Content),
    /// Try again at this time.
    Defer(i64),
}

/// How a document, video or audio that must wait stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Defer until this time.
    Until(i64),
    /// `max_wait_ms` has passed since the first deferral.
    Over,
}

/// The rule for one message at dispatch, reading and writing the wait state.
pub fn apply(config: &DegradedRegionConfig, message: &Message, context: &Context) -> Outcome {
    let host_degraded = config.follow_degraded_mode && context.degraded_mode;
    let degraded = context.region.degraded || host_degraded;
    // What the log lines blame.
    let cause = || {
        if context.region.degraded {
            format!("region {} degraded", context.region.country_code)
        } else {
            "host in degraded mode".to_string()
        }
    };
    match &message.content {
        Content::Image(media) if degraded => {
            counter_add("degraded_images_as_text", 1);
            log::debug(&format!("message {}: {}, image sent as text", message.id, cause()));
            Outcome::Rewrite(image_as_text(config, media))
        }
        Content::Document(media) | Content::Video(media) | Content::Audio(media) => {
            let key = wait_key(&message.id);
            let waiting_since = state::get(&key).and_then(|value| value.parse::<i64>().ok());
            if !degraded {
                if waiting_since.is_some() {
                    state::delete(&key);
                    counter_add("degraded_media_released", 1);
                    log::debug(&format!(
                        "message {}: region {} healthy again and host not degraded, {} sent as it is",
                        message.id,
                        context.region.country_code,
                        message.content.kind()
                    ));
                }
                return Outcome::Unchanged;
            }
            let first_ms = waiting_since.unwrap_or(context.now_ms);
            match wait(config, first_ms, context.now_ms) {
                Wait::Until(until_ms) => {
                    if waiting_since.is_none() {
                        state::set(&key, &first_ms.to_string(), Some(wait_ttl_ms(config)));
                    }
                    counter_add("degraded_media_deferred", 1);
                    log::debug(&format!(
                        "message {}: {}, {} deferred until {until_ms}",
                        message.id,
                        cause(),
                        message.content.kind()
                    ));
                    Outcome::Defer(until_ms)
                }
                Wait::Over => {
                    state::delete(&key);
                    match media_as_text(media) {
                        Some(text) => {
                            counter_add("degraded_media_as_text", 1);
                            log::debug(&format!(
                                "message {}: {} still after the longest wait, {} sent as text",
                                message.id,
                                cause(),
                                message.content.kind()
                            ));
                            Outcome::Rewrite(text)
                        }
                        None => {
                            counter_add("degraded_media_sent_unchanged", 1);
                            log::debug(&format!(
                                "message {}: {} still after the longest wait; {} has no link, sent as it is",
                                message.id,
                                cause(),
                                message.content.kind()
                            ));
                            Outcome::Unchanged
                        }
                    }
                }
            }
        }
        _ => Outcome::Unchanged,
    }
}

/// The state key of a message's first deferral time.
pub fn wait_key(message_id: &str) -> String {
    format!("{WAIT_KEY_PREFIX}{message_id}")
}

/// How long a first deferral time is kept.
pub fn wait_ttl_ms(config: &DegradedRegionConfig) -> u64 {
    config.max_wait_ms.saturating_add(WAIT_STATE_GRACE_MS)
}

/// Where a message first deferred at `first_ms` stands at `now_ms`: deferred by
/// `recheck_ms`, but never past `first_ms + max_wait_ms`; over once that time is reached.
pub fn wait(config: &DegradedRegionConfig, first_ms: i64, now_ms: i64) -> Wait {
    let deadline_ms = first_ms.saturating_add(i64::try_from(config.max_wait_ms).unwrap_or(i64::MAX));
    if now_ms >= deadline_ms {
        return Wait::Over;
    }
    let recheck_ms = now_ms.saturating_add(i64::try_from(config.recheck_ms).unwrap_or(i64::MAX));
    Wait::Until(recheck_ms.min(deadline_ms))
}

/// An image as text: its caption and link, with a link preview; by id only (nothing to
/// link to), its caption, or `image_without_link_text` when it has none.
pub fn image_as_text(config: &DegradedRegionConfig, media: &Media) -> Content {
    let has_link = media.link.as_deref().is_some_and(|link| !link.trim().is_empty());
    let body = if has_link {
        plain::media_text(media)
    } else {
        media.caption.clone().filter(|caption| !caption.trim().is_empty())
    }
    .unwrap_or_else(|| config.image_without_link_text.clone());
    Content::Text(TextBody {
        body: plain::fit(&body, CLOUD_API_MAX_TEXT_CHARS),
        preview_url: has_link,
    })
}

/// A document, video or audio as text: caption, file name and link, with a link preview;
/// `None` when it has no link (the text would not carry the file).
pub fn media_as_text(media: &Media) -> Option<Content> {
    media.link.as_deref().filter(|link| !link.trim().is_empty())?;
    let body = plain::media_text(media)?;
    Some(Content::Text(TextBody {
        body: plain::fit(&body, CLOUD_API_MAX_TEXT_CHARS),
        preview_url: true,
    }))
}

#[cfg(test)]
mod tests;
