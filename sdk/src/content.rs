//! Builders and small conveniences on the contract's types: content constructors, the
//! buttons-to-list conversion, and neutral defaults for the context records (handy in
//! native tests). Pure data; calls nothing.

use crate::{
    ButtonsMessage, Category, CategoryCounts, Channel, Content, Context, ListMessage, ListRow, ListSection, Message,
    Priority, Quality, RecipientFacts, RegionHealth, ReplyButton, SenderFacts, TextBody,
};

impl Content {
    /// Plain text without a link preview.
    pub fn text(body: impl Into<String>) -> Content {
        Content::Text(TextBody {
            body: body.into(),
            preview_url: false,
        })
    }

    /// The contract's name for this kind of content: `text`, `template`, `image`,
    /// `document`, `video`, `audio`, `interactive-buttons` or `interactive-list`.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text(_) => "text",
            Content::Template(_) => "template",
            Content::Image(_) => "image",
            Content::Document(_) => "document",
            Content::Video(_) => "video",
            Content::Audio(_) => "audio",
            Content::InteractiveButtons(_) => "interactive-buttons",
            Content::InteractiveList(_) => "interactive-list",
        }
    }
}

impl Message {
    /// A message to `to` with `content`, as a `utility` message at `normal` priority over
    /// WhatsApp, without tags. Meant for tests and follow-ups; the host assigns real ids.
    pub fn new(id: impl Into<String>, to: impl Into<String>, sender: impl Into<String>, content: Content) -> Message {
        Message {
            id: id.into(),
            to: to.into(),
            sender: sender.into(),
            category: Category::Utility,
            priority: Priority::Normal,
            channel: Channel::Whatsapp,
            content,
            tags: Vec::new(),
        }
    }

    /// The same message with other content: what a rewrite usually is.
    pub fn with_content(self, content: Content) -> Message {
        Message { content, ..self }
    }

    /// Whether the message carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|candidate| candidate == tag)
    }
}

impl ReplyButton {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> ReplyButton {
        ReplyButton {
            id: id.into(),
            title: title.into(),
        }
    }
}

impl ButtonsMessage {
    /// A buttons message with a body and no header or footer.
    pub fn new(body: impl Into<String>, buttons: Vec<ReplyButton>) -> ButtonsMessage {
        ButtonsMessage {
            header: None,
            body: body.into(),
            footer: None,
            buttons,
        }
    }
}

impl ListRow {
    /// A row without a description.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> ListRow {
        ListRow {
            id: id.into(),
            title: title.into(),
            description: None,
        }
    }
}

impl ListMessage {
    /// The list message that offers the same choices as `buttons`: same header, body and
    /// footer; one untitled section with one row per button (row id = button id, row title
    /// = button title); `button_label` on the button that opens the list.
    ///
    /// This does not check the Cloud API's limits; see [`ListMessage::row_count`].
    pub fn from_buttons(buttons: ButtonsMessage, button_label: impl Into<String>) -> ListMessage {
        let rows = buttons
            .buttons
            .into_iter()
            .map(|button| ListRow::new(button.id, button.title))
            .collect();
        ListMessage {
            header: buttons.header,
            body: buttons.body,
            footer: buttons.footer,
            button: button_label.into(),
            sections: vec![ListSection { title: None, rows }],
        }
    }

    /// Rows across all sections (the Cloud API allows at most 10).
    pub fn row_count(&self) -> usize {
        self.sections.iter().map(|section| section.rows.len()).sum()
    }

    /// Every row, section after section.
    pub fn rows(&self) -> impl Iterator<Item = &ListRow> {
        self.sections.iter().flat_map(|section| section.rows.iter())
    }
}

#[expect(
    clippy::derivable_impls,
    reason = "the type is generated from the contract; a derive cannot be added there"
)]
impl Default for CategoryCounts {
    fn default() -> Self {
        CategoryCounts {
            authentication: 0,
            utility: 0,
            marketing: 0,
            service: 0,
        }
    }
}

impl CategoryCounts {
    /// The count for one category.
    pub fn get(&self, category: Category) -> u32 {
        match category {
            Category::Authentication => self.authentication,
            Category::Utility => self.utility,
            Category::Marketing => self.marketing,
            Category::Service => self.service,
        }
    }

    /// All categories together.
    pub fn total(&self) -> u32 {
        self.authentication
            .saturating_add(self.utility)
            .saturating_add(self.marketing)
            .saturating_add(self.service)
    }
}

/// A recipient the host knows nothing about: country code 0, time zone `UTC` at offset 0,
/// never seen, no interactions, service window closed, nothing sent, not opted out.
impl Default for RecipientFacts {
    fn default() -> Self {
        RecipientFacts {
            country_code: 0,
            time_zone: "UTC".to_string(),
            utc_offset_minutes: 0,
            first_seen_ms: None,
            last_inbound_ms: None,
            interactions: 0,
            service_window_open: false,
            sent24h: CategoryCounts::default(),
            sent7d: CategoryCounts::default(),
            opted_out: false,
            device_hints: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

/// A sender with an empty phone number id, no tier limit, `unknown` quality, nothing sent.
impl Default for SenderFacts {
    fn default() -> Self {
        SenderFacts {
            phone_number_id: String::new(),
            tier_limit: None,
            quality: Quality::Unknown,
            sent24h: 0,
        }
    }
}

/// A healthy region: country code 0, no errors, zero latency, not degraded.
impl Default for RegionHealth {
    fn default() -> Self {
        RegionHealth {
            country_code: 0,
            error_rate: 0.0,
            p50_latency_ms: 0,
            degraded: false,
        }
    }
}

/// The epoch (`now-ms` 0), default facts, shard 0 with no backlog, not degraded.
impl Default for Context {
    fn default() -> Self {
        Context {
            now_ms: 0,
            recipient: RecipientFacts::default(),
            sender: SenderFacts::default(),
            region: RegionHealth::default(),
            shard: 0,
            shard_backlog: 0,
            degraded_mode: false,
        }
    }
}

impl RecipientFacts {
    /// The value of a contact attribute, if set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_become_one_section_of_rows() {
        let mut buttons = ButtonsMessage::new(
            "Pick a slot",
            vec![ReplyButton::new("morning", "Morning"), ReplyButton::new("noon", "Noon")],
        );
        buttons.header = Some("Delivery".to_string());
        buttons.footer = Some("Reply any time".to_string());
        let list = ListMessage::from_buttons(buttons, "Choose");
        assert_eq!(list.header.as_deref(), Some("Delivery"));
        assert_eq!(list.body, "Pick a slot");
        assert_eq!(list.footer.as_deref(), Some("Reply any time"));
        assert_eq!(list.button, "Choose");
        assert_eq!(list.sections.len(), 1);
        assert_eq!(list.sections[0].title, None);
        assert_eq!(
            list.sections[0].rows,
            vec![ListRow::new("morning", "Morning"), ListRow::new("noon", "Noon")]
        );
        assert_eq!(list.row_count(), 2);
    }

    #[test]
    fn messages_rewrite_their_content() {
        let message = Message::new("m-1", "+6591234567", "100200300", Content::text("hi"));
        let rewritten = message.clone().with_content(Content::text("hello"));
        assert_eq!(rewritten.content, Content::text("hello"));
        assert_eq!(rewritten.id, message.id);
        assert_eq!(rewritten.content.kind(), "text");
    }
}
