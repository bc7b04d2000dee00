//! The SMS channel: a Twilio-compatible REST client. `POST {base_url}/2010-04-01/Accounts/
//! {account_sid}/Messages.json` with a form body (`To`, `From`, `Body`) and HTTP basic auth;
//! reads the message `sid`, and Twilio's error object (`code`, `message`) on failure.

use std::time::Duration;

use serde::Deserialize;

use super::ErrorClass;
use crate::{
    config::SmsConfig,
    message::{Content, PhoneNumber, content::Interactive, content::TemplateParameter},
};

/// Longest body Twilio accepts; longer text is cut with an ellipsis.
pub const MAX_SMS_BODY_CHARS: usize = 1_600;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SmsError {
    #[error("SMS provider answered HTTP {http_status}, code {code}: {message}")]
    Rejected {
        http_status: u16,
        code: i64,
        message: String,
    },
    #[error("SMS provider unreachable: {0}")]
    Transport(String),
    #[error("SMS provider answer not understood (HTTP {http_status}): {detail}")]
    Malformed { http_status: u16, detail: String },
}

impl SmsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SmsError::Rejected { http_status: 429, .. } | SmsError::Rejected { code: 20429, .. } => {
                ErrorClass::RateLimited
            }
            SmsError::Rejected { http_status, .. } | SmsError::Malformed { http_status, .. } if *http_status >= 500 => {
                ErrorClass::Retry
            }
            SmsError::Transport(_) => ErrorClass::Retry,
            // Credentials are the operator's to fix; the message is not at fault.
            SmsError::Rejected { code: 20003, .. } => ErrorClass::Retry,
            SmsError::Rejected { .. } | SmsError::Malformed { .. } => ErrorClass::Permanent,
        }
    }

    pub fn code(&self) -> Option<i64> {
        match self {
            SmsError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub struct SmsChannel {
    client: reqwest::Client,
    endpoint: String,
    account_sid: String,
    auth_token: Option<String>,
    from: String,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioError {
    code: i64,
    message: String,
}

impl SmsChannel {
    /// `None` when no SMS provider is configured (no `from` number).
    pub fn new(config: &SmsConfig) -> Result<Option<Self>, SmsError> {
        if config.from.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
            .map_err(|error| SmsError::Transport(format!("building the HTTP client: {error}")))?;
        Ok(Some(Self {
            client,
            endpoint: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            from: config.from.clone(),
        }))
    }

    /// Sends `content` as plain text; answers the provider's message sid.
    pub async fn send(&self, to: &PhoneNumber, content: &Content) -> Result<String, SmsError> {
        let body = plain_text(content);
        let form = [
            ("To", to.as_str()),
            ("From", self.from.as_str()),
            ("Body", body.as_str()),
        ];
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.account_sid, self.auth_token.as_deref())
            .form(&form)
            .send()
            .await
            .map_err(|error| SmsError::Transport(error.to_string()))?;
        let http_status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| SmsError::Transport(format!("reading the answer: {error}")))?;
        if (200..300).contains(&http_status) {
            let created: Created = serde_json::from_slice(&bytes).map_err(|error| SmsError::Malformed {
                http_status,
                detail: error.to_string(),
            })?;
            return Ok(created.sid);
        }
        match serde_json::from_slice::<TwilioError>(&bytes) {
            Ok(error) => Err(SmsError::Rejected {
                http_status,
                code: error.code,
                message: error.message,
            }),
            Err(_) => Err(SmsError::Malformed {
                http_status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            }),
        }
    }
}

/// Content as one plain text: media become caption and link, choices become numbered lines.
pub fn plain_text(content: &Content) -> String {
    let mut text = match content {
        Content::Text { text } => text.body.clone(),
        Content::Template { template } => {
            let values: Vec<String> = template
                .components
                .iter()
                .flat_map(|component| &component.parameters)
                .filter_map(|parameter| match parameter {
                    TemplateParameter::Text { text } => Some(text.clone()),
                    TemplateParameter::Currency { currency } => Some(currency.fallback_value.clone()),
                    TemplateParameter::DateTime { date_time } => Some(date_time.fallback_value.clone()),
                    _ => None,
                })
                .collect();
            if values.is_empty() {
                template.name.replace('_', " ")
            } else {
                format!("{}: {}", template.name.replace('_', " "), values.join(", "))
            }
        }
        Content::Image { image: media }
        | Content::Document { document: media }
        | Content::Video { video: media }
        | Content::Audio { audio: media } => [media.caption.clone(), media.link.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n"),
        Content::Interactive { interactive } => {
            let (body, footer, choices): (&str, Option<&str>, Vec<&str>) = match interactive {
                Interactive::Button {
                    body, footer, action, ..
                } => (
                    &body.text,
                    footer.as_ref().map(|footer| footer.text.as_str()),
                    action
                        .buttons
                        .iter()
                        .map(|crate::message::content::Button::Reply { reply }| reply.title.as_str())
                        .collect(),
                ),
                Interactive::List {
                    body, footer, action, ..
                } => (
                    &body.text,
                    footer.as_ref().map(|footer| footer.text.as_str()),
                    action
                        .sections
                        .iter()
                        .flat_map(|section| &section.rows)
                        .map(|row| row.title.as_str())
                        .collect(),
                ),
            };
            let mut lines = vec![body.to_owned()];
            lines.extend(
                choices
                    .iter()
                    .enumerate()
                    .map(|(index, choice)| format!("{}. {choice}", index + 1)),
            );
            lines.extend(footer.map(str::to_owned));
            lines.join("\n")
        }
    };
    if text.chars().count() > MAX_SMS_BODY_CHARS {
        text = text.chars().take(MAX_SMS_BODY_CHARS - 1).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(value: serde_json::Value) -> Content {
        Content::from_json(value).unwrap()
    }

    #[test]
    fn content_becomes_plain_text() {
        assert_eq!(
            plain_text(&content(
                json!({"type": "text", "text": {"body": "Your code is 123456"}})
            )),
            "Your code is 123456"
        );
        assert_eq!(
            plain_text(&content(
                json!({"type": "image", "image": {"link": "https://example.com/a.png", "caption": "Your parcel"}})
            )),
            "Your parcel\nhttps://example.com/a.png"
        );
        let buttons = content(
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
            "footer": {"text": "Reply with a number"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "Morning"}},
                                   {"type": "reply", "reply": {"id": "b", "title": "Evening"}}]}}}),
        );
        assert_eq!(
            plain_text(&buttons),
            "Pick\n1. Morning\n2. Evening\nReply with a number"
        );
        let template = content(
            json!({"type": "template", "template": {"name": "order_shipped", "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}}),
        );
        assert_eq!(plain_text(&template), "order shipped: 42");
        let long = content(json!({"type": "text", "text": {"body": "x".repeat(4_000)}}));
        assert_eq!(plain_text(&long).chars().count(), MAX_SMS_BODY_CHARS);
    }

    #[test]
    fn twilio_errors_are_classified() {
        let rejected = |http_status, code| SmsError::Rejected {
            http_status,
            code,
            message: String::new(),
        };
        assert_eq!(rejected(400, 21211).class(), ErrorClass::Permanent);
        assert_eq!(rejected(429, 20429).class(), ErrorClass::RateLimited);
        assert_eq!(rejected(503, 20500).class(), ErrorClass::Retry);
        assert_eq!(rejected(401, 20003).class(), ErrorClass::Retry);
    }
}
