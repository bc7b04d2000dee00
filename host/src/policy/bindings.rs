//! The plugin contract as Rust types (generated from `sdk/wit/v0.1.0`), and the conversions
//! between them and wasp's own message types. Conversions that can fail name what was wrong,
//! so a plugin returning something wasp cannot send is a fault, never a silent change.

use crate::message::{
    self, Category, Channel, Priority,
    content::{
        Button, ButtonAction, Content, Currency, DateTime, Interactive, ListAction, Media, Reply, Row, Section,
        Template, TemplateComponent, TemplateLanguage, TemplateParameter, TextBody, TextHeader, TextOnly,
    },
};

wasmtime::component::bindgen!({
    path: "../sdk/wit/v0.1.0",
    world: "wasp:policy/policy",
    additional_derives: [PartialEq],
});

pub use self::wasp::policy::types as wit;

impl From<Category> for wit::Category {
    fn from(value: Category) -> Self {
        match value {
            Category::Authentication => wit::Category::Authentication,
            Category::Utility => wit::Category::Utility,
            Category::Marketing => wit::Category::Marketing,
            Category::Service => wit::Category::Service,
        }
    }
}

impl From<wit::Category> for Category {
    fn from(value: wit::Category) -> Self {
        match value {
            wit::Category::Authentication => Category::Authentication,
            wit::Category::Utility => Category::Utility,
            wit::Category::Marketing => Category::Marketing,
            wit::Category::Service => Category::Service,
        }
    }
}

impl From<Priority> for wit::Priority {
    fn from(value: Priority) -> Self {
        match value {
            Priority::Critical => wit::Priority::Critical,
            Priority::High => wit::Priority::High,
            Priority::Normal => wit::Priority::Normal,
            Priority::Bulk => wit::Priority::Bulk,
        }
    }
}

impl From<wit::Priority> for Priority {
    fn from(value: wit::Priority) -> Self {
        match value {
            wit::Priority::Critical => Priority::Critical,
            wit::Priority::High => Priority::High,
            wit::Priority::Normal => Priority::Normal,
            wit::Priority::Bulk => Priority::Bulk,
        }
    }
}

impl From<Channel> for wit::Channel {
    fn from(value: Channel) -> Self {
        match value {
            Channel::Whatsapp => wit::Channel::Whatsapp,
            Channel::Sms => wit::Channel::Sms,
        }
    }
}

impl From<wit::Channel> for Channel {
    fn from(value: wit::Channel) -> Self {
        match value {
            wit::Channel::Whatsapp => Channel::Whatsapp,
            wit::Channel::Sms => Channel::Sms,
        }
    }
}

fn media_to_wit(media: &Media) -> wit::Media {
    wit::Media {
        id: media.id.clone(),
        link: media.link.clone(),
        caption: media.caption.clone(),
        filename: media.filename.clone(),
    }
}

fn media_from_wit(media: wit::Media) -> Media {
    Media {
        id: media.id,
        link: media.link,
        caption: media.caption,
        filename: media.filename,
    }
}

fn header_text(header: &Option<TextHeader>) -> Option<String> {
    header.as_ref().map(|TextHeader::Text { text }| text.clone())
}

pub fn content_to_wit(content: &Content) -> wit::Content {
    match content {
        Content::Text { text } => wit::Content::Text(wit::TextBody {
            body: text.body.clone(),
            preview_url: text.preview_url,
        }),
        Content::Template { template } => wit::Content::Template(wit::Template {
            name: template.name.clone(),
            language: template.language.code.clone(),
            components: template
                .components
                .iter()
                .map(|component| wit::TemplateComponent {
                    kind: component.kind.clone(),
                    sub_type: component.sub_type.clone(),
                    index: component.index,
                    parameters: component.parameters.iter().map(parameter_to_wit).collect(),
                })
                .collect(),
        }),
        Content::Image { image } => wit::Content::Image(media_to_wit(image)),
        Content::Document { document } => wit::Content::Document(media_to_wit(document)),
        Content::Video { video } => wit::Content::Video(media_to_wit(video)),
        Content::Audio { audio } => wit::Content::Audio(media_to_wit(audio)),
        Content::Interactive { interactive } => match interactive {
            Interactive::Button {
                header,
                body,
                footer,
                action,
            } => wit::Content::InteractiveButtons(wit::ButtonsMessage {
                header: header_text(header),
                body: body.text.clone(),
                footer: footer.as_ref().map(|footer| footer.text.clone()),
                buttons: action
                    .buttons
                    .iter()
                    .map(|Button::Reply { reply }| wit::ReplyButton {
                        id: reply.id.clone(),
                        title: reply.title.clone(),
                    })
                    .collect(),
            }),
            Interactive::List {
                header,
                body,
                footer,
                action,
            } => wit::Content::InteractiveList(wit::ListMessage {
                header: header_text(header),
                body: body.text.clone(),
                footer: footer.as_ref().map(|footer| footer.text.clone()),
                button: action.button.clone(),
                sections: action
                    .sections
                    .iter()
                    .map(|section| wit::ListSection {
                        title: section.title.clone(),
                        rows: section
                            .rows
                            .iter()
                            .map(|row| wit::ListRow {
                                id: row.id.clone(),
                                title: row.title.clone(),
                                description: row.description.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            }),
        },
    }
}

fn parameter_to_wit(parameter: &TemplateParameter) -> wit::TemplateParameter {
    match parameter {
        TemplateParameter::Text { text } => wit::TemplateParameter::Text(text.clone()),
        TemplateParameter::Currency { currency } => wit::TemplateParameter::Currency(wit::Currency {
            fallback_value: currency.fallback_value.clone(),
            code: currency.code.clone(),
            amount1000: currency.amount_1000,
        }),
        TemplateParameter::DateTime { date_time } => wit::TemplateParameter::DateTime(date_time.fallback_value.clone()),
        TemplateParameter::Image { image } => wit::TemplateParameter::Image(media_to_wit(image)),
        TemplateParameter::Document { document } => wit::TemplateParameter::Document(media_to_wit(document)),
        TemplateParameter::Video { video } => wit::TemplateParameter::Video(media_to_wit(video)),
        TemplateParameter::Payload { payload } => wit::TemplateParameter::Payload(payload.clone()),
    }
}

fn parameter_from_wit(parameter: wit::TemplateParameter) -> TemplateParameter {
    match parameter {
        wit::TemplateParameter::Text(text) => TemplateParameter::Text { text },
        wit::TemplateParameter::Currency(currency) => TemplateParameter::Currency {
            currency: Currency {
                fallback_value: currency.fallback_value,
                code: currency.code,
                amount_1000: currency.amount1000,
            },
        },
        wit::TemplateParameter::DateTime(fallback_value) => TemplateParameter::DateTime {
            date_time: DateTime { fallback_value },
        },
        wit::TemplateParameter::Image(media) => TemplateParameter::Image {
            image: media_from_wit(media),
        },
        wit::TemplateParameter::Document(media) => TemplateParameter::Document {
            document: media_from_wit(media),
        },
        wit::TemplateParameter::Video(media) => TemplateParameter::Video {
            video: media_from_wit(media),
        },
        wit::TemplateParameter::Payload(payload) => TemplateParameter::Payload { payload },
    }
}

fn text_header(header: Option<String>) -> Option<TextHeader> {
    header.map(|text| TextHeader::Text { text })
}

pub fn content_from_wit(content: wit::Content) -> Content {
    match content {
        wit::Content::Text(text) => Content::Text {
            text: TextBody {
                body: text.body,
                preview_url: text.preview_url,
            },
        },
        wit::Content::Template(template) => Content::Template {
            template: Template {
                name: template.name,
                language: TemplateLanguage {
                    code: template.language,
                    policy: None,
                },
                components: template
                    .components
                    .into_iter()
                    .map(|component| TemplateComponent {
                        kind: component.kind,
                        sub_type: component.sub_type,
                        index: component.index,
                        parameters: component.parameters.into_iter().map(parameter_from_wit).collect(),
                    })
                    .collect(),
            },
        },
        wit::Content::Image(media) => Content::Image {
            image: media_from_wit(media),
        },
        wit::Content::Document(media) => Content::Document {
            document: media_from_wit(media),
        },
        wit::Content::Video(media) => Content::Video {
            video: media_from_wit(media),
        },
        wit::Content::Audio(media) => Content::Audio {
            audio: media_from_wit(media),
        },
        wit::Content::InteractiveButtons(buttons) => Content::Interactive {
            interactive: Interactive::Button {
                header: text_header(buttons.header),
                body: TextOnly { text: buttons.body },
                footer: buttons.footer.map(|text| TextOnly { text }),
                action: ButtonAction {
                    buttons: buttons
                        .buttons
                        .into_iter()
                        .map(|button| Button::Reply {
                            reply: Reply {
                                id: button.id,
                                title: button.title,
                            },
                        })
                        .collect(),
                },
            },
        },
        wit::Content::InteractiveList(list) => Content::Interactive {
            interactive: Interactive::List {
                header: text_header(list.header),
                body: TextOnly { text: list.body },
                footer: list.footer.map(|text| TextOnly { text }),
                action: ListAction {
                    button: list.button,
                    sections: list
                        .sections
                        .into_iter()
                        .map(|section| Section {
                            title: section.title,
                            rows: section
                                .rows
                                .into_iter()
                                .map(|row| Row {
                                    id: row.id,
                                    title: row.title,
                                    description: row.description,
                                })
                                .collect(),
                        })
                        .collect(),
                },
            },
        },
    }
}

/// A message as policies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: message::MessageId,
    pub to: message::PhoneNumber,
    pub sender: String,
    pub category: Category,
    pub priority: Priority,
    pub channel: Channel,
    pub content: Content,
    pub tags: Vec<String>,
}

impl Envelope {
    /// A stored message as policies see it: the content as the policies last left it, else
    /// as submitted.
    pub fn from_pending(message: &crate::store::PendingMessage, sender: &str) -> Self {
        Self {
            id: message.id,
            to: message.to.clone(),
            sender: sender.to_owned(),
            category: message.category,
            priority: message.priority,
            channel: message.channel,
            content: message.content_sent.clone().unwrap_or_else(|| message.content.clone()),
            tags: message.tags.clone(),
        }
    }

    pub fn to_wit(&self) -> wit::Message {
        wit::Message {
            id: self.id.to_string(),
            to: self.to.as_str().to_owned(),
            sender: self.sender.clone(),
            category: self.category.into(),
            priority: self.priority.into(),
            channel: self.channel.into(),
            content: content_to_wit(&self.content),
            tags: self.tags.clone(),
        }
    }

    /// Takes a plugin's rewrite. The id, recipient and sender are the host's: a rewrite that
    /// changes them is malformed, and the content must still be sendable.
    pub fn apply_rewrite(&self, rewritten: wit::Message) -> Result<Envelope, String> {
        if rewritten.id != self.id.to_string() {
            return Err("a rewrite may not change the message id".into());
        }
        if rewritten.to != self.to.as_str() {
            return Err("a rewrite may not change the recipient".into());
        }
        if rewritten.sender != self.sender {
            return Err("a rewrite may not change the sender".into());
        }
        let content = content_from_wit(rewritten.content);
        content
            .validate()
            .map_err(|error| format!("rewritten {} {}", error.field, error.message))?;
        Ok(Envelope {
            id: self.id,
            to: self.to.clone(),
            sender: self.sender.clone(),
            category: rewritten.category.into(),
            priority: rewritten.priority.into(),
            channel: rewritten.channel.into(),
            content,
            tags: rewritten.tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_content_kind_survives_the_boundary() {
        let cases = [
            json!({"type": "text", "text": {"body": "hello", "preview_url": true}}),
            json!({"type": "image", "image": {"link": "https://example.com/a.png", "caption": "A"}}),
            json!({"type": "document", "document": {"id": "123", "filename": "a.pdf"}}),
            json!({"type": "interactive", "interactive": {"type": "button", "header": {"type": "text", "text": "H"},
                "body": {"text": "Pick"}, "footer": {"text": "F"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}),
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Pick"},
                "action": {"button": "Choose", "sections": [{"title": "S", "rows": [{"id": "a", "title": "A", "description": "d"}]}]}}}),
            json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"},
                    {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}},
                    {"type": "date_time", "date_time": {"fallback_value": "today"}}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "p"}]}]}}),
        ];
        for case in cases {
            let content: Content = serde_json::from_value(case.clone()).unwrap();
            let back = content_from_wit(content_to_wit(&content));
            assert_eq!(back, content, "{case}");
        }
    }

    #[test]
    fn rewrites_may_not_change_identity() {
        let envelope = Envelope {
            id: message::MessageId::new(),
            to: message::PhoneNumber::parse("+6591234567").unwrap(),
            sender: "100".into(),
            category: Category::Utility,
            priority: Priority::High,
            channel: Channel::Whatsapp,
            content: serde_json::from_value(json!({"type": "text", "text": {"body": "x"}})).unwrap(),
            tags: vec![],
        };
        let mut other = envelope.to_wit();
        other.to = "+6500000000".into();
        assert!(envelope.apply_rewrite(other).unwrap_err().contains("recipient"));
        let mut empty = envelope.to_wit();
        empty.content = wit::Content::Text(wit::TextBody {
            body: String::new(),
            preview_url: false,
        });
        assert!(envelope.apply_rewrite(empty).unwrap_err().contains("content.text.body"));
        let mut fine = envelope.to_wit();
        fine.priority = wit::Priority::Critical;
        assert_eq!(envelope.apply_rewrite(fine).unwrap().priority, Priority::Critical);
    }
}
