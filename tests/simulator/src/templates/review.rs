//! The simulator's template review: deterministic rules (listed in `templates`) that
//! approve a template or reject it with one of Meta's reasons. Owns the rules, the
//! reason names and the `rejection_info` texts; calls nothing else in the crate.

use serde::Serialize;
use serde_json::Value;

use super::{Category, LINK_SHORTENERS, PROMOTIONAL_WORDS, Template};

/// The reason of an approval (and of changes that have none).
pub const REASON_NONE: &str = "NONE";
/// Placeholders next to each other.
pub const REASON_INVALID_FORMAT: &str = "INVALID_FORMAT";
/// A scam ("free money").
pub const REASON_SCAM: &str = "SCAM";
/// Link shorteners.
pub const REASON_ABUSIVE_CONTENT: &str = "ABUSIVE_CONTENT";
/// A promotional `UTILITY` or `AUTHENTICATION` template.
pub const REASON_INCORRECT_CATEGORY: &str = "INCORRECT_CATEGORY";

/// `rejection_info` of a rejection webhook.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct RejectionInfo {
    /// What is wrong.
    pub reason: &'static str,
    /// What to do.
    pub recommendation: &'static str,
}

/// Meta's `rejection_info` for adjacent placeholders (from a real rejection webhook).
pub const INVALID_FORMAT_INFO: RejectionInfo = RejectionInfo {
    reason: "Your template has parameters placed next to each other (like {{1}}{{2}}) without text or \
             punctuation between them.",
    recommendation: "Separate parameters with descriptive text and ensure each parameter is clearly \
                     contextualized.",
};

/// What the review decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `APPROVED`, reason `NONE`.
    Approved,
    /// `REJECTED` with this reason.
    Rejected(&'static str),
}

impl Verdict {
    /// The webhook `reason` / listing `rejected_reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Approved => REASON_NONE,
            Self::Rejected(reason) => reason,
        }
    }
}

/// Reviews a template by the rules, in order.
pub fn review(template: &Template) -> Verdict {
    let body = body_text(&template.components).unwrap_or_default();
    if has_adjacent_placeholders(body) {
        return Verdict::Rejected(REASON_INVALID_FORMAT);
    }
    let mut texts = Vec::new();
    collect_strings(&template.components, &mut texts);
    let all = texts.join("\n").to_lowercase();
    if all.contains("free money") {
        return Verdict::Rejected(REASON_SCAM);
    }
    if LINK_SHORTENERS.iter().any(|domain| names_domain(&all, domain)) {
        return Verdict::Rejected(REASON_ABUSIVE_CONTENT);
    }
    if matches!(template.category, Category::Utility | Category::Authentication) && is_promotional(body) {
        return Verdict::Rejected(REASON_INCORRECT_CATEGORY);
    }
    Verdict::Approved
}

/// The `text` of the `BODY` component (type in any case).
pub fn body_text(components: &Value) -> Option<&str> {
    components
        .as_array()?
        .iter()
        .find(|component| {
            component
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind.eq_ignore_ascii_case("BODY"))
        })?
        .get("text")
        .and_then(Value::as_str)
}

/// Whether two placeholders (`{{…}}`) follow each other with only spaces between.
pub fn has_adjacent_placeholders(text: &str) -> bool {
    let mut rest = text;
    let mut after_placeholder = false;
    while let Some(open) = rest.find("{{") {
        if after_placeholder && rest[..open].trim().is_empty() {
            return true;
        }
        let Some(close) = rest[open..].find("}}") else {
            return false;
        };
        rest = &rest[open + close + 2..];
        after_placeholder = true;
    }
    false
}

/// Whether the body reads as a promotion.
pub fn is_promotional(body: &str) -> bool {
    let lower = body.to_lowercase();
    if lower.contains("% off") || lower.contains("%off") {
        return true;
    }
    lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| PROMOTIONAL_WORDS.contains(&word))
}

/// Whether `text` (lower case) names `domain` as a host: not preceded by a letter,
/// digit, `.` or `-` (so `bit.ly` does not match `rabbit.ly`).
fn names_domain(text: &str, domain: &str) -> bool {
    text.match_indices(domain).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|before| !(before.is_alphanumeric() || before == '.' || before == '-'))
    })
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(fields) => fields.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::{ParameterFormat, TemplateStatus};
    use serde_json::json;

    fn template(category: Category, components: Value) -> Template {
        Template {
            id: "1".into(),
            waba_id: "1".into(),
            name: "t".into(),
            language: "en".into(),
            category,
            parameter_format: ParameterFormat::Positional,
            components,
            status: TemplateStatus::Pending,
            reason: REASON_NONE.into(),
        }
    }

    fn body(category: Category, text: &str) -> Verdict {
        review(&template(category, json!([{"type": "BODY", "text": text}])))
    }

    #[test]
    fn adjacent_placeholders_are_an_invalid_format() {
        assert!(has_adjacent_placeholders("Hi {{1}}{{2}} there"));
        assert!(has_adjacent_placeholders("Hi {{1}}  {{2}}."));
        assert!(has_adjacent_placeholders("{{first_name}}{{code}}"));
        assert!(!has_adjacent_placeholders("Hi {{1}}, your order {{2}} shipped."));
        assert!(!has_adjacent_placeholders("No placeholders"));
        assert!(!has_adjacent_placeholders("Broken {{1"));
        assert_eq!(
            body(Category::Marketing, "Hello {{1}}{{2}}!"),
            Verdict::Rejected(REASON_INVALID_FORMAT)
        );
    }

    #[test]
    fn scams_and_shorteners_are_rejected_anywhere() {
        assert_eq!(
            body(Category::Marketing, "Claim your FREE MONEY today, {{1}}."),
            Verdict::Rejected(REASON_SCAM)
        );
        let with_button = template(
            Category::Utility,
            json!([{"type": "BODY", "text": "Track order {{1}} below."},
                   {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://bit.ly/{{1}}"}]}]),
        );
        assert_eq!(review(&with_button), Verdict::Rejected(REASON_ABUSIVE_CONTENT));
        assert_eq!(
            body(Category::Marketing, "See https://tinyurl.com/abc for {{1}}."),
            Verdict::Rejected(REASON_ABUSIVE_CONTENT)
        );
        assert_eq!(
            body(Category::Marketing, "Visit rabbit.ly for {{1}}."),
            Verdict::Approved
        );
    }

    #[test]
    fn promotions_in_utility_or_authentication_are_the_wrong_category() {
        for text in [
            "Big SALE on {{1}} today.",
            "Your discount code is {{1}}.",
            "Get 20% off your next order, {{1}}.",
            "A special offer for you, {{1}}.",
        ] {
            assert_eq!(
                body(Category::Utility, text),
                Verdict::Rejected(REASON_INCORRECT_CATEGORY),
                "{text}"
            );
            assert_eq!(body(Category::Marketing, text), Verdict::Approved, "{text}");
        }
        assert_eq!(
            body(Category::Authentication, "Your code {{1}}. Offer ends soon."),
            Verdict::Rejected(REASON_INCORRECT_CATEGORY)
        );
        assert_eq!(
            body(Category::Utility, "Your wholesale order {{1}} was offered a slot."),
            Verdict::Approved,
            "whole words only"
        );
    }

    #[test]
    fn everything_else_is_approved_with_reason_none() {
        let verdict = body(Category::Utility, "Your order {{1}} has shipped.");
        assert_eq!(verdict, Verdict::Approved);
        assert_eq!(verdict.reason(), "NONE");
        assert_eq!(body_text(&json!([{"type": "body", "text": "x"}])), Some("x"));
    }
}
