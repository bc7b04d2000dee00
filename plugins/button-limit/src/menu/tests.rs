//! Tests of progressive menus: planning, each step, answers, limits and the state text.

use wasp_sdk::{Category, TextBody};

use super::*;
use crate::Mode;

fn config() -> Config {
    Config {
        mode: Mode::Progressive,
        ..Config::default()
    }
}

fn message(ids: &[&str]) -> Message {
    let buttons = ids.iter().map(|id| ReplyButton::new(*id, title_of(id))).collect();
    let mut buttons = ButtonsMessage::new("How can we help?", buttons);
    buttons.header = Some("Help".to_string());
    buttons.footer = Some("Reply any time".to_string());
    let mut message = Message::new("m-1", "+6591234567", "100200300", Content::InteractiveButtons(buttons));
    message.priority = Priority::High;
    message.tags = vec!["support".to_string()];
    message
}

/// `support/billing` → `Billing`; `slot-3` → `Slot-3`.
fn title_of(id: &str) -> String {
    let last = id.rsplit('/').next().unwrap_or(id);
    let mut chars = last.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn slots(count: usize) -> Vec<String> {
    (1..=count).map(|index| format!("slot-{index}")).collect()
}

fn refs(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}

fn started(config: &Config, message: &Message) -> Started {
    match plan(config, message) {
        Plan::Start(started) => *started,
        other => panic!("expected a menu, got {other:?}"),
    }
}

fn rejected(config: &Config, message: &Message) -> String {
    match plan(config, message) {
        Plan::Reject(limit) => limit.to_string(),
        other => panic!("expected a reject, got {other:?}"),
    }
}

/// The (id, title) of each button or row of a step.
fn options(content: &Content) -> Vec<(String, String)> {
    match content {
        Content::InteractiveButtons(buttons) => buttons
            .buttons
            .iter()
            .map(|button| (button.id.clone(), button.title.clone()))
            .collect(),
        Content::InteractiveList(list) => list.rows().map(|row| (row.id.clone(), row.title.clone())).collect(),
        other => panic!("expected an interactive step, got {other:?}"),
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(id, title)| (id.to_string(), title.to_string()))
        .collect()
}

#[test]
fn paged_menus_show_two_choices_and_more_then_the_rest() {
    let config = config();
    let started = started(&config, &message(&refs(&slots(6))));
    let Content::InteractiveButtons(first) = &started.first else {
        panic!("the first page is buttons: {:?}", started.first);
    };
    assert_eq!(first.header.as_deref(), Some("Help"));
    assert_eq!(first.body, "How can we help?");
    assert_eq!(first.footer.as_deref(), Some("Reply any time"));
    assert_eq!(
        options(&started.first),
        pairs(&[
            ("slot-1", "Slot-1"),
            ("slot-2", "Slot-2"),
            ("menu:page:2", "More options")
        ])
    );
    assert_eq!(started.pending.priority, Priority::High);
    assert_eq!(started.pending.tags, vec!["support".to_string()]);
    assert_eq!(started.pending.shape(), "pages");
    assert_eq!(started.pending.choice_count(), 6);

    let pending = &started.pending;
    let page = |number| pending.page(&config, number).map(|content| options(&content));
    assert_eq!(
        page(2),
        Some(pairs(&[
            ("slot-3", "Slot-3"),
            ("slot-4", "Slot-4"),
            ("menu:page:3", "More options")
        ]))
    );
    // The last page holds up to max_buttons choices and no "More options".
    assert_eq!(page(3), Some(pairs(&[("slot-5", "Slot-5"), ("slot-6", "Slot-6")])));
    assert_eq!(page(4), None);
    assert_eq!(page(0), None);
}

#[test]
fn page_sizes_follow_max_buttons_and_the_label_is_configurable() {
    let config = Config {
        max_buttons: 2,
        more_button_label: "Next".to_string(),
        ..config()
    };
    let started = started(&config, &message(&refs(&slots(4))));
    let pending = &started.pending;
    let page = |number| pending.page(&config, number).map(|content| options(&content));
    assert_eq!(page(1), Some(pairs(&[("slot-1", "Slot-1"), ("menu:page:2", "Next")])));
    assert_eq!(page(2), Some(pairs(&[("slot-2", "Slot-2"), ("menu:page:3", "Next")])));
    assert_eq!(page(3), Some(pairs(&[("slot-3", "Slot-3"), ("slot-4", "Slot-4")])));
    assert_eq!(page(4), None);

    // Seven choices at three buttons: 2 + more, 2 + more, the last 3.
    let config = self::config();
    let started = self::started(&config, &message(&refs(&slots(7))));
    let last = started.pending.page(&config, 3).map(|content| options(&content));
    assert_eq!(
        last,
        Some(pairs(&[
            ("slot-5", "Slot-5"),
            ("slot-6", "Slot-6"),
            ("slot-7", "Slot-7")
        ]))
    );
}

#[test]
fn grouped_menus_offer_one_entry_per_group_in_order_with_ungrouped_choices_as_themselves() {
    let mut config = config();
    config.group_titles.insert("support".to_string(), "Support".to_string());
    let started = started(
        &config,
        &message(&[
            "support/billing",
            "sales/new",
            "support/tech",
            "cancel",
            "sales/upgrade",
            "sales/renew",
            "sales/other",
        ]),
    );
    assert_eq!(started.pending.shape(), "groups");
    assert_eq!(started.pending.choice_count(), 7);
    // Three entries fit buttons; a group without a configured title is titled with its id.
    assert!(matches!(started.first, Content::InteractiveButtons(_)));
    assert_eq!(
        options(&started.first),
        pairs(&[
            ("menu:group:support", "Support"),
            ("menu:group:sales", "sales"),
            ("cancel", "Cancel")
        ])
    );
    // Two choices: buttons, with the real ids.
    let support = started.pending.group(&config, "support").expect("a group");
    assert!(matches!(support, Content::InteractiveButtons(_)));
    assert_eq!(
        options(&support),
        pairs(&[("support/billing", "Billing"), ("support/tech", "Tech")])
    );
    // Four choices: a list under the list label, keeping header, body and footer.
    let Some(Content::InteractiveList(sales)) = started.pending.group(&config, "sales") else {
        panic!("four choices are a list");
    };
    assert_eq!(sales.button, "Choose");
    assert_eq!(sales.header.as_deref(), Some("Help"));
    assert_eq!(sales.body, "How can we help?");
    assert_eq!(sales.sections.len(), 1);
    assert_eq!(sales.row_count(), 4);
    assert_eq!(started.pending.group(&config, "cancel"), None);
    assert_eq!(started.pending.page(&config, 2), None);
}

#[test]
fn more_entries_than_buttons_make_the_first_step_a_list() {
    let config = config();
    let started = started(&config, &message(&["a/1", "b/1", "c/1", "d/1", "d/2"]));
    let Content::InteractiveList(first) = &started.first else {
        panic!("four entries are a list: {:?}", started.first);
    };
    assert_eq!(
        first.rows().map(|row| row.id.as_str()).collect::<Vec<_>>(),
        ["menu:group:a", "menu:group:b", "menu:group:c", "menu:group:d"]
    );
}

#[test]
fn the_separator_is_configurable_and_an_empty_prefix_is_no_group() {
    let config = Config {
        group_separator: ".".to_string(),
        ..config()
    };
    let started = started(
        &config,
        &message(&["rooms.single", "rooms.double", ".hidden", "suite/x"]),
    );
    assert_eq!(
        options(&started.first),
        pairs(&[("menu:group:rooms", "rooms"), (".hidden", ".hidden"), ("suite/x", "X")])
    );

    // No id with a prefix: paged.
    let started = self::started(&config, &message(&["a/1", "b/1", "c/1", "d/1"]));
    assert_eq!(started.pending.shape(), "pages");
}

#[test]
fn what_fits_or_is_not_buttons_is_left_alone_and_lists_are_checked() {
    let config = config();
    assert_eq!(plan(&config, &message(&refs(&slots(3)))), Plan::Allow);
    let text = Message::new(
        "m-2",
        "+6591234567",
        "100200300",
        Content::Text(TextBody {
            body: "hello".to_string(),
            preview_url: false,
        }),
    );
    assert_eq!(plan(&config, &text), Plan::Allow);
    let rows = (0..11).map(|row| ListRow::new(format!("r{row}"), "Row")).collect();
    let list = Message::new(
        "m-3",
        "+6591234567",
        "100200300",
        Content::InteractiveList(ListMessage {
            header: None,
            body: "Pick".to_string(),
            footer: None,
            button: "Options".to_string(),
            sections: vec![ListSection { title: None, rows }],
        }),
    );
    assert_eq!(
        plan(&config, &list),
        Plan::Reject(LimitExceeded::Rows { count: 11, limit: 10 })
    );
}

#[test]
fn menus_over_the_limits_are_rejected_with_a_reason() {
    let config = config();
    assert_eq!(
        rejected(&config, &message(&refs(&slots(11)))),
        "11 choices exceed the paged menu limit of 10 choices"
    );
    let groups: Vec<String> = (1..=11).map(|group| format!("g{group}/x")).collect();
    assert_eq!(
        rejected(&config, &message(&refs(&groups))),
        "11 groups and ungrouped choices exceed the list limit of 10 rows"
    );
    let crowded: Vec<String> = (1..=11).map(|choice| format!("big/{choice}")).collect();
    let mut ids = refs(&crowded);
    ids.push("small/1");
    assert_eq!(
        rejected(&config, &message(&ids)),
        "group \"big\" has 11 choices, over the list limit of 10 rows"
    );
    assert_eq!(
        rejected(&config, &message(&["slot-1", "menu:page:2", "slot-3", "slot-4"])),
        "button id \"menu:page:2\" starts with \"menu:\", which progressive menus keep for their own buttons"
    );
    let config = Config { max_rows: 5, ..config };
    assert_eq!(
        rejected(&config, &message(&refs(&slots(6)))),
        "6 choices exceed the paged menu limit of 5 choices"
    );
}

#[test]
fn every_step_is_checked_before_the_menu_starts() {
    let config = config();
    // A title that fits a row (24) but not a button (20), on the last page.
    let mut long = message(&refs(&slots(6)));
    if let Content::InteractiveButtons(buttons) = &mut long.content {
        buttons.buttons[5].title = "A rather long choice!".to_string();
    }
    assert_eq!(
        rejected(&config, &long),
        "button \"slot-6\" has a title of 21 characters, over the limit of 20"
    );
    // A group id too long for a button title, on the first step.
    assert_eq!(
        rejected(
            &config,
            &message(&[
                "deliveries-and-returns/late",
                "deliveries-and-returns/lost",
                "other/x",
                "x"
            ])
        ),
        "button \"menu:group:deliveries-and-returns\" has a title of 22 characters, over the limit of 20"
    );
    // A group of four becomes a list: its rows are checked against max_row_title_chars.
    let config = Config {
        max_row_title_chars: 5,
        ..config
    };
    assert_eq!(
        rejected(&config, &message(&["a/short", "a/longer", "a/x", "a/y", "b/z"])),
        "row \"a/longer\" has a title of 6 characters, over the limit of 5"
    );
}

#[test]
fn answers_bring_a_step_end_the_menu_or_mean_nothing() {
    let config = config();
    let paged = started(&config, &message(&refs(&slots(6)))).pending;
    assert_eq!(
        answer(&config, &paged, "menu:page:2"),
        Answer::Step(paged.page(&config, 2).expect("page 2"))
    );
    assert_eq!(answer(&config, &paged, "slot-5"), Answer::Chosen);
    for unrelated in ["menu:page:4", "menu:page:x", "menu:group:slot", "other", "menu:"] {
        assert_eq!(answer(&config, &paged, unrelated), Answer::Unrelated, "{unrelated}");
    }

    let grouped = started(&config, &message(&["a/1", "a/2", "b/1", "c"])).pending;
    assert_eq!(
        answer(&config, &grouped, "menu:group:a"),
        Answer::Step(grouped.group(&config, "a").expect("group a"))
    );
    assert_eq!(answer(&config, &grouped, "a/2"), Answer::Chosen);
    assert_eq!(answer(&config, &grouped, "c"), Answer::Chosen);
    assert_eq!(answer(&config, &grouped, "menu:group:z"), Answer::Unrelated);
    assert_eq!(answer(&config, &grouped, "menu:page:2"), Answer::Unrelated);
}

#[test]
fn a_step_that_no_longer_fits_the_config_is_broken() {
    let config = config();
    let pending = started(&config, &message(&["a/one", "a/two", "a/three", "a/four", "b/x"])).pending;
    let stricter = Config {
        max_row_title_chars: 4,
        ..config
    };
    assert_eq!(
        answer(&stricter, &pending, "menu:group:a"),
        Answer::Broken(LimitExceeded::RowTitle {
            row_id: "a/three".to_string(),
            chars: 5,
            limit: 4
        })
    );
}

#[test]
fn the_state_text_is_compact_json_that_reads_back() {
    let config = config();
    let mut submitted = message(&["a/1", "a/2", "b/1", "c"]);
    submitted.category = Category::Marketing;
    let pending = started(&config, &submitted).pending;
    let text = pending.to_state().expect("serialises");
    assert_eq!(
        text,
        concat!(
            r#"{"header":"Help","body":"How can we help?","footer":"Reply any time","priority":"high","#,
            r#""tags":["support"],"menu":{"groups":[{"group":{"id":"a","title":"a","choices":"#,
            r#"[{"id":"a/1","title":"1"},{"id":"a/2","title":"2"}]}},{"group":{"id":"b","title":"b","#,
            r#""choices":[{"id":"b/1","title":"1"}]}},{"choice":{"id":"c","title":"C"}}]}}"#
        )
    );
    assert_eq!(Pending::from_state(&text).expect("reads back"), pending);

    let paged = started(&config, &message(&refs(&slots(4)))).pending;
    let mut bare = paged.clone();
    bare.header = None;
    bare.footer = None;
    bare.tags.clear();
    bare.priority = Priority::Bulk;
    let text = bare.to_state().expect("serialises");
    assert!(
        text.starts_with(r#"{"body":"How can we help?","priority":"bulk","menu":{"pages":[{"id":"slot-1""#),
        "{text}"
    );
    assert_eq!(Pending::from_state(&text).expect("reads back"), bare);

    for wrong in [
        "",
        "not json",
        r#"{"body":"b","priority":"urgent","menu":{"pages":[]}}"#,
        r#"{"body":"b","priority":"normal","menu":{"pages":[]},"extra":1}"#,
    ] {
        assert!(Pending::from_state(wrong).is_err(), "{wrong}");
    }
}

#[test]
fn state_keys_are_per_recipient() {
    assert_eq!(state_key("+6591234567"), "menu:+6591234567");
}
