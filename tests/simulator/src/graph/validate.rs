//! Checks a `POST /{version}/{phone_number_id}/messages` body the way the Cloud API does
//! and says what it is: a message to send (and its type) or a mark-as-read.
//!
//! Owns the limits (text 4,096 characters, 1–3 reply buttons of ≤ 20 characters, lists of
//! ≤ 10 sections and ≤ 10 rows in total, …) and the error each broken rule gets. Calls
//! only `graph::error`.

use serde_json::{Map, Value};

use super::error::GraphError;

/// Longest text message body.
pub const TEXT_BODY_MAX_CHARS: usize = 4_096;
/// Longest body of an interactive message.
pub const INTERACTIVE_BODY_MAX_CHARS: usize = 1_024;
/// Most reply buttons on one message.
pub const BUTTONS_MAX: usize = 3;
/// Longest reply button title.
pub const BUTTON_TITLE_MAX_CHARS: usize = 20;
/// Longest reply button id.
pub const BUTTON_ID_MAX_CHARS: usize = 256;
/// Most sections in a list.
pub const LIST_SECTIONS_MAX: usize = 10;
/// Most rows in a list, counted over all sections.
pub const LIST_ROWS_MAX: usize = 10;
/// Longest list row title.
pub const ROW_TITLE_MAX_CHARS: usize = 24;
/// Longest list row description.
pub const ROW_DESCRIPTION_MAX_CHARS: usize = 72;
/// Longest list row id.
pub const ROW_ID_MAX_CHARS: usize = 200;
/// Longest list section title.
pub const SECTION_TITLE_MAX_CHARS: usize = 24;
/// Longest list button label (`action.button`).
pub const LIST_BUTTON_MAX_CHARS: usize = 20;

/// The message types the simulator accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// `type: text`.
    Text,
    /// `type: template`.
    Template,
    /// `type: image`.
    Image,
    /// `type: document`.
    Document,
    /// `type: video`.
    Video,
    /// `type: audio`.
    Audio,
    /// `type: interactive` (button or list).
    Interactive,
}

/// What a valid body asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Send a message to `to` (exactly as given).
    Send {
        /// The recipient as sent.
        to: &'a str,
        /// The message type.
        kind: MessageKind,
    },
    /// Mark an inbound message as read.
    MarkRead {
        /// The inbound message's wamid.
        message_id: &'a str,
    },
}

/// Message types Meta knows but the simulator does not send (answered with 131051).
const KNOWN_UNSIMULATED_TYPES: &[&str] = &["sticker", "location", "contacts", "reaction"];
/// Interactive types Meta knows besides button and list; accepted with an `action`.
const OTHER_INTERACTIVE_TYPES: &[&str] = &[
    "cta_url",
    "flow",
    "product",
    "product_list",
    "catalog_message",
    "location_request_message",
    "call_permission_request",
];
/// Template component types (matched in either case).
const TEMPLATE_COMPONENT_TYPES: &[&str] = &["header", "body", "button", "footer", "carousel", "limited_time_offer"];

/// Checks `body` and says what it asks for.
pub fn validate(body: &Value) -> Result<Request<'_>, GraphError> {
    let Some(body) = body.as_object() else {
        return Err(GraphError::invalid_parameter("Request body must be a JSON object"));
    };
    match body.get("messaging_product") {
        None | Some(Value::Null) => {
            return Err(GraphError::parameter_required("messaging_product"));
        }
        Some(Value::String(product)) if product.eq_ignore_ascii_case("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )));
        }
    }

    if let Some(status) = body.get("status") {
        return match status.as_str() {
            Some("read") => {
                let message_id =
                    non_empty_str(body, "message_id").ok_or_else(|| GraphError::parameter_required("message_id"))?;
                Ok(Request::MarkRead { message_id })
            }
            _ => Err(GraphError::invalid_parameter(format!(
                "Param status must be one of {{READ}} - got {status}."
            ))),
        };
    }

    let to = non_empty_str(body, "to").ok_or_else(|| GraphError::parameter_required("to"))?;
    if !to.bytes().any(|b| b.is_ascii_digit()) {
        return Err(GraphError::invalid_parameter("Param to must be a valid phone number"));
    }
    if let Some(recipient_type) = body.get("recipient_type")
        && !matches!(recipient_type.as_str(), Some("individual" | "group"))
    {
        return Err(GraphError::invalid_parameter(format!(
            "Param recipient_type must be one of {{INDIVIDUAL, GROUP}} - got {recipient_type}."
        )));
    }

    let message_type = match body.get("type") {
        None | Some(Value::Null) => "text",
        Some(Value::String(message_type)) => message_type.as_str(),
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param type must be a string - got {other}."
            )));
        }
    };
    let kind = match message_type {
        "text" => {
            text(body)?;
            MessageKind::Text
        }
        "template" => {
            template(body)?;
            MessageKind::Template
        }
        "image" => {
            media(body, "image")?;
            MessageKind::Image
        }
        "document" => {
            media(body, "document")?;
            MessageKind::Document
        }
        "video" => {
            media(body, "video")?;
            MessageKind::Video
        }
        "audio" => {
            media(body, "audio")?;
            MessageKind::Audio
        }
        "interactive" => {
            interactive(body)?;
            MessageKind::Interactive
        }
        known if KNOWN_UNSIMULATED_TYPES.contains(&known) => {
            return Err(GraphError::unsupported_type());
        }
        unknown => {
            return Err(GraphError::invalid_parameter(format!(
                "Param type must be one of {{AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, \
                 LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}} - got \"{unknown}\"."
            )));
        }
    };
    Ok(Request::Send { to, kind })
}

fn text(body: &Map<String, Value>) -> Result<(), GraphError> {
    let text = required_object(body, "text", "text")?;
    let Some(content) = text.get("body").and_then(Value::as_str) else {
        return Err(GraphError::parameter_missing("The parameter text['body'] is required."));
    };
    let length = content.chars().count();
    if length == 0 {
        return Err(GraphError::invalid_parameter(
            "Param text['body'] must be at least 1 character long.",
        ));
    }
    if length > TEXT_BODY_MAX_CHARS {
        return Err(GraphError::invalid_parameter(format!(
            "Param text['body'] must be at most {TEXT_BODY_MAX_CHARS} characters long."
        )));
    }
    Ok(())
}

fn template(body: &Map<String, Value>) -> Result<(), GraphError> {
    let template = required_object(body, "template", "template")?;
    if non_empty_str(template, "name").is_none() {
        return Err(GraphError::parameter_missing(
            "The parameter template['name'] is required.",
        ));
    }
    let language_code = template
        .get("language")
        .and_then(Value::as_object)
        .and_then(|language| non_empty_str(language, "code"));
    if language_code.is_none() {
        return Err(GraphError::parameter_missing(
            "The parameter template['language']['code'] is required.",
        ));
    }
    match template.get("components") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(components)) => {
            for (index, component) in components.iter().enumerate() {
                let component_type = component.get("type").and_then(Value::as_str);
                let known = component_type.is_some_and(|component_type| {
                    TEMPLATE_COMPONENT_TYPES
                        .iter()
                        .any(|known| known.eq_ignore_ascii_case(component_type))
                });
                if !known {
                    return Err(GraphError::invalid_parameter(format!(
                        "Param template['components'][{index}]['type'] must be one of \
                         {{HEADER, BODY, BUTTON, FOOTER, CAROUSEL, LIMITED_TIME_OFFER}}."
                    )));
                }
                if let Some(parameters) = component.get("parameters")
                    && !parameters.is_array()
                {
                    return Err(GraphError::invalid_parameter(format!(
                        "Param template['components'][{index}]['parameters'] must be an array."
                    )));
                }
            }
            Ok(())
        }
        Some(_) => Err(GraphError::invalid_parameter(
            "Param template['components'] must be an array.",
        )),
    }
}

fn media(body: &Map<String, Value>, media_type: &'static str) -> Result<(), GraphError> {
    let media = required_object(body, media_type, media_type)?;
    let has_id = non_empty_str(media, "id").is_some();
    let has_link = non_empty_str(media, "link").is_some();
    match (has_id, has_link) {
        (true, false) | (false, true) => Ok(()),
        (false, false) => Err(GraphError::parameter_missing(format!(
            "The parameter {media_type}['id'] or {media_type}['link'] is required."
        ))),
        (true, true) => Err(GraphError::invalid_parameter(format!(
            "Param {media_type} must have either id or link, not both."
        ))),
    }
}

fn interactive(body: &Map<String, Value>) -> Result<(), GraphError> {
    let interactive = required_object(body, "interactive", "interactive")?;
    let Some(interactive_type) = non_empty_str(interactive, "type") else {
        return Err(GraphError::parameter_missing(
            "The parameter interactive['type'] is required.",
        ));
    };
    let Some(action) = interactive.get("action").and_then(Value::as_object) else {
        return Err(GraphError::parameter_missing(
            "The parameter interactive['action'] is required.",
        ));
    };
    match interactive_type {
        "button" => {
            interactive_body(interactive, true)?;
            buttons(action)
        }
        "list" => {
            interactive_body(interactive, true)?;
            list(action)
        }
        other if OTHER_INTERACTIVE_TYPES.contains(&other) => interactive_body(interactive, false),
        other => Err(GraphError::invalid_parameter(format!(
            "Param interactive['type'] must be one of {{BUTTON, LIST, CTA_URL, FLOW, PRODUCT, \
             PRODUCT_LIST, CATALOG_MESSAGE, LOCATION_REQUEST_MESSAGE}} - got \"{other}\"."
        ))),
    }
}

fn interactive_body(interactive: &Map<String, Value>, required: bool) -> Result<(), GraphError> {
    let text = interactive
        .get("body")
        .and_then(Value::as_object)
        .and_then(|body| body.get("text"))
        .and_then(Value::as_str);
    match text {
        None if required => Err(GraphError::parameter_missing(
            "The parameter interactive['body']['text'] is required.",
        )),
        None => Ok(()),
        Some(text) => {
            let length = text.chars().count();
            if length == 0 || length > INTERACTIVE_BODY_MAX_CHARS {
                Err(GraphError::parameter_not_valid(format!(
                    "Body text length invalid. Min length: 1, Max length: {INTERACTIVE_BODY_MAX_CHARS}"
                )))
            } else {
                Ok(())
            }
        }
    }
}

fn buttons(action: &Map<String, Value>) -> Result<(), GraphError> {
    let buttons = match action.get("buttons") {
        Some(Value::Array(buttons)) => buttons.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param interactive['action']['buttons'] must be an array.",
            ));
        }
    };
    if buttons.is_empty() || buttons.len() > BUTTONS_MAX {
        return Err(GraphError::parameter_not_valid(format!(
            "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: {BUTTONS_MAX}"
        )));
    }
    let mut seen_ids: [&str; BUTTONS_MAX] = [""; BUTTONS_MAX];
    for (index, button) in buttons.iter().enumerate() {
        if button.get("type").and_then(Value::as_str) != Some("reply") {
            return Err(GraphError::invalid_parameter(format!(
                "Param interactive['action']['buttons'][{index}]['type'] must be one of {{REPLY}}."
            )));
        }
        let reply = button.get("reply").and_then(Value::as_object);
        let id = reply.and_then(|reply| non_empty_str(reply, "id"));
        let title = reply.and_then(|reply| reply.get("title")).and_then(Value::as_str);
        let (Some(id), Some(title)) = (id, title) else {
            return Err(GraphError::parameter_missing(format!(
                "The parameter interactive['action']['buttons'][{index}]['reply'] requires id and title."
            )));
        };
        let title_length = title.chars().count();
        if title_length == 0 || title_length > BUTTON_TITLE_MAX_CHARS {
            return Err(GraphError::parameter_not_valid(format!(
                "Button title length invalid. Min length: 1, Max length: {BUTTON_TITLE_MAX_CHARS}"
            )));
        }
        if id.chars().count() > BUTTON_ID_MAX_CHARS {
            return Err(GraphError::parameter_not_valid(format!(
                "Button id length invalid. Min length: 1, Max length: {BUTTON_ID_MAX_CHARS}"
            )));
        }
        if seen_ids[..index].contains(&id) {
            return Err(GraphError::parameter_not_valid("Buttons must have unique ids."));
        }
        seen_ids[index] = id;
    }
    Ok(())
}

fn list(action: &Map<String, Value>) -> Result<(), GraphError> {
    let Some(button) = action.get("button").and_then(Value::as_str) else {
        return Err(GraphError::parameter_missing(
            "The parameter interactive['action']['button'] is required.",
        ));
    };
    let button_length = button.chars().count();
    if button_length == 0 || button_length > LIST_BUTTON_MAX_CHARS {
        return Err(GraphError::parameter_not_valid(format!(
            "Button text length invalid. Min length: 1, Max length: {LIST_BUTTON_MAX_CHARS}"
        )));
    }
    let Some(sections) = action.get("sections").and_then(Value::as_array) else {
        return Err(GraphError::parameter_missing(
            "The parameter interactive['action']['sections'] is required.",
        ));
    };
    if sections.is_empty() || sections.len() > LIST_SECTIONS_MAX {
        return Err(GraphError::parameter_not_valid(format!(
            "Invalid sections count. Min allowed sections: 1, Max allowed sections: {LIST_SECTIONS_MAX}"
        )));
    }
    let rows: usize = sections
        .iter()
        .map(|section| section.get("rows").and_then(Value::as_array).map_or(0, Vec::len))
        .sum();
    if rows > LIST_ROWS_MAX {
        return Err(GraphError::parameter_not_valid(format!(
            "Total row count exceed max allowed count: {LIST_ROWS_MAX}"
        )));
    }
    let several_sections = sections.len() > 1;
    for (section_index, section) in sections.iter().enumerate() {
        let title = section.get("title").and_then(Value::as_str);
        match title {
            None if several_sections => {
                return Err(GraphError::parameter_missing(format!(
                    "The parameter interactive['action']['sections'][{section_index}]['title'] \
                     is required when there is more than one section."
                )));
            }
            Some(title) if title.chars().count() > SECTION_TITLE_MAX_CHARS => {
                return Err(GraphError::parameter_not_valid(format!(
                    "Section title length invalid. Max length: {SECTION_TITLE_MAX_CHARS}"
                )));
            }
            _ => {}
        }
        let Some(rows) = section.get("rows").and_then(Value::as_array) else {
            return Err(GraphError::parameter_missing(format!(
                "The parameter interactive['action']['sections'][{section_index}]['rows'] is required."
            )));
        };
        if rows.is_empty() {
            return Err(GraphError::parameter_not_valid(format!(
                "Invalid rows count in section {section_index}. Min allowed rows: 1"
            )));
        }
        for row in rows {
            row_checks(row, section_index)?;
        }
    }
    Ok(())
}

fn row_checks(row: &Value, section_index: usize) -> Result<(), GraphError> {
    let id = row.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
    let title = row.get("title").and_then(Value::as_str);
    let (Some(id), Some(title)) = (id, title) else {
        return Err(GraphError::parameter_missing(format!(
            "The parameter interactive['action']['sections'][{section_index}]['rows'] requires id and title."
        )));
    };
    let title_length = title.chars().count();
    if title_length == 0 || title_length > ROW_TITLE_MAX_CHARS {
        return Err(GraphError::parameter_not_valid(format!(
            "Row title length invalid. Min length: 1, Max length: {ROW_TITLE_MAX_CHARS}"
        )));
    }
    if id.chars().count() > ROW_ID_MAX_CHARS {
        return Err(GraphError::parameter_not_valid(format!(
            "Row id length invalid. Min length: 1, Max length: {ROW_ID_MAX_CHARS}"
        )));
    }
    if let Some(description) = row.get("description").and_then(Value::as_str)
        && description.chars().count() > ROW_DESCRIPTION_MAX_CHARS
    {
        return Err(GraphError::parameter_not_valid(format!(
            "Row description length invalid. Max length: {ROW_DESCRIPTION_MAX_CHARS}"
        )));
    }
    Ok(())
}

fn required_object<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    name: &str,
) -> Result<&'a Map<String, Value>, GraphError> {
    match body.get(key) {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) => Err(GraphError::parameter_missing(format!(
            "The parameter {name} is required."
        ))),
        Some(_) => Err(GraphError::invalid_parameter(format!(
            "Param {name} must be a JSON object."
        ))),
    }
}

fn non_empty_str<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests;
