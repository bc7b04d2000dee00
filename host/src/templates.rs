//! Message templates as the business defines them: the definition in the Cloud API's own
//! creation format (name, language, category, components), what a lint of it found, and the
//! statuses a template version goes through from draft to Meta's verdict.
//!
//! The store keeps the versions, `api::templates` serves them, `templates::sync` (the
//! submitter) takes lint-clean versions to the Cloud API and brings their status back, and
//! the policy runtime runs each plugin's `on-template` check. Nothing here does I/O.

pub mod registry;
pub mod sync;

use serde::{Deserialize, Deserializer, Serialize};

use crate::message::Category;

pub use registry::{Registry, SendCheck};

/// `[templates]`: how template versions are reviewed and kept in step with the Cloud API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// `meta`: lint-clean versions go to the Cloud API at once. `manual`: a person approves
    /// (or rejects) each one over the API first.
    pub review: Review,
    /// Refuse, at submit, a message naming a template that is not approved in its language
    /// (only where `channel.cloud_api.business_account_id` is set).
    pub check_at_submit: bool,
    /// How often waiting versions are submitted and pending ones asked about.
    pub sync_interval_ms: u64,
    /// How often every template of the account is listed and reconciled.
    pub full_sync_interval_ms: u64,
}

pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 5_000;
pub const DEFAULT_FULL_SYNC_INTERVAL_MS: u64 = 300_000;

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            review: Review::Meta,
            check_at_submit: true,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            full_sync_interval_ms: DEFAULT_FULL_SYNC_INTERVAL_MS,
        }
    }
}

impl TemplatesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.sync_interval_ms == 0 || self.full_sync_interval_ms < self.sync_interval_ms {
            return Err(
                "templates.sync_interval_ms must be at least 1 and at most templates.full_sync_interval_ms".into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    Meta,
    Manual,
}

/// A template as it is created at the Cloud API (`POST /{waba-id}/message_templates`),
/// one language of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDefinition {
    /// `a-z`, `0-9` and `_`, up to 512 characters.
    #[schema(example = "order_shipped")]
    pub name: String,
    /// Meta's language code, such as `en_US` or `de`.
    #[schema(example = "en")]
    pub language: String,
    /// `AUTHENTICATION`, `MARKETING` or `UTILITY` as Meta writes it (lower case accepted).
    #[serde(deserialize_with = "template_category", serialize_with = "upper_category")]
    #[schema(value_type = String, example = "UTILITY")]
    pub category: Category,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`), as Meta writes it (lower case accepted).
    #[serde(default)]
    pub parameter_format: ParameterFormat,
    pub components: Vec<DefinitionComponent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ParameterFormat {
    #[default]
    #[serde(alias = "positional")]
    Positional,
    #[serde(alias = "named")]
    Named,
}

/// Templates exist for the three business-initiated categories only.
fn template_category<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Category, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.to_ascii_lowercase().as_str() {
        "authentication" => Ok(Category::Authentication),
        "marketing" => Ok(Category::Marketing),
        "utility" => Ok(Category::Utility),
        _ => Err(serde::de::Error::custom(format!(
            "unknown template category {text:?}, expected one of: AUTHENTICATION, MARKETING, UTILITY"
        ))),
    }
}

fn upper_category<S: serde::Serializer>(category: &Category, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&category.as_str().to_ascii_uppercase())
}

/// Where one version of a template stands. The first two are wasp's own; the rest are the
/// Cloud API's statuses, synced back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    /// Lint-clean, waiting for a person to approve or reject it (`templates.review = "manual"`).
    AwaitingReview,
    /// Lint-clean (and approved by a person where review is manual), to be created at the
    /// Cloud API by the submitter.
    Submitting,
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    pub const ALL: [TemplateStatus; 7] = [
        TemplateStatus::AwaitingReview,
        TemplateStatus::Submitting,
        TemplateStatus::Pending,
        TemplateStatus::Approved,
        TemplateStatus::Rejected,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::AwaitingReview => "AWAITING_REVIEW",
            TemplateStatus::Submitting => "SUBMITTING",
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
        }
    }

    /// Meta's status or webhook event name; events that are no status of a live template
    /// (`PENDING_DELETION`, `DELETED`, ...) map to `Disabled`, `IN_APPEAL` to `Pending`;
    /// others (`FLAGGED`, a quality warning) are no change of status.
    pub fn from_meta(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "PENDING" | "IN_APPEAL" => TemplateStatus::Pending,
            "APPROVED" | "REINSTATED" => TemplateStatus::Approved,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" => TemplateStatus::Paused,
            "DISABLED" | "PENDING_DELETION" | "DELETED" | "LIMIT_EXCEEDED" => TemplateStatus::Disabled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TemplateStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for TemplateStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TemplateStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown template status {text:?}, expected one of: {}",
                    TemplateStatus::ALL.map(TemplateStatus::as_str).join(", ")
                )
            })
    }
}

/// One component of a definition; Meta writes the type upper case (`BODY`) and we accept
/// either case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum DefinitionComponent {
    #[serde(rename = "HEADER", alias = "header")]
    Header {
        /// `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT` or `LOCATION`.
        format: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        example: Option<serde_json::Value>,
    },
    #[serde(rename = "BODY", alias = "body")]
    Body {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        example: Option<serde_json::Value>,
    },
    #[serde(rename = "FOOTER", alias = "footer")]
    Footer { text: String },
    #[serde(rename = "BUTTONS", alias = "buttons")]
    Buttons { buttons: Vec<DefinitionButton> },
}

/// A template button: `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`, `OTP`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionButton {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
}

impl TemplateDefinition {
    pub fn header(&self) -> Option<(&str, Option<&str>)> {
        self.components.iter().find_map(|component| match component {
            DefinitionComponent::Header { format, text, .. } => Some((format.as_str(), text.as_deref())),
            _ => None,
        })
    }

    pub fn body(&self) -> Option<&str> {
        self.components.iter().find_map(|component| match component {
            DefinitionComponent::Body { text, .. } => Some(text.as_str()),
            _ => None,
        })
    }

    pub fn footer(&self) -> Option<&str> {
        self.components.iter().find_map(|component| match component {
            DefinitionComponent::Footer { text } => Some(text.as_str()),
            _ => None,
        })
    }

    pub fn buttons(&self) -> &[DefinitionButton] {
        self.components
            .iter()
            .find_map(|component| match component {
                DefinitionComponent::Buttons { buttons } => Some(buttons.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// The example values Meta requires for the body's parameters, in order.
    pub fn body_examples(&self) -> Vec<String> {
        let example = self.components.iter().find_map(|component| match component {
            DefinitionComponent::Body { example, .. } => example.as_ref(),
            _ => None,
        });
        let Some(example) = example else {
            return Vec::new();
        };
        // Positional: {"body_text": [["Ada", "42"]]}; named: {"body_text_named_params":
        // [{"param_name": "first_name", "example": "Ada"}]}.
        if let Some(rows) = example
            .get("body_text")
            .and_then(|value| value.get(0))
            .and_then(|value| value.as_array())
        {
            return rows
                .iter()
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect();
        }
        example
            .get("body_text_named_params")
            .and_then(|value| value.as_array())
            .map(|params| {
                params
                    .iter()
                    .filter_map(|param| param.get("example").and_then(|value| value.as_str()).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How bad a lint finding is: an `error` keeps the template from being submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing a template check found. Fields in alphabetical order, as every answer's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LintFinding {
    /// The check's own name, such as `button-count`.
    pub check: String,
    /// The JSON path in the definition, such as `components[1].text`.
    pub field: String,
    pub message: String,
    /// The plugin whose check found it.
    pub plugin: String,
    pub severity: Severity,
}
