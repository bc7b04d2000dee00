//! Native tests of rule (b): the timer on `delivered`, its cancelling on `read` and on an
//! inbound message, the follow-up it sends, immediate fallback on undeliverable failures,
//! and the SMS text of each kind of content.

use std::collections::BTreeMap;

use wasp_sdk::{
    ButtonsMessage, ListMessage, ListRow, ListSection, Media, ReplyButton, Template, TemplateComponent,
    TemplateParameter,
};

use super::*;

const DELIVERED_MS: i64 = 1_709_335_800_000;
const ID: &str = "0192f4b2-0000-7000-8000-000000000001";
const TO: &str = "+6591234567";

fn message(category: Category, content: Content) -> Message {
    let mut message = Message::new(ID, TO, "100200300", content);
    message.category = category;
    message.priority = Priority::High;
    message.tags = vec!["parcel".to_string()];
    message
}

fn status(message: Message, status: DeliveryStatus, error_code: Option<i32>) -> Event {
    Event::Status(StatusEvent {
        message,
        status,
        at_ms: DELIVERED_MS,
        error_code,
        error_title: None,
    })
}

fn inbound(from: &str) -> Event {
    Event::Inbound(InboundMessage {
        from: from.to_string(),
        wamid: "wamid.IN1".to_string(),
        at_ms: DELIVERED_MS + 30_000,
        kind: "text".to_string(),
        text: Some("thanks".to_string()),
        reply_id: None,
        context_wamid: None,
    })
}

fn sms_follow_up(text: &str) -> Action {
    Action::Send(FollowUp {
        to: TO.to_string(),
        channel: Channel::Sms,
        category: Category::Utility,
        priority: Priority::High,
        content: Content::text(text),
        tags: vec!["parcel".to_string(), fallback_tag(ID)],
    })
}

fn timer_of(actions: &[Action]) -> TimerRequest {
    match actions {
        [Action::SetTimer(timer)] => timer.clone(),
        other => panic!("expected one timer, got {other:?}"),
    }
}

#[test]
fn delivered_sets_a_timer_with_what_the_sms_needs() {
    let config = SmsConfig::default();
    let actions = on_event(
        &config,
        &status(
            message(Category::Utility, Content::text("Your parcel arrives today.")),
            DeliveryStatus::Delivered,
            None,
        ),
    );
    let timer = timer_of(&actions);
    assert_eq!(timer.key, ID);
    assert_eq!(timer.at_ms, DELIVERED_MS + 120_000);
    assert_eq!(
        timer.payload,
        r#"{"to":"+6591234567","category":"utility","priority":"high","tags":["parcel"],"text":"Your parcel arrives today."}"#
    );
    assert_eq!(pending_ids(&pending_key(TO)), vec![ID.to_string()]);
}

#[test]
fn the_timer_sends_the_sms_follow_up_tagged_as_the_fallback() {
    let config = SmsConfig::default();
    let timer = timer_of(&on_event(
        &config,
        &status(
            message(Category::Utility, Content::text("Your parcel arrives today.")),
            DeliveryStatus::Delivered,
            None,
        ),
    ));
    let fired = Event::Timer(TimerEvent {
        key: timer.key,
        payload: timer.payload,
        at_ms: timer.at_ms,
    });
    assert_eq!(
        on_event(&config, &fired),
        vec![sms_follow_up("Your parcel arrives today.")]
    );
    assert!(
        pending_ids(&pending_key(TO)).is_empty(),
        "the recipient has nothing pending"
    );
}

#[test]
fn read_cancels_the_timer() {
    let config = SmsConfig::default();
    let delivered = message(Category::Authentication, Content::text("Your code is 123456"));
    on_event(&config, &status(delivered.clone(), DeliveryStatus::Delivered, None));
    assert_eq!(
        on_event(&config, &status(delivered, DeliveryStatus::Read, None)),
        vec![Action::CancelTimer(ID.to_string())]
    );
    assert!(pending_ids(&pending_key(TO)).is_empty());
}

#[test]
fn an_undeliverable_failure_sends_the_sms_at_once() {
    let config = SmsConfig::default();
    let failed = message(Category::Utility, Content::text("Your parcel arrives today."));
    assert_eq!(
        on_event(&config, &status(failed.clone(), DeliveryStatus::Failed, Some(131_026))),
        vec![sms_follow_up("Your parcel arrives today.")]
    );
    // Other failures are Meta's or the business's to fix, not a reason for SMS.
    for code in [Some(131_000), Some(131_047), Some(131_049), Some(130_472), None] {
        assert_eq!(
            on_event(&config, &status(failed.clone(), DeliveryStatus::Failed, code)),
            Vec::new(),
            "{code:?}"
        );
    }
    let config = SmsConfig {
        undeliverable_codes: vec![131_026, 131_047],
        ..SmsConfig::default()
    };
    assert_eq!(
        on_event(&config, &status(failed, DeliveryStatus::Failed, Some(131_047))).len(),
        1
    );
}

#[test]
fn sent_statuses_do_nothing() {
    let sent = message(Category::Utility, Content::text("hi"));
    assert_eq!(
        on_event(&SmsConfig::default(), &status(sent, DeliveryStatus::Sent, None)),
        Vec::new()
    );
}

#[test]
fn uncovered_categories_sms_messages_and_fallbacks_do_not_fall_back() {
    let config = SmsConfig::default();
    let marketing = message(Category::Marketing, Content::text("Sale!"));
    let mut over_sms = message(Category::Utility, Content::text("hi"));
    over_sms.channel = Channel::Sms;
    let mut fallback = message(Category::Utility, Content::text("hi"));
    fallback.tags.push(fallback_tag("0192f4b2-0000-7000-8000-000000000000"));
    for message in [marketing, over_sms, fallback] {
        for (kind, code) in [
            (DeliveryStatus::Delivered, None),
            (DeliveryStatus::Read, None),
            (DeliveryStatus::Failed, Some(131_026)),
        ] {
            assert_eq!(
                on_event(&config, &status(message.clone(), kind, code)),
                Vec::new(),
                "{:?} {kind:?}",
                message.tags
            );
        }
    }
}

#[test]
fn a_timer_for_a_category_no_longer_covered_sends_nothing() {
    let timer = timer_of(&on_event(
        &SmsConfig::default(),
        &status(
            message(Category::Utility, Content::text("hi")),
            DeliveryStatus::Delivered,
            None,
        ),
    ));
    let config = SmsConfig {
        categories: vec![CategoryName::Authentication],
        ..SmsConfig::default()
    };
    let fired = Event::Timer(TimerEvent {
        key: timer.key,
        payload: timer.payload,
        at_ms: timer.at_ms,
    });
    assert_eq!(on_event(&config, &fired), Vec::new());
}

#[test]
fn a_timer_with_a_payload_not_understood_sends_nothing() {
    let fired = Event::Timer(TimerEvent {
        key: ID.to_string(),
        payload: "+6591234567".to_string(),
        at_ms: DELIVERED_MS,
    });
    assert_eq!(on_event(&SmsConfig::default(), &fired), Vec::new());
}

#[test]
fn an_inbound_message_cancels_the_recipients_pending_fallbacks() {
    let config = SmsConfig::default();
    let first = message(Category::Utility, Content::text("one"));
    let mut second = message(Category::Authentication, Content::text("two"));
    second.id = "0192f4b2-0000-7000-8000-000000000002".to_string();
    on_event(&config, &status(first, DeliveryStatus::Delivered, None));
    on_event(&config, &status(second.clone(), DeliveryStatus::Delivered, None));
    assert_eq!(
        on_event(&config, &inbound("+6599999999")),
        Vec::new(),
        "someone else wrote"
    );
    assert_eq!(
        on_event(&config, &inbound(TO)),
        vec![
            Action::CancelTimer(ID.to_string()),
            Action::CancelTimer(second.id.clone())
        ]
    );
    assert_eq!(on_event(&config, &inbound(TO)), Vec::new(), "nothing left to cancel");

    let config = SmsConfig {
        cancel_on_inbound: false,
        ..SmsConfig::default()
    };
    on_event(&config, &status(second, DeliveryStatus::Delivered, None));
    assert_eq!(on_event(&config, &inbound(TO)), Vec::new());
}

#[test]
fn the_pending_list_is_bounded() {
    let config = SmsConfig::default();
    for index in 0..(MAX_PENDING_PER_RECIPIENT + 5) {
        let mut delivered = message(Category::Utility, Content::text("hi"));
        delivered.id = format!("m-{index}");
        on_event(&config, &status(delivered, DeliveryStatus::Delivered, None));
    }
    let pending = pending_ids(&pending_key(TO));
    assert_eq!(pending.len(), MAX_PENDING_PER_RECIPIENT);
    assert_eq!(pending.first().map(String::as_str), Some("m-5"));
}

fn template(name: &str, parameters: Vec<TemplateParameter>) -> Content {
    Content::Template(Template {
        name: name.to_string(),
        language: "en_US".to_string(),
        components: vec![TemplateComponent {
            kind: "body".to_string(),
            sub_type: None,
            index: None,
            parameters,
        }],
    })
}

#[test]
fn templates_use_their_configured_text_or_the_joined_parameters() {
    let config = SmsConfig {
        templates: BTreeMap::from([(
            "order_shipped".to_string(),
            "Hi {{1}}, order {{2}} has shipped.".to_string(),
        )]),
        default_prefix: "Acme: ".to_string(),
        ..SmsConfig::default()
    };
    let parameters = vec![
        TemplateParameter::Text("Ana".to_string()),
        TemplateParameter::Text("#4411".to_string()),
    ];
    assert_eq!(
        sms_text(&config, &template("order_shipped", parameters.clone())).as_deref(),
        Some("Hi Ana, order #4411 has shipped.")
    );
    assert_eq!(
        sms_text(&config, &template("order_delayed", parameters)).as_deref(),
        Some("Acme: Ana, #4411")
    );
    assert_eq!(sms_text(&config, &template("hello_world", Vec::new())), None);
}

#[test]
fn interactive_content_becomes_body_and_numbered_options() {
    let config = SmsConfig::default();
    let buttons = ButtonsMessage::new(
        "Can we deliver on Tuesday?",
        vec![ReplyButton::new("yes", "Yes"), ReplyButton::new("no", "No")],
    );
    assert_eq!(
        sms_text(&config, &Content::InteractiveButtons(buttons)).as_deref(),
        Some("Can we deliver on Tuesday?\n\n1. Yes\n2. No")
    );
    let list = ListMessage {
        header: None,
        body: "Pick a slot".to_string(),
        footer: Some("Acme".to_string()),
        button: "Slots".to_string(),
        sections: vec![ListSection {
            title: None,
            rows: vec![ListRow::new("am", "Morning"), ListRow::new("pm", "Afternoon")],
        }],
    };
    assert_eq!(
        sms_text(&config, &Content::InteractiveList(list)).as_deref(),
        Some("Pick a slot\n\n1. Morning\n2. Afternoon\n\nAcme")
    );
}

#[test]
fn media_becomes_caption_and_link() {
    let config = SmsConfig::default();
    let image = Media {
        id: None,
        link: Some("https://cdn.example.com/p/1.jpg".to_string()),
        caption: Some("Your parcel".to_string()),
        filename: None,
    };
    assert_eq!(
        sms_text(&config, &Content::Image(image)).as_deref(),
        Some("Your parcel\nhttps://cdn.example.com/p/1.jpg")
    );
    let by_id = Media {
        id: Some("1013859600285441".to_string()),
        link: None,
        caption: None,
        filename: None,
    };
    assert_eq!(sms_text(&config, &Content::Audio(by_id)), None);
}

#[test]
fn long_texts_are_cut_to_max_chars() {
    let config = SmsConfig::default();
    let long = "é".repeat(2_000);
    let text = sms_text(&config, &Content::text(long)).unwrap_or_default();
    assert_eq!(text.chars().count(), 1_600);
    assert!(text.ends_with("..."));
    let config = SmsConfig {
        max_chars: 20,
        ..SmsConfig::default()
    };
    assert_eq!(
        sms_text(&config, &Content::text("Your parcel arrives today between 9 and 12.")).as_deref(),
        Some("Your parcel arriv...")
    );
}

#[test]
fn a_message_without_sms_text_sets_no_timer() {
    let config = SmsConfig::default();
    let blank = message(Category::Utility, Content::text("   "));
    assert_eq!(
        on_event(&config, &status(blank.clone(), DeliveryStatus::Delivered, None)),
        Vec::new()
    );
    assert_eq!(
        on_event(&config, &status(blank, DeliveryStatus::Failed, Some(131_026))),
        Vec::new()
    );
}
