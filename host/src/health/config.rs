//! The `[health]` section: how often the rules are evaluated, where firings and resolutions
//! are POSTed, and the rules themselves (`[[health.rules]]`), with the defaults of each
//! metric and their validation. A rule as written ([`RuleConfig`]) leaves most keys to its
//! metric's defaults; [`RuleConfig::resolve`] fills them in and checks the whole.
//! Calls nothing else in wasp but the callback URL check.

use serde::{Deserialize, Serialize};

pub const DEFAULT_EVALUATE_EVERY_MS: u64 = 5_000;
/// How long one webhook POST may take.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// POSTs of one firing or resolution before it is given up (and counted).
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 3;

/// Upstream 5xx rate above 0.1% for three minutes: scale out.
pub const DEFAULT_UPSTREAM_5XX_ABOVE: f64 = 0.001;
pub const DEFAULT_UPSTREAM_5XX_CLEAR: f64 = 0.0005;
pub const DEFAULT_UPSTREAM_5XX_FOR_MS: u64 = 180_000;
pub const DEFAULT_UPSTREAM_5XX_CLEAR_FOR_MS: u64 = 180_000;
pub const DEFAULT_UPSTREAM_5XX_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_UPSTREAM_5XX_MIN_SAMPLES: u64 = 100;
/// In-flight slots a firing `scale_out` rule adds to the dispatcher.
pub const DEFAULT_SCALE_OUT_STEP: u32 = 64;

/// Backlog above 5,000 messages: degrade; back to normal below 4,000.
pub const DEFAULT_BACKLOG_ABOVE: f64 = 5_000.0;
pub const DEFAULT_BACKLOG_CLEAR: f64 = 4_000.0;
pub const DEFAULT_BACKLOG_FOR_MS: u64 = 10_000;
pub const DEFAULT_BACKLOG_CLEAR_FOR_MS: u64 = 30_000;

/// A template's read rate over the last hour below 80% of its own 7-day rate: flag it.
pub const DEFAULT_TEMPLATE_BELOW: f64 = 0.8;
pub const DEFAULT_TEMPLATE_CLEAR: f64 = 0.9;
pub const DEFAULT_TEMPLATE_FOR_MS: u64 = 900_000;
pub const DEFAULT_TEMPLATE_CLEAR_FOR_MS: u64 = 900_000;
pub const DEFAULT_TEMPLATE_WINDOW_MS: u64 = 3_600_000;
pub const DEFAULT_TEMPLATE_BASELINE_MS: u64 = 7 * 24 * 3_600_000;
/// Delivered messages the last hour needs before a template's rate counts.
pub const DEFAULT_TEMPLATE_MIN_SAMPLES: u64 = 100;

/// Any region degraded (by the region health tracker, which has its own hysteresis): tell the
/// operator at once, and again when every region is healthy.
pub const DEFAULT_REGIONS_ABOVE: f64 = 0.5;
pub const DEFAULT_REGIONS_CLEAR: f64 = 0.5;

/// The longest window a rate may be taken over: the upstream counters keep this much.
pub const MAX_WINDOW_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub evaluate_every_ms: u64,
    /// Firings and resolutions are POSTed here as JSON; none: only the stream and the audit log.
    pub webhook_url: Option<String>,
    pub webhook_timeout_ms: u64,
    pub webhook_attempts: u32,
    /// Absent: the four default rules. `rules = []`: none.
    pub rules: Vec<RuleConfig>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            evaluate_every_ms: DEFAULT_EVALUATE_EVERY_MS,
            webhook_url: None,
            webhook_timeout_ms: DEFAULT_WEBHOOK_TIMEOUT_MS,
            webhook_attempts: DEFAULT_WEBHOOK_ATTEMPTS,
            rules: default_rules(),
        }
    }
}

/// The default rules: upstream 5xx → scale out, backlog → degrade, template read rate → flag
/// for review, a degraded region → tell the operator.
pub fn default_rules() -> Vec<RuleConfig> {
    vec![
        RuleConfig {
            name: "upstream_5xx".into(),
            metric: Metric::Upstream5xxRate,
            above: Some(DEFAULT_UPSTREAM_5XX_ABOVE),
            below: None,
            clear: Some(DEFAULT_UPSTREAM_5XX_CLEAR),
            for_ms: Some(DEFAULT_UPSTREAM_5XX_FOR_MS),
            clear_for_ms: Some(DEFAULT_UPSTREAM_5XX_CLEAR_FOR_MS),
            window_ms: Some(DEFAULT_UPSTREAM_5XX_WINDOW_MS),
            baseline_ms: None,
            min_samples: Some(DEFAULT_UPSTREAM_5XX_MIN_SAMPLES),
            action: Action::ScaleOut,
            step: Some(DEFAULT_SCALE_OUT_STEP),
        },
        RuleConfig {
            name: "backlog".into(),
            metric: Metric::Backlog,
            above: Some(DEFAULT_BACKLOG_ABOVE),
            below: None,
            clear: Some(DEFAULT_BACKLOG_CLEAR),
            for_ms: Some(DEFAULT_BACKLOG_FOR_MS),
            clear_for_ms: Some(DEFAULT_BACKLOG_CLEAR_FOR_MS),
            window_ms: None,
            baseline_ms: None,
            min_samples: None,
            action: Action::Degrade,
            step: None,
        },
        RuleConfig {
            name: "template_read_rate".into(),
            metric: Metric::TemplateReadRate,
            above: None,
            below: Some(DEFAULT_TEMPLATE_BELOW),
            clear: Some(DEFAULT_TEMPLATE_CLEAR),
            for_ms: Some(DEFAULT_TEMPLATE_FOR_MS),
            clear_for_ms: Some(DEFAULT_TEMPLATE_CLEAR_FOR_MS),
            window_ms: Some(DEFAULT_TEMPLATE_WINDOW_MS),
            baseline_ms: Some(DEFAULT_TEMPLATE_BASELINE_MS),
            min_samples: Some(DEFAULT_TEMPLATE_MIN_SAMPLES),
            action: Action::FlagTemplate,
            step: None,
        },
        RuleConfig {
            name: "regions_degraded".into(),
            metric: Metric::DegradedRegions,
            above: Some(DEFAULT_REGIONS_ABOVE),
            below: None,
            clear: Some(DEFAULT_REGIONS_CLEAR),
            for_ms: Some(0),
            clear_for_ms: Some(0),
            window_ms: None,
            baseline_ms: None,
            min_samples: None,
            action: Action::Notify,
            step: None,
        },
    ]
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Metric {
    /// Share of Cloud API calls answered 5xx or not reached, over `window_ms`.
    #[serde(rename = "upstream_5xx_rate")]
    Upstream5xxRate,
    /// Messages waiting to be sent on this node now.
    #[serde(rename = "backlog")]
    Backlog,
    /// Per template: its read rate over `window_ms` as a ratio of its own over `baseline_ms`.
    #[serde(rename = "template_read_rate")]
    TemplateReadRate,
    /// Regions the region health tracker holds degraded now (see `[regions]`).
    #[serde(rename = "degraded_regions")]
    DegradedRegions,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Upstream5xxRate => "upstream_5xx_rate",
            Metric::Backlog => "backlog",
            Metric::TemplateReadRate => "template_read_rate",
            Metric::DegradedRegions => "degraded_regions",
        }
    }
}

/// What a rule does while it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Raise the dispatch concurrency by `step` and tell the operator to scale out.
    ScaleOut,
    /// Degraded mode: bulk stays queued, policies see `degraded-mode`.
    Degrade,
    /// Flag the template for review in `GET /v1/templates`.
    FlagTemplate,
    /// Only tell: the stream, the audit log and the webhook.
    Notify,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ScaleOut => "scale_out",
            Action::Degrade => "degrade",
            Action::FlagTemplate => "flag_template",
            Action::Notify => "notify",
        }
    }
}

/// One `[[health.rules]]` entry as written: keys left out take the metric's defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub metric: Metric,
    /// Fires while the value is above this (one of `above` and `below`).
    #[serde(default)]
    pub above: Option<f64>,
    /// Fires while the value is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Resolves only once the value is back past this (hysteresis); default the threshold.
    #[serde(default)]
    pub clear: Option<f64>,
    /// How long the condition must hold before the rule fires.
    #[serde(default)]
    pub for_ms: Option<u64>,
    /// How long the value must stay past `clear` before the rule resolves.
    #[serde(default)]
    pub clear_for_ms: Option<u64>,
    /// Rate metrics: the window the rate is taken over.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// `template_read_rate`: the period of the template's own average.
    #[serde(default)]
    pub baseline_ms: Option<u64>,
    /// Rate metrics: calls (or delivered messages) a window needs before its rate counts.
    #[serde(default)]
    pub min_samples: Option<u64>,
    pub action: Action,
    /// `scale_out`: in-flight slots added while the rule fires.
    #[serde(default)]
    pub step: Option<u32>,
}

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// A rule with every key decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    pub direction: Direction,
    pub threshold: f64,
    pub clear: f64,
    pub for_ms: u64,
    pub clear_for_ms: u64,
    pub window_ms: u64,
    pub baseline_ms: u64,
    pub min_samples: u64,
    pub action: Action,
    pub step: u32,
}

impl Rule {
    /// Whether `value` is on the bad side of the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value > self.threshold,
            Direction::Below => value < self.threshold,
        }
    }

    /// Whether `value` is back on the good side of `clear`.
    pub fn clears(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value < self.clear,
            Direction::Below => value > self.clear,
        }
    }
}

impl RuleConfig {
    /// The rule with its metric's defaults filled in, or what is wrong, naming the key
    /// (`key` is where the entry sits, such as `health.rules[1]`).
    pub fn resolve(&self, key: &str) -> Result<Rule, String> {
        let key = format!("{key} ({:?})", self.name);
        let (direction, threshold) = match (self.above, self.below) {
            (Some(_), Some(_)) => return Err(format!("{key}: give one of `above` and `below`, not both")),
            (Some(above), None) => (Direction::Above, above),
            (None, Some(below)) => (Direction::Below, below),
            (None, None) => match self.metric {
                Metric::Upstream5xxRate => (Direction::Above, DEFAULT_UPSTREAM_5XX_ABOVE),
                Metric::Backlog => (Direction::Above, DEFAULT_BACKLOG_ABOVE),
                Metric::TemplateReadRate => (Direction::Below, DEFAULT_TEMPLATE_BELOW),
                Metric::DegradedRegions => (Direction::Above, DEFAULT_REGIONS_ABOVE),
            },
        };
        let side = if direction == Direction::Above {
            "above"
        } else {
            "below"
        };
        if !threshold.is_finite() || threshold < 0.0 {
            return Err(format!("{key}.{side}: {threshold} is not a number of at least 0"));
        }
        if self.metric == Metric::Upstream5xxRate && threshold > 1.0 {
            return Err(format!("{key}.{side}: {threshold}: a rate is between 0 and 1"));
        }
        let clear = self.clear.unwrap_or(threshold);
        if !clear.is_finite() || clear < 0.0 {
            return Err(format!("{key}.clear: {clear} is not a number of at least 0"));
        }
        match direction {
            Direction::Above if clear > threshold => {
                return Err(format!("{key}.clear: {clear} must not be above `above` ({threshold})"));
            }
            Direction::Below if clear < threshold => {
                return Err(format!("{key}.clear: {clear} must not be below `below` ({threshold})"));
            }
            _ => {}
        }
        let rate = matches!(self.metric, Metric::Upstream5xxRate | Metric::TemplateReadRate);
        if !rate {
            for (name, given) in [("window_ms", self.window_ms), ("min_samples", self.min_samples)] {
                if given.is_some() {
                    return Err(format!(
                        "{key}.{name}: only for rate metrics; {} is a count taken now",
                        self.metric.as_str()
                    ));
                }
            }
        }
        if self.metric != Metric::TemplateReadRate && self.baseline_ms.is_some() {
            return Err(format!("{key}.baseline_ms: only for template_read_rate"));
        }
        match (self.action, self.metric) {
            (Action::FlagTemplate, Metric::TemplateReadRate) => {}
            (Action::FlagTemplate, metric) => {
                return Err(format!(
                    "{key}.action: flag_template needs the metric template_read_rate, not {}",
                    metric.as_str()
                ));
            }
            (action, Metric::TemplateReadRate) => {
                return Err(format!(
                    "{key}.action: template_read_rate is per template: its action is flag_template, not {}",
                    action.as_str()
                ));
            }
            _ => {}
        }
        if self.action != Action::ScaleOut && self.step.is_some() {
            return Err(format!("{key}.step: only for the action scale_out"));
        }
        let (for_ms, clear_for_ms, window_ms, min_samples) = match self.metric {
            Metric::Upstream5xxRate => (
                DEFAULT_UPSTREAM_5XX_FOR_MS,
                DEFAULT_UPSTREAM_5XX_CLEAR_FOR_MS,
                DEFAULT_UPSTREAM_5XX_WINDOW_MS,
                DEFAULT_UPSTREAM_5XX_MIN_SAMPLES,
            ),
            Metric::Backlog => (DEFAULT_BACKLOG_FOR_MS, DEFAULT_BACKLOG_CLEAR_FOR_MS, 0, 0),
            // The region tracker already waits before it turns a region degraded or healthy.
            Metric::DegradedRegions => (0, 0, 0, 0),
            Metric::TemplateReadRate => (
                DEFAULT_TEMPLATE_FOR_MS,
                DEFAULT_TEMPLATE_CLEAR_FOR_MS,
                DEFAULT_TEMPLATE_WINDOW_MS,
                DEFAULT_TEMPLATE_MIN_SAMPLES,
            ),
        };
        let window_ms = self.window_ms.unwrap_or(window_ms);
        if rate && (window_ms == 0 || (self.metric == Metric::Upstream5xxRate && window_ms > MAX_WINDOW_MS)) {
            return Err(format!(
                "{key}.window_ms: {window_ms}: from 1 to {MAX_WINDOW_MS} for upstream_5xx_rate, at least 1 otherwise"
            ));
        }
        let baseline_ms = self.baseline_ms.unwrap_or(if self.metric == Metric::TemplateReadRate {
            DEFAULT_TEMPLATE_BASELINE_MS
        } else {
            0
        });
        if self.metric == Metric::TemplateReadRate && baseline_ms <= window_ms {
            return Err(format!(
                "{key}.baseline_ms: {baseline_ms} must be longer than window_ms ({window_ms})"
            ));
        }
        let step = self.step.unwrap_or(if self.action == Action::ScaleOut {
            DEFAULT_SCALE_OUT_STEP
        } else {
            0
        });
        if self.action == Action::ScaleOut && step == 0 {
            return Err(format!("{key}.step: must be at least 1"));
        }
        Ok(Rule {
            name: self.name.clone(),
            metric: self.metric,
            direction,
            threshold,
            clear,
            for_ms: self.for_ms.unwrap_or(for_ms),
            clear_for_ms: self.clear_for_ms.unwrap_or(clear_for_ms),
            window_ms,
            baseline_ms,
            min_samples: self.min_samples.unwrap_or(min_samples),
            action: self.action,
            step,
        })
    }
}

impl HealthConfig {
    /// The rules with their defaults filled in, or the first thing wrong, naming its key.
    pub fn rules(&self) -> Result<Vec<Rule>, String> {
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (index, entry) in self.rules.iter().enumerate() {
            let key = format!("health.rules[{index}]");
            let name = &entry.name;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(format!("{key}.name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"));
            }
            if rules.iter().any(|rule| &rule.name == name) {
                return Err(format!("{key}.name {name:?}: another rule has this name"));
            }
            rules.push(entry.resolve(&key)?);
        }
        if rules.iter().filter(|rule| rule.action == Action::Degrade).count() > 1 {
            return Err("health.rules: at most one rule may have the action degrade".into());
        }
        Ok(rules)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.evaluate_every_ms == 0 {
            return Err("health.evaluate_every_ms must be at least 1".into());
        }
        if self.webhook_timeout_ms == 0 || self.webhook_attempts == 0 {
            return Err("health.webhook_timeout_ms and health.webhook_attempts must be at least 1".into());
        }
        if let Some(url) = &self.webhook_url {
            crate::callbacks::check_url(url).map_err(|error| format!("health.webhook_url {url:?}: {error}"))?;
        }
        self.rules().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Result<Vec<Rule>, String> {
        let config: HealthConfig = toml::from_str(text).map_err(|error| error.to_string())?;
        config.validate()?;
        config.rules()
    }

    #[test]
    fn the_defaults_are_four_rules() {
        let rules = HealthConfig::default().rules().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            (rules[0].metric, rules[0].action),
            (Metric::Upstream5xxRate, Action::ScaleOut)
        );
        assert!(rules[0].breaches(0.002) && !rules[0].breaches(0.001));
        assert_eq!(rules[0].for_ms, 180_000);
        assert_eq!((rules[1].threshold, rules[1].clear), (5_000.0, 4_000.0));
        assert_eq!(rules[2].direction, Direction::Below);
        assert!(rules[2].breaches(0.79) && rules[2].clears(0.91));
        assert_eq!(
            (rules[3].metric, rules[3].action),
            (Metric::DegradedRegions, Action::Notify)
        );
        assert!(rules[3].breaches(1.0) && !rules[3].breaches(0.0) && rules[3].clears(0.0));
        assert!(rule("rules = []\n").unwrap().is_empty());
    }

    #[test]
    fn keys_left_out_take_the_metric_defaults() {
        let rules = rule("[[rules]]\nname = \"b\"\nmetric = \"backlog\"\nabove = 20\naction = \"degrade\"\n").unwrap();
        assert_eq!(rules.len(), 1, "given rules replace the defaults");
        assert_eq!(rules[0].clear, 20.0, "no clear: the threshold");
        assert_eq!(rules[0].for_ms, DEFAULT_BACKLOG_FOR_MS);
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (
                "[[rules]]\nname = \"b\"\nmetric = \"backlog\"\nabove = 20\nbelow = 3\naction = \"degrade\"\n",
                "health.rules[0] (\"b\"): give one of",
            ),
            (
                "[[rules]]\nname = \"b\"\nmetric = \"backlog\"\nabove = 20\nclear = 30\naction = \"degrade\"\n",
                "health.rules[0] (\"b\").clear",
            ),
            (
                "[[rules]]\nname = \"b\"\nmetric = \"backlog\"\nwindow_ms = 10\naction = \"degrade\"\n",
                ".window_ms",
            ),
            (
                "[[rules]]\nname = \"u\"\nmetric = \"upstream_5xx_rate\"\nabove = 2.0\naction = \"scale_out\"\n",
                "health.rules[0] (\"u\").above",
            ),
            (
                "[[rules]]\nname = \"u\"\nmetric = \"upstream_5xx_rate\"\naction = \"flag_template\"\n",
                ".action",
            ),
            (
                "[[rules]]\nname = \"t\"\nmetric = \"template_read_rate\"\naction = \"degrade\"\n",
                ".action",
            ),
            (
                "[[rules]]\nname = \"t\"\nmetric = \"template_read_rate\"\naction = \"flag_template\"\nstep = 3\n",
                ".step",
            ),
            (
                "[[rules]]\nname = \"a b\"\nmetric = \"backlog\"\naction = \"degrade\"\n",
                "health.rules[0].name",
            ),
            (
                "[[rules]]\nname = \"b\"\nmetric = \"backlog\"\naction = \"degrade\"\n[[rules]]\nname = \"b\"\nmetric = \"backlog\"\naction = \"scale_out\"\n",
                "health.rules[1].name",
            ),
            ("evaluate_every_ms = 0\n", "health.evaluate_every_ms"),
            ("webhook_url = \"ftp://example.com\"\n", "health.webhook_url"),
            (
                "[[rules]]\nname = \"t\"\nmetric = \"template_read_rate\"\nwindow_ms = 100\nbaseline_ms = 50\naction = \"flag_template\"\n",
                ".baseline_ms",
            ),
        ];
        for (text, expected) in cases {
            let error = rule(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = rule("[[rules]]\nname = \"b\"\nmetric = \"queue\"\naction = \"degrade\"\n").unwrap_err();
        assert!(error.contains("queue"), "{error}");
    }
}
