//! Native tests of the button-limit decision, its config, and its fixtures.

use wasp_sdk::{ListRow, ListSection, ReplyButton, TextBody};

use super::*;

fn buttons(count: usize) -> ButtonsMessage {
    let mut message = ButtonsMessage::new(
        "When should we deliver?",
        (1..=count)
            .map(|index| ReplyButton::new(format!("slot-{index}"), format!("Slot {index}")))
            .collect(),
    );
    message.header = Some("Delivery".to_string());
    message.footer = Some("Reply any time".to_string());
    message
}

fn list(sections: usize, rows_per_section: usize) -> ListMessage {
    ListMessage {
        header: None,
        body: "Pick one".to_string(),
        footer: None,
        button: "Options".to_string(),
        sections: (0..sections)
            .map(|section| ListSection {
                title: Some(format!("Section {section}")),
                rows: (0..rows_per_section)
                    .map(|row| ListRow::new(format!("{section}-{row}"), format!("Row {row}")))
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn up_to_max_buttons_is_allowed() {
    let config = Config::default();
    for count in 0..=3 {
        let content = Content::InteractiveButtons(buttons(count));
        assert_eq!(decide(&config, &content), Decision::Allow, "{count} buttons");
    }
}

#[test]
fn more_buttons_become_a_list_with_the_same_choices() {
    let Decision::Rewrite(list) = decide(&Config::default(), &Content::InteractiveButtons(buttons(4))) else {
        panic!("expected a rewrite");
    };
    assert_eq!(list.header.as_deref(), Some("Delivery"));
    assert_eq!(list.body, "When should we deliver?");
    assert_eq!(list.footer.as_deref(), Some("Reply any time"));
    assert_eq!(list.button, DEFAULT_LIST_BUTTON_LABEL);
    assert_eq!(list.sections.len(), 1);
    let rows: Vec<(&str, &str)> = list.rows().map(|row| (row.id.as_str(), row.title.as_str())).collect();
    assert_eq!(
        rows,
        vec![
            ("slot-1", "Slot 1"),
            ("slot-2", "Slot 2"),
            ("slot-3", "Slot 3"),
            ("slot-4", "Slot 4")
        ]
    );
    assert!(list.rows().all(|row| row.description.is_none()));
}

#[test]
fn a_lower_max_buttons_rewrites_sooner() {
    let config = Config {
        max_buttons: 1,
        list_button_label: "See options".to_string(),
        ..Config::default()
    };
    let Decision::Rewrite(list) = decide(&config, &Content::InteractiveButtons(buttons(2))) else {
        panic!("expected a rewrite");
    };
    assert_eq!(list.button, "See options");
    assert_eq!(list.row_count(), 2);
}

#[test]
fn too_many_buttons_for_a_list_are_rejected_with_the_counts() {
    let decision = decide(&Config::default(), &Content::InteractiveButtons(buttons(14)));
    let Decision::Reject(limit) = decision else {
        panic!("expected a reject, got {decision:?}");
    };
    assert_eq!(limit.to_string(), "14 choices exceed the list limit of 10 rows");

    let config = Config {
        max_rows: 5,
        ..Config::default()
    };
    let decision = decide(&config, &Content::InteractiveButtons(buttons(6)));
    assert_eq!(
        decision,
        Decision::Reject(LimitExceeded::Choices { count: 6, limit: 5 })
    );
}

#[test]
fn a_long_button_title_is_rejected_when_it_becomes_a_row() {
    let config = Config {
        max_row_title_chars: 10,
        ..Config::default()
    };
    let mut message = buttons(4);
    message.buttons[2].title = "Late afternoon".to_string();
    let decision = decide(&config, &Content::InteractiveButtons(message));
    let Decision::Reject(limit) = decision else {
        panic!("expected a reject, got {decision:?}");
    };
    assert_eq!(
        limit.to_string(),
        "row \"slot-3\" has a title of 14 characters, over the limit of 10"
    );
}

#[test]
fn titles_count_characters_not_bytes() {
    let config = Config {
        max_row_title_chars: 6,
        ..Config::default()
    };
    let mut message = buttons(4);
    message.buttons[0].title = "Ünïçøð".to_string();
    assert!(matches!(
        decide(&config, &Content::InteractiveButtons(message)),
        Decision::Rewrite(_)
    ));
}

#[test]
fn lists_within_the_limits_are_allowed() {
    let config = Config::default();
    assert_eq!(decide(&config, &Content::InteractiveList(list(2, 5))), Decision::Allow);
    assert_eq!(decide(&config, &Content::InteractiveList(list(10, 1))), Decision::Allow);
}

#[test]
fn lists_over_the_limits_are_rejected() {
    let config = Config::default();
    assert_eq!(
        decide(&config, &Content::InteractiveList(list(3, 4))).reason(),
        Some("12 rows exceed the list limit of 10 rows".to_string())
    );
    assert_eq!(
        decide(&config, &Content::InteractiveList(list(11, 0))).reason(),
        Some("11 sections exceed the list limit of 10 sections".to_string())
    );
    let mut long_title = list(1, 2);
    long_title.sections[0].rows[1].title = "x".repeat(25);
    assert_eq!(
        decide(&config, &Content::InteractiveList(long_title)).reason(),
        Some("row \"0-1\" has a title of 25 characters, over the limit of 24".to_string())
    );
}

#[test]
fn other_content_is_allowed() {
    let text = Content::Text(TextBody {
        body: "hello".to_string(),
        preview_url: false,
    });
    assert_eq!(decide(&Config::default(), &text), Decision::Allow);
}

#[test]
fn the_policy_keeps_the_rest_of_the_message() {
    let policy = ButtonLimit::init("").expect("defaults are valid");
    let message = Message::new(
        "m-1",
        "+6591234567",
        "100200300",
        Content::InteractiveButtons(buttons(5)),
    );
    let Verdict::Rewrite(rewritten) = policy.on_submit(message.clone(), &Context::default()) else {
        panic!("expected a rewrite");
    };
    assert_eq!(rewritten.id, message.id);
    assert_eq!(rewritten.to, message.to);
    assert_eq!(rewritten.priority, message.priority);
    assert_eq!(rewritten.content.kind(), "interactive-list");
    // The rewritten message passes the policy unchanged at dispatch.
    assert_eq!(policy.on_dispatch(rewritten, &Context::default()), Verdict::Allow);
}

#[test]
fn empty_configs_give_the_cloud_api_defaults() {
    for text in ["", "{}", "null"] {
        assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
    }
    let config = Config::default();
    assert_eq!(
        (
            config.max_buttons,
            config.max_rows,
            config.max_row_title_chars,
            config.max_sections,
            config.list_button_label.as_str()
        ),
        (3, 10, 24, 10, "Choose")
    );
    assert_eq!(
        (
            config.mode,
            config.group_separator.as_str(),
            config.group_titles.is_empty(),
            config.more_button_label.as_str(),
            config.pending_ttl_ms
        ),
        (Mode::List, "/", true, "More options", 86_400_000)
    );
}

#[test]
fn invalid_configs_are_refused_with_a_reason() {
    let cases = [
        (
            r#"{"max_buttons": 0}"#,
            "config field `max_buttons` must be 1 to 3 (the Cloud API's limit), got 0",
        ),
        (
            r#"{"max_buttons": 4}"#,
            "config field `max_buttons` must be 1 to 3 (the Cloud API's limit), got 4",
        ),
        (
            r#"{"max_rows": 11}"#,
            "config field `max_rows` must be 1 to 10 (the Cloud API's limit), got 11",
        ),
        (
            r#"{"max_sections": 0}"#,
            "config field `max_sections` must be 1 to 10 (the Cloud API's limit), got 0",
        ),
        (
            r#"{"max_row_title_chars": 30}"#,
            "config field `max_row_title_chars` must be 1 to 24 (the Cloud API's limit), got 30",
        ),
        (
            r#"{"list_button_label": "  "}"#,
            "config field `list_button_label` must not be empty",
        ),
        (
            r#"{"list_button_label": "Pick one of these options"}"#,
            "config field `list_button_label` has 25 characters; the Cloud API allows 20",
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(ButtonLimit::init(text).err(), Some(reason.to_string()), "{text}");
    }
}

#[test]
fn unknown_and_mistyped_keys_are_refused() {
    let error = ButtonLimit::init(r#"{"max_button": 2}"#).err().unwrap_or_default();
    assert!(error.contains("unknown field `max_button`"), "{error}");
    let error = ButtonLimit::init(r#"{"max_rows": "ten"}"#).err().unwrap_or_default();
    assert!(error.starts_with("config field `max_rows`"), "{error}");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<ButtonLimit>(folder) {
        Ok(count) => assert!(count >= 5, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}

impl Decision {
    fn reason(&self) -> Option<String> {
        match self {
            Decision::Reject(limit) => Some(limit.to_string()),
            _ => None,
        }
    }
}

fn progressive(extra: &str) -> ButtonLimit {
    let config = format!(r#"{{"mode": "progressive"{extra}}}"#);
    match ButtonLimit::init(&config) {
        Ok(policy) => policy,
        Err(reason) => panic!("{config}: {reason}"),
    }
}

fn inbound(reply_id: Option<&str>) -> Event {
    Event::Inbound(InboundMessage {
        from: "+6591234567".to_string(),
        wamid: "wamid.IN".to_string(),
        at_ms: 1_709_335_800_000,
        kind: "interactive".to_string(),
        text: Some("More options".to_string()),
        reply_id: reply_id.map(str::to_string),
        context_wamid: Some("wamid.OUT".to_string()),
    })
}

fn six_buttons_message() -> Message {
    let mut message = Message::new(
        "m-1",
        "+6591234567",
        "100200300",
        Content::InteractiveButtons(buttons(6)),
    );
    message.priority = wasp_sdk::Priority::High;
    message.tags = vec!["delivery".to_string()];
    message
}

#[test]
fn progressive_mode_rewrites_to_the_first_step_and_keeps_the_menu() {
    let policy = progressive("");
    let message = six_buttons_message();
    let Verdict::Rewrite(rewritten) = policy.on_submit(message.clone(), &Context::default()) else {
        panic!("expected a rewrite");
    };
    // Only the content changes.
    assert_eq!(rewritten.clone().with_content(message.content.clone()), message);
    let Content::InteractiveButtons(first) = &rewritten.content else {
        panic!("the first page is buttons: {:?}", rewritten.content);
    };
    let ids: Vec<&str> = first.buttons.iter().map(|button| button.id.as_str()).collect();
    assert_eq!(ids, ["slot-1", "slot-2", "menu:page:2"]);
    let kept = state::get("menu:+6591234567").expect("the menu is kept");
    let pending = menu::Pending::from_state(&kept).expect("readable");
    assert_eq!(pending.choice_count(), 6);
    // The first step passes the policy unchanged at dispatch, and keeps the menu as it is.
    assert_eq!(policy.on_dispatch(rewritten, &Context::default()), Verdict::Allow);
    assert_eq!(state::get("menu:+6591234567"), Some(kept));
}

#[test]
fn an_answer_to_a_menu_button_brings_the_next_step_as_a_service_follow_up() {
    let policy = progressive("");
    policy.on_submit(six_buttons_message(), &Context::default());
    let kept = state::get("menu:+6591234567");

    let actions = policy.on_event(inbound(Some("menu:page:2")), &Context::default());
    let [Action::Send(follow_up)] = actions.as_slice() else {
        panic!("expected one follow-up, got {actions:?}");
    };
    assert_eq!(follow_up.to, "+6591234567");
    assert_eq!(follow_up.channel, wasp_sdk::Channel::Whatsapp);
    assert_eq!(follow_up.category, wasp_sdk::Category::Service);
    assert_eq!(follow_up.priority, wasp_sdk::Priority::High);
    assert_eq!(follow_up.tags, vec!["delivery".to_string()]);
    let Content::InteractiveButtons(page) = &follow_up.content else {
        panic!("page 2 is buttons: {:?}", follow_up.content);
    };
    assert_eq!(page.header.as_deref(), Some("Delivery"));
    assert_eq!(page.body, "When should we deliver?");
    let ids: Vec<&str> = page.buttons.iter().map(|button| button.id.as_str()).collect();
    assert_eq!(ids, ["slot-3", "slot-4", "menu:page:3"]);
    // The menu stays pending for the next page; the same answer twice brings the same page.
    assert_eq!(state::get("menu:+6591234567"), kept);
    assert_eq!(
        policy.on_event(inbound(Some("menu:page:2")), &Context::default()),
        actions
    );

    // A real choice ends the menu; after that, menu buttons bring nothing.
    assert!(policy.on_event(inbound(Some("slot-6")), &Context::default()).is_empty());
    assert_eq!(state::get("menu:+6591234567"), None);
    assert!(
        policy
            .on_event(inbound(Some("menu:page:3")), &Context::default())
            .is_empty()
    );
}

#[test]
fn other_events_and_replies_leave_the_menu_alone() {
    let policy = progressive("");
    policy.on_submit(six_buttons_message(), &Context::default());
    let kept = state::get("menu:+6591234567");
    for event in [
        inbound(None),
        inbound(Some("another-message-button")),
        inbound(Some("menu:group:slot")),
        Event::Timer(wasp_sdk::TimerEvent {
            key: "k".to_string(),
            payload: "p".to_string(),
            at_ms: 1,
        }),
    ] {
        assert!(policy.on_event(event, &Context::default()).is_empty());
    }
    assert_eq!(state::get("menu:+6591234567"), kept);
}

#[test]
fn an_unreadable_menu_is_dropped() {
    let policy = progressive("");
    state::set("menu:+6591234567", "{not json", None);
    assert!(
        policy
            .on_event(inbound(Some("menu:page:2")), &Context::default())
            .is_empty()
    );
    assert_eq!(state::get("menu:+6591234567"), None);
}

#[test]
fn list_mode_still_answers_a_menu_started_before_a_switch() {
    progressive("").on_submit(six_buttons_message(), &Context::default());
    let list_mode = ButtonLimit::init("").expect("defaults are valid");
    let actions = list_mode.on_event(inbound(Some("menu:page:2")), &Context::default());
    assert_eq!(actions.len(), 1, "{actions:?}");
}

#[test]
fn progressive_mode_rejects_what_it_cannot_offer() {
    let policy = progressive("");
    let message = Message::new(
        "m-1",
        "+6591234567",
        "100200300",
        Content::InteractiveButtons(buttons(11)),
    );
    assert_eq!(
        policy.on_submit(message, &Context::default()),
        Verdict::Reject("11 choices exceed the paged menu limit of 10 choices".to_string())
    );
    assert_eq!(state::get("menu:+6591234567"), None);
}

#[test]
fn progressive_config_is_checked() {
    let policy = progressive(
        r#", "max_buttons": 2, "group_separator": ".", "group_titles": {"support": "Support"},
            "more_button_label": "Next", "pending_ttl_ms": 3600000"#,
    );
    assert_eq!(policy.config.mode, Mode::Progressive);
    assert_eq!(
        policy.config.group_titles.get("support").map(String::as_str),
        Some("Support")
    );
    assert_eq!(policy.config.pending_ttl_ms, 3_600_000);

    let cases = [
        (
            r#"{"mode": "progressive", "max_buttons": 1}"#,
            "config field `max_buttons` must be 2 or 3 in progressive mode (a page keeps one button for more options), got 1",
        ),
        (
            r#"{"group_separator": ""}"#,
            "config field `group_separator` must not be empty",
        ),
        (
            r#"{"more_button_label": " "}"#,
            "config field `more_button_label` must not be empty",
        ),
        (
            r#"{"more_button_label": "Show me more options!"}"#,
            "config field `more_button_label` has 21 characters; the Cloud API allows 20 on a button",
        ),
        (
            r#"{"group_titles": {"support": ""}}"#,
            "config field `group_titles.support` must not be empty",
        ),
        (
            r#"{"group_titles": {"returns": "Returns and exchanges"}}"#,
            "config field `group_titles.returns` has 21 characters; the Cloud API allows 20 on a button",
        ),
        (
            r#"{"pending_ttl_ms": 0}"#,
            "config field `pending_ttl_ms` must be 1 to 604800000 (7 days), got 0",
        ),
        (
            r#"{"pending_ttl_ms": 604800001}"#,
            "config field `pending_ttl_ms` must be 1 to 604800000 (7 days), got 604800001",
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(ButtonLimit::init(text).err(), Some(reason.to_string()), "{text}");
    }
    // List mode allows max_buttons 1; the mode's name is checked.
    assert!(ButtonLimit::init(r#"{"mode": "list", "max_buttons": 1}"#).is_ok());
    let error = ButtonLimit::init(r#"{"mode": "menus"}"#).err().unwrap_or_default();
    assert!(error.contains("unknown variant `menus`"), "{error}");
}
