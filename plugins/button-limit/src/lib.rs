//! The `button-limit` policy: the Cloud API accepts at most 3 reply buttons, so a message
//! with more buttons than `max_buttons` becomes an interactive list offering the same
//! choices, and a list over the Cloud API's limits (rows, sections, row title length) is
//! rejected with a reason naming the limit.
//!
//! The decision is the pure [`decide`] function over a validated [`Config`]; the
//! [`ButtonLimit`] policy only adds logging and counters around it. Calls only `wasp-sdk`.

use std::fmt;

use serde::Deserialize;
use wasp_sdk::{ButtonsMessage, Content, Context, ListMessage, Message, Policy, Verdict, counter_add, log};

/// Reply buttons the Cloud API accepts on one message.
pub const CLOUD_API_MAX_BUTTONS: u32 = 3;
/// Rows the Cloud API accepts on one list message, across all sections.
pub const CLOUD_API_MAX_ROWS: u32 = 10;
/// Sections the Cloud API accepts on one list message.
pub const CLOUD_API_MAX_SECTIONS: u32 = 10;
/// Characters the Cloud API accepts in a list row title.
pub const CLOUD_API_MAX_ROW_TITLE_CHARS: u32 = 24;
/// Characters the Cloud API accepts on the button that opens a list.
pub const CLOUD_API_MAX_LIST_BUTTON_CHARS: usize = 20;

/// Default `max_buttons`: more buttons than this become a list.
pub const DEFAULT_MAX_BUTTONS: u32 = CLOUD_API_MAX_BUTTONS;
/// Default `list_button_label`.
pub const DEFAULT_LIST_BUTTON_LABEL: &str = "Choose";
/// Default `max_rows`.
pub const DEFAULT_MAX_ROWS: u32 = CLOUD_API_MAX_ROWS;
/// Default `max_row_title_chars`.
pub const DEFAULT_MAX_ROW_TITLE_CHARS: u32 = CLOUD_API_MAX_ROW_TITLE_CHARS;
/// Default `max_sections`.
pub const DEFAULT_MAX_SECTIONS: u32 = CLOUD_API_MAX_SECTIONS;

/// The plugin's config. Every key is optional; unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A buttons message with more buttons than this becomes a list (1 to 3).
    pub max_buttons: u32,
    /// The label of the button that opens the list (1 to 20 characters).
    pub list_button_label: String,
    /// Rows allowed across all sections of a list (1 to 10).
    pub max_rows: u32,
    /// Characters allowed in a row title (1 to 24).
    pub max_row_title_chars: u32,
    /// Sections allowed in a list (1 to 10).
    pub max_sections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_buttons: DEFAULT_MAX_BUTTONS,
            list_button_label: DEFAULT_LIST_BUTTON_LABEL.to_string(),
            max_rows: DEFAULT_MAX_ROWS,
            max_row_title_chars: DEFAULT_MAX_ROW_TITLE_CHARS,
            max_sections: DEFAULT_MAX_SECTIONS,
        }
    }
}

/// Why a config is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A limit outside what the Cloud API allows.
    OutOfRange {
        key: &'static str,
        value: u32,
        minimum: u32,
        maximum: u32,
    },
    /// `list_button_label` is empty or only whitespace.
    EmptyListButtonLabel,
    /// `list_button_label` is longer than the Cloud API allows.
    ListButtonLabelTooLong { chars: usize },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                key,
                value,
                minimum,
                maximum,
            } => write!(
                formatter,
                "config field `{key}` must be {minimum} to {maximum} (the Cloud API's limit), got {value}"
            ),
            ConfigError::EmptyListButtonLabel => {
                write!(formatter, "config field `list_button_label` must not be empty")
            }
            ConfigError::ListButtonLabelTooLong { chars } => write!(
                formatter,
                "config field `list_button_label` has {chars} characters; the Cloud API allows {CLOUD_API_MAX_LIST_BUTTON_CHARS}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates the plugin's JSON config (`""` gives the defaults).
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = wasp_sdk::parse_config(text)?;
        config.validate().map_err(|error| error.to_string())?;
        Ok(config)
    }

    /// Checks every limit against the Cloud API's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ranges = [
            ("max_buttons", self.max_buttons, CLOUD_API_MAX_BUTTONS),
            ("max_rows", self.max_rows, CLOUD_API_MAX_ROWS),
            (
                "max_row_title_chars",
                self.max_row_title_chars,
                CLOUD_API_MAX_ROW_TITLE_CHARS,
            ),
            ("max_sections", self.max_sections, CLOUD_API_MAX_SECTIONS),
        ];
        for (key, value, maximum) in ranges {
            if !(1..=maximum).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    minimum: 1,
                    maximum,
                });
            }
        }
        if self.list_button_label.trim().is_empty() {
            return Err(ConfigError::EmptyListButtonLabel);
        }
        let chars = self.list_button_label.chars().count();
        if chars > CLOUD_API_MAX_LIST_BUTTON_CHARS {
            return Err(ConfigError::ListButtonLabelTooLong { chars });
        }
        Ok(())
    }
}

/// A list (given, or rewritten from buttons) over one of the configured limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    /// Buttons that would become more rows than allowed.
    Choices { count: usize, limit: u32 },
    /// A list with more rows than allowed.
    Rows { count: usize, limit: u32 },
    /// A list with more sections than allowed.
    Sections { count: usize, limit: u32 },
    /// A row whose title is longer than allowed.
    RowTitle { row_id: String, chars: usize, limit: u32 },
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitExceeded::Choices { count, limit } => {
                write!(formatter, "{count} choices exceed the list limit of {limit} rows")
            }
            LimitExceeded::Rows { count, limit } => {
                write!(formatter, "{count} rows exceed the list limit of {limit} rows")
            }
            LimitExceeded::Sections { count, limit } => {
                write!(formatter, "{count} sections exceed the list limit of {limit} sections")
            }
            LimitExceeded::RowTitle { row_id, chars, limit } => write!(
                formatter,
                "row {row_id:?} has a title of {chars} characters, over the limit of {limit}"
            ),
        }
    }
}

/// What the policy does with one message's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Within the limits, or not interactive: leave it alone.
    Allow,
    /// Too many buttons: send this list instead.
    Rewrite(ListMessage),
    /// Over a list limit.
    Reject(LimitExceeded),
}

/// Decides on one message's content under `config` (already validated).
pub fn decide(config: &Config, content: &Content) -> Decision {
    match content {
        Content::InteractiveButtons(buttons) if exceeds(buttons.buttons.len(), config.max_buttons) => {
            rewrite(config, buttons)
        }
        Content::InteractiveList(list) => match check_list(config, list) {
            Ok(()) => Decision::Allow,
            Err(limit) => Decision::Reject(limit),
        },
        _ => Decision::Allow,
    }
}

/// The list that replaces `buttons`, or the limit it would break.
fn rewrite(config: &Config, buttons: &ButtonsMessage) -> Decision {
    let count = buttons.buttons.len();
    if exceeds(count, config.max_rows) {
        return Decision::Reject(LimitExceeded::Choices {
            count,
            limit: config.max_rows,
        });
    }
    let list = ListMessage::from_buttons(buttons.clone(), config.list_button_label.clone());
    match check_list(config, &list) {
        Ok(()) => Decision::Rewrite(list),
        Err(limit) => Decision::Reject(limit),
    }
}

/// Checks a list against the configured limits: sections, then rows, then row titles.
pub fn check_list(config: &Config, list: &ListMessage) -> Result<(), LimitExceeded> {
    let sections = list.sections.len();
    if exceeds(sections, config.max_sections) {
        return Err(LimitExceeded::Sections {
            count: sections,
            limit: config.max_sections,
        });
    }
    let rows = list.row_count();
    if exceeds(rows, config.max_rows) {
        return Err(LimitExceeded::Rows {
            count: rows,
            limit: config.max_rows,
        });
    }
    for row in list.rows() {
        let chars = row.title.chars().count();
        if exceeds(chars, config.max_row_title_chars) {
            return Err(LimitExceeded::RowTitle {
                row_id: row.id.clone(),
                chars,
                limit: config.max_row_title_chars,
            });
        }
    }
    Ok(())
}

fn exceeds(count: usize, limit: u32) -> bool {
    u32::try_from(count).map_or(true, |count| count > limit)
}

/// The policy: [`decide`] on submit and again on dispatch (a later policy may have
/// rewritten the content), with a log line and a counter for each rewrite or reject.
pub struct ButtonLimit {
    config: Config,
}

impl ButtonLimit {
    fn apply(&self, message: Message) -> Verdict {
        match decide(&self.config, &message.content) {
            Decision::Allow => Verdict::Allow,
            Decision::Rewrite(list) => {
                log::info(&format!(
                    "message {}: {} reply buttons rewritten as a list",
                    message.id,
                    list.row_count()
                ));
                counter_add("rewritten", 1);
                Verdict::Rewrite(message.with_content(Content::InteractiveList(list)))
            }
            Decision::Reject(limit) => {
                log::info(&format!("message {} rejected: {limit}", message.id));
                counter_add("rejected", 1);
                Verdict::Reject(limit.to_string())
            }
        }
    }
}

impl Policy for ButtonLimit {
    fn init(config: &str) -> Result<Self, String> {
        Ok(ButtonLimit {
            config: Config::parse(config)?,
        })
    }

    fn on_submit(&self, message: Message, _context: &Context) -> Verdict {
        self.apply(message)
    }

    fn on_dispatch(&self, message: Message, _context: &Context) -> Verdict {
        self.apply(message)
    }
}

wasp_sdk::export_policy!(ButtonLimit);

#[cfg(test)]
mod tests;
