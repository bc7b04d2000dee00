//! Inbound messages a test or the demo makes a simulated user send to the business: a
//! text, or an interactive `button_reply` / `list_reply` answering an earlier message.
//!
//! Owns `Inbound` and `InboundContent` and their checks. The body is built by
//! `webhook::payload` and posted by `webhook`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Profile name used when none is given.
pub const DEFAULT_PROFILE_NAME: &str = "Simulated User";

/// One message from a user to the business.
///
/// As JSON (`POST /_sim/inbound`): `{"phone_number_id":"…","from":"…","type":"text",
/// "body":"…"}`, or `"type":"button_reply"` / `"list_reply"` with `id`, `title`
/// (and `description` for lists) plus `reply_to` (the wamid answered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The business phone number id the user writes to.
    pub phone_number_id: String,
    /// The user's number (digits are kept, anything else is dropped).
    pub from: String,
    /// `contacts[0].profile.name`.
    #[serde(default = "default_profile_name")]
    pub profile_name: String,
    /// The wamid this message answers (`context.id`); required for interactive replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// What the user sent.
    #[serde(flatten)]
    pub content: InboundContent,
}

/// What the user sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundContent {
    /// A text message.
    Text {
        /// The text.
        body: String,
    },
    /// A tap on a reply button.
    ButtonReply {
        /// The button id the business set.
        id: String,
        /// The button title.
        title: String,
    },
    /// A choice from a list.
    ListReply {
        /// The row id the business set.
        id: String,
        /// The row title.
        title: String,
        /// The row description, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

fn default_profile_name() -> String {
    DEFAULT_PROFILE_NAME.to_owned()
}

impl Inbound {
    /// A text from `from` to `phone_number_id`.
    pub fn text(phone_number_id: impl Into<String>, from: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            phone_number_id: phone_number_id.into(),
            from: from.into(),
            profile_name: default_profile_name(),
            reply_to: None,
            content: InboundContent::Text { body: body.into() },
        }
    }

    /// A tap on button `id`/`title` of the message `reply_to`.
    pub fn button_reply(
        phone_number_id: impl Into<String>,
        from: impl Into<String>,
        reply_to: impl Into<String>,
        id: impl Into<String>,
        title: impl Into<String>,
    ) -> Self {
        Self {
            phone_number_id: phone_number_id.into(),
            from: from.into(),
            profile_name: default_profile_name(),
            reply_to: Some(reply_to.into()),
            content: InboundContent::ButtonReply {
                id: id.into(),
                title: title.into(),
            },
        }
    }

    /// A choice of row `id`/`title` from the list message `reply_to`.
    pub fn list_reply(
        phone_number_id: impl Into<String>,
        from: impl Into<String>,
        reply_to: impl Into<String>,
        id: impl Into<String>,
        title: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        Self {
            phone_number_id: phone_number_id.into(),
            from: from.into(),
            profile_name: default_profile_name(),
            reply_to: Some(reply_to.into()),
            content: InboundContent::ListReply {
                id: id.into(),
                title: title.into(),
                description,
            },
        }
    }

    /// The same message with another profile name.
    pub fn with_profile_name(mut self, name: impl Into<String>) -> Self {
        self.profile_name = name.into();
        self
    }

    /// The same message answering `wamid`.
    pub fn replying_to(mut self, wamid: impl Into<String>) -> Self {
        self.reply_to = Some(wamid.into());
        self
    }

    /// The sender's number, digits only.
    pub fn sender_digits(&self) -> String {
        self.from.chars().filter(char::is_ascii_digit).collect()
    }

    /// Checks the message can be posted as Meta would.
    pub fn validate(&self) -> Result<()> {
        if self.phone_number_id.is_empty() || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInbound("phone_number_id must be digits"));
        }
        if !self.from.bytes().any(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInbound("from must be a phone number"));
        }
        match &self.content {
            InboundContent::Text { body } if body.is_empty() => Err(Error::InvalidInbound("a text needs a body")),
            InboundContent::ButtonReply { .. } | InboundContent::ListReply { .. } if self.reply_to.is_none() => Err(
                Error::InvalidInbound("an interactive reply needs reply_to (the wamid it answers)"),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_form_parses() {
        let inbound: Inbound = serde_json::from_value(json!({
            "phone_number_id": "106540352242922",
            "from": "+1 650-555-1234",
            "type": "list_reply",
            "id": "priority_express",
            "title": "Priority Mail Express",
            "description": "Next Day to 2 Days",
            "reply_to": "wamid.X"
        }))
        .expect("parses");
        assert_eq!(inbound.profile_name, DEFAULT_PROFILE_NAME);
        assert_eq!(inbound.sender_digits(), "16505551234");
        assert!(matches!(
            inbound.content,
            InboundContent::ListReply {
                description: Some(_),
                ..
            }
        ));
        inbound.validate().expect("valid");
    }

    #[test]
    fn interactive_replies_need_reply_to() {
        let mut inbound = Inbound::button_reply("1", "2", "wamid.X", "yes", "Yes");
        inbound.validate().expect("valid");
        inbound.reply_to = None;
        assert!(matches!(inbound.validate(), Err(Error::InvalidInbound(_))));
    }

    #[test]
    fn numbers_are_checked() {
        assert!(Inbound::text("abc", "2", "hi").validate().is_err());
        assert!(Inbound::text("1", "nobody", "hi").validate().is_err());
        assert!(Inbound::text("1", "2", "").validate().is_err());
    }
}
