//! Native tests of the priority classification, its config, the policy, and the fixtures.

use wasp_sdk::Content;

use super::*;

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn message(category: Category, priority: Priority, tag_names: &[&str]) -> Message {
    let mut message = Message::new("m-1", "+6591234567", "100200300", Content::text("hello"));
    message.category = category;
    message.priority = priority;
    message.tags = tags(tag_names);
    message
}

#[test]
fn categories_map_to_their_default_classes() {
    let config = Config::default();
    let cases = [
        (Category::Authentication, Priority::Critical),
        (Category::Utility, Priority::Normal),
        (Category::Marketing, Priority::Bulk),
        (Category::Service, Priority::Normal),
    ];
    for (category, class) in cases {
        assert_eq!(classify(&config, category, &[]), class, "{category:?}");
    }
}

#[test]
fn a_tag_rule_wins_over_the_category() {
    let config = Config::default();
    assert_eq!(
        classify(&config, Category::Utility, &tags(&["payment"])),
        Priority::High
    );
    assert_eq!(
        classify(&config, Category::Marketing, &tags(&["customs"])),
        Priority::High
    );
    // Even downwards: the tag rule is the more specific one.
    assert_eq!(
        classify(&config, Category::Authentication, &tags(&["payment"])),
        Priority::High
    );
    // Tags without a rule leave the category's class.
    assert_eq!(
        classify(&config, Category::Utility, &tags(&["delivery", "Payment"])),
        Priority::Normal
    );
}

#[test]
fn among_several_tags_the_highest_class_wins() {
    let config = Config::parse(r#"{"tags": {"newsletter": "bulk", "otp": "critical"}}"#).expect("valid");
    assert_eq!(
        classify(&config, Category::Utility, &tags(&["newsletter", "payment"])),
        Priority::High
    );
    assert_eq!(
        classify(&config, Category::Utility, &tags(&["payment", "otp", "newsletter"])),
        Priority::Critical
    );
    assert_eq!(
        classify(&config, Category::Utility, &tags(&["newsletter"])),
        Priority::Bulk
    );
}

#[test]
fn config_overrides_categories_and_tags() {
    let config =
        Config::parse(r#"{"categories": {"utility": "high"}, "tags": {"otp": "critical", "payment": "normal"}}"#)
            .expect("valid");
    assert_eq!(config.categories.utility, Priority::High);
    assert_eq!(config.categories.marketing, Priority::Bulk);
    assert_eq!(config.tags.get("otp"), Some(&Priority::Critical));
    assert_eq!(config.tags.get("payment"), Some(&Priority::Normal));
    // The other default rule stays.
    assert_eq!(config.tags.get("customs"), Some(&Priority::High));
}

#[test]
fn null_removes_a_default_tag_rule() {
    let config = Config::parse(r#"{"tags": {"payment": null}}"#).expect("valid");
    assert_eq!(config.tags.get("payment"), None);
    assert_eq!(
        classify(&config, Category::Marketing, &tags(&["payment"])),
        Priority::Bulk
    );
}

#[test]
fn empty_configs_give_the_defaults() {
    for text in ["", "{}", "null"] {
        assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
    }
    let config = Config::default();
    let tag_rules: Vec<(&str, Priority)> = config.tags.iter().map(|(tag, class)| (tag.as_str(), *class)).collect();
    assert_eq!(tag_rules, [("customs", Priority::High), ("payment", Priority::High)]);
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let error = PriorityPolicy::init(r#"{"categories": {"utility": "urgent"}}"#)
        .err()
        .unwrap_or_default();
    assert!(
        error.starts_with("config field `categories.utility`: unknown variant `urgent`"),
        "{error}"
    );
    let error = PriorityPolicy::init(r#"{"categories": {"promotions": "bulk"}}"#)
        .err()
        .unwrap_or_default();
    assert!(error.contains("unknown field `promotions`"), "{error}");
    let error = PriorityPolicy::init(r#"{"tags": {"otp": "Critical"}}"#)
        .err()
        .unwrap_or_default();
    assert!(error.starts_with("config field `tags.otp`"), "{error}");
    let error = PriorityPolicy::init(r#"{"tag": {}}"#).err().unwrap_or_default();
    assert!(error.contains("unknown field `tag`"), "{error}");
    assert_eq!(
        PriorityPolicy::init(r#"{"tags": {"": "high"}}"#).err(),
        Some("tags.: a tag has 1 to 64 characters, this one 0".to_string())
    );
    let long = "x".repeat(65);
    assert_eq!(
        PriorityPolicy::init(&format!(r#"{{"tags": {{"{long}": "high"}}}}"#)).err(),
        Some(format!("tags.{long}: a tag has 1 to 64 characters, this one 65"))
    );
}

#[test]
fn the_policy_rewrites_only_the_priority() {
    let policy = PriorityPolicy::init("").expect("defaults are valid");
    let submitted = message(Category::Utility, Priority::High, &["delivery"]);
    let Verdict::Rewrite(rewritten) = policy.on_submit(submitted.clone(), &Context::default()) else {
        panic!("expected a rewrite");
    };
    assert_eq!(rewritten.priority, Priority::Normal);
    assert_eq!(
        Message {
            priority: submitted.priority,
            ..rewritten.clone()
        },
        submitted
    );
    // Already in its class: allowed as it is, at submit and at dispatch.
    assert_eq!(policy.on_submit(rewritten.clone(), &Context::default()), Verdict::Allow);
    assert_eq!(policy.on_dispatch(rewritten, &Context::default()), Verdict::Allow);
}

#[test]
fn ranks_order_the_classes() {
    assert!(rank(Priority::Critical) > rank(Priority::High));
    assert!(rank(Priority::High) > rank(Priority::Normal));
    assert!(rank(Priority::Normal) > rank(Priority::Bulk));
    assert_eq!(class_name(Priority::Bulk), "bulk");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<PriorityPolicy>(folder) {
        Ok(count) => assert!(count >= 6, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}
