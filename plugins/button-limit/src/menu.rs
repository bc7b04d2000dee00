//! Progressive menus (`mode = "progressive"`): a buttons message with more choices than fit
//! is sent as a first step, and each answer to one of the menu's own buttons brings the
//! next step as a follow-up.
//!
//! The shape comes from the button ids. When any id has a group prefix (`support/billing`
//! with the default separator `/`), the choices are grouped: the first step offers one entry
//! per group (titled from `group_titles`, else the group id) in the order groups first
//! appear, with ungrouped choices as themselves in between; answering a group brings its
//! choices. Otherwise the choices are paged: each page shows `max_buttons - 1` choices and a
//! "More options" button, the last page up to `max_buttons` choices. A step offers its
//! entries as reply buttons when they fit (`max_buttons`), else as a one-section list.
//!
//! The menu's own buttons have ids in the `menu:` namespace, which business ids may not use:
//! `menu:page:<n>` brings page `n` (from 2) and `menu:group:<group>` a group's choices. Every
//! message a menu can send is built and checked against the limits when it starts, so a
//! menu either starts whole or the message is rejected.
//!
//! Pure: [`plan`] starts a menu, [`answer`] reads a reply against a pending one; the
//! [`Pending`] record is what the policy keeps in its state between steps. Calls only
//! `wasp-sdk` types, serde and serde_json.

use serde::{Deserialize, Serialize};
use wasp_sdk::{ButtonsMessage, Content, ListMessage, ListRow, ListSection, Message, Priority, ReplyButton};

use crate::{CLOUD_API_MAX_BUTTON_TITLE_CHARS, Config, LimitExceeded, check_list, exceeds};

/// The namespace of the menu's own button ids and of its state keys.
pub const MENU_ID_PREFIX: &str = "menu:";
/// The id of the button that brings page `n`: this prefix, then `n`.
pub const PAGE_ID_PREFIX: &str = "menu:page:";
/// The id of the button that brings a group's choices: this prefix, then the group id.
pub const GROUP_ID_PREFIX: &str = "menu:group:";

/// The state key of the menu pending for `recipient` (E.164 with `+`, as messages and
/// inbound messages carry it). One menu per recipient: a newer one replaces it.
pub fn state_key(recipient: &str) -> String {
    format!("{MENU_ID_PREFIX}{recipient}")
}

/// One of the business's choices: a button of the submitted message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

/// An entry of a grouped menu's first step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// Choices sharing a group prefix, offered behind one entry.
    Group {
        id: String,
        title: String,
        choices: Vec<Choice>,
    },
    /// A choice without a group prefix, offered as itself.
    Choice(Choice),
}

/// How the choices are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outline {
    /// Every choice, in order, shown a page at a time.
    Pages(Vec<Choice>),
    /// The first step's entries, in order.
    Groups(Vec<Entry>),
}

/// A started menu as the policy keeps it between steps: what the follow-ups need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// The submitted message's priority, which the follow-ups keep.
    #[serde(with = "priority_name")]
    pub priority: Priority,
    /// The submitted message's tags, which the follow-ups keep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub menu: Outline,
}

/// A menu to start: the content the submitted message is rewritten to, and what to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub first: Content,
    pub pending: Pending,
}

/// What progressive mode does with one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Within the limits, or not interactive: leave it alone.
    Allow,
    /// Too many buttons: send the first step instead and keep the rest pending.
    Start(Box<Started>),
    /// Over a limit, in the message or in a step the menu would send.
    Reject(LimitExceeded),
}

/// What an inbound reply means for the recipient's pending menu.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// One of the menu's own buttons: send this step; the menu stays pending.
    Step(Content),
    /// One of the business's choices: the menu is done.
    Chosen,
    /// Nothing to do with this menu (another message's button, a stale page or group).
    Unrelated,
    /// The step no longer fits the limits (the config changed since the menu started).
    Broken(LimitExceeded),
}

/// Decides on one message under `config` (already validated) in progressive mode: buttons
/// over `max_buttons` start a menu, a list is checked as in list mode, the rest is allowed.
pub fn plan(config: &Config, message: &Message) -> Plan {
    match &message.content {
        Content::InteractiveButtons(buttons) if exceeds(buttons.buttons.len(), config.max_buttons) => {
            start(config, message, buttons)
        }
        Content::InteractiveList(list) => match check_list(config, list) {
            Ok(()) => Plan::Allow,
            Err(limit) => Plan::Reject(limit),
        },
        _ => Plan::Allow,
    }
}

fn start(config: &Config, message: &Message, buttons: &ButtonsMessage) -> Plan {
    if let Some(reserved) = buttons
        .buttons
        .iter()
        .find(|button| button.id.starts_with(MENU_ID_PREFIX))
    {
        return Plan::Reject(LimitExceeded::ReservedId {
            button_id: reserved.id.clone(),
        });
    }
    let choices = buttons
        .buttons
        .iter()
        .map(|button| Choice {
            id: button.id.clone(),
            title: button.title.clone(),
        })
        .collect();
    let pending = Pending {
        header: buttons.header.clone(),
        body: buttons.body.clone(),
        footer: buttons.footer.clone(),
        priority: message.priority,
        tags: message.tags.clone(),
        menu: outline(config, choices),
    };
    match pending.check(config) {
        Ok(first) => Plan::Start(Box::new(Started { first, pending })),
        Err(limit) => Plan::Reject(limit),
    }
}

/// Groups the choices by id prefix when any has one, else pages them.
fn outline(config: &Config, choices: Vec<Choice>) -> Outline {
    let separator = config.group_separator.as_str();
    if !choices.iter().any(|choice| group_of(&choice.id, separator).is_some()) {
        return Outline::Pages(choices);
    }
    let mut entries: Vec<Entry> = Vec::new();
    for choice in choices {
        let Some(group) = group_of(&choice.id, separator).map(str::to_string) else {
            entries.push(Entry::Choice(choice));
            continue;
        };
        let existing = entries.iter_mut().find_map(|entry| match entry {
            Entry::Group { id, choices, .. } if *id == group => Some(choices),
            _ => None,
        });
        match existing {
            Some(choices) => choices.push(choice),
            None => entries.push(Entry::Group {
                title: config
                    .group_titles
                    .get(&group)
                    .cloned()
                    .unwrap_or_else(|| group.clone()),
                id: group,
                choices: vec![choice],
            }),
        }
    }
    Outline::Groups(entries)
}

/// The group of a choice id: the text before the first separator, when there is some.
fn group_of<'a>(id: &'a str, separator: &str) -> Option<&'a str> {
    id.split_once(separator)
        .map(|(group, _)| group)
        .filter(|group| !group.is_empty())
}

/// Reads a reply (`reply_id` of an inbound message) against a pending menu.
pub fn answer(config: &Config, pending: &Pending, reply_id: &str) -> Answer {
    let step = if let Some(number) = reply_id.strip_prefix(PAGE_ID_PREFIX) {
        number.parse().ok().and_then(|number| pending.page(config, number))
    } else if let Some(group) = reply_id.strip_prefix(GROUP_ID_PREFIX) {
        pending.group(config, group)
    } else if pending.offers(reply_id) {
        return Answer::Chosen;
    } else {
        None
    };
    match step {
        Some(content) => match check_step(config, &content) {
            Ok(()) => Answer::Step(content),
            Err(limit) => Answer::Broken(limit),
        },
        None => Answer::Unrelated,
    }
}

impl Pending {
    /// The state text: compact JSON.
    pub fn to_state(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads the state text back.
    pub fn from_state(text: &str) -> Result<Pending, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// How many business choices the menu offers in all.
    pub fn choice_count(&self) -> usize {
        match &self.menu {
            Outline::Pages(choices) => choices.len(),
            Outline::Groups(entries) => entries
                .iter()
                .map(|entry| match entry {
                    Entry::Group { choices, .. } => choices.len(),
                    Entry::Choice(_) => 1,
                })
                .sum(),
        }
    }

    /// `pages` or `groups`, for the log.
    pub fn shape(&self) -> &'static str {
        match &self.menu {
            Outline::Pages(_) => "pages",
            Outline::Groups(_) => "groups",
        }
    }

    /// The first step.
    pub fn first(&self, config: &Config) -> Content {
        match &self.menu {
            Outline::Pages(_) => self.page(config, 1).unwrap_or_else(|| self.offer(config, Vec::new())),
            Outline::Groups(entries) => self.offer(
                config,
                entries
                    .iter()
                    .map(|entry| match entry {
                        Entry::Group { id, title, .. } => (format!("{GROUP_ID_PREFIX}{id}"), title.clone()),
                        Entry::Choice(choice) => (choice.id.clone(), choice.title.clone()),
                    })
                    .collect(),
            ),
        }
    }

    /// Page `number` (from 1) of a paged menu: `max_buttons - 1` choices and a button for
    /// the next page, or the last up to `max_buttons` choices. `None` past the end.
    pub fn page(&self, config: &Config, number: usize) -> Option<Content> {
        let Outline::Pages(choices) = &self.menu else {
            return None;
        };
        let max_buttons = usize::try_from(config.max_buttons).unwrap_or(usize::MAX);
        // At least one choice a page, whatever the config: pages always move on.
        let per_page = max_buttons.saturating_sub(1).max(1);
        let pages = match choices.len().checked_sub(max_buttons) {
            None | Some(0) => 1,
            Some(beyond_one_page) => beyond_one_page.div_ceil(per_page) + 1,
        };
        if !(1..=pages).contains(&number) {
            return None;
        }
        let start = (number - 1) * per_page;
        let last = number == pages;
        let end = if last { choices.len() } else { start + per_page };
        let mut buttons: Vec<ReplyButton> = choices[start..end]
            .iter()
            .map(|choice| ReplyButton::new(choice.id.clone(), choice.title.clone()))
            .collect();
        if !last {
            buttons.push(ReplyButton::new(
                format!("{PAGE_ID_PREFIX}{}", number + 1),
                config.more_button_label.clone(),
            ));
        }
        Some(Content::InteractiveButtons(ButtonsMessage {
            header: self.header.clone(),
            body: self.body.clone(),
            footer: self.footer.clone(),
            buttons,
        }))
    }

    /// The step offering the choices of group `id`. `None` when there is no such group.
    pub fn group(&self, config: &Config, id: &str) -> Option<Content> {
        let Outline::Groups(entries) = &self.menu else {
            return None;
        };
        entries.iter().find_map(|entry| match entry {
            Entry::Group { id: group, choices, .. } if group == id => Some(
                self.offer(
                    config,
                    choices
                        .iter()
                        .map(|choice| (choice.id.clone(), choice.title.clone()))
                        .collect(),
                ),
            ),
            _ => None,
        })
    }

    /// Whether `id` is one of the business's choices in this menu.
    pub fn offers(&self, id: &str) -> bool {
        match &self.menu {
            Outline::Pages(choices) => choices.iter().any(|choice| choice.id == id),
            Outline::Groups(entries) => entries.iter().any(|entry| match entry {
                Entry::Group { choices, .. } => choices.iter().any(|choice| choice.id == id),
                Entry::Choice(choice) => choice.id == id,
            }),
        }
    }

    /// `options` (id, title) as reply buttons when they fit, else as a one-section list.
    fn offer(&self, config: &Config, options: Vec<(String, String)>) -> Content {
        if exceeds(options.len(), config.max_buttons) {
            Content::InteractiveList(ListMessage {
                header: self.header.clone(),
                body: self.body.clone(),
                footer: self.footer.clone(),
                button: config.list_button_label.clone(),
                sections: vec![ListSection {
                    title: None,
                    rows: options.into_iter().map(|(id, title)| ListRow::new(id, title)).collect(),
                }],
            })
        } else {
            Content::InteractiveButtons(ButtonsMessage {
                header: self.header.clone(),
                body: self.body.clone(),
                footer: self.footer.clone(),
                buttons: options
                    .into_iter()
                    .map(|(id, title)| ReplyButton::new(id, title))
                    .collect(),
            })
        }
    }

    /// Checks the counts, then builds every step the menu can send and checks each; returns
    /// the first step.
    fn check(&self, config: &Config) -> Result<Content, LimitExceeded> {
        match &self.menu {
            Outline::Pages(choices) => {
                if exceeds(choices.len(), config.max_rows) {
                    return Err(LimitExceeded::PagedChoices {
                        count: choices.len(),
                        limit: config.max_rows,
                    });
                }
                let mut number = 2;
                while let Some(page) = self.page(config, number) {
                    check_step(config, &page)?;
                    number += 1;
                }
            }
            Outline::Groups(entries) => {
                if exceeds(entries.len(), config.max_rows) {
                    return Err(LimitExceeded::TopLevelChoices {
                        count: entries.len(),
                        limit: config.max_rows,
                    });
                }
                for entry in entries {
                    let Entry::Group { id, choices, .. } = entry else {
                        continue;
                    };
                    if exceeds(choices.len(), config.max_rows) {
                        return Err(LimitExceeded::GroupChoices {
                            group: id.clone(),
                            count: choices.len(),
                            limit: config.max_rows,
                        });
                    }
                    if let Some(step) = self.group(config, id) {
                        check_step(config, &step)?;
                    }
                }
            }
        }
        let first = self.first(config);
        check_step(config, &first)?;
        Ok(first)
    }
}

/// Checks a step against the limits: button titles against the Cloud API's, a list as in
/// list mode.
fn check_step(config: &Config, content: &Content) -> Result<(), LimitExceeded> {
    match content {
        Content::InteractiveButtons(buttons) => {
            for button in &buttons.buttons {
                let chars = button.title.chars().count();
                if chars > CLOUD_API_MAX_BUTTON_TITLE_CHARS {
                    return Err(LimitExceeded::ButtonTitle {
                        button_id: button.id.clone(),
                        chars,
                        limit: CLOUD_API_MAX_BUTTON_TITLE_CHARS,
                    });
                }
            }
            Ok(())
        }
        Content::InteractiveList(list) => check_list(config, list),
        _ => Ok(()),
    }
}

/// A priority as the contract spells it (`critical`, `high`, `normal`, `bulk`), for the
/// state text.
mod priority_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use wasp_sdk::Priority;

    const NAMES: [(Priority, &str); 4] = [
        (Priority::Critical, "critical"),
        (Priority::High, "high"),
        (Priority::Normal, "normal"),
        (Priority::Bulk, "bulk"),
    ];

    pub fn serialize<S: Serializer>(priority: &Priority, serializer: S) -> Result<S::Ok, S::Error> {
        let name = NAMES
            .iter()
            .find(|(candidate, _)| candidate == priority)
            .map_or("normal", |(_, name)| name);
        serializer.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Priority, D::Error> {
        let name = String::deserialize(deserializer)?;
        NAMES
            .iter()
            .find(|(_, candidate)| *candidate == name)
            .map(|(priority, _)| *priority)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, &["critical", "high", "normal", "bulk"]))
    }
}

#[cfg(test)]
mod tests;
