//! Unit tests of the checks; the fixtures in `fixtures/` are the cases as data.

use serde_json::{Value, json};
use wasp_sdk::{Content, Context, Message, Severity, Verdict};

use super::*;

fn definition(components: Value) -> TemplateDefinition {
    TemplateDefinition::from_meta_json(&json!({
        "name": "order_update", "language": "en_US", "category": "UTILITY", "components": components
    }))
    .expect("a valid definition")
}

fn good() -> TemplateDefinition {
    definition(json!([
        {"type": "HEADER", "format": "TEXT", "text": "Your order"},
        {"type": "BODY", "text": "Hello {{1}}, your order {{2}} has shipped and arrives soon.",
         "example": {"body_text": [["Ada", "A-42"]]}},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "Track it"},
            {"type": "QUICK_REPLY", "text": "Talk to us"},
            {"type": "URL", "text": "Open", "url": "https://example.com/{{1}}"}]}
    ]))
}

fn checks(findings: &[LintFinding]) -> Vec<(&str, &str)> {
    findings
        .iter()
        .map(|finding| (finding.check.as_str(), finding.field.as_str()))
        .collect()
}

#[test]
fn a_good_template_has_no_findings() {
    assert_eq!(lint(&Config::default(), &good()), Vec::new());
}

#[test]
fn messages_are_allowed() {
    let policy = TemplateLint::init("").expect("defaults are valid");
    let message = Message::new("m-1", "+6591234567", "100200300", Content::text("hi"));
    assert_eq!(policy.on_submit(message.clone(), &Context::default()), Verdict::Allow);
    assert_eq!(policy.on_dispatch(message, &Context::default()), Verdict::Allow);
}

#[test]
fn button_limits_name_the_first_button_over() {
    let mut template = good();
    template.buttons = (0..12)
        .map(|index| wasp_sdk::TemplateButton {
            kind: if index < 3 { "URL" } else { "QUICK_REPLY" }.to_string(),
            text: Some(format!("Button {index}")),
            url: None,
            phone_number: None,
        })
        .collect();
    let findings = check_buttons(&Config::default(), &template);
    assert_eq!(
        checks(&findings),
        [
            (BUTTON_COUNT, "components[3].buttons"),
            (BUTTON_COUNT, "components[3].buttons[2]")
        ]
    );
}

#[test]
fn quick_replies_split_around_others_are_found() {
    let template = definition(json!([
        {"type": "BODY", "text": "Pick one of these options"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "A"}, {"type": "URL", "text": "B", "url": "https://example.com"},
            {"type": "QUICK_REPLY", "text": "C"}]}
    ]));
    assert_eq!(
        checks(&check_buttons(&Config::default(), &template)),
        [(BUTTON_COUNT, "components[1].buttons[2]")]
    );
}

#[test]
fn placeholder_rules() {
    let body = |text: &str| definition(json!([{"type": "BODY", "text": text}]));
    let found = |text: &str| check_placeholders(&body(text)).len();
    assert_eq!(found("Hello {{1}}, your code is ready now."), 0);
    assert_eq!(found("{{1}}, your code is ready."), 1);
    assert_eq!(found("Your code is {{1}}."), 1);
    assert_eq!(found("Hi {{1}} {{2}} welcome back to us."), 1);
    assert_eq!(found("Hi {{1}} and {{3}} welcome back."), 1);
    assert_eq!(found("Hi {1} welcome back."), 1);
    assert_eq!(found("Hi {{ 1 }} welcome back."), 1);
    assert_eq!(found("Hi {{name}} welcome back."), 1);
}

#[test]
fn named_placeholders_are_lower_snake_case() {
    let mut template = definition(json!([{"type": "BODY", "text": "Hi {{first_name}} and {{Last}}, welcome."}]));
    template.parameter_format = "named".to_string();
    let findings = check_placeholders(&template);
    assert_eq!(findings.len(), 1);
    assert!(findings[0].message.contains("{{Last}}"), "{}", findings[0].message);
}

#[test]
fn lengths_and_examples() {
    let template = definition(json!([
        {"type": "HEADER", "format": "TEXT", "text": "h".repeat(61)},
        {"type": "BODY", "text": format!("Hello {{{{1}}}} {}", "b".repeat(1020))},
        {"type": "FOOTER", "text": "f".repeat(61)}
    ]));
    let findings = lint(&Config::default(), &template);
    let errors: Vec<(&str, &str)> = findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| (finding.check.as_str(), finding.field.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (PARAMETER_COUNT, "components[1].example"),
            (BODY_LENGTH, "components[1].text"),
            (BODY_LENGTH, "components[0].text"),
            (BODY_LENGTH, "components[2].text"),
        ]
    );
}

#[test]
fn config_errors_name_the_field() {
    let error = TemplateLint::init(r#"{"max_button": 2}"#).err().unwrap_or_default();
    assert!(error.contains("unknown field `max_button`"), "{error}");
    let error = TemplateLint::init(r#"{"max_body_chars": "many"}"#)
        .err()
        .unwrap_or_default();
    assert!(error.starts_with("config field `max_body_chars`"), "{error}");
    let error = TemplateLint::init(r#"{"max_buttons": 0}"#).err().unwrap_or_default();
    assert!(error.starts_with("config field `max_buttons`"), "{error}");
    let error = TemplateLint::init(r#"{"max_buttons": 2, "max_url_buttons": 3}"#)
        .err()
        .unwrap_or_default();
    assert!(error.starts_with("config field `max_url_buttons`"), "{error}");
}

#[test]
fn fixtures_hold() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    match wasp_sdk::fixture::check_folder::<TemplateLint>(folder) {
        Ok(count) => assert!(count >= 8, "only {count} fixtures"),
        Err(error) => panic!("{error}"),
    }
}
