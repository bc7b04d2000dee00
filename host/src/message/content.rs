//! Message content in the shape of a Cloud API message object (`type` plus the object named
//! by it), read strictly and written back exactly as Meta expects it.
//!
//! What wasp accepts here is what the plugin contract can carry without loss, so a policy
//! rewrite never silently drops a field.

use serde::{Deserialize, Serialize};

/// Most characters in a text body (Cloud API limit).
pub const MAX_TEXT_CHARS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    Text { text: TextBody },
    Template { template: Template },
    Image { image: Media },
    Document { document: Media },
    Video { video: Media },
    Audio { audio: Media },
    Interactive { interactive: Interactive },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    pub body: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview_url: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub language: TemplateLanguage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateLanguage {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateComponent {
    /// `header`, `body` or `button`; Meta sends either case, we keep lower case.
    #[serde(rename = "type", deserialize_with = "lowercase")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    /// Meta documents a string (`"0"`) and accepts a number; both are read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "index_from_string_or_number",
        serialize_with = "index_as_string"
    )]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParameter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateParameter {
    Text { text: String },
    Currency { currency: Currency },
    DateTime { date_time: DateTime },
    Image { image: Media },
    Document { document: Media },
    Video { video: Media },
    Payload { payload: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Currency {
    pub fallback_value: String,
    pub code: String,
    pub amount_1000: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateTime {
    pub fallback_value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Interactive {
    Button {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<TextHeader>,
        body: TextOnly,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<TextOnly>,
        action: ButtonAction,
    },
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<TextHeader>,
        body: TextOnly,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<TextOnly>,
        action: ListAction,
    },
}

/// A text header; media headers are not carried by this version of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextHeader {
    Text { text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextOnly {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonAction {
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Button {
    Reply { reply: Reply },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAction {
    pub button: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A content problem, naming the field (a JSON path under `content`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentError {
    pub field: String,
    pub message: String,
}

/// The content types wasp carries, as Meta names them.
pub const KINDS: &[&str] = &["text", "template", "image", "document", "video", "audio", "interactive"];

fn inner<T: serde::de::DeserializeOwned>(kind: &str, value: serde_json::Value) -> Result<T, ContentError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        ContentError {
            field: if path == "." {
                format!("content.{kind}")
            } else {
                format!("content.{kind}.{path}")
            },
            message: error.into_inner().to_string(),
        }
    })
}

impl Content {
    /// Reads content from JSON, naming the exact field at fault (serde alone loses the path
    /// inside an internally tagged enum), then checks it with [`Content::validate`].
    pub fn from_json(value: serde_json::Value) -> Result<Content, ContentError> {
        let fail = |field: &str, message: String| ContentError {
            field: field.to_owned(),
            message,
        };
        let serde_json::Value::Object(mut object) = value else {
            return Err(fail("content", "must be an object with a `type`".into()));
        };
        let kind = match object.remove("type") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(_) => return Err(fail("content.type", "must be a string".into())),
            None => return Err(fail("content.type", "is required".into())),
        };
        if !KINDS.contains(&kind.as_str()) {
            return Err(fail(
                "content.type",
                format!("unknown content type {kind:?}, expected one of: {}", KINDS.join(", ")),
            ));
        }
        let body = object
            .remove(&kind)
            .ok_or_else(|| fail(&format!("content.{kind}"), format!("is required for type {kind:?}")))?;
        if let Some(extra) = object.keys().next() {
            return Err(fail(&format!("content.{extra}"), "unknown field".into()));
        }
        let content = match kind.as_str() {
            "text" => Content::Text {
                text: inner(&kind, body)?,
            },
            "template" => Content::Template {
                template: inner(&kind, body)?,
            },
            "image" => Content::Image {
                image: inner(&kind, body)?,
            },
            "document" => Content::Document {
                document: inner(&kind, body)?,
            },
            "video" => Content::Video {
                video: inner(&kind, body)?,
            },
            "audio" => Content::Audio {
                audio: inner(&kind, body)?,
            },
            _ => Content::Interactive {
                interactive: inner(&kind, body)?,
            },
        };
        content.validate()?;
        Ok(content)
    }

    /// Meta's message `type` for this content.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Template { .. } => "template",
            Content::Image { .. } => "image",
            Content::Document { .. } => "document",
            Content::Video { .. } => "video",
            Content::Audio { .. } => "audio",
            Content::Interactive { .. } => "interactive",
        }
    }

    /// Checks what the shape alone cannot: non-empty values and text limits. Button and list
    /// counts are left to the policies and the Cloud API, which is what policies are for.
    pub fn validate(&self) -> Result<(), ContentError> {
        let fail = |field: &str, message: &str| {
            Err(ContentError {
                field: format!("content.{field}"),
                message: message.to_owned(),
            })
        };
        match self {
            Content::Text { text } => {
                if text.body.trim().is_empty() {
                    return fail("text.body", "must not be empty");
                }
                if text.body.chars().count() > MAX_TEXT_CHARS {
                    return fail("text.body", "must be at most 4096 characters");
                }
            }
            Content::Template { template } => {
                if template.name.is_empty() {
                    return fail("template.name", "must not be empty");
                }
                if template.language.code.is_empty() {
                    return fail("template.language.code", "must not be empty");
                }
            }
            Content::Image { image: media }
            | Content::Document { document: media }
            | Content::Video { video: media }
            | Content::Audio { audio: media } => {
                if media.id.is_none() == media.link.is_none() {
                    let field = self.kind().to_owned();
                    return fail(&field, "needs exactly one of `id` or `link`");
                }
            }
            Content::Interactive { interactive } => match interactive {
                Interactive::Button { body, action, .. } => {
                    if body.text.is_empty() {
                        return fail("interactive.body.text", "must not be empty");
                    }
                    if action.buttons.is_empty() {
                        return fail("interactive.action.buttons", "needs at least one button");
                    }
                }
                Interactive::List { body, action, .. } => {
                    if body.text.is_empty() {
                        return fail("interactive.body.text", "must not be empty");
                    }
                    if action.sections.iter().all(|section| section.rows.is_empty()) {
                        return fail("interactive.action.sections", "needs at least one row");
                    }
                }
            },
        }
        Ok(())
    }
}

fn lowercase<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::deserialize(deserializer).map(|value| value.to_ascii_lowercase())
}

fn index_from_string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Index {
        Number(u32),
        Text(String),
    }
    match Option::<Index>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Index::Number(number)) => Ok(Some(number)),
        Some(Index::Text(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("index {text:?} is not a number"))),
    }
}

fn index_as_string<S: serde::Serializer>(index: &Option<u32>, serializer: S) -> Result<S::Ok, S::Error> {
    match index {
        Some(index) => serializer.serialize_str(&index.to_string()),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_cloud_api_shapes() {
        let cases = [
            json!({"type": "text", "text": {"body": "hello"}}),
            json!({"type": "image", "image": {"link": "https://example.com/a.png", "caption": "A"}}),
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}),
            json!({"type": "interactive", "interactive": {"type": "list", "header": {"type": "text", "text": "H"},
                "body": {"text": "Pick"}, "action": {"button": "Choose",
                "sections": [{"title": "S", "rows": [{"id": "a", "title": "A", "description": "d"}]}]}}}),
            json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "p"}]}]}}),
        ];
        for case in cases {
            let content: Content = serde_json::from_value(case.clone()).unwrap();
            content.validate().unwrap();
            assert_eq!(serde_json::to_value(&content).unwrap(), case);
        }
    }

    #[test]
    fn template_component_type_in_either_case() {
        let content: Content = serde_json::from_value(json!({"type": "template", "template": {
            "name": "t", "language": {"code": "en"}, "components": [{"type": "BODY", "parameters": []}]}}))
        .unwrap();
        let Content::Template { template } = content else {
            panic!("not a template")
        };
        assert_eq!(template.components[0].kind, "body");
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(serde_json::from_value::<Content>(json!({"type": "sticker", "sticker": {"id": "1"}})).is_err());
        assert!(
            serde_json::from_value::<Content>(json!({"type": "text", "text": {"body": "x", "bold": true}})).is_err()
        );
        assert!(
            serde_json::from_value::<Content>(json!({"type": "text", "text": {"body": "x"}, "image": {}})).is_err()
        );
    }

    #[test]
    fn from_json_names_the_exact_field() {
        let field = |value| Content::from_json(value).unwrap_err().field;
        assert_eq!(field(json!({"type": "text", "text": {"body": 5}})), "content.text.body");
        assert_eq!(field(json!({"type": "sticker", "sticker": {}})), "content.type");
        assert_eq!(field(json!({"text": {"body": "x"}})), "content.type");
        assert_eq!(field(json!({"type": "text"})), "content.text");
        assert_eq!(
            field(json!({"type": "text", "text": {"body": "x"}, "image": {}})),
            "content.image"
        );
        assert_eq!(
            field(json!({"type": "template", "template": {"name": "t"}})),
            "content.template"
        );
        assert_eq!(field(json!("hello")), "content");
        assert!(Content::from_json(json!({"type": "text", "text": {"body": "x"}})).is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let content: Content = serde_json::from_value(json!({"type": "text", "text": {"body": ""}})).unwrap();
        assert_eq!(content.validate().unwrap_err().field, "content.text.body");
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let content: Content = serde_json::from_value(json!({"type": "text", "text": {"body": long}})).unwrap();
        assert!(content.validate().is_err());
        let content: Content = serde_json::from_value(json!({"type": "image", "image": {}})).unwrap();
        assert_eq!(content.validate().unwrap_err().field, "content.image");
    }
}
