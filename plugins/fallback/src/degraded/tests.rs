//! Native tests of rule (a): images as text, documents waiting with their state, release.

use wasp_sdk::RegionHealth;

use super::*;

const NOW_MS: i64 = 1_709_335_800_000;

fn context(degraded: bool, now_ms: i64) -> Context {
    Context {
        now_ms,
        region: RegionHealth {
            country_code: 62,
            error_rate: if degraded { 0.9 } else { 0.0 },
            p50_latency_ms: 40,
            degraded,
        },
        ..Context::default()
    }
}

fn media(link: Option<&str>, caption: Option<&str>, filename: Option<&str>) -> Media {
    Media {
        id: link.is_none().then(|| "1013859600285441".to_string()),
        link: link.map(str::to_string),
        caption: caption.map(str::to_string),
        filename: filename.map(str::to_string),
    }
}

fn text(body: &str, preview_url: bool) -> Content {
    Content::Text(TextBody {
        body: body.to_string(),
        preview_url,
    })
}

fn message(id: &str, content: Content) -> Message {
    Message::new(id, "+6281234567890", "100200300", content)
}

#[test]
fn an_image_with_a_link_becomes_its_caption_and_link_with_a_preview() {
    let config = DegradedRegionConfig::default();
    let image = message(
        "m-image",
        Content::Image(media(
            Some("https://cdn.example.com/p/1.jpg"),
            Some("Your parcel"),
            None,
        )),
    );
    assert_eq!(
        apply(&config, &image, &context(true, NOW_MS)),
        Outcome::Rewrite(text("Your parcel\nhttps://cdn.example.com/p/1.jpg", true))
    );
    let no_caption = message(
        "m-image",
        Content::Image(media(Some("https://cdn.example.com/p/1.jpg"), None, None)),
    );
    assert_eq!(
        apply(&config, &no_caption, &context(true, NOW_MS)),
        Outcome::Rewrite(text("https://cdn.example.com/p/1.jpg", true))
    );
}

#[test]
fn an_image_by_id_becomes_its_caption_or_the_configured_text() {
    let config = DegradedRegionConfig {
        image_without_link_text: "Photo to follow.".to_string(),
        ..DegradedRegionConfig::default()
    };
    let with_caption = message("m-1", Content::Image(media(None, Some("Your receipt"), None)));
    assert_eq!(
        apply(&config, &with_caption, &context(true, NOW_MS)),
        Outcome::Rewrite(text("Your receipt", false))
    );
    let bare = message("m-2", Content::Image(media(None, None, None)));
    assert_eq!(
        apply(&config, &bare, &context(true, NOW_MS)),
        Outcome::Rewrite(text("Photo to follow.", false))
    );
}

#[test]
fn nothing_changes_in_a_healthy_region() {
    let config = DegradedRegionConfig::default();
    for content in [
        Content::Image(media(Some("https://cdn.example.com/p/1.jpg"), None, None)),
        Content::Document(media(Some("https://cdn.example.com/i.pdf"), None, None)),
        Content::text("hello"),
    ] {
        let message = message("m-healthy", content);
        assert_eq!(apply(&config, &message, &context(false, NOW_MS)), Outcome::Unchanged);
    }
    assert_eq!(state::get(&wait_key("m-healthy")), None);
}

#[test]
fn text_and_interactive_content_are_not_touched_when_degraded() {
    let config = DegradedRegionConfig::default();
    let message = message("m-text", Content::text("Your code is 123456"));
    assert_eq!(apply(&config, &message, &context(true, NOW_MS)), Outcome::Unchanged);
}

#[test]
fn a_document_waits_by_recheck_then_goes_as_text_at_the_longest_wait() {
    let config = DegradedRegionConfig {
        recheck_ms: 60_000,
        max_wait_ms: 150_000,
        ..DegradedRegionConfig::default()
    };
    let document = message(
        "m-doc",
        Content::Document(media(
            Some("https://cdn.example.com/invoice-4411.pdf"),
            Some("Your invoice"),
            Some("invoice-4411.pdf"),
        )),
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS)),
        Outcome::Defer(NOW_MS + 60_000)
    );
    assert_eq!(state::get(&wait_key("m-doc")), Some(NOW_MS.to_string()));
    // Back after the recheck: still degraded, waits again from the same first deferral.
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS + 60_000)),
        Outcome::Defer(NOW_MS + 120_000)
    );
    // The next recheck would pass the longest wait: it is cut to the deadline.
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS + 120_000)),
        Outcome::Defer(NOW_MS + 150_000)
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS + 150_000)),
        Outcome::Rewrite(text(
            "Your invoice\ninvoice-4411.pdf\nhttps://cdn.example.com/invoice-4411.pdf",
            true
        ))
    );
    assert_eq!(state::get(&wait_key("m-doc")), None, "the wait is forgotten");
}

#[test]
fn videos_and_audio_wait_like_documents() {
    let config = DegradedRegionConfig::default();
    let video = message(
        "m-video",
        Content::Video(media(Some("https://cdn.example.com/v.mp4"), None, None)),
    );
    let audio = message(
        "m-audio",
        Content::Audio(media(Some("https://cdn.example.com/a.ogg"), None, None)),
    );
    assert_eq!(
        apply(&config, &video, &context(true, NOW_MS)),
        Outcome::Defer(NOW_MS + 60_000)
    );
    assert_eq!(
        apply(&config, &audio, &context(true, NOW_MS)),
        Outcome::Defer(NOW_MS + 60_000)
    );
}

#[test]
fn a_waiting_document_goes_as_it_is_once_the_region_recovers() {
    let config = DegradedRegionConfig::default();
    let document = message(
        "m-doc-2",
        Content::Document(media(Some("https://cdn.example.com/i.pdf"), None, None)),
    );
    assert!(matches!(
        apply(&config, &document, &context(true, NOW_MS)),
        Outcome::Defer(_)
    ));
    assert_eq!(
        apply(&config, &document, &context(false, NOW_MS + 60_000)),
        Outcome::Unchanged
    );
    assert_eq!(state::get(&wait_key("m-doc-2")), None);
    // Degraded again later: a fresh wait starts.
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS + 90_000)),
        Outcome::Defer(NOW_MS + 150_000)
    );
}

#[test]
fn a_document_by_id_goes_as_it_is_after_the_longest_wait() {
    let config = DegradedRegionConfig {
        max_wait_ms: 1_000,
        ..DegradedRegionConfig::default()
    };
    let document = message(
        "m-doc-id",
        Content::Document(media(None, Some("Contract"), Some("contract.pdf"))),
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS)),
        Outcome::Defer(NOW_MS + 1_000)
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS + 1_000)),
        Outcome::Unchanged
    );
}

#[test]
fn a_zero_longest_wait_sends_text_at_once() {
    let config = DegradedRegionConfig {
        max_wait_ms: 0,
        ..DegradedRegionConfig::default()
    };
    let document = message(
        "m-doc-now",
        Content::Document(media(Some("https://cdn.example.com/i.pdf"), None, Some("i.pdf"))),
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS)),
        Outcome::Rewrite(text("i.pdf\nhttps://cdn.example.com/i.pdf", true))
    );
    assert_eq!(state::get(&wait_key("m-doc-now")), None);
}

#[test]
fn an_unreadable_wait_state_starts_the_wait_again() {
    let config = DegradedRegionConfig::default();
    state::set(&wait_key("m-doc-bad"), "yesterday", None);
    let document = message(
        "m-doc-bad",
        Content::Document(media(Some("https://cdn.example.com/i.pdf"), None, None)),
    );
    assert_eq!(
        apply(&config, &document, &context(true, NOW_MS)),
        Outcome::Defer(NOW_MS + 60_000)
    );
}

#[test]
fn the_wait_is_capped_by_the_deadline() {
    let config = DegradedRegionConfig {
        recheck_ms: 60_000,
        max_wait_ms: 90_000,
        ..DegradedRegionConfig::default()
    };
    assert_eq!(wait(&config, 0, 0), Wait::Until(60_000));
    assert_eq!(wait(&config, 0, 60_000), Wait::Until(90_000));
    assert_eq!(wait(&config, 0, 89_999), Wait::Until(90_000));
    assert_eq!(wait(&config, 0, 90_000), Wait::Over);
    assert_eq!(wait_ttl_ms(&config), 90_000 + WAIT_STATE_GRACE_MS);
}
