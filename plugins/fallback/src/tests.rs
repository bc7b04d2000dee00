//! Native tests of the policy as a whole: how the rules combine at dispatch, that each can
//! be turned off, that SMS messages are left alone, init errors, and every fixture.

use wasp_sdk::{ButtonsMessage, Content, DeliveryStatus, Media, RegionHealth, ReplyButton, StatusEvent, TextBody};

use super::*;

const NOW_MS: i64 = 1_709_335_800_000;

fn context(degraded: bool, hints: &[&str]) -> Context {
    let mut context = Context {
        now_ms: NOW_MS,
        region: RegionHealth {
            country_code: 62,
            error_rate: if degraded { 1.0 } else { 0.0 },
            p50_latency_ms: 0,
            degraded,
        },
        ..Context::default()
    };
    context.recipient.device_hints = hints.iter().map(|hint| hint.to_string()).collect();
    context
}

fn image() -> Message {
    Message::new(
        "m-1",
        "+6281234567890",
        "100200300",
        Content::Image(Media {
            id: None,
            link: Some("https://cdn.example.com/p/1.jpg".to_string()),
            caption: Some("Your parcel 📦".to_string()),
            filename: None,
        }),
    )
}

fn buttons() -> Message {
    Message::new(
        "m-2",
        "+6281234567890",
        "100200300",
        Content::InteractiveButtons(ButtonsMessage::new(
            "Deliver on Tuesday?",
            vec![ReplyButton::new("yes", "Yes"), ReplyButton::new("no", "No")],
        )),
    )
}

fn policy(config: &str) -> Fallback {
    match Fallback::init(config) {
        Ok(policy) => policy,
        Err(error) => panic!("config refused: {error}"),
    }
}

#[test]
fn a_degraded_image_to_an_old_device_becomes_clean_text() {
    let verdict = policy("").on_dispatch(image(), &context(true, &["old-device"]));
    let Verdict::Rewrite(rewritten) = verdict else {
        panic!("expected a rewrite, got {verdict:?}");
    };
    assert_eq!(rewritten.id, "m-1");
    assert_eq!(
        rewritten.content,
        Content::Text(TextBody {
            body: "Your parcel\nhttps://cdn.example.com/p/1.jpg".to_string(),
            preview_url: true,
        })
    );
}

#[test]
fn each_rule_can_be_turned_off() {
    let quiet = policy(r#"{"degraded_region": {"enabled": false}, "old_device": {"enabled": false}}"#);
    assert_eq!(
        quiet.on_dispatch(image(), &context(true, &["old-device"])),
        Verdict::Allow
    );
    assert_eq!(
        quiet.on_dispatch(buttons(), &context(true, &["old-device"])),
        Verdict::Allow
    );

    let no_sms = policy(r#"{"sms": {"enabled": false}}"#);
    let delivered = Event::Status(StatusEvent {
        message: Message::new("m-3", "+6591234567", "100200300", Content::text("hi")),
        status: DeliveryStatus::Delivered,
        at_ms: NOW_MS,
        error_code: None,
        error_title: None,
    });
    assert_eq!(no_sms.on_event(delivered.clone(), &Context::default()), Vec::new());
    assert_eq!(policy("").on_event(delivered, &Context::default()).len(), 1);
}

#[test]
fn a_healthy_region_and_a_new_device_leave_the_message_alone() {
    let policy = policy("");
    assert_eq!(policy.on_dispatch(image(), &context(false, &[])), Verdict::Allow);
    assert_eq!(
        policy.on_dispatch(buttons(), &context(false, &["android-14"])),
        Verdict::Allow
    );
}

#[test]
fn a_waiting_document_is_deferred_even_for_an_old_device() {
    let document = Message::new(
        "m-4",
        "+6281234567890",
        "100200300",
        Content::Document(Media {
            id: None,
            link: Some("https://cdn.example.com/i.pdf".to_string()),
            caption: Some("Invoice ✅".to_string()),
            filename: None,
        }),
    );
    assert_eq!(
        policy("").on_dispatch(document, &context(true, &["old-device"])),
        Verdict::Defer(NOW_MS + 60_000)
    );
}

#[test]
fn sms_messages_are_left_alone() {
    let mut message = buttons();
    message.channel = Channel::Sms;
    assert_eq!(
        policy("").on_dispatch(message, &context(true, &["old-device"])),
        Verdict::Allow
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let error = Fallback::init(r#"{"sms": {"unread_after_ms": 10}}"#)
        .err()
        .unwrap_or_default();
    assert_eq!(
        error,
        "config field `sms.unread_after_ms` must be 1000 to 86400000, got 10"
    );
    let error = Fallback::init(r#"{"old_device": {"hint": ["x"]}}"#)
        .err()
        .unwrap_or_default();
    assert!(error.contains("unknown field `hint`"), "{error}");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<Fallback>(folder) {
        Ok(count) => assert!(count >= 15, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}
