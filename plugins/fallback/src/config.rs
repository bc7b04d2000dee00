//! The fallback policy's config: one typed tree with a section per rule
//! (`degraded_region`, `sms`, `old_device`), every key optional with its default as a named
//! constant beside it, unknown keys refused, and the checks a value must pass, each error
//! naming the field. Calls only `wasp-sdk` (for parsing) and serde.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use wasp_sdk::Category;

/// Default `degraded_region.recheck_ms`: how long a document, video or audio waits before
/// the region is looked at again.
pub const DEFAULT_RECHECK_MS: u64 = 60_000;
/// Default `degraded_region.max_wait_ms`: the longest a document, video or audio waits for
/// the region to recover before it goes as text with its link.
pub const DEFAULT_MAX_WAIT_MS: u64 = 30 * 60_000;
/// Default `degraded_region.image_without_link_text`: the text an image uploaded by id
/// (so without a link to give) and without a caption becomes.
pub const DEFAULT_IMAGE_WITHOUT_LINK_TEXT: &str =
    "We tried to send you an image, but it cannot be delivered right now. We will share it again soon.";
/// Default `degraded_region.follow_degraded_mode`: the host's degraded mode (a health rule
/// shedding load) degrades media as a degraded region does.
pub const DEFAULT_FOLLOW_DEGRADED_MODE: bool = true;
/// Shortest `degraded_region.recheck_ms` accepted: shorter rechecks only spin the dispatcher.
pub const MIN_RECHECK_MS: u64 = 100;
/// Longest `degraded_region.recheck_ms` accepted.
pub const MAX_RECHECK_MS: u64 = 3_600_000;
/// Longest `degraded_region.max_wait_ms` accepted.
pub const MAX_MAX_WAIT_MS: u64 = 86_400_000;

/// Default `sms.categories`: one-time codes and transactional updates are worth an SMS;
/// marketing and service replies are not.
pub const DEFAULT_SMS_CATEGORIES: [CategoryName; 2] = [CategoryName::Authentication, CategoryName::Utility];
/// Default `sms.unread_after_ms`: a message not read this long after `delivered` goes again
/// over SMS.
pub const DEFAULT_UNREAD_AFTER_MS: u64 = 120_000;
/// Shortest `sms.unread_after_ms` accepted.
pub const MIN_UNREAD_AFTER_MS: u64 = 1_000;
/// Longest `sms.unread_after_ms` accepted: a fallback a day late helps nobody.
pub const MAX_UNREAD_AFTER_MS: u64 = 86_400_000;
/// Default `sms.undeliverable_codes`: Meta's error codes of a `failed` status that send the
/// message over SMS at once. Only 131026 ("Message undeliverable": the number is not on
/// WhatsApp, or its app cannot receive the message) says the recipient cannot be reached on
/// WhatsApp; the README explains why 131047, 131049, 130472, 131050 and 131000 are left out.
pub const DEFAULT_UNDELIVERABLE_CODES: [i32; 1] = [131_026];
/// Default `sms.default_prefix`: put before the joined body parameters of a template that
/// has no text in `sms.templates`.
pub const DEFAULT_SMS_DEFAULT_PREFIX: &str = "";
/// The longest SMS body Twilio accepts (it splits it into segments).
pub const TWILIO_MAX_BODY_CHARS: u32 = 1_600;
/// Default `sms.max_chars`.
pub const DEFAULT_SMS_MAX_CHARS: u32 = TWILIO_MAX_BODY_CHARS;
/// Shortest `sms.max_chars` accepted.
pub const MIN_SMS_MAX_CHARS: u32 = 20;
/// Default `sms.cancel_on_inbound`.
pub const DEFAULT_CANCEL_ON_INBOUND: bool = true;

/// Default `old_device.hints`.
pub const DEFAULT_OLD_DEVICE_HINT: &str = "old-device";
/// Default `old_device.reply_hint`: the line under the numbered options.
pub const DEFAULT_REPLY_HINT: &str = "Reply with the number.";
/// Longest `old_device.reply_hint` accepted: a line, not a paragraph.
pub const MAX_REPLY_HINT_CHARS: usize = 200;

/// Characters the Cloud API accepts in a text body.
pub const CLOUD_API_MAX_TEXT_CHARS: usize = 4_096;

/// The plugin's config. Every key is optional; unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub degraded_region: DegradedRegionConfig,
    pub sms: SmsConfig,
    pub old_device: OldDeviceConfig,
}

/// Rule (a): media to a degraded region.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DegradedRegionConfig {
    pub enabled: bool,
    /// How long a document, video or audio is deferred at a time.
    pub recheck_ms: u64,
    /// The longest it waits in all, counted from its first deferral.
    pub max_wait_ms: u64,
    /// The text of an image uploaded by id without a caption.
    pub image_without_link_text: String,
    /// While the host is in degraded mode (shedding load, `context.degraded_mode`), treat
    /// every region as degraded.
    pub follow_degraded_mode: bool,
}

impl Default for DegradedRegionConfig {
    fn default() -> Self {
        DegradedRegionConfig {
            enabled: true,
            recheck_ms: DEFAULT_RECHECK_MS,
            max_wait_ms: DEFAULT_MAX_WAIT_MS,
            image_without_link_text: DEFAULT_IMAGE_WITHOUT_LINK_TEXT.to_string(),
            follow_degraded_mode: DEFAULT_FOLLOW_DEGRADED_MODE,
        }
    }
}

/// Rule (b): unread or undeliverable messages go again over SMS.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    pub enabled: bool,
    /// The categories that fall back.
    pub categories: Vec<CategoryName>,
    /// A message not read this long after `delivered` falls back.
    pub unread_after_ms: u64,
    /// A `failed` status with one of these Meta error codes falls back at once.
    pub undeliverable_codes: Vec<i32>,
    /// Template name → SMS text with `{{1}}`, `{{2}}`… filled from the body parameters.
    pub templates: BTreeMap<String, String>,
    /// Put before the joined body parameters of a template not in `templates`.
    pub default_prefix: String,
    /// Longest SMS text; longer text is cut on a character boundary, ending in `...`.
    pub max_chars: u32,
    /// An inbound message from the recipient cancels their pending fallbacks.
    pub cancel_on_inbound: bool,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            enabled: true,
            categories: DEFAULT_SMS_CATEGORIES.to_vec(),
            unread_after_ms: DEFAULT_UNREAD_AFTER_MS,
            undeliverable_codes: DEFAULT_UNDELIVERABLE_CODES.to_vec(),
            templates: BTreeMap::new(),
            default_prefix: DEFAULT_SMS_DEFAULT_PREFIX.to_string(),
            max_chars: DEFAULT_SMS_MAX_CHARS,
            cancel_on_inbound: DEFAULT_CANCEL_ON_INBOUND,
        }
    }
}

impl SmsConfig {
    /// Whether messages of `category` fall back.
    pub fn covers(&self, category: Category) -> bool {
        self.categories.iter().any(|name| name.category() == category)
    }
}

/// Rule (c): plain text for old devices.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OldDeviceConfig {
    pub enabled: bool,
    /// A recipient with any of these device hints gets plain text.
    pub hints: Vec<String>,
    /// The line under numbered options; empty for none.
    pub reply_hint: String,
}

impl Default for OldDeviceConfig {
    fn default() -> Self {
        OldDeviceConfig {
            enabled: true,
            hints: vec![DEFAULT_OLD_DEVICE_HINT.to_string()],
            reply_hint: DEFAULT_REPLY_HINT.to_string(),
        }
    }
}

impl OldDeviceConfig {
    /// Whether a recipient with these device hints has an old device.
    pub fn matches(&self, device_hints: &[String]) -> bool {
        device_hints.iter().any(|hint| self.hints.contains(hint))
    }
}

/// A message category as the config (and the SMS timer payload) spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryName {
    Authentication,
    Utility,
    Marketing,
    Service,
}

impl CategoryName {
    pub fn category(self) -> Category {
        match self {
            CategoryName::Authentication => Category::Authentication,
            CategoryName::Utility => Category::Utility,
            CategoryName::Marketing => Category::Marketing,
            CategoryName::Service => Category::Service,
        }
    }

    pub fn of(category: Category) -> CategoryName {
        match category {
            Category::Authentication => CategoryName::Authentication,
            Category::Utility => CategoryName::Utility,
            Category::Marketing => CategoryName::Marketing,
            Category::Service => CategoryName::Service,
        }
    }
}

/// Why a config is refused. Each names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A number outside its range.
    OutOfRange {
        key: String,
        value: u64,
        minimum: u64,
        maximum: u64,
    },
    /// A text or list that must not be empty (or only whitespace).
    Empty { key: String },
    /// A text longer than what it is sent as allows.
    TooLong { key: String, chars: usize, maximum: usize },
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
                "config field `{key}` must be {minimum} to {maximum}, got {value}"
            ),
            ConfigError::Empty { key } => write!(formatter, "config field `{key}` must not be empty"),
            ConfigError::TooLong { key, chars, maximum } => write!(
                formatter,
                "config field `{key}` has {chars} characters; at most {maximum} fit"
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

    /// Checks every value, section by section; the first fault is returned. A section that
    /// is turned off is checked too, so turning it on later cannot fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let degraded = &self.degraded_region;
        in_range(
            "degraded_region.recheck_ms",
            degraded.recheck_ms,
            MIN_RECHECK_MS,
            MAX_RECHECK_MS,
        )?;
        in_range("degraded_region.max_wait_ms", degraded.max_wait_ms, 0, MAX_MAX_WAIT_MS)?;
        text(
            "degraded_region.image_without_link_text",
            &degraded.image_without_link_text,
            CLOUD_API_MAX_TEXT_CHARS,
        )?;

        let sms = &self.sms;
        if sms.categories.is_empty() {
            return Err(empty("sms.categories"));
        }
        in_range(
            "sms.unread_after_ms",
            sms.unread_after_ms,
            MIN_UNREAD_AFTER_MS,
            MAX_UNREAD_AFTER_MS,
        )?;
        in_range(
            "sms.max_chars",
            u64::from(sms.max_chars),
            u64::from(MIN_SMS_MAX_CHARS),
            u64::from(TWILIO_MAX_BODY_CHARS),
        )?;
        for (name, template) in &sms.templates {
            if name.trim().is_empty() {
                return Err(empty("sms.templates"));
            }
            text(
                &format!("sms.templates.{name}"),
                template,
                TWILIO_MAX_BODY_CHARS as usize,
            )?;
        }
        let prefix_chars = sms.default_prefix.chars().count();
        if prefix_chars > sms.max_chars as usize {
            return Err(ConfigError::TooLong {
                key: "sms.default_prefix".to_string(),
                chars: prefix_chars,
                maximum: sms.max_chars as usize,
            });
        }

        let old_device = &self.old_device;
        if old_device.hints.is_empty() {
            return Err(empty("old_device.hints"));
        }
        for (index, hint) in old_device.hints.iter().enumerate() {
            if hint.trim().is_empty() {
                return Err(empty(&format!("old_device.hints[{index}]")));
            }
        }
        let hint_chars = old_device.reply_hint.chars().count();
        if hint_chars > MAX_REPLY_HINT_CHARS {
            return Err(ConfigError::TooLong {
                key: "old_device.reply_hint".to_string(),
                chars: hint_chars,
                maximum: MAX_REPLY_HINT_CHARS,
            });
        }
        Ok(())
    }
}

fn in_range(key: &str, value: u64, minimum: u64, maximum: u64) -> Result<(), ConfigError> {
    if (minimum..=maximum).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            key: key.to_string(),
            value,
            minimum,
            maximum,
        })
    }
}

fn text(key: &str, value: &str, maximum: usize) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(empty(key));
    }
    let chars = value.chars().count();
    if chars > maximum {
        return Err(ConfigError::TooLong {
            key: key.to_string(),
            chars,
            maximum,
        });
    }
    Ok(())
}

fn empty(key: &str) -> ConfigError {
    ConfigError::Empty { key: key.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_configs_give_the_defaults() {
        for text in ["", "{}", "null", r#"{"sms": {}}"#] {
            assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
        }
        let config = Config::default();
        assert!(config.degraded_region.enabled && config.sms.enabled && config.old_device.enabled);
        assert_eq!(config.degraded_region.recheck_ms, 60_000);
        assert_eq!(config.degraded_region.max_wait_ms, 1_800_000);
        assert_eq!(config.sms.unread_after_ms, 120_000);
        assert_eq!(config.sms.undeliverable_codes, vec![131_026]);
        assert!(config.sms.covers(Category::Authentication) && config.sms.covers(Category::Utility));
        assert!(!config.sms.covers(Category::Marketing) && !config.sms.covers(Category::Service));
        assert_eq!(config.sms.max_chars, 1_600);
        assert_eq!(config.old_device.hints, vec!["old-device".to_string()]);
        assert_eq!(config.old_device.reply_hint, "Reply with the number.");
    }

    #[test]
    fn given_keys_override_defaults_per_section() {
        let config = Config::parse(
            r#"{"degraded_region": {"enabled": false, "recheck_ms": 500},
                "sms": {"categories": ["marketing"], "templates": {"otp": "Code {{1}}"}},
                "old_device": {"hints": ["kaios", "old-device"], "reply_hint": ""}}"#,
        )
        .expect("valid");
        assert!(!config.degraded_region.enabled);
        assert_eq!(config.degraded_region.recheck_ms, 500);
        assert_eq!(config.degraded_region.max_wait_ms, DEFAULT_MAX_WAIT_MS);
        assert!(config.sms.covers(Category::Marketing) && !config.sms.covers(Category::Utility));
        assert_eq!(config.sms.templates.get("otp").map(String::as_str), Some("Code {{1}}"));
        assert!(config.old_device.matches(&["kaios".to_string()]));
        assert!(!config.old_device.matches(&["android".to_string()]));
        assert_eq!(config.old_device.reply_hint, "");
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_field() {
        let cases = [
            (
                r#"{"degraded_region": {"recheck_ms": 10}}"#,
                "config field `degraded_region.recheck_ms` must be 100 to 3600000, got 10",
            ),
            (
                r#"{"degraded_region": {"max_wait_ms": 90000000}}"#,
                "config field `degraded_region.max_wait_ms` must be 0 to 86400000, got 90000000",
            ),
            (
                r#"{"degraded_region": {"image_without_link_text": " "}}"#,
                "config field `degraded_region.image_without_link_text` must not be empty",
            ),
            (
                r#"{"sms": {"unread_after_ms": 0}}"#,
                "config field `sms.unread_after_ms` must be 1000 to 86400000, got 0",
            ),
            (
                r#"{"sms": {"max_chars": 2000}}"#,
                "config field `sms.max_chars` must be 20 to 1600, got 2000",
            ),
            (
                r#"{"sms": {"categories": []}}"#,
                "config field `sms.categories` must not be empty",
            ),
            (
                r#"{"sms": {"templates": {"otp": ""}}}"#,
                "config field `sms.templates.otp` must not be empty",
            ),
            (
                r#"{"sms": {"max_chars": 20, "default_prefix": "A prefix much longer than twenty"}}"#,
                "config field `sms.default_prefix` has 32 characters; at most 20 fit",
            ),
            (
                r#"{"old_device": {"hints": []}}"#,
                "config field `old_device.hints` must not be empty",
            ),
            (
                r#"{"old_device": {"hints": ["old-device", ""]}}"#,
                "config field `old_device.hints[1]` must not be empty",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(Config::parse(text), Err(reason.to_string()), "{text}");
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused_naming_the_field() {
        let error = Config::parse(r#"{"sms": {"unread_ms": 5}}"#).expect_err("refused");
        assert!(error.starts_with("config field `sms"), "{error}");
        assert!(error.contains("unknown field `unread_ms`"), "{error}");
        let error = Config::parse(r#"{"sms": {"categories": ["otp"]}}"#).expect_err("refused");
        assert!(error.starts_with("config field `sms.categories[0]`"), "{error}");
        let error = Config::parse(r#"{"old_device": {"enabled": "yes"}}"#).expect_err("refused");
        assert!(error.starts_with("config field `old_device.enabled`"), "{error}");
        let error = Config::parse(r#"{"fallback": {}}"#).expect_err("refused");
        assert!(error.contains("unknown field `fallback`"), "{error}");
    }
}
