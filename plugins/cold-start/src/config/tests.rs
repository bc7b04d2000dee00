//! Native tests of the config: defaults, overrides, and every refusal naming its field.

use super::*;

#[test]
fn empty_configs_give_the_defaults() {
    for text in ["", "{}", "null"] {
        assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
    }
    let config = Config::default();
    assert_eq!(config.stranger_marketing, StrangerMarketing::Reject);
    assert_eq!(config.stranger_retry_ms, 21_600_000);
    assert_eq!(config.over_ramp, OverRamp::Defer);
    assert_eq!(config.ramp_retry_ms, 3_600_000);
    assert_eq!(
        config
            .ramp
            .iter()
            .map(|step| (step.min_interactions, step.marketing_per_24h, step.marketing_per_7d))
            .collect::<Vec<_>>(),
        vec![(1, 1, 3), (3, 2, 5), (10, 4, 10)]
    );
    assert_eq!(
        config.sender_tiers,
        vec![Some(250), Some(2_000), Some(10_000), Some(100_000), None]
    );
    assert_eq!(config.start_tier, 0);
    assert_eq!(config.promote_at_share, 0.5);
    assert_eq!(config.min_hours_per_tier, 24);
    assert!(config.demote_on_red);
    assert_eq!(config.over_tier_defer, vec![PriorityName::Bulk]);
    assert_eq!(config.over_tier_retry_ms, 3_600_000);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn given_keys_override_the_defaults() {
    let config = Config::parse(
        r#"{"stranger_marketing": "defer", "stranger_retry_ms": 60000, "over_ramp": "reject",
            "ramp": [{"min_interactions": 1, "marketing_per_24h": 1, "marketing_per_7d": 1}],
            "sender_tiers": [1000, null], "start_tier": 1, "promote_at_share": 1,
            "min_hours_per_tier": 0, "demote_on_red": false, "over_tier_defer": ["bulk", "normal"]}"#,
    )
    .expect("valid");
    assert_eq!(config.stranger_marketing, StrangerMarketing::Defer);
    assert_eq!(config.stranger_retry_ms, 60_000);
    assert_eq!(config.over_ramp, OverRamp::Reject);
    assert_eq!(config.ramp.len(), 1);
    assert_eq!(config.sender_tiers, vec![Some(1_000), None]);
    assert_eq!(config.start_tier, 1);
    assert!(!config.demote_on_red);
    assert!(config.defers_over_tier(Priority::Normal));
    assert!(!config.defers_over_tier(Priority::High));
    // Untouched keys keep their defaults.
    assert_eq!(config.ramp_retry_ms, DEFAULT_RAMP_RETRY_MS);
}

#[test]
fn the_ramp_step_is_the_last_one_reached() {
    let config = Config::default();
    let limits = |interactions| {
        config
            .ramp_step(interactions)
            .map(|step| (step.marketing_per_24h, step.marketing_per_7d))
    };
    assert_eq!(limits(0), None);
    assert_eq!(limits(1), Some((1, 3)));
    assert_eq!(limits(2), Some((1, 3)));
    assert_eq!(limits(3), Some((2, 5)));
    assert_eq!(limits(9), Some((2, 5)));
    assert_eq!(limits(10), Some((4, 10)));
    assert_eq!(limits(u32::MAX), Some((4, 10)));
}

#[test]
fn tier_limits_past_the_last_tier_are_the_last() {
    let config = Config::default();
    assert_eq!(config.tier_limit(0), Some(250));
    assert_eq!(config.tier_limit(3), Some(100_000));
    assert_eq!(config.tier_limit(4), None);
    assert_eq!(config.tier_limit(9), None);
}

#[test]
fn invalid_configs_are_refused_naming_the_field() {
    let cases = [
        (
            r#"{"stranger_retry_ms": 0}"#,
            "config field `stranger_retry_ms` must be 1 to 604800000 (7 days), got 0",
        ),
        (
            r#"{"ramp_retry_ms": 604800001}"#,
            "config field `ramp_retry_ms` must be 1 to 604800000 (7 days), got 604800001",
        ),
        (
            r#"{"over_tier_retry_ms": 0}"#,
            "config field `over_tier_retry_ms` must be 1 to 604800000 (7 days), got 0",
        ),
        (
            r#"{"ramp": []}"#,
            "config field `ramp` must have at least one step (the first with `min_interactions` 1)",
        ),
        (
            r#"{"ramp": [{"min_interactions": 2, "marketing_per_24h": 1, "marketing_per_7d": 3}]}"#,
            "config field `ramp[0].min_interactions` must be 1 (the step after a recipient's first message), got 2",
        ),
        (
            r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 1, "marketing_per_7d": 3},
                         {"min_interactions": 1, "marketing_per_24h": 2, "marketing_per_7d": 3}]}"#,
            "config field `ramp[1].min_interactions` must be above the step before it (1), got 1",
        ),
        (
            r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 2, "marketing_per_7d": 3},
                         {"min_interactions": 5, "marketing_per_24h": 1, "marketing_per_7d": 3}]}"#,
            "config field `ramp[1].marketing_per_24h` must not be below the step before it (2), got 1",
        ),
        (
            r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 1, "marketing_per_7d": 5},
                         {"min_interactions": 5, "marketing_per_24h": 2, "marketing_per_7d": 4}]}"#,
            "config field `ramp[1].marketing_per_7d` must not be below the step before it (5), got 4",
        ),
        (
            r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 4, "marketing_per_7d": 3}]}"#,
            "config field `ramp[0].marketing_per_24h` (4) must not be above `marketing_per_7d` (3)",
        ),
        (
            r#"{"sender_tiers": []}"#,
            "config field `sender_tiers` must list at least one tier",
        ),
        (
            r#"{"sender_tiers": [0, 100]}"#,
            "config field `sender_tiers[0]` must be at least 1, got 0",
        ),
        (
            r#"{"sender_tiers": [250, 250]}"#,
            "config field `sender_tiers[1]` must be above the tier before it (250), got 250",
        ),
        (
            r#"{"sender_tiers": [250, null, 1000]}"#,
            "config field `sender_tiers[1]` is null (unlimited) but is not the last tier",
        ),
        (
            r#"{"start_tier": 5}"#,
            "config field `start_tier` must be 0 to 4, the index of a tier in `sender_tiers`, got 5",
        ),
        (
            r#"{"promote_at_share": 0}"#,
            "config field `promote_at_share` must be above 0 and at most 1, got 0",
        ),
        (
            r#"{"promote_at_share": 1.5}"#,
            "config field `promote_at_share` must be above 0 and at most 1, got 1.5",
        ),
        (
            r#"{"over_tier_defer": ["bulk", "critical"]}"#,
            "config field `over_tier_defer` must not list `critical`: critical messages never wait for a tier",
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(Config::parse(text).err(), Some(reason.to_string()), "{text}");
    }
}

#[test]
fn a_single_unlimited_tier_is_valid() {
    let config = Config::parse(r#"{"sender_tiers": [null]}"#).expect("valid");
    assert_eq!(config.tier_limit(0), None);
}

#[test]
fn unknown_and_mistyped_keys_are_refused() {
    let error = Config::parse(r#"{"stranger_marketting": "defer"}"#).unwrap_err();
    assert!(error.contains("unknown field `stranger_marketting`"), "{error}");
    let error = Config::parse(r#"{"stranger_marketing": "drop"}"#).unwrap_err();
    assert!(error.starts_with("config field `stranger_marketing`"), "{error}");
    let error = Config::parse(r#"{"over_tier_defer": ["urgent"]}"#).unwrap_err();
    assert!(error.starts_with("config field `over_tier_defer[0]`"), "{error}");
    let error = Config::parse(r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 1}]}"#).unwrap_err();
    assert!(error.contains("missing field `marketing_per_7d`"), "{error}");
    let error = Config::parse(
        r#"{"ramp": [{"min_interactions": 1, "marketing_per_24h": 1, "marketing_per_7d": 3, "per_30d": 9}]}"#,
    )
    .unwrap_err();
    assert!(error.contains("unknown field `per_30d`"), "{error}");
    let error = Config::parse(r#"{"sender_tiers": [250, -1]}"#).unwrap_err();
    assert!(error.starts_with("config field `sender_tiers[1]`"), "{error}");
}
