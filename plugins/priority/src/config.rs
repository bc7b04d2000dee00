//! The priority config: its JSON shape, the default rules, and validation into the
//! [`Config`] the policy classifies with (a class per category, a class per tag).
//!
//! `wasp_sdk::parse_config` reads the JSON shape, refusing unknown keys and unknown
//! classes with the field's path (``config field `categories.utility`: unknown variant
//! `urgent` ...``); [`Config::parse`] then checks the tag names. Calls `wasp-sdk` and serde.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use wasp_sdk::{Category, Priority};

/// Default class of authentication messages: one-time codes cannot wait.
pub const DEFAULT_AUTHENTICATION: Priority = Priority::Critical;
/// Default class of utility messages.
pub const DEFAULT_UTILITY: Priority = Priority::Normal;
/// Default class of marketing messages.
pub const DEFAULT_MARKETING: Priority = Priority::Bulk;
/// Default class of service messages.
pub const DEFAULT_SERVICE: Priority = Priority::Normal;
/// Default tag rules: customs holds and payments are time-sensitive.
pub const DEFAULT_TAGS: &[(&str, Priority)] = &[("customs", Priority::High), ("payment", Priority::High)];
/// The longest tag the host accepts on a message; a longer rule could never match.
pub const MAX_TAG_CHARS: usize = 64;

/// The validated config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The class of each category.
    pub categories: CategoryClasses,
    /// The class of each tag; a message's matching tags win over its category.
    pub tags: BTreeMap<String, Priority>,
}

/// A class for each category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CategoryClasses {
    pub authentication: Priority,
    pub utility: Priority,
    pub marketing: Priority,
    pub service: Priority,
}

impl CategoryClasses {
    pub fn get(&self, category: Category) -> Priority {
        match category {
            Category::Authentication => self.authentication,
            Category::Utility => self.utility,
            Category::Marketing => self.marketing,
            Category::Service => self.service,
        }
    }
}

impl Default for CategoryClasses {
    fn default() -> Self {
        CategoryClasses {
            authentication: DEFAULT_AUTHENTICATION,
            utility: DEFAULT_UTILITY,
            marketing: DEFAULT_MARKETING,
            service: DEFAULT_SERVICE,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            categories: CategoryClasses::default(),
            tags: DEFAULT_TAGS
                .iter()
                .map(|(tag, class)| (tag.to_string(), *class))
                .collect(),
        }
    }
}

impl Config {
    /// Parses and validates the plugin's JSON config (`""` gives the defaults).
    pub fn parse(text: &str) -> Result<Config, String> {
        let json: ConfigJson = wasp_sdk::parse_config(text)?;
        Config::from_json(json).map_err(|error| error.to_string())
    }

    fn from_json(json: ConfigJson) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let categories = CategoryClasses {
            authentication: json
                .categories
                .authentication
                .map_or(defaults.categories.authentication, Priority::from),
            utility: json
                .categories
                .utility
                .map_or(defaults.categories.utility, Priority::from),
            marketing: json
                .categories
                .marketing
                .map_or(defaults.categories.marketing, Priority::from),
            service: json
                .categories
                .service
                .map_or(defaults.categories.service, Priority::from),
        };
        let mut tags = defaults.tags;
        for (tag, class) in json.tags {
            let chars = tag.chars().count();
            if chars == 0 || chars > MAX_TAG_CHARS {
                return Err(ConfigError::TagLength { tag, chars });
            }
            match class {
                Some(class) => tags.insert(tag, class.into()),
                None => tags.remove(&tag),
            };
        }
        Ok(Config { categories, tags })
    }
}

/// A value the config refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A tag rule's name is empty or longer than a message's tag can be.
    TagLength { tag: String, chars: usize },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TagLength { tag, chars } => write!(
                formatter,
                "tags.{tag}: a tag has 1 to {MAX_TAG_CHARS} characters, this one {chars}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The config as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigJson {
    categories: CategoriesJson,
    /// `null` removes a default rule.
    tags: BTreeMap<String, Option<PriorityJson>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CategoriesJson {
    authentication: Option<PriorityJson>,
    utility: Option<PriorityJson>,
    marketing: Option<PriorityJson>,
    service: Option<PriorityJson>,
}

/// A class as written: the contract's names.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PriorityJson {
    Critical,
    High,
    Normal,
    Bulk,
}

impl From<PriorityJson> for Priority {
    fn from(value: PriorityJson) -> Self {
        match value {
            PriorityJson::Critical => Priority::Critical,
            PriorityJson::High => Priority::High,
            PriorityJson::Normal => Priority::Normal,
            PriorityJson::Bulk => Priority::Bulk,
        }
    }
}
