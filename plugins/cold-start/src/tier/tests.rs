//! Native tests of sender warm-up: starting, promotion, holding, demotion, the stored JSON,
//! and the limit the tier puts on a message.

use wasp_sdk::{Content, Priority};

use super::*;

const HOUR: i64 = 3_600_000;
const NOW: i64 = 1_709_335_800_000;

fn sender(quality: Quality, sent24h: u32) -> SenderFacts {
    SenderFacts {
        phone_number_id: "100200300".to_string(),
        tier_limit: None,
        quality,
        sent24h,
    }
}

fn at(index: usize, hours_ago: i64) -> Option<TierState> {
    Some(TierState {
        index,
        since_ms: NOW - hours_ago * HOUR,
        demoted: false,
    })
}

fn message(category: Category, priority: Priority) -> Message {
    let mut message = Message::new("m-1", "+4915112345678", "100200300", Content::text("hello"));
    message.category = category;
    message.priority = priority;
    message
}

#[test]
fn a_new_sender_starts_at_the_start_tier() {
    let (state, movement) = advance(&Config::default(), None, &sender(Quality::Green, 10_000), NOW);
    assert_eq!((state.index, state.since_ms, movement), (0, NOW, Movement::Started));

    let config = Config {
        start_tier: 2,
        ..Config::default()
    };
    let (state, _) = advance(&config, None, &sender(Quality::Unknown, 0), NOW);
    assert_eq!(state.index, 2);
}

#[test]
fn enough_volume_good_quality_and_time_served_promote_one_tier() {
    let config = Config::default();
    for quality in [Quality::Green, Quality::Unknown] {
        let (state, movement) = advance(&config, at(0, 24), &sender(quality, 125), NOW);
        assert_eq!(movement, Movement::Promoted { from: 0 }, "{quality:?}");
        assert_eq!(
            state,
            TierState {
                index: 1,
                since_ms: NOW,
                demoted: false
            }
        );
    }
    // One tier at a time, whatever the volume.
    let (state, _) = advance(&config, at(1, 48), &sender(Quality::Green, 60_000), NOW);
    assert_eq!(state.index, 2);
}

#[test]
fn the_tier_holds_below_the_share() {
    let (state, movement) = advance(&Config::default(), at(0, 100), &sender(Quality::Green, 124), NOW);
    assert_eq!((state, movement), (at(0, 100).unwrap(), Movement::Held));

    let config = Config {
        promote_at_share: 0.8,
        ..Config::default()
    };
    assert_eq!(
        advance(&config, at(1, 30), &sender(Quality::Green, 1_599), NOW).1,
        Movement::Held
    );
    assert_eq!(
        advance(&config, at(1, 30), &sender(Quality::Green, 1_600), NOW).1,
        Movement::Promoted { from: 1 }
    );
}

#[test]
fn the_tier_holds_until_the_minimum_hours_are_served() {
    let config = Config::default();
    let just_short = Some(TierState {
        index: 0,
        since_ms: NOW - 24 * HOUR + 1,
        demoted: false,
    });
    assert_eq!(
        advance(&config, just_short, &sender(Quality::Green, 250), NOW).1,
        Movement::Held
    );

    let config = Config {
        min_hours_per_tier: 0,
        ..Config::default()
    };
    assert_eq!(
        advance(&config, at(0, 0), &sender(Quality::Green, 125), NOW).1,
        Movement::Promoted { from: 0 }
    );
}

#[test]
fn yellow_or_red_quality_never_promotes() {
    let config = Config {
        demote_on_red: false,
        ..Config::default()
    };
    for quality in [Quality::Yellow, Quality::Red] {
        let (state, movement) = advance(&config, at(1, 100), &sender(quality, 2_000), NOW);
        assert_eq!((state.index, movement), (1, Movement::Held), "{quality:?}");
    }
    let (_, movement) = advance(&Config::default(), at(1, 100), &sender(Quality::Yellow, 2_000), NOW);
    assert_eq!(movement, Movement::Held);
}

#[test]
fn the_top_tier_is_not_promoted() {
    let config = Config::default();
    assert_eq!(
        advance(&config, at(4, 100), &sender(Quality::Green, u32::MAX), NOW).1,
        Movement::Held
    );
    let config = Config {
        sender_tiers: vec![Some(250), Some(1_000)],
        ..Config::default()
    };
    assert_eq!(
        advance(&config, at(1, 100), &sender(Quality::Green, 1_000), NOW).1,
        Movement::Held
    );
}

#[test]
fn red_quality_drops_one_tier_at_once_then_one_per_period() {
    let config = Config::default();
    // Just promoted and already red: down at once.
    let (state, movement) = advance(&config, at(2, 0), &sender(Quality::Red, 0), NOW);
    assert_eq!(movement, Movement::Demoted { from: 2 });
    assert_eq!(
        state,
        TierState {
            index: 1,
            since_ms: NOW,
            demoted: true
        }
    );
    // Still red an hour later: held.
    let (held, movement) = advance(&config, Some(state), &sender(Quality::Red, 0), NOW + HOUR);
    assert_eq!((held, movement), (state, Movement::Held));
    // Still red a period later: one more down.
    let (state, movement) = advance(&config, Some(state), &sender(Quality::Red, 0), NOW + 24 * HOUR);
    assert_eq!((state.index, movement), (0, Movement::Demoted { from: 1 }));
    // Not below the first tier.
    let (_, movement) = advance(&config, Some(state), &sender(Quality::Red, 0), NOW + 100 * HOUR);
    assert_eq!(movement, Movement::Held);
}

#[test]
fn red_without_demote_on_red_holds() {
    let config = Config {
        demote_on_red: false,
        ..Config::default()
    };
    assert_eq!(
        advance(&config, at(2, 100), &sender(Quality::Red, 0), NOW).1,
        Movement::Held
    );
}

#[test]
fn a_demoted_sender_climbs_again_after_a_period_of_good_quality() {
    let config = Config::default();
    let demoted = Some(TierState {
        index: 1,
        since_ms: NOW - 23 * HOUR,
        demoted: true,
    });
    assert_eq!(
        advance(&config, demoted, &sender(Quality::Green, 2_000), NOW).1,
        Movement::Held
    );
    let (state, movement) = advance(&config, demoted, &sender(Quality::Green, 2_000), NOW + HOUR);
    assert_eq!(movement, Movement::Promoted { from: 1 });
    assert!(!state.demoted);
}

#[test]
fn a_stored_tier_past_the_configured_ones_is_clamped() {
    let config = Config {
        sender_tiers: vec![Some(250), Some(1_000)],
        ..Config::default()
    };
    let (state, movement) = advance(&config, at(4, 100), &sender(Quality::Green, 0), NOW);
    assert_eq!((state.index, movement), (1, Movement::Clamped { from: 4 }));
    assert!(movement.changed());
    assert!(!Movement::Held.changed());
}

#[test]
fn the_state_round_trips_as_json() {
    let state = TierState {
        index: 2,
        since_ms: NOW,
        demoted: false,
    };
    assert_eq!(state.to_json(), r#"{"index":2,"since_ms":1709335800000}"#);
    assert_eq!(TierState::from_json(&state.to_json()).ok(), Some(state));
    let demoted = TierState { demoted: true, ..state };
    assert_eq!(
        demoted.to_json(),
        r#"{"index":2,"since_ms":1709335800000,"demoted":true}"#
    );
    assert_eq!(TierState::from_json(&demoted.to_json()).ok(), Some(demoted));
    assert!(TierState::from_json("tier two").is_err());
    assert!(TierState::from_json(r#"{"index":-1,"since_ms":0}"#).is_err());
    assert_eq!(state_key("100200300"), "tier/100200300");
}

#[test]
fn the_effective_limit_is_the_smaller_of_tier_and_host() {
    let config = Config::default();
    let tier = at(1, 0).unwrap();
    let mut facts = sender(Quality::Green, 0);
    assert_eq!(effective_limit(&config, &tier, &facts), Some(2_000));
    facts.tier_limit = Some(1_000);
    assert_eq!(effective_limit(&config, &tier, &facts), Some(1_000));
    facts.tier_limit = Some(100_000);
    assert_eq!(effective_limit(&config, &tier, &facts), Some(2_000));
    let top = at(4, 0).unwrap();
    assert_eq!(effective_limit(&config, &top, &facts), Some(100_000));
    facts.tier_limit = None;
    assert_eq!(effective_limit(&config, &top, &facts), None);
}

#[test]
fn bulk_over_the_tier_waits_with_the_numbers() {
    let config = Config::default();
    let tier = at(0, 0).unwrap();
    let reached = check(
        &config,
        &tier,
        &message(Category::Utility, Priority::Bulk),
        &sender(Quality::Green, 250),
    );
    let Some(reached) = reached else {
        panic!("expected the tier limit");
    };
    assert_eq!(
        reached.to_string(),
        "250 of 250 business-initiated messages in 24 h (warm-up tier 0: 250)"
    );
    // Below the limit: goes.
    assert_eq!(
        check(
            &config,
            &tier,
            &message(Category::Utility, Priority::Bulk),
            &sender(Quality::Green, 249)
        ),
        None
    );
}

#[test]
fn the_host_tier_can_be_the_limit() {
    let config = Config::default();
    let tier = at(2, 0).unwrap();
    let mut facts = sender(Quality::Green, 1_000);
    facts.tier_limit = Some(1_000);
    let reached = check(&config, &tier, &message(Category::Marketing, Priority::Bulk), &facts);
    assert_eq!(
        reached.map(|reached| reached.to_string()),
        Some(
            "1000 of 1000 business-initiated messages in 24 h (warm-up tier 2: 10000; number's tier: 1000)".to_string()
        )
    );
}

#[test]
fn other_priorities_and_service_messages_go_over_the_tier() {
    let config = Config::default();
    let tier = at(0, 0).unwrap();
    let busy = sender(Quality::Green, 10_000);
    for priority in [Priority::Critical, Priority::High, Priority::Normal] {
        assert_eq!(
            check(&config, &tier, &message(Category::Marketing, priority), &busy),
            None
        );
    }
    assert_eq!(
        check(&config, &tier, &message(Category::Service, Priority::Bulk), &busy),
        None
    );
    // An unlimited tier never waits.
    let top = at(4, 0).unwrap();
    assert_eq!(
        check(&config, &top, &message(Category::Utility, Priority::Bulk), &busy),
        None
    );
}
