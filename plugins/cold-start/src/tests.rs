//! Native tests of the policy as the host calls it: verdicts from each hook, the sender's
//! tier kept in (native, per-thread) state across calls, and every fixture.

use wasp_sdk::{Category, CategoryCounts, Content, Priority, Quality, RecipientFacts, SenderFacts, state};

use super::*;

const NOW: i64 = 1_709_335_800_000;
const HOUR: i64 = 3_600_000;
const SENDER: &str = "100200300";

fn message(category: Category, priority: Priority) -> Message {
    let mut message = Message::new("m-1", "+6591234567", SENDER, Content::text("hello"));
    message.category = category;
    message.priority = priority;
    message
}

fn context(now_ms: i64, interactions: u32, quality: Quality, sender_sent24h: u32) -> Context {
    Context {
        now_ms,
        recipient: RecipientFacts {
            country_code: 65,
            interactions,
            last_inbound_ms: (interactions > 0).then_some(now_ms - HOUR),
            ..RecipientFacts::default()
        },
        sender: SenderFacts {
            phone_number_id: SENDER.to_string(),
            tier_limit: None,
            quality,
            sent24h: sender_sent24h,
        },
        ..Context::default()
    }
}

fn stored_tier() -> Option<TierState> {
    state::get(&tier::state_key(SENDER)).and_then(|text| TierState::from_json(&text).ok())
}

#[test]
fn a_stranger_gets_no_marketing_but_the_rest() {
    let policy = ColdStart::init("").expect("defaults are valid");
    let stranger = context(NOW, 0, Quality::Green, 0);
    let Verdict::Reject(reason) = policy.on_submit(message(Category::Marketing, Priority::Normal), &stranger) else {
        panic!("expected a reject");
    };
    assert!(
        reason.starts_with("marketing to +65…67: the recipient has not written"),
        "{reason}"
    );
    for category in [Category::Authentication, Category::Utility, Category::Service] {
        assert_eq!(
            policy.on_submit(message(category, Priority::Normal), &stranger),
            Verdict::Allow
        );
    }
}

#[test]
fn the_second_marketing_message_of_the_day_waits() {
    let policy =
        ColdStart::init(r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 1, "marketing_per_7d": 3}]}"#)
            .expect("valid");
    let mut facts = context(NOW, 1, Quality::Green, 0);
    assert_eq!(
        policy.on_dispatch(message(Category::Marketing, Priority::Normal), &facts),
        Verdict::Allow
    );
    facts.recipient.sent24h = CategoryCounts {
        marketing: 1,
        ..CategoryCounts::default()
    };
    facts.recipient.sent7d = facts.recipient.sent24h;
    assert_eq!(
        policy.on_dispatch(message(Category::Marketing, Priority::Normal), &facts),
        Verdict::Defer(NOW + HOUR)
    );
    assert_eq!(
        policy.on_dispatch(message(Category::Utility, Priority::Normal), &facts),
        Verdict::Allow
    );
}

#[test]
fn the_sender_tier_is_kept_in_state_and_climbs() {
    let policy = ColdStart::init("").expect("defaults are valid");
    let bulk = || message(Category::Utility, Priority::Bulk);

    // First seen: tier 0, stored.
    assert_eq!(
        policy.on_dispatch(bulk(), &context(NOW, 1, Quality::Green, 0)),
        Verdict::Allow
    );
    assert_eq!(
        stored_tier(),
        Some(TierState {
            index: 0,
            since_ms: NOW,
            demoted: false
        })
    );
    // Full within the first day: bulk waits, the tier holds (not a day served yet).
    let later = NOW + 10 * HOUR;
    assert_eq!(
        policy.on_dispatch(bulk(), &context(later, 1, Quality::Green, 250)),
        Verdict::Defer(later + HOUR)
    );
    assert_eq!(stored_tier().map(|tier| tier.index), Some(0));
    // A day on, half the tier used and green: tier 1 (2000), and the bulk message goes.
    let next_day = NOW + 24 * HOUR;
    assert_eq!(
        policy.on_dispatch(bulk(), &context(next_day, 1, Quality::Green, 250)),
        Verdict::Allow
    );
    assert_eq!(
        stored_tier(),
        Some(TierState {
            index: 1,
            since_ms: next_day,
            demoted: false
        })
    );
    // Yellow: holds, however long and busy.
    let much_later = next_day + 100 * HOUR;
    assert_eq!(
        policy.on_dispatch(bulk(), &context(much_later, 1, Quality::Yellow, 2_000)),
        Verdict::Defer(much_later + HOUR)
    );
    assert_eq!(stored_tier().map(|tier| tier.index), Some(1));
    // Red: back to tier 0 at once.
    assert_eq!(
        policy.on_dispatch(bulk(), &context(much_later, 1, Quality::Red, 300)),
        Verdict::Defer(much_later + HOUR)
    );
    assert_eq!(
        stored_tier(),
        Some(TierState {
            index: 0,
            since_ms: much_later,
            demoted: true
        })
    );
}

#[test]
fn service_dispatches_still_move_the_tier_but_are_never_held() {
    let policy = ColdStart::init(r#"{"min_hours_per_tier": 0}"#).expect("valid");
    let service = message(Category::Service, Priority::Bulk);
    assert_eq!(
        policy.on_dispatch(service.clone(), &context(NOW, 1, Quality::Green, 9_000)),
        Verdict::Allow
    );
    assert_eq!(
        policy.on_dispatch(service, &context(NOW, 1, Quality::Green, 9_000)),
        Verdict::Allow
    );
    assert_eq!(stored_tier().map(|tier| tier.index), Some(1));
}

#[test]
fn an_unreadable_stored_tier_starts_over() {
    state::set(&tier::state_key(SENDER), "not json", None);
    let policy = ColdStart::init(r#"{"start_tier": 1}"#).expect("valid");
    assert_eq!(
        policy.on_dispatch(
            message(Category::Utility, Priority::Bulk),
            &context(NOW, 1, Quality::Green, 0)
        ),
        Verdict::Allow
    );
    assert_eq!(stored_tier().map(|tier| tier.index), Some(1));
}

#[test]
fn the_sender_id_falls_back_to_the_message() {
    let policy = ColdStart::init("").expect("defaults are valid");
    let mut facts = context(NOW, 1, Quality::Green, 0);
    facts.sender.phone_number_id = String::new();
    assert_eq!(
        policy.on_dispatch(message(Category::Utility, Priority::Bulk), &facts),
        Verdict::Allow
    );
    assert!(stored_tier().is_some());
}

#[test]
fn a_refused_config_names_the_field() {
    let error = ColdStart::init(r#"{"over_tier_defer": ["critical"]}"#)
        .err()
        .unwrap_or_default();
    assert!(error.starts_with("config field `over_tier_defer`"), "{error}");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<ColdStart>(folder) {
        Ok(count) => assert!(count >= 20, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}
