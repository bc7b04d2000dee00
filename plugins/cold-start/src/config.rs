//! The cold-start policy's config: the typed tree the operator's JSON parses into, each
//! default as a named constant, and the checks that refuse a config naming the field at
//! fault. Owns nothing else; calls only `wasp-sdk` (for parsing) and serde.

use std::fmt;

use serde::Deserialize;
use wasp_sdk::Priority;

/// Milliseconds in an hour.
pub const MILLISECONDS_PER_HOUR: u64 = 3_600_000;

/// Default `stranger_marketing`: marketing to a stranger is refused for good.
pub const DEFAULT_STRANGER_MARKETING: StrangerMarketing = StrangerMarketing::Reject;
/// Default `stranger_retry_ms`: 6 h.
pub const DEFAULT_STRANGER_RETRY_MS: u64 = 6 * MILLISECONDS_PER_HOUR;
/// Default `over_ramp`: marketing over the ramp waits.
pub const DEFAULT_OVER_RAMP: OverRamp = OverRamp::Defer;
/// Default `ramp_retry_ms`: 1 h.
pub const DEFAULT_RAMP_RETRY_MS: u64 = MILLISECONDS_PER_HOUR;
/// Default `ramp`: (min_interactions, marketing_per_24h, marketing_per_7d) per step.
pub const DEFAULT_RAMP: &[(u32, u32, u32)] = &[(1, 1, 3), (3, 2, 5), (10, 4, 10)];
/// Default `sender_tiers`: the Cloud API's messaging tiers, business-initiated
/// conversations per 24 h; `None` is unlimited.
pub const DEFAULT_SENDER_TIERS: &[Option<u32>] = &[Some(250), Some(2_000), Some(10_000), Some(100_000), None];
/// Default `start_tier`: a new sender starts at the first tier.
pub const DEFAULT_START_TIER: usize = 0;
/// Default `promote_at_share`: half the tier's limit used in 24 h earns the next tier.
pub const DEFAULT_PROMOTE_AT_SHARE: f64 = 0.5;
/// Default `min_hours_per_tier`.
pub const DEFAULT_MIN_HOURS_PER_TIER: u32 = 24;
/// Default `demote_on_red`.
pub const DEFAULT_DEMOTE_ON_RED: bool = true;
/// Default `over_tier_defer`.
pub const DEFAULT_OVER_TIER_DEFER: &[PriorityName] = &[PriorityName::Bulk];
/// Default `over_tier_retry_ms`: 1 h.
pub const DEFAULT_OVER_TIER_RETRY_MS: u64 = MILLISECONDS_PER_HOUR;
/// The longest any `*_retry_ms` may be: 7 days. A longer wait is almost surely a unit
/// mistake (seconds written as milliseconds the other way round cannot be caught, this can).
pub const MAX_RETRY_MS: u64 = 7 * 24 * MILLISECONDS_PER_HOUR;

/// The plugin's config. Every key is optional; unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What happens to marketing for a recipient who never wrote in.
    pub stranger_marketing: StrangerMarketing,
    /// How long marketing to a stranger waits, with `stranger_marketing` = `defer`.
    pub stranger_retry_ms: u64,
    /// Marketing allowed per recipient, by how often they have written in.
    pub ramp: Vec<RampStep>,
    /// What happens to marketing over the ramp.
    pub over_ramp: OverRamp,
    /// How long marketing over the ramp waits, with `over_ramp` = `defer`.
    pub ramp_retry_ms: u64,
    /// Business-initiated messages per 24 h a sender number may send at each warm-up tier;
    /// `null` (only last) is unlimited.
    pub sender_tiers: Vec<Option<u32>>,
    /// The tier index a sender number never seen before starts at.
    pub start_tier: usize,
    /// Share of the current tier's limit a sender must have used in 24 h to move up.
    pub promote_at_share: f64,
    /// Hours a sender stays at a tier before it may move up (or, while red, down) again.
    pub min_hours_per_tier: u32,
    /// A sender whose quality is red drops one tier.
    pub demote_on_red: bool,
    /// Priorities deferred once a sender has reached its tier's limit; others still go.
    pub over_tier_defer: Vec<PriorityName>,
    /// How long a message over the sender's tier waits.
    pub over_tier_retry_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stranger_marketing: DEFAULT_STRANGER_MARKETING,
            stranger_retry_ms: DEFAULT_STRANGER_RETRY_MS,
            ramp: DEFAULT_RAMP
                .iter()
                .map(|&(min_interactions, marketing_per_24h, marketing_per_7d)| RampStep {
                    min_interactions,
                    marketing_per_24h,
                    marketing_per_7d,
                })
                .collect(),
            over_ramp: DEFAULT_OVER_RAMP,
            ramp_retry_ms: DEFAULT_RAMP_RETRY_MS,
            sender_tiers: DEFAULT_SENDER_TIERS.to_vec(),
            start_tier: DEFAULT_START_TIER,
            promote_at_share: DEFAULT_PROMOTE_AT_SHARE,
            min_hours_per_tier: DEFAULT_MIN_HOURS_PER_TIER,
            demote_on_red: DEFAULT_DEMOTE_ON_RED,
            over_tier_defer: DEFAULT_OVER_TIER_DEFER.to_vec(),
            over_tier_retry_ms: DEFAULT_OVER_TIER_RETRY_MS,
        }
    }
}

/// `stranger_marketing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrangerMarketing {
    /// The message ends `rejected`.
    Reject,
    /// The message waits `stranger_retry_ms` and is asked about again.
    Defer,
}

/// `over_ramp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverRamp {
    /// The message waits `ramp_retry_ms` and is asked about again.
    Defer,
    /// The message ends `rejected`.
    Reject,
}

/// One step of the marketing ramp: from `min_interactions` inbound interactions on, a
/// recipient may get this much marketing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampStep {
    pub min_interactions: u32,
    pub marketing_per_24h: u32,
    pub marketing_per_7d: u32,
}

/// A priority as the config spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityName {
    Critical,
    High,
    Normal,
    Bulk,
}

impl PriorityName {
    /// Whether `priority` is this one.
    pub fn is(self, priority: Priority) -> bool {
        matches!(
            (self, priority),
            (PriorityName::Critical, Priority::Critical)
                | (PriorityName::High, Priority::High)
                | (PriorityName::Normal, Priority::Normal)
                | (PriorityName::Bulk, Priority::Bulk)
        )
    }
}

/// Why a config is refused. Each names the field at fault.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// A `*_retry_ms` of 0 (the defer would end at once) or over [`MAX_RETRY_MS`].
    RetryOutOfRange { key: &'static str, value: u64 },
    /// `ramp` is an empty list.
    EmptyRamp,
    /// The first step of `ramp` does not start at one interaction.
    FirstStepNotOne { min_interactions: u32 },
    /// `ramp[index].min_interactions` is not above the step before it.
    RampNotSorted {
        index: usize,
        min_interactions: u32,
        previous: u32,
    },
    /// `ramp[index]` allows less than the step before it.
    RampDecreasing {
        index: usize,
        key: &'static str,
        value: u32,
        previous: u32,
    },
    /// `ramp[index]` allows more per 24 h than per 7 days.
    DayOverWeek { index: usize, per_24h: u32, per_7d: u32 },
    /// `sender_tiers` is an empty list.
    NoTiers,
    /// `sender_tiers[index]` is 0.
    ZeroTier { index: usize },
    /// `sender_tiers[index]` is not above the tier before it.
    TiersNotIncreasing { index: usize, value: u32, previous: u32 },
    /// `sender_tiers[index]` is `null` but not last.
    UnlimitedNotLast { index: usize },
    /// `start_tier` is not an index of `sender_tiers`.
    StartTierOutOfRange { start_tier: usize, tiers: usize },
    /// `promote_at_share` is not above 0 and at most 1.
    ShareOutOfRange { value: f64 },
    /// `over_tier_defer` lists `critical`, which must never wait for a tier.
    CriticalDeferred,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::RetryOutOfRange { key, value } => write!(
                formatter,
                "config field `{key}` must be 1 to {MAX_RETRY_MS} (7 days), got {value}"
            ),
            ConfigError::EmptyRamp => write!(
                formatter,
                "config field `ramp` must have at least one step (the first with `min_interactions` 1)"
            ),
            ConfigError::FirstStepNotOne { min_interactions } => write!(
                formatter,
                "config field `ramp[0].min_interactions` must be 1 (the step after a recipient's first message), got {min_interactions}"
            ),
            ConfigError::RampNotSorted {
                index,
                min_interactions,
                previous,
            } => write!(
                formatter,
                "config field `ramp[{index}].min_interactions` must be above the step before it ({previous}), got {min_interactions}"
            ),
            ConfigError::RampDecreasing {
                index,
                key,
                value,
                previous,
            } => write!(
                formatter,
                "config field `ramp[{index}].{key}` must not be below the step before it ({previous}), got {value}"
            ),
            ConfigError::DayOverWeek { index, per_24h, per_7d } => write!(
                formatter,
                "config field `ramp[{index}].marketing_per_24h` ({per_24h}) must not be above `marketing_per_7d` ({per_7d})"
            ),
            ConfigError::NoTiers => write!(formatter, "config field `sender_tiers` must list at least one tier"),
            ConfigError::ZeroTier { index } => {
                write!(
                    formatter,
                    "config field `sender_tiers[{index}]` must be at least 1, got 0"
                )
            }
            ConfigError::TiersNotIncreasing { index, value, previous } => write!(
                formatter,
                "config field `sender_tiers[{index}]` must be above the tier before it ({previous}), got {value}"
            ),
            ConfigError::UnlimitedNotLast { index } => write!(
                formatter,
                "config field `sender_tiers[{index}]` is null (unlimited) but is not the last tier"
            ),
            ConfigError::StartTierOutOfRange { start_tier, tiers } => write!(
                formatter,
                "config field `start_tier` must be 0 to {}, the index of a tier in `sender_tiers`, got {start_tier}",
                tiers.saturating_sub(1)
            ),
            ConfigError::ShareOutOfRange { value } => write!(
                formatter,
                "config field `promote_at_share` must be above 0 and at most 1, got {value}"
            ),
            ConfigError::CriticalDeferred => write!(
                formatter,
                "config field `over_tier_defer` must not list `critical`: critical messages never wait for a tier"
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

    /// Checks the config hangs together: retries, the ramp, the tiers, the priorities.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("stranger_retry_ms", self.stranger_retry_ms),
            ("ramp_retry_ms", self.ramp_retry_ms),
            ("over_tier_retry_ms", self.over_tier_retry_ms),
        ] {
            if !(1..=MAX_RETRY_MS).contains(&value) {
                return Err(ConfigError::RetryOutOfRange { key, value });
            }
        }
        self.validate_ramp()?;
        self.validate_tiers()?;
        if !(self.promote_at_share > 0.0 && self.promote_at_share <= 1.0) {
            return Err(ConfigError::ShareOutOfRange {
                value: self.promote_at_share,
            });
        }
        if self.over_tier_defer.contains(&PriorityName::Critical) {
            return Err(ConfigError::CriticalDeferred);
        }
        Ok(())
    }

    fn validate_ramp(&self) -> Result<(), ConfigError> {
        let Some(first) = self.ramp.first() else {
            return Err(ConfigError::EmptyRamp);
        };
        if first.min_interactions != 1 {
            return Err(ConfigError::FirstStepNotOne {
                min_interactions: first.min_interactions,
            });
        }
        for (index, step) in self.ramp.iter().enumerate() {
            if step.marketing_per_24h > step.marketing_per_7d {
                return Err(ConfigError::DayOverWeek {
                    index,
                    per_24h: step.marketing_per_24h,
                    per_7d: step.marketing_per_7d,
                });
            }
            let Some(previous) = index.checked_sub(1).and_then(|before| self.ramp.get(before)) else {
                continue;
            };
            if step.min_interactions <= previous.min_interactions {
                return Err(ConfigError::RampNotSorted {
                    index,
                    min_interactions: step.min_interactions,
                    previous: previous.min_interactions,
                });
            }
            for (key, value, before) in [
                ("marketing_per_24h", step.marketing_per_24h, previous.marketing_per_24h),
                ("marketing_per_7d", step.marketing_per_7d, previous.marketing_per_7d),
            ] {
                if value < before {
                    return Err(ConfigError::RampDecreasing {
                        index,
                        key,
                        value,
                        previous: before,
                    });
                }
            }
        }
        Ok(())
    }

    fn validate_tiers(&self) -> Result<(), ConfigError> {
        if self.sender_tiers.is_empty() {
            return Err(ConfigError::NoTiers);
        }
        let last = self.sender_tiers.len() - 1;
        let mut previous: Option<u32> = None;
        for (index, tier) in self.sender_tiers.iter().enumerate() {
            match *tier {
                None if index != last => return Err(ConfigError::UnlimitedNotLast { index }),
                None => {}
                Some(0) => return Err(ConfigError::ZeroTier { index }),
                Some(value) => {
                    if let Some(previous) = previous
                        && value <= previous
                    {
                        return Err(ConfigError::TiersNotIncreasing { index, value, previous });
                    }
                    previous = Some(value);
                }
            }
        }
        if self.start_tier > last {
            return Err(ConfigError::StartTierOutOfRange {
                start_tier: self.start_tier,
                tiers: self.sender_tiers.len(),
            });
        }
        Ok(())
    }

    /// The ramp step for a recipient with `interactions` (at least 1) inbound interactions:
    /// the last step whose `min_interactions` they have reached.
    pub fn ramp_step(&self, interactions: u32) -> Option<&RampStep> {
        self.ramp
            .iter()
            .rev()
            .find(|step| step.min_interactions <= interactions)
    }

    /// The limit of tier `index` (`None` is unlimited), the last tier for an index past it.
    pub fn tier_limit(&self, index: usize) -> Option<u32> {
        self.sender_tiers
            .get(index)
            .or_else(|| self.sender_tiers.last())
            .copied()
            .flatten()
    }

    /// Whether `priority` waits once the sender's tier is used up.
    pub fn defers_over_tier(&self, priority: Priority) -> bool {
        self.over_tier_defer.iter().any(|name| name.is(priority))
    }
}

#[cfg(test)]
mod tests;
