//! Native tests of the send-window decision and policy, and the fixtures.

use wasp_sdk::{Content, Priority, RecipientFacts};

use super::*;

/// 2026-03-02T13:00:00Z, a Monday: 21:00 in Singapore, 08:00 in New York, 05:00 in Los Angeles.
const MONDAY_13_UTC: i64 = 1_772_456_400_000;

fn message(category: Category, priority: Priority) -> Message {
    let mut message = Message::new("m-1", "+6591234567", "100200300", Content::text("hello"));
    message.category = category;
    message.priority = priority;
    message
}

fn context(now_ms: i64, country_code: u16, time_zone: &str, utc_offset_minutes: i32) -> Context {
    Context {
        now_ms,
        recipient: RecipientFacts {
            country_code,
            time_zone: time_zone.to_string(),
            utc_offset_minutes,
            ..RecipientFacts::default()
        },
        ..Context::default()
    }
}

fn singapore(now_ms: i64) -> Context {
    context(now_ms, 65, "Asia/Singapore", 480)
}

fn instant(text: &str) -> i64 {
    text.parse::<Timestamp>().expect("an RFC 3339 instant").as_millisecond()
}

#[test]
fn the_instant_constant_is_what_it_says() {
    assert_eq!(instant("2026-03-02T13:00:00Z"), MONDAY_13_UTC);
}

#[test]
fn marketing_at_night_waits_for_the_morning() {
    let decision = decide(
        &Config::default(),
        &message(Category::Marketing, Priority::Bulk),
        &singapore(MONDAY_13_UTC),
    );
    assert_eq!(
        decision,
        Decision::Defer {
            until_ms: instant("2026-03-03T01:00:00Z"),
            zone: ZoneSource::Named("Asia/Singapore".to_string()),
        }
    );
}

#[test]
fn utility_at_night_in_singapore_is_still_open_until_22() {
    let decision = decide(
        &Config::default(),
        &message(Category::Utility, Priority::Normal),
        &singapore(MONDAY_13_UTC),
    );
    assert_eq!(decision, Decision::Open);
}

#[test]
fn authentication_and_service_go_any_time() {
    for category in [Category::Authentication, Category::Service] {
        let decision = decide(
            &Config::default(),
            &message(category, Priority::Normal),
            &singapore(instant("2026-03-02T19:00:00Z")),
        );
        assert_eq!(decision, Decision::Open, "{category:?}");
    }
}

#[test]
fn critical_bypasses_by_default_and_others_on_request() {
    let at_3am = singapore(instant("2026-03-02T19:00:00Z"));
    let config = Config::default();
    assert_eq!(
        decide(&config, &message(Category::Marketing, Priority::Critical), &at_3am),
        Decision::Bypass
    );
    assert!(matches!(
        decide(&config, &message(Category::Marketing, Priority::High), &at_3am),
        Decision::Defer { .. }
    ));
    let config = Config::parse(r#"{"bypass_priorities": ["high"]}"#).expect("valid");
    assert_eq!(
        decide(&config, &message(Category::Marketing, Priority::High), &at_3am),
        Decision::Bypass
    );
    assert!(matches!(
        decide(&config, &message(Category::Marketing, Priority::Critical), &at_3am),
        Decision::Defer { .. }
    ));
}

#[test]
fn the_zone_of_the_number_decides_not_the_country() {
    // Both +1: at 13:00 UTC it is 08:00 in New York (EST) and 05:00 in Los Angeles (PST).
    let config = Config::parse(r#"{"windows": {"marketing": {"start": "07:00", "end": "20:00"}}}"#).expect("valid");
    let marketing = message(Category::Marketing, Priority::Bulk);
    let new_york = context(MONDAY_13_UTC, 1, "America/New_York", -300);
    let los_angeles = context(MONDAY_13_UTC, 1, "America/Los_Angeles", -480);
    assert_eq!(decide(&config, &marketing, &new_york), Decision::Open);
    assert_eq!(
        decide(&config, &marketing, &los_angeles),
        Decision::Defer {
            until_ms: instant("2026-03-02T15:00:00Z"),
            zone: ZoneSource::Named("America/Los_Angeles".to_string()),
        }
    );
}

#[test]
fn an_unknown_zone_uses_the_offset() {
    let decision = decide(
        &Config::default(),
        &message(Category::Marketing, Priority::Bulk),
        &context(MONDAY_13_UTC, 0, "Nowhere/Atlantis", 480),
    );
    assert_eq!(
        decision,
        Decision::Defer {
            until_ms: instant("2026-03-03T01:00:00Z"),
            zone: ZoneSource::Offset {
                unknown_name: "Nowhere/Atlantis".to_string(),
                utc_offset_minutes: 480
            },
        }
    );
}

#[test]
fn a_time_out_of_range_is_allowed_not_held() {
    let decision = decide(
        &Config::default(),
        &message(Category::Marketing, Priority::Bulk),
        &singapore(i64::MAX),
    );
    assert!(matches!(decision, Decision::Unresolved { .. }), "{decision:?}");
    let policy = SendWindow::init("").expect("defaults are valid");
    assert_eq!(
        policy.on_dispatch(message(Category::Marketing, Priority::Bulk), &singapore(i64::MAX)),
        Verdict::Allow
    );
}

#[test]
fn the_policy_defers_at_dispatch_and_allows_at_submit() {
    let policy = SendWindow::init("").expect("defaults are valid");
    let marketing = message(Category::Marketing, Priority::Bulk);
    let night = singapore(MONDAY_13_UTC);
    assert_eq!(policy.on_submit(marketing.clone(), &night), Verdict::Allow);
    let opening = instant("2026-03-03T01:00:00Z");
    assert_eq!(policy.on_dispatch(marketing.clone(), &night), Verdict::Defer(opening));
    // Dispatched again at the opening, it goes.
    assert_eq!(policy.on_dispatch(marketing, &singapore(opening)), Verdict::Allow);
}

#[test]
fn a_refused_config_names_the_field() {
    let error = SendWindow::init(r#"{"windows": {"marketing": {"start": "9", "end": "20:00"}}}"#)
        .err()
        .unwrap_or_default();
    assert!(error.starts_with("windows.marketing.start: expected HH:MM"), "{error}");
}

#[test]
fn category_names_are_the_contracts() {
    assert_eq!(category_name(Category::Authentication), "authentication");
    assert_eq!(category_name(Category::Marketing), "marketing");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<SendWindow>(folder) {
        Ok(count) => assert!(count >= 10, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}
