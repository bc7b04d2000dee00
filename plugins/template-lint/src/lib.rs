//! The `template-lint` policy: checks a message template definition against the Cloud
//! API's rules before it is submitted to Meta, so a template that Meta would reject is
//! caught with a finding pointing at the field at fault. It allows every message: its
//! message and event hooks are the SDK's neutral defaults.
//!
//! Four checks, each with a stable name (the `check` of its findings) and limits from the
//! [`Config`], defaults as Meta's:
//!
//! - `button-count`: buttons in all, URL, phone-number and copy-code buttons, quick replies
//!   grouped together, button label length ([`check_buttons`]);
//! - `parameter-count`: placeholders per body and header, examples given for each body
//!   placeholder, enough words around the placeholders ([`check_parameters`]);
//! - `placeholder-syntax`: `{{1}}`…`{{n}}` (positional) or `{{snake_case}}` (named), balanced
//!   braces, no placeholders side by side, a body not starting or ending with one
//!   ([`check_placeholders`]);
//! - `body-length`: body, header text and footer length ([`check_lengths`]).
//!
//! Everything here is a pure function of the definition and the config. Calls only
//! `wasp-sdk` and serde.

pub mod placeholders;

use serde::Deserialize;
use wasp_sdk::{LintFinding, Policy, TemplateDefinition};

use placeholders::{Placeholder, Scan};

/// Check names, as they appear in findings.
pub const BUTTON_COUNT: &str = "button-count";
pub const PARAMETER_COUNT: &str = "parameter-count";
pub const PLACEHOLDER_SYNTAX: &str = "placeholder-syntax";
pub const BODY_LENGTH: &str = "body-length";

/// Buttons Meta accepts on one template, of all types.
pub const DEFAULT_MAX_BUTTONS: usize = 10;
/// `URL` buttons Meta accepts on one template.
pub const DEFAULT_MAX_URL_BUTTONS: usize = 2;
/// `PHONE_NUMBER` buttons Meta accepts on one template.
pub const DEFAULT_MAX_PHONE_NUMBER_BUTTONS: usize = 1;
/// `COPY_CODE` buttons Meta accepts on one template.
pub const DEFAULT_MAX_COPY_CODE_BUTTONS: usize = 1;
/// Characters Meta accepts in a button's label.
pub const DEFAULT_MAX_BUTTON_TEXT_CHARS: usize = 25;
/// Distinct placeholders accepted in the body. Meta publishes no smaller limit than the
/// 100 variables per template it enforces.
pub const DEFAULT_MAX_BODY_PARAMETERS: usize = 100;
/// Placeholders Meta accepts in a text header.
pub const DEFAULT_MAX_HEADER_PARAMETERS: usize = 1;
/// Characters Meta accepts in the body.
pub const DEFAULT_MAX_BODY_CHARS: usize = 1024;
/// Characters Meta accepts in a text header.
pub const DEFAULT_MAX_HEADER_TEXT_CHARS: usize = 60;
/// Characters Meta accepts in the footer.
pub const DEFAULT_MAX_FOOTER_CHARS: usize = 60;

/// The plugin's config; every key is optional and defaults to Meta's limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub max_buttons: usize,
    pub max_url_buttons: usize,
    pub max_phone_number_buttons: usize,
    pub max_copy_code_buttons: usize,
    pub max_button_text_chars: usize,
    pub max_body_parameters: usize,
    pub max_header_parameters: usize,
    pub max_body_chars: usize,
    pub max_header_text_chars: usize,
    pub max_footer_chars: usize,
    /// Whether too few words around the body's placeholders (Meta's rule of thumb: at
    /// least `2n + 1` other words for `n` placeholders) is a warning. Default true.
    pub warn_sparse_body: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_buttons: DEFAULT_MAX_BUTTONS,
            max_url_buttons: DEFAULT_MAX_URL_BUTTONS,
            max_phone_number_buttons: DEFAULT_MAX_PHONE_NUMBER_BUTTONS,
            max_copy_code_buttons: DEFAULT_MAX_COPY_CODE_BUTTONS,
            max_button_text_chars: DEFAULT_MAX_BUTTON_TEXT_CHARS,
            max_body_parameters: DEFAULT_MAX_BODY_PARAMETERS,
            max_header_parameters: DEFAULT_MAX_HEADER_PARAMETERS,
            max_body_chars: DEFAULT_MAX_BODY_CHARS,
            max_header_text_chars: DEFAULT_MAX_HEADER_TEXT_CHARS,
            max_footer_chars: DEFAULT_MAX_FOOTER_CHARS,
            warn_sparse_body: true,
        }
    }
}

impl Config {
    /// Parses and validates the plugin's config; errors name the field at fault.
    pub fn parse(config: &str) -> Result<Config, String> {
        let config: Config = wasp_sdk::parse_config(config)?;
        for (field, value) in [
            ("max_buttons", config.max_buttons),
            ("max_button_text_chars", config.max_button_text_chars),
            ("max_body_chars", config.max_body_chars),
            ("max_header_text_chars", config.max_header_text_chars),
            ("max_footer_chars", config.max_footer_chars),
        ] {
            if value == 0 {
                return Err(format!("config field `{field}`: must be at least 1"));
            }
        }
        for (field, value) in [
            ("max_url_buttons", config.max_url_buttons),
            ("max_phone_number_buttons", config.max_phone_number_buttons),
            ("max_copy_code_buttons", config.max_copy_code_buttons),
        ] {
            if value > config.max_buttons {
                return Err(format!(
                    "config field `{field}`: {value} is more than max_buttons ({})",
                    config.max_buttons
                ));
            }
        }
        Ok(config)
    }
}

/// Every finding of every check, in check order.
pub fn lint(config: &Config, template: &TemplateDefinition) -> Vec<LintFinding> {
    let mut findings = check_buttons(config, template);
    findings.extend(check_parameters(config, template));
    findings.extend(check_placeholders(template));
    findings.extend(check_lengths(config, template));
    findings
}

/// `button-count`: at most `max_buttons` in all, `max_url_buttons` URL, `max_phone_number_buttons`
/// phone-number and `max_copy_code_buttons` copy-code buttons (the first one over the limit
/// is named); quick replies grouped together, before or after the other buttons; each label
/// at most `max_button_text_chars` characters.
pub fn check_buttons(config: &Config, template: &TemplateDefinition) -> Vec<LintFinding> {
    let buttons = &template.buttons;
    let mut findings = Vec::new();
    if buttons.len() > config.max_buttons {
        findings.push(LintFinding::error(
            BUTTON_COUNT,
            template.buttons_field(),
            format!("{} buttons, over the limit of {}", buttons.len(), config.max_buttons),
        ));
    }
    for (kind, limit, name) in [
        ("URL", config.max_url_buttons, "URL"),
        ("PHONE_NUMBER", config.max_phone_number_buttons, "phone-number"),
        ("COPY_CODE", config.max_copy_code_buttons, "copy-code"),
    ] {
        let of_kind: Vec<usize> = buttons
            .iter()
            .enumerate()
            .filter(|(_, button)| button.kind.eq_ignore_ascii_case(kind))
            .map(|(index, _)| index)
            .collect();
        if of_kind.len() > limit {
            findings.push(LintFinding::error(
                BUTTON_COUNT,
                template.button_field(of_kind[limit]),
                format!("{} {name} buttons, over the limit of {limit}", of_kind.len()),
            ));
        }
    }
    // Quick replies form one run: the kind changes between quick reply and other at most once.
    let is_quick_reply: Vec<bool> = buttons
        .iter()
        .map(|button| button.kind.eq_ignore_ascii_case("QUICK_REPLY"))
        .collect();
    if let Some(split) = (1..is_quick_reply.len())
        .filter(|&index| is_quick_reply[index] != is_quick_reply[index - 1])
        .nth(1)
    {
        findings.push(LintFinding::error(
            BUTTON_COUNT,
            template.button_field(split),
            "quick-reply buttons must be grouped together, before or after the other buttons",
        ));
    }
    for (index, button) in buttons.iter().enumerate() {
        let chars = button.text.as_deref().map_or(0, |text| text.chars().count());
        if chars > config.max_button_text_chars {
            findings.push(LintFinding::error(
                BUTTON_COUNT,
                template.button_text_field(index),
                format!(
                    "button label of {chars} characters, over the limit of {}",
                    config.max_button_text_chars
                ),
            ));
        }
    }
    findings
}

/// `parameter-count`: at most `max_body_parameters` distinct placeholders in the body and
/// `max_header_parameters` in a text header; one example per distinct body placeholder;
/// and (a warning) at least `2n + 1` words besides the `n` placeholders of the body.
pub fn check_parameters(config: &Config, template: &TemplateDefinition) -> Vec<LintFinding> {
    let mut findings = Vec::new();
    let body = Scan::of(&template.body);
    let distinct = body.distinct_names().len();
    if distinct > config.max_body_parameters {
        findings.push(LintFinding::error(
            PARAMETER_COUNT,
            template.body_field(),
            format!(
                "{distinct} parameters in the body, over the limit of {}",
                config.max_body_parameters
            ),
        ));
    }
    if template.body_examples.len() != distinct {
        findings.push(LintFinding::error(
            PARAMETER_COUNT,
            template.body_example_field(),
            format!(
                "{} example values for {distinct} body parameters; give one example per parameter",
                template.body_examples.len()
            ),
        ));
    }
    if config.warn_sparse_body && distinct > 0 {
        let words = body.words_outside_placeholders();
        let needed = 2 * body.placeholders.len() + 1;
        if words < needed {
            findings.push(LintFinding::warning(
                PARAMETER_COUNT,
                template.body_field(),
                format!(
                    "{words} words around {} parameters; Meta rejects bodies with fewer than {needed}",
                    body.placeholders.len()
                ),
            ));
        }
    }
    if let Some(text) = &template.header_text {
        let header = Scan::of(text).distinct_names().len();
        if header > config.max_header_parameters {
            findings.push(LintFinding::error(
                PARAMETER_COUNT,
                template.header_text_field(),
                format!(
                    "{header} parameters in the header, over the limit of {}",
                    config.max_header_parameters
                ),
            ));
        }
    }
    findings
}

/// `placeholder-syntax`, on the body and a text header: every placeholder well formed for
/// the template's `parameter_format`, braces balanced, positional numbers contiguous from 1,
/// no two placeholders with only spaces between them, and a body that neither starts nor
/// ends with a placeholder (trailing punctuation does not count as text).
pub fn check_placeholders(template: &TemplateDefinition) -> Vec<LintFinding> {
    let named = template.parameter_format.eq_ignore_ascii_case("named");
    let mut findings = Vec::new();
    let mut texts = vec![(template.body.as_str(), template.body_field(), true)];
    if let Some(text) = &template.header_text {
        texts.push((text.as_str(), template.header_text_field(), false));
    }
    for (text, field, is_body) in texts {
        let scan = Scan::of(text);
        let error = |message: String| LintFinding::error(PLACEHOLDER_SYNTAX, field.clone(), message);
        for (position, stray) in &scan.stray_braces {
            findings.push(error(format!(
                "{stray} at character {position} is an unbalanced or single brace; placeholders are written {{{{…}}}}"
            )));
        }
        for placeholder in &scan.placeholders {
            if let Some(problem) = placeholder.problem(named) {
                findings.push(error(problem));
            }
        }
        if !named {
            let mut numbers: Vec<u32> = scan.placeholders.iter().filter_map(Placeholder::number).collect();
            numbers.sort_unstable();
            numbers.dedup();
            if let Some(gap) = (1..).zip(&numbers).find(|(expected, number)| expected != *number) {
                findings.push(error(format!(
                    "positional placeholders run {{{{1}}}} to {{{{{}}}}} without gaps; {{{{{}}}}} is missing",
                    numbers.len(),
                    gap.0
                )));
            }
        }
        for pair in scan.placeholders.windows(2) {
            if text[pair[0].end..pair[1].start].trim().is_empty() {
                findings.push(error(format!(
                    "placeholders {} and {} are side by side; put words between them",
                    pair[0].raw, pair[1].raw
                )));
            }
        }
        if is_body {
            let trimmed = text.trim();
            if trimmed.starts_with("{{") {
                findings.push(error("the body starts with a placeholder".to_string()));
            }
            let tail = trimmed.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '}');
            if tail.ends_with("}}") && !scan.placeholders.is_empty() {
                findings.push(error("the body ends with a placeholder".to_string()));
            }
        }
    }
    findings
}

/// `body-length`: the body, a text header and the footer within their character limits.
pub fn check_lengths(config: &Config, template: &TemplateDefinition) -> Vec<LintFinding> {
    let mut findings = Vec::new();
    let mut parts = vec![(
        "body",
        Some(template.body.as_str()),
        config.max_body_chars,
        template.body_field(),
    )];
    parts.push((
        "header text",
        template.header_text.as_deref(),
        config.max_header_text_chars,
        template.header_text_field(),
    ));
    parts.push((
        "footer",
        template.footer.as_deref(),
        config.max_footer_chars,
        template.footer_field(),
    ));
    for (name, text, limit, field) in parts {
        let chars = text.map_or(0, |text| text.chars().count());
        if chars > limit {
            findings.push(LintFinding::error(
                BODY_LENGTH,
                field,
                format!("{name} of {chars} characters, over the limit of {limit}"),
            ));
        }
    }
    findings
}

/// The policy: message hooks allow (the SDK's defaults), `on-template` runs [`lint`].
pub struct TemplateLint {
    config: Config,
}

impl Policy for TemplateLint {
    fn init(config: &str) -> Result<Self, String> {
        Ok(TemplateLint {
            config: Config::parse(config)?,
        })
    }

    fn on_template(&self, template: &TemplateDefinition) -> Vec<LintFinding> {
        let findings = lint(&self.config, template);
        if !findings.is_empty() {
            wasp_sdk::counter_add("findings", findings.len() as u64);
        }
        findings
    }
}

wasp_sdk::export_policy!(TemplateLint);

#[cfg(test)]
mod tests;
