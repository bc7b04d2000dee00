//! The send-window config: its JSON shape, the defaults, and validation into the
//! [`Config`] the policy decides with (a [`Schedule`] per category, overrides per country
//! calling code, and the priorities that bypass windows).
//!
//! Parsing is two steps. `wasp_sdk::parse_config` reads the JSON shape, refusing unknown
//! keys and wrong types with the field's path; then [`Config::parse`] checks the values
//! (clock times, weekdays, calling codes) and names the field at fault in the same dotted
//! form, for example `windows.marketing.start: expected HH:MM (00:00 to 23:59), got "9am"`.
//! Calls `wasp-sdk`, serde and [`crate::window`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use wasp_sdk::{Category, Priority};

use crate::window::{ClockTime, Days, Schedule, Window};

/// Default marketing window: 09:00 to 20:00 on the recipient's clock, every day.
pub const DEFAULT_MARKETING_WINDOW: (&str, &str) = ("09:00", "20:00");
/// Default utility window: 07:00 to 22:00 on the recipient's clock, every day.
pub const DEFAULT_UTILITY_WINDOW: (&str, &str) = ("07:00", "22:00");
/// Default `bypass_priorities`: critical messages go at any hour.
pub const DEFAULT_BYPASS_PRIORITIES: &[Priority] = &[Priority::Critical];
/// The `windows` value for "always open".
pub const ANY: &str = "any";

/// The validated config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Every category's schedule, defaults and `windows` merged.
    pub windows: CategorySchedules,
    /// Per country calling code, the categories it overrides.
    pub countries: BTreeMap<u16, CountrySchedules>,
    /// Messages at these priorities are never held back.
    pub bypass_priorities: Vec<Priority>,
}

/// A schedule for each category.
#[derive(Clone, Debug, PartialEq)]
pub struct CategorySchedules {
    pub authentication: Schedule,
    pub utility: Schedule,
    pub marketing: Schedule,
    pub service: Schedule,
}

/// The categories one country overrides; the others follow [`Config::windows`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountrySchedules {
    pub authentication: Option<Schedule>,
    pub utility: Option<Schedule>,
    pub marketing: Option<Schedule>,
    pub service: Option<Schedule>,
}

impl CategorySchedules {
    pub fn get(&self, category: Category) -> &Schedule {
        match category {
            Category::Authentication => &self.authentication,
            Category::Utility => &self.utility,
            Category::Marketing => &self.marketing,
            Category::Service => &self.service,
        }
    }
}

impl Default for CategorySchedules {
    fn default() -> Self {
        let daily = |(start, end): (&str, &str)| match (ClockTime::parse(start), ClockTime::parse(end)) {
            (Some(start), Some(end)) => Schedule::daily(start, end),
            // The defaults are valid clock times; a test checks it.
            _ => Schedule::Always,
        };
        CategorySchedules {
            authentication: Schedule::Always,
            utility: daily(DEFAULT_UTILITY_WINDOW),
            marketing: daily(DEFAULT_MARKETING_WINDOW),
            service: Schedule::Always,
        }
    }
}

impl CountrySchedules {
    pub fn get(&self, category: Category) -> Option<&Schedule> {
        match category {
            Category::Authentication => self.authentication.as_ref(),
            Category::Utility => self.utility.as_ref(),
            Category::Marketing => self.marketing.as_ref(),
            Category::Service => self.service.as_ref(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            windows: CategorySchedules::default(),
            countries: BTreeMap::new(),
            bypass_priorities: DEFAULT_BYPASS_PRIORITIES.to_vec(),
        }
    }
}

impl Config {
    /// Parses and validates the plugin's JSON config (`""` gives the defaults).
    pub fn parse(text: &str) -> Result<Config, String> {
        let json: ConfigJson = wasp_sdk::parse_config(text)?;
        Config::from_json(json).map_err(|error| error.to_string())
    }

    /// The schedule for `category` in the country with calling code `country_code`: the
    /// country's override, else the category's window.
    pub fn schedule(&self, country_code: u16, category: Category) -> &Schedule {
        self.countries
            .get(&country_code)
            .and_then(|country| country.get(category))
            .unwrap_or_else(|| self.windows.get(category))
    }

    /// Whether messages at `priority` skip the windows.
    pub fn bypasses(&self, priority: Priority) -> bool {
        self.bypass_priorities.contains(&priority)
    }

    fn from_json(json: ConfigJson) -> Result<Config, ConfigError> {
        let defaults = CategorySchedules::default();
        let overrides = json.windows.validate("windows")?;
        let windows = CategorySchedules {
            authentication: overrides.authentication.unwrap_or(defaults.authentication),
            utility: overrides.utility.unwrap_or(defaults.utility),
            marketing: overrides.marketing.unwrap_or(defaults.marketing),
            service: overrides.service.unwrap_or(defaults.service),
        };
        let mut countries = BTreeMap::new();
        for (key, country) in json.countries {
            let field = format!("countries.{key}");
            let code = parse_calling_code(&key).ok_or_else(|| ConfigError {
                field: field.clone(),
                problem: Problem::CallingCode { got: key.clone() },
            })?;
            countries.insert(code, country.validate(&field)?);
        }
        let bypass_priorities = json.bypass_priorities.map_or_else(
            || DEFAULT_BYPASS_PRIORITIES.to_vec(),
            |priorities| priorities.into_iter().map(Priority::from).collect(),
        );
        Ok(Config {
            windows,
            countries,
            bypass_priorities,
        })
    }
}

/// A country calling code: 1 to 3 digits, not starting with 0.
fn parse_calling_code(text: &str) -> Option<u16> {
    let digits_only = !text.is_empty() && text.len() <= 3 && text.bytes().all(|byte| byte.is_ascii_digit());
    (digits_only && !text.starts_with('0'))
        .then(|| text.parse().ok())
        .flatten()
}

/// A value the config refuses, and the field it is in (`windows.marketing[1].days[0]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a config value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a time of day written `HH:MM`.
    ClockTime { got: String },
    /// A window that starts when it ends.
    EmptyWindow { at: ClockTime },
    /// Not a weekday's name.
    Weekday { got: String },
    /// `days` given but empty: the window would never open.
    NoDays,
    /// `[]` as a category's windows: it would never open.
    NoWindows,
    /// A `countries` key that is not a calling code.
    CallingCode { got: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: ", self.field)?;
        match &self.problem {
            Problem::ClockTime { got } => write!(formatter, "expected HH:MM (00:00 to 23:59), got {got:?}"),
            Problem::EmptyWindow { at } => write!(
                formatter,
                "start and end are both {at}; a window needs two different times (use \"{ANY}\" to never close)"
            ),
            Problem::Weekday { got } => {
                write!(
                    formatter,
                    "expected a weekday (monday to sunday, or mon to sun), got {got:?}"
                )
            }
            Problem::NoDays => write!(formatter, "expected at least one day (leave `days` out for every day)"),
            Problem::NoWindows => write!(formatter, "expected at least one window, or \"{ANY}\""),
            Problem::CallingCode { got } => {
                write!(formatter, "expected a country calling code such as \"49\", got {got:?}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The config as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConfigJson {
    windows: CategoryWindowsJson,
    countries: BTreeMap<String, CategoryWindowsJson>,
    bypass_priorities: Option<Vec<PriorityJson>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CategoryWindowsJson {
    authentication: Option<WindowsJson>,
    utility: Option<WindowsJson>,
    marketing: Option<WindowsJson>,
    service: Option<WindowsJson>,
}

impl CategoryWindowsJson {
    fn validate(self, field: &str) -> Result<CountrySchedules, ConfigError> {
        let schedule = |name: &str, windows: Option<WindowsJson>| {
            windows
                .map(|windows| windows.validate(&format!("{field}.{name}")))
                .transpose()
        };
        Ok(CountrySchedules {
            authentication: schedule("authentication", self.authentication)?,
            utility: schedule("utility", self.utility)?,
            marketing: schedule("marketing", self.marketing)?,
            service: schedule("service", self.service)?,
        })
    }
}

/// A category's windows as written: `"any"`, one window, or a list of windows.
#[derive(Debug)]
enum WindowsJson {
    Any,
    One(WindowJson),
    Several(Vec<WindowJson>),
}

impl WindowsJson {
    fn validate(self, field: &str) -> Result<Schedule, ConfigError> {
        match self {
            WindowsJson::Any => Ok(Schedule::Always),
            WindowsJson::One(window) => Ok(Schedule::Windows(vec![window.validate(field)?])),
            WindowsJson::Several(windows) if windows.is_empty() => Err(ConfigError {
                field: field.to_string(),
                problem: Problem::NoWindows,
            }),
            WindowsJson::Several(windows) => windows
                .into_iter()
                .enumerate()
                .map(|(index, window)| window.validate(&format!("{field}[{index}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Schedule::Windows),
        }
    }
}

impl<'de> Deserialize<'de> for WindowsJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowsVisitor;

        impl<'de> Visitor<'de> for WindowsVisitor {
            type Value = WindowsJson;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter
                    .write_str("\"any\", a window {\"start\": \"HH:MM\", \"end\": \"HH:MM\"}, or a list of windows")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WindowsJson, E> {
                if value == ANY {
                    Ok(WindowsJson::Any)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(value), &self))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WindowsJson, A::Error> {
                WindowJson::deserialize(de::value::MapAccessDeserializer::new(map)).map(WindowsJson::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WindowsJson, A::Error> {
                Vec::<WindowJson>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(WindowsJson::Several)
            }
        }

        deserializer.deserialize_any(WindowsVisitor)
    }
}

/// One window as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowJson {
    start: String,
    end: String,
    #[serde(default)]
    days: Option<Vec<String>>,
}

impl WindowJson {
    fn validate(self, field: &str) -> Result<Window, ConfigError> {
        let clock = |key: &str, text: String| {
            ClockTime::parse(&text).ok_or_else(|| ConfigError {
                field: format!("{field}.{key}"),
                problem: Problem::ClockTime { got: text },
            })
        };
        let start = clock("start", self.start)?;
        let end = clock("end", self.end)?;
        if start == end {
            return Err(ConfigError {
                field: field.to_string(),
                problem: Problem::EmptyWindow { at: start },
            });
        }
        let days = match self.days {
            None => Days::ALL,
            Some(names) if names.is_empty() => {
                return Err(ConfigError {
                    field: format!("{field}.days"),
                    problem: Problem::NoDays,
                });
            }
            Some(names) => names
                .into_iter()
                .enumerate()
                .try_fold(Days::NONE, |days, (index, name)| match Days::parse_weekday(&name) {
                    Some(weekday) => Ok(days.with(weekday)),
                    None => Err(ConfigError {
                        field: format!("{field}.days[{index}]"),
                        problem: Problem::Weekday { got: name },
                    }),
                })?,
        };
        Ok(Window { start, end, days })
    }
}

/// A priority as written: the contract's names.
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

#[cfg(test)]
mod tests;
