//! Template definitions as `on-template` sees them: the JSON paths a finding points at, and
//! the reading of Meta's creation JSON into the contract's [`TemplateDefinition`] (for
//! fixtures and native tests). Calls only serde.
//!
//! A finding's `field` is a JSON path into the definition as Meta takes it
//! (`POST /{waba-id}/message_templates`): `components[1].text` for the body text,
//! `components[3].buttons[2].text` for the label of the third button, `name` for the name.
//! The record says where each component sits (`body_index`, ...); the methods here build
//! the paths from that, so a plugin never counts components itself.

use serde::Deserialize;

use crate::{Category, LintFinding, Severity, TemplateButton, TemplateDefinition};

/// `components[i]` followed by `rest`, or `components` when the part is missing.
fn component_path(index: Option<u32>, rest: &str) -> String {
    match index {
        Some(index) => format!("components[{index}]{rest}"),
        None => "components".to_string(),
    }
}

impl TemplateDefinition {
    /// `components[i]`: the header component.
    pub fn header_field(&self) -> String {
        component_path(self.header_index, "")
    }

    /// `components[i].text`: the header's text.
    pub fn header_text_field(&self) -> String {
        component_path(self.header_index, ".text")
    }

    /// `components[i].text`: the body text.
    pub fn body_field(&self) -> String {
        component_path(self.body_index, ".text")
    }

    /// `components[i].example`: the body's example values.
    pub fn body_example_field(&self) -> String {
        component_path(self.body_index, ".example")
    }

    /// `components[i].text`: the footer text.
    pub fn footer_field(&self) -> String {
        component_path(self.footer_index, ".text")
    }

    /// `components[i].buttons`: the list of buttons.
    pub fn buttons_field(&self) -> String {
        component_path(self.buttons_index, ".buttons")
    }

    /// `components[i].buttons[n]`: one button (counted from 0).
    pub fn button_field(&self, button: usize) -> String {
        component_path(self.buttons_index, &format!(".buttons[{button}]"))
    }

    /// `components[i].buttons[n].text`: one button's label.
    pub fn button_text_field(&self, button: usize) -> String {
        component_path(self.buttons_index, &format!(".buttons[{button}].text"))
    }

    /// Reads a definition in Meta's creation format, as the host does: `name`, `language`,
    /// `category` (`AUTHENTICATION`, `MARKETING` or `UTILITY`, either case),
    /// `parameter_format` (`positional`, the default, or `named`) and `components`
    /// (`HEADER`, `BODY`, `FOOTER`, `BUTTONS`, either case). Unknown keys are refused.
    pub fn from_meta_json(value: &serde_json::Value) -> Result<TemplateDefinition, String> {
        let definition: DefinitionJson = serde_path_to_error::deserialize(value)
            .map_err(|error| format!("not a template definition: {}: {}", error.path(), error.inner()))?;
        definition.convert()
    }
}

impl LintFinding {
    /// An `error` finding of `check` at `field`.
    pub fn error(check: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> LintFinding {
        LintFinding {
            check: check.into(),
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `warning` finding of `check` at `field`.
    pub fn warning(check: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> LintFinding {
        LintFinding {
            check: check.into(),
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionJson {
    name: String,
    language: String,
    category: String,
    #[serde(default)]
    parameter_format: Option<String>,
    components: Vec<ComponentJson>,
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum ComponentJson {
    #[serde(rename = "HEADER", alias = "header")]
    Header {
        format: String,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        #[allow(dead_code)]
        example: Option<serde_json::Value>,
    },
    #[serde(rename = "BODY", alias = "body")]
    Body {
        text: String,
        #[serde(default)]
        example: Option<serde_json::Value>,
    },
    #[serde(rename = "FOOTER", alias = "footer")]
    Footer { text: String },
    #[serde(rename = "BUTTONS", alias = "buttons")]
    Buttons { buttons: Vec<ButtonJson> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ButtonJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    otp_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    example: Option<serde_json::Value>,
}

impl DefinitionJson {
    fn convert(self) -> Result<TemplateDefinition, String> {
        let category = match self.category.to_ascii_lowercase().as_str() {
            "authentication" => Category::Authentication,
            "marketing" => Category::Marketing,
            "utility" => Category::Utility,
            _ => {
                return Err(format!(
                    "unknown template category {:?}, expected one of: AUTHENTICATION, MARKETING, UTILITY",
                    self.category
                ));
            }
        };
        let parameter_format = match self.parameter_format.as_deref().map(str::to_ascii_lowercase) {
            None => "positional".to_string(),
            Some(format) if format == "positional" || format == "named" => format,
            Some(other) => {
                return Err(format!(
                    "unknown parameter_format {other:?}, expected positional or named"
                ));
            }
        };
        let mut definition = TemplateDefinition {
            name: self.name,
            language: self.language,
            category,
            parameter_format,
            header_format: None,
            header_text: None,
            body: String::new(),
            footer: None,
            buttons: Vec::new(),
            body_examples: Vec::new(),
            header_index: None,
            body_index: None,
            footer_index: None,
            buttons_index: None,
        };
        // The first component of each type counts, as it does for the host.
        for (index, component) in self.components.into_iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| "too many components".to_string())?;
            match component {
                ComponentJson::Header { format, text, .. } if definition.header_index.is_none() => {
                    definition.header_index = Some(index);
                    definition.header_format = Some(format.to_ascii_uppercase());
                    definition.header_text = text;
                }
                ComponentJson::Body { text, example } if definition.body_index.is_none() => {
                    definition.body_index = Some(index);
                    definition.body = text;
                    definition.body_examples = example.as_ref().map(body_examples).unwrap_or_default();
                }
                ComponentJson::Footer { text } if definition.footer_index.is_none() => {
                    definition.footer_index = Some(index);
                    definition.footer = Some(text);
                }
                ComponentJson::Buttons { buttons } if definition.buttons_index.is_none() => {
                    definition.buttons_index = Some(index);
                    definition.buttons = buttons
                        .into_iter()
                        .map(|button| TemplateButton {
                            kind: button.kind.to_ascii_uppercase(),
                            text: button.text,
                            url: button.url,
                            phone_number: button.phone_number,
                        })
                        .collect();
                }
                _ => {}
            }
        }
        Ok(definition)
    }
}

/// Positional: `{"body_text": [["Ada", "42"]]}`; named: `{"body_text_named_params":
/// [{"param_name": "first_name", "example": "Ada"}]}`.
fn body_examples(example: &serde_json::Value) -> Vec<String> {
    if let Some(row) = example
        .get("body_text")
        .and_then(|rows| rows.get(0))
        .and_then(|row| row.as_array())
    {
        return row
            .iter()
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect();
    }
    example
        .get("body_text_named_params")
        .and_then(|params| params.as_array())
        .map(|params| {
            params
                .iter()
                .filter_map(|param| {
                    param
                        .get("example")
                        .and_then(|value| value.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_reads_with_its_component_paths() {
        let definition = TemplateDefinition::from_meta_json(&json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Order"},
                {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships.", "example": {"body_text": [["Ada", "42"]]}},
                {"type": "FOOTER", "text": "Shop"},
                {"type": "BUTTONS", "buttons": [{"type": "quick_reply", "text": "Track"}]}
            ]
        }))
        .expect("a valid definition");
        assert_eq!(definition.category, Category::Utility);
        assert_eq!(definition.parameter_format, "positional");
        assert_eq!(definition.body_examples, vec!["Ada".to_string(), "42".to_string()]);
        assert_eq!(definition.buttons[0].kind, "QUICK_REPLY");
        assert_eq!(definition.header_text_field(), "components[0].text");
        assert_eq!(definition.body_field(), "components[1].text");
        assert_eq!(definition.footer_field(), "components[2].text");
        assert_eq!(definition.button_text_field(0), "components[3].buttons[0].text");
    }

    #[test]
    fn unknown_keys_and_categories_are_refused() {
        let unknown = TemplateDefinition::from_meta_json(&json!({
            "name": "a", "language": "en", "category": "UTILITY", "components": [], "colour": "red"
        }));
        assert!(unknown.unwrap_err().contains("colour"));
        let service = TemplateDefinition::from_meta_json(&json!({
            "name": "a", "language": "en", "category": "SERVICE", "components": []
        }));
        assert!(service.unwrap_err().contains("SERVICE"));
    }
}
