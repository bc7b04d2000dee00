//! The `button-limit` policy: the Cloud API accepts at most 3 reply buttons, so a message
//! with more buttons than `max_buttons` is reshaped, and a list over the Cloud API's limits
//! (rows, sections, row title length) is rejected with a reason naming the limit.
//!
//! Two modes: `list` (the default) makes one interactive list offering the same choices;
//! `progressive` sends a first step (one button per group of choices, or the first page of
//! them with a "More options" button) and each further step as a follow-up when the
//! recipient answers (see [`menu`]).
//!
//! The decisions are pure functions over a validated [`Config`]: [`decide`] for list mode,
//! [`menu::plan`] and [`menu::answer`] for progressive mode. The [`ButtonLimit`] policy adds
//! the plugin's state (the pending menu step per recipient), logging and counters around
//! them. Calls only `wasp-sdk`, serde and serde_json.

pub mod menu;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use wasp_sdk::{
    Action, ButtonsMessage, Category, Channel, Content, Context, Event, FollowUp, InboundMessage, ListMessage, Message,
    Policy, Verdict, counter_add, log, state,
};

use menu::{Answer, Plan};

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
/// Characters the Cloud API accepts in a reply button title.
pub const CLOUD_API_MAX_BUTTON_TITLE_CHARS: usize = 20;

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
/// Default `group_separator`: `support/billing` is choice `billing` of group `support`.
pub const DEFAULT_GROUP_SEPARATOR: &str = "/";
/// Default `more_button_label`.
pub const DEFAULT_MORE_BUTTON_LABEL: &str = "More options";
/// Default `pending_ttl_ms`: a pending menu step is kept for 24 hours.
pub const DEFAULT_PENDING_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
/// Longest `pending_ttl_ms`: 7 days.
pub const MAX_PENDING_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1_000;

/// What becomes of a buttons message with more than `max_buttons` buttons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One interactive list offering every choice.
    #[default]
    List,
    /// A first step now, the detailed choices as follow-ups when the recipient answers.
    Progressive,
}

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
    /// `list` or `progressive`.
    pub mode: Mode,
    /// Progressive mode: a button id `group<separator>choice` belongs to `group`.
    pub group_separator: String,
    /// Progressive mode: the title of each group's button, by group id (1 to 20
    /// characters); a group without one is titled with its id.
    pub group_titles: BTreeMap<String, String>,
    /// Progressive mode: the label of the button that brings the next page (1 to 20
    /// characters).
    pub more_button_label: String,
    /// Progressive mode: how long a pending menu step waits for the recipient's answer.
    pub pending_ttl_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_buttons: DEFAULT_MAX_BUTTONS,
            list_button_label: DEFAULT_LIST_BUTTON_LABEL.to_string(),
            max_rows: DEFAULT_MAX_ROWS,
            max_row_title_chars: DEFAULT_MAX_ROW_TITLE_CHARS,
            max_sections: DEFAULT_MAX_SECTIONS,
            mode: Mode::default(),
            group_separator: DEFAULT_GROUP_SEPARATOR.to_string(),
            group_titles: BTreeMap::new(),
            more_button_label: DEFAULT_MORE_BUTTON_LABEL.to_string(),
            pending_ttl_ms: DEFAULT_PENDING_TTL_MS,
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
    /// Progressive mode with `max_buttons` 1 leaves no room for a choice beside "More options".
    ProgressiveNeedsTwoButtons { max_buttons: u32 },
    /// A text key (`group_separator`, `more_button_label`, `group_titles.<group>`) is empty.
    EmptyText { key: String },
    /// A button label longer than the Cloud API allows on a reply button.
    ButtonLabelTooLong { key: String, chars: usize },
    /// `pending_ttl_ms` is 0 or longer than [`MAX_PENDING_TTL_MS`].
    PendingTtlOutOfRange { value: u64 },
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
            ConfigError::ProgressiveNeedsTwoButtons { max_buttons } => write!(
                formatter,
                "config field `max_buttons` must be 2 or 3 in progressive mode (a page keeps one button for more options), got {max_buttons}"
            ),
            ConfigError::EmptyText { key } => write!(formatter, "config field `{key}` must not be empty"),
            ConfigError::ButtonLabelTooLong { key, chars } => write!(
                formatter,
                "config field `{key}` has {chars} characters; the Cloud API allows {CLOUD_API_MAX_BUTTON_TITLE_CHARS} on a button"
            ),
            ConfigError::PendingTtlOutOfRange { value } => write!(
                formatter,
                "config field `pending_ttl_ms` must be 1 to {MAX_PENDING_TTL_MS} (7 days), got {value}"
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
        if self.mode == Mode::Progressive && self.max_buttons < 2 {
            return Err(ConfigError::ProgressiveNeedsTwoButtons {
                max_buttons: self.max_buttons,
            });
        }
        if self.group_separator.is_empty() {
            return Err(ConfigError::EmptyText {
                key: "group_separator".to_string(),
            });
        }
        let labels = std::iter::once(("more_button_label".to_string(), &self.more_button_label)).chain(
            self.group_titles
                .iter()
                .map(|(group, title)| (format!("group_titles.{group}"), title)),
        );
        for (key, label) in labels {
            if label.trim().is_empty() {
                return Err(ConfigError::EmptyText { key });
            }
            let chars = label.chars().count();
            if chars > CLOUD_API_MAX_BUTTON_TITLE_CHARS {
                return Err(ConfigError::ButtonLabelTooLong { key, chars });
            }
        }
        if !(1..=MAX_PENDING_TTL_MS).contains(&self.pending_ttl_ms) {
            return Err(ConfigError::PendingTtlOutOfRange {
                value: self.pending_ttl_ms,
            });
        }
        Ok(())
    }
}

/// A message (given, or one this policy would send) over one of the configured limits.
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
    /// Progressive mode: more choices than a paged menu offers (`max_rows`).
    PagedChoices { count: usize, limit: u32 },
    /// Progressive mode: more groups and ungrouped choices than the first step can offer.
    TopLevelChoices { count: usize, limit: u32 },
    /// Progressive mode: a group with more choices than its step can offer.
    GroupChoices { group: String, count: usize, limit: u32 },
    /// Progressive mode: a reply button whose title is longer than the Cloud API allows.
    ButtonTitle {
        button_id: String,
        chars: usize,
        limit: usize,
    },
    /// Progressive mode: a business button id in the namespace of the menu's own buttons.
    ReservedId { button_id: String },
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
            LimitExceeded::PagedChoices { count, limit } => {
                write!(
                    formatter,
                    "{count} choices exceed the paged menu limit of {limit} choices"
                )
            }
            LimitExceeded::TopLevelChoices { count, limit } => write!(
                formatter,
                "{count} groups and ungrouped choices exceed the list limit of {limit} rows"
            ),
            LimitExceeded::GroupChoices { group, count, limit } => write!(
                formatter,
                "group {group:?} has {count} choices, over the list limit of {limit} rows"
            ),
            LimitExceeded::ButtonTitle {
                button_id,
                chars,
                limit,
            } => write!(
                formatter,
                "button {button_id:?} has a title of {chars} characters, over the limit of {limit}"
            ),
            LimitExceeded::ReservedId { button_id } => write!(
                formatter,
                "button id {button_id:?} starts with {:?}, which progressive menus keep for their own buttons",
                menu::MENU_ID_PREFIX
            ),
        }
    }
}

/// What list mode does with one message's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Within the limits, or not interactive: leave it alone.
    Allow,
    /// Too many buttons: send this list instead.
    Rewrite(ListMessage),
    /// Over a list limit.
    Reject(LimitExceeded),
}

/// Decides on one message's content in list mode under `config` (already validated);
/// progressive mode decides with [`menu::plan`].
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

/// The policy: on submit and again on dispatch (a later policy may have rewritten the
/// content), [`decide`] in list mode or [`menu::plan`] in progressive mode, keeping a started
/// menu in the plugin's state; on an inbound reply, [`menu::answer`] for the recipient's
/// pending menu. Each rewrite, reject and follow-up is logged and counted.
pub struct ButtonLimit {
    config: Config,
}

impl ButtonLimit {
    fn apply(&self, message: Message) -> Verdict {
        match self.config.mode {
            Mode::List => self.apply_list(message),
            Mode::Progressive => self.apply_progressive(message),
        }
    }

    fn apply_list(&self, message: Message) -> Verdict {
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
            Decision::Reject(limit) => reject(&message, &limit),
        }
    }

    fn apply_progressive(&self, message: Message) -> Verdict {
        match menu::plan(&self.config, &message) {
            Plan::Allow => Verdict::Allow,
            Plan::Start(started) => {
                let text = match started.pending.to_state() {
                    Ok(text) => text,
                    Err(error) => {
                        log::error(&format!("message {}: the menu cannot be kept: {error}", message.id));
                        counter_add("rejected", 1);
                        return Verdict::Reject(format!("the progressive menu cannot be kept: {error}"));
                    }
                };
                state::set(&menu::state_key(&message.to), &text, Some(self.config.pending_ttl_ms));
                log::info(&format!(
                    "message {}: {} reply buttons rewritten as a progressive menu ({})",
                    message.id,
                    started.pending.choice_count(),
                    started.pending.shape()
                ));
                counter_add("rewritten", 1);
                Verdict::Rewrite(message.with_content(started.first))
            }
            Plan::Reject(limit) => reject(&message, &limit),
        }
    }

    /// The next step of the menu pending for the sender of `inbound`, if it answers one.
    fn answer(&self, inbound: &InboundMessage) -> Vec<Action> {
        let Some(reply_id) = inbound.reply_id.as_deref() else {
            return Vec::new();
        };
        let key = menu::state_key(&inbound.from);
        let Some(text) = state::get(&key) else {
            return Vec::new();
        };
        let pending = match menu::Pending::from_state(&text) {
            Ok(pending) => pending,
            Err(error) => {
                log::warn(&format!(
                    "inbound {}: the pending menu cannot be read and is dropped: {error}",
                    inbound.wamid
                ));
                state::delete(&key);
                return Vec::new();
            }
        };
        match menu::answer(&self.config, &pending, reply_id) {
            Answer::Step(content) => {
                // The menu stays pending, for another group or page, as long again.
                state::set(&key, &text, Some(self.config.pending_ttl_ms));
                log::debug(&format!("inbound {}: menu step {reply_id:?} follows", inbound.wamid));
                counter_add("menu_steps", 1);
                vec![Action::Send(FollowUp {
                    to: inbound.from.clone(),
                    channel: Channel::Whatsapp,
                    // The recipient just wrote: the service window is open.
                    category: Category::Service,
                    priority: pending.priority,
                    content,
                    tags: pending.tags,
                })]
            }
            Answer::Chosen => {
                state::delete(&key);
                counter_add("menu_choices", 1);
                Vec::new()
            }
            Answer::Unrelated => Vec::new(),
            Answer::Broken(limit) => {
                log::warn(&format!(
                    "inbound {}: menu step {reply_id:?} is not sent under the current config: {limit}",
                    inbound.wamid
                ));
                Vec::new()
            }
        }
    }
}

fn reject(message: &Message, limit: &LimitExceeded) -> Verdict {
    log::info(&format!("message {} rejected: {limit}", message.id));
    counter_add("rejected", 1);
    Verdict::Reject(limit.to_string())
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

    /// Answers menus in either mode, so menus started before a switch to `list` still finish.
    fn on_event(&self, event: Event, _context: &Context) -> Vec<Action> {
        match event {
            Event::Inbound(inbound) => self.answer(&inbound),
            Event::Status(_) | Event::Timer(_) => Vec::new(),
        }
    }
}

wasp_sdk::export_policy!(ButtonLimit);

#[cfg(test)]
mod tests;
