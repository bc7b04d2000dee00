//! Native tests of the per-message rules: strangers, the ramp, and how the rules combine.

use wasp_sdk::{CategoryCounts, Content, Priority, Quality, RecipientFacts, SenderFacts};

use super::*;

const NOW: i64 = 1_709_335_800_000;
const HOUR: i64 = 3_600_000;

fn message(category: Category) -> Message {
    let mut message = Message::new("m-1", "+4915112345678", "100200300", Content::text("hello"));
    message.category = category;
    message
}

fn marketing(priority: Priority) -> Message {
    let mut message = message(Category::Marketing);
    message.priority = priority;
    message
}

fn context(interactions: u32, marketing24h: u32, marketing7d: u32) -> Context {
    Context {
        now_ms: NOW,
        recipient: RecipientFacts {
            country_code: 49,
            interactions,
            last_inbound_ms: (interactions > 0).then_some(NOW - HOUR),
            sent24h: CategoryCounts {
                marketing: marketing24h,
                ..CategoryCounts::default()
            },
            sent7d: CategoryCounts {
                marketing: marketing7d,
                ..CategoryCounts::default()
            },
            ..RecipientFacts::default()
        },
        sender: SenderFacts {
            phone_number_id: "100200300".to_string(),
            quality: Quality::Green,
            ..SenderFacts::default()
        },
        ..Context::default()
    }
}

fn reason(decision: &Decision) -> Option<String> {
    match decision {
        Decision::Reject(hit) | Decision::Defer { hit, .. } => Some(hit.to_string()),
        Decision::Allow => None,
    }
}

fn first_tier() -> TierState {
    TierState {
        index: 0,
        since_ms: NOW,
        demoted: false,
    }
}

#[test]
fn numbers_are_masked_to_country_code_and_last_two_digits() {
    assert_eq!(mask("+4915112345678", 49), "+49…78");
    assert_eq!(mask("+6591234567", 65), "+65…67");
    assert_eq!(mask("+6591234567", 0), "+…67");
    assert_eq!(mask("+6591234567", 49), "+…67");
    assert_eq!(mask("+49", 49), "+49…");
    assert_eq!(mask("", 49), "+…");
}

#[test]
fn interactions_count_a_known_inbound_as_at_least_one() {
    let mut recipient = RecipientFacts::default();
    assert_eq!(interactions(&recipient), 0);
    assert!(is_stranger(&recipient));
    recipient.last_inbound_ms = Some(NOW);
    assert_eq!(interactions(&recipient), 1);
    assert!(!is_stranger(&recipient));
    recipient.interactions = 7;
    assert_eq!(interactions(&recipient), 7);
}

#[test]
fn marketing_to_a_stranger_is_rejected_with_the_reason() {
    let decision = decide_submit(&Config::default(), &message(Category::Marketing), &context(0, 0, 0));
    assert!(matches!(decision, Decision::Reject(Hit::Stranger(_))), "{decision:?}");
    assert_eq!(
        reason(&decision).as_deref(),
        Some(
            "marketing to +49…78: the recipient has not written to this business yet (0 interactions); \
             only authentication, utility and service messages may reach them"
        )
    );
}

#[test]
fn marketing_to_a_stranger_can_be_deferred_instead() {
    let config = Config {
        stranger_marketing: StrangerMarketing::Defer,
        ..Config::default()
    };
    let decision = decide_submit(&config, &message(Category::Marketing), &context(0, 0, 0));
    assert!(
        matches!(decision, Decision::Defer { until_ms, hit: Hit::Stranger(_) } if until_ms == NOW + 6 * HOUR),
        "{decision:?}"
    );
}

#[test]
fn strangers_get_every_other_category() {
    for category in [Category::Authentication, Category::Utility, Category::Service] {
        assert_eq!(
            decide_submit(&Config::default(), &message(category), &context(0, 0, 0)),
            Decision::Allow,
            "{category:?}"
        );
        assert_eq!(
            decide_dispatch(&Config::default(), &first_tier(), &message(category), &context(0, 5, 5)),
            Decision::Allow,
            "{category:?}"
        );
    }
}

#[test]
fn marketing_after_the_first_interaction_goes() {
    let config = Config::default();
    assert_eq!(
        decide_submit(&config, &message(Category::Marketing), &context(1, 0, 0)),
        Decision::Allow
    );
    assert_eq!(
        decide_dispatch(&config, &first_tier(), &message(Category::Marketing), &context(1, 0, 0)),
        Decision::Allow
    );
}

#[test]
fn a_deferred_strangers_marketing_is_judged_again_at_dispatch() {
    let config = Config {
        stranger_marketing: StrangerMarketing::Defer,
        ..Config::default()
    };
    let decision = decide_dispatch(&config, &first_tier(), &message(Category::Marketing), &context(0, 0, 0));
    assert!(
        matches!(
            decision,
            Decision::Defer {
                hit: Hit::Stranger(_),
                ..
            }
        ),
        "{decision:?}"
    );
    // Once they wrote in, it goes.
    assert_eq!(
        decide_dispatch(&config, &first_tier(), &message(Category::Marketing), &context(1, 0, 0)),
        Decision::Allow
    );
}

#[test]
fn marketing_over_the_24_hour_ramp_waits_with_the_numbers() {
    let config = Config::default();
    let decision = check_ramp(&config, &message(Category::Marketing), &context(3, 2, 2));
    let Decision::Defer { until_ms, hit } = &decision else {
        panic!("expected a defer, got {decision:?}");
    };
    assert_eq!(*until_ms, NOW + HOUR);
    assert_eq!(
        hit.to_string(),
        "marketing to +49…78: 2 of 2 allowed in 24 h for 3 interactions"
    );
    // One under the limit goes.
    assert_eq!(
        check_ramp(&config, &message(Category::Marketing), &context(3, 1, 1)),
        Decision::Allow
    );
}

#[test]
fn marketing_over_the_7_day_ramp_waits() {
    let config = Config::default();
    let decision = check_ramp(&config, &message(Category::Marketing), &context(1, 0, 3));
    assert_eq!(
        reason(&decision).as_deref(),
        Some("marketing to +49…78: 3 of 3 allowed in 7 days for 1 interaction")
    );
}

#[test]
fn more_interactions_allow_more_marketing() {
    let config = Config::default();
    let recipient_with =
        |interactions| check_ramp(&config, &message(Category::Marketing), &context(interactions, 2, 4));
    assert!(matches!(recipient_with(1), Decision::Defer { .. }));
    assert!(matches!(recipient_with(3), Decision::Defer { .. }));
    assert_eq!(recipient_with(10), Decision::Allow);
}

#[test]
fn over_ramp_reject_refuses_instead() {
    let config = Config {
        over_ramp: OverRamp::Reject,
        ..Config::default()
    };
    let decision = check_ramp(&config, &message(Category::Marketing), &context(10, 4, 4));
    assert!(matches!(decision, Decision::Reject(Hit::Ramp(_))), "{decision:?}");
    assert_eq!(
        reason(&decision).as_deref(),
        Some("marketing to +49…78: 4 of 4 allowed in 24 h for 10 interactions")
    );
}

#[test]
fn the_ramp_counts_only_marketing() {
    let config = Config::default();
    let mut context = context(1, 0, 0);
    context.recipient.sent24h.utility = 50;
    context.recipient.sent7d.utility = 50;
    assert_eq!(
        check_ramp(&config, &message(Category::Marketing), &context),
        Decision::Allow
    );
    context.recipient.sent24h.marketing = 1;
    assert_eq!(
        check_ramp(&config, &message(Category::Utility), &context),
        Decision::Allow
    );
}

#[test]
fn a_zero_step_holds_all_marketing() {
    let config = Config::parse(
        r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 0, "marketing_per_7d": 0},
                     {"min_interactions": 2, "marketing_per_24h": 1, "marketing_per_7d": 1}]}"#,
    )
    .expect("valid");
    assert_eq!(
        reason(&check_ramp(&config, &message(Category::Marketing), &context(1, 0, 0))).as_deref(),
        Some("marketing to +49…78: 0 of 0 allowed in 24 h for 1 interaction")
    );
    assert_eq!(
        check_ramp(&config, &message(Category::Marketing), &context(2, 0, 0)),
        Decision::Allow
    );
}

#[test]
fn a_reject_wins_over_a_tier_defer() {
    let config = Config {
        over_ramp: OverRamp::Reject,
        ..Config::default()
    };
    let mut context = context(1, 1, 1);
    context.sender.sent24h = 250;
    let decision = decide_dispatch(&config, &first_tier(), &marketing(Priority::Bulk), &context);
    assert!(matches!(decision, Decision::Reject(Hit::Ramp(_))), "{decision:?}");
}

#[test]
fn of_two_defers_the_later_wins() {
    let mut context = context(1, 1, 1);
    context.sender.sent24h = 250;
    let later_tier = Config {
        over_tier_retry_ms: 2 * HOUR as u64,
        ..Config::default()
    };
    let decision = decide_dispatch(&later_tier, &first_tier(), &marketing(Priority::Bulk), &context);
    assert!(
        matches!(decision, Decision::Defer { until_ms, hit: Hit::Tier(_) } if until_ms == NOW + 2 * HOUR),
        "{decision:?}"
    );
    // On a tie, the ramp (checked first) names the reason.
    let decision = decide_dispatch(&Config::default(), &first_tier(), &marketing(Priority::Bulk), &context);
    assert!(
        matches!(decision, Decision::Defer { until_ms, hit: Hit::Ramp(_) } if until_ms == NOW + HOUR),
        "{decision:?}"
    );
}

#[test]
fn the_tier_defers_bulk_but_not_normal_at_dispatch() {
    let mut context = context(1, 0, 0);
    context.sender.sent24h = 300;
    let mut utility = message(Category::Utility);
    utility.priority = Priority::Bulk;
    let decision = decide_dispatch(&Config::default(), &first_tier(), &utility, &context);
    assert!(
        matches!(decision, Decision::Defer { until_ms, hit: Hit::Tier(_) } if until_ms == NOW + HOUR),
        "{decision:?}"
    );
    utility.priority = Priority::Normal;
    assert_eq!(
        decide_dispatch(&Config::default(), &first_tier(), &utility, &context),
        Decision::Allow
    );
}
