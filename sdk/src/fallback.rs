//! Falling back to another channel: a follow-up tagged with [`fallback_tag`] is the original
//! message sent again (over SMS, say), not a new one. The host then ends the original
//! `fell_back`, with the follow-up's id in its history, and drops the follow-up instead if
//! the original was read (or fell back) by the time the follow-up arrives, so a read that
//! races the fallback timer never sends both.

/// The start of the tag that marks a follow-up as the fallback of an earlier message.
pub const FALLBACK_TAG_PREFIX: &str = "wasp.fallback-of:";

/// The tag that makes a follow-up the fallback of the message with id `original_id`.
pub fn fallback_tag(original_id: &str) -> String {
    format!("{FALLBACK_TAG_PREFIX}{original_id}")
}

/// The original message's id, if `tag` is a fallback tag.
pub fn fallback_of(tag: &str) -> Option<&str> {
    tag.strip_prefix(FALLBACK_TAG_PREFIX).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_round_trips() {
        let tag = fallback_tag("0192f4b2-0000-7000-8000-000000000001");
        assert_eq!(fallback_of(&tag), Some("0192f4b2-0000-7000-8000-000000000001"));
        assert_eq!(fallback_of("wasp.fallback-of:"), None);
        assert_eq!(fallback_of("payment"), None);
    }
}
