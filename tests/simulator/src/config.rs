//! Simulator configuration: every knob, its default as a named constant, the checks a
//! value must pass, and the partial updates the control surface applies at runtime.
//!
//! Owns `SimulatorConfig` and `ConfigCell` (the live, swappable copy). Read by the Graph
//! API handlers, the webhook scheduler and poster, and the control surface. Calls only
//! `webhook::payload`, for the status errors a failing region may report.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::webhook::payload::{FAILURE_CODES, StatusError, UNDELIVERABLE, status_error};

/// App secret used to sign webhooks when none is configured.
pub const DEFAULT_APP_SECRET: &str = "wasp-simulator-app-secret";
/// Extra latency before a send is answered.
pub const DEFAULT_LATENCY_MS: u64 = 0;
/// Largest random extra latency (uniform `0..=jitter`) added on top of `latency_ms`.
pub const DEFAULT_LATENCY_JITTER_MS: u64 = 0;
/// Share of sends whose connection is reset instead of answered.
pub const DEFAULT_RESET_RATE: f64 = 0.0;
/// Whether a reset connection's message was accepted first ("may have arrived").
pub const DEFAULT_RESET_AFTER_ACCEPT: bool = false;
/// Delay between accepting a message and its `sent` status.
pub const DEFAULT_SENT_AFTER_MS: u64 = 50;
/// Delay between `sent` and `delivered` (or `failed`).
pub const DEFAULT_DELIVERED_AFTER_MS: u64 = 200;
/// Delay between `delivered` and `read`.
pub const DEFAULT_READ_AFTER_MS: u64 = 1_000;
/// Share of delivered messages that are read.
pub const DEFAULT_READ_RATIO: f64 = 0.5;
/// Share of sends answered with a transient 131000 error.
pub const DEFAULT_ERROR_RATE: f64 = 0.0;
/// Share of sends (to `fault_prefixes`, or all) answered with `fault_code`.
pub const DEFAULT_FAULT_RATE: f64 = 0.0;
/// Statuses per webhook POST.
pub const DEFAULT_WEBHOOK_BATCH_MAX: usize = 100;
/// Meta never puts more than this many updates in one webhook POST.
pub const MAX_WEBHOOK_BATCH: usize = 1_000;
/// How long the batcher waits for more statuses before posting a partial batch.
pub const DEFAULT_WEBHOOK_FLUSH_MS: u64 = 20;
/// Extra time a status waits, after it happened, before it joins a webhook batch.
pub const DEFAULT_WEBHOOK_DELAY_MS: u64 = 0;
/// Share of statuses posted a second time, in a later batch.
pub const DEFAULT_WEBHOOK_DUPLICATE_RATE: f64 = 0.0;
/// Whether the statuses of each webhook POST are shuffled.
pub const DEFAULT_WEBHOOK_REORDER: bool = false;
/// The error code of `failed` statuses for `failing_prefixes` when
/// `failing_region_error_code` is not set.
pub const DEFAULT_FAILING_REGION_ERROR_CODE: u32 = UNDELIVERABLE.code;
/// Display number of the simulated business phone.
pub const DEFAULT_DISPLAY_PHONE_NUMBER: &str = "15550783881";
/// WhatsApp Business Account id put in every webhook `entry`.
pub const DEFAULT_WABA_ID: &str = "102290129340398";
/// How long a created message template stays `PENDING` before it is reviewed.
pub const DEFAULT_TEMPLATE_REVIEW_MS: u64 = 1_500;
/// Whether template sends must name an approved template the simulator holds.
pub const DEFAULT_ENFORCE_TEMPLATES: bool = false;

/// What a secret is replaced with in logs and in `GET /_sim/config`.
pub const MASK: &str = "***";

/// Everything the simulator can be told. Unknown keys are refused; missing keys take
/// the defaults above.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    /// When set, every Graph API request must carry `Authorization: Bearer <token>`
    /// (or `?access_token=`); otherwise it is answered with Meta's 190 error (HTTP 401).
    pub access_token: Option<String>,
    /// Secret the webhooks are signed with (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// Where status and inbound webhooks are posted; `None` sends none.
    pub webhook_url: Option<String>,
    /// Added before a send is answered.
    pub latency_ms: u64,
    /// A random extra latency, uniform in `0..=latency_jitter_ms`, added to `latency_ms`
    /// for each send.
    pub latency_jitter_ms: u64,
    /// Share of sends (`POST …/messages`) whose TCP connection is reset (RST) instead of
    /// answered, `0..=1`.
    pub reset_rate: f64,
    /// When set, a reset send was accepted first (logged, counted, statuses follow): the
    /// "may have arrived" case. Otherwise it was not accepted.
    pub reset_after_accept: bool,
    /// Delay of the `sent` status after the send was accepted.
    pub sent_after_ms: u64,
    /// Delay of `delivered` (or `failed`) after `sent`.
    pub delivered_after_ms: u64,
    /// Delay of `read` after `delivered`.
    pub read_after_ms: u64,
    /// Share of delivered messages that are read, `0..=1`.
    pub read_ratio: f64,
    /// Share of sends answered with a transient HTTP 500, code 131000, `0..=1`.
    pub error_rate: f64,
    /// Recipient prefixes (digits, e.g. `"62"`) whose sends are accepted, then get
    /// `sent` and `failed` with 131026 (or `failing_region_error_code`).
    pub failing_prefixes: Vec<String>,
    /// The error code of those `failed` statuses (one of [`FAILURE_CODES`]); `None`:
    /// [`DEFAULT_FAILING_REGION_ERROR_CODE`] (131026).
    pub failing_region_error_code: Option<u32>,
    /// A Meta error code (e.g. 130429, 131056, 131047, 131000) answered synchronously, with
    /// the HTTP status Meta uses for it, to a share `fault_rate` of valid sends: rate-limit
    /// storms, 5xx bursts and permanent refusals. `None`: no such fault.
    pub fault_code: Option<u32>,
    /// Share of sends answered with `fault_code`, `0..=1`.
    pub fault_rate: f64,
    /// Recipient prefixes (digits) the fault applies to; empty: every recipient.
    pub fault_prefixes: Vec<String>,
    /// Statuses per webhook POST, `1..=1000`.
    pub webhook_batch_max: usize,
    /// How long the batcher waits to fill a POST.
    pub webhook_flush_ms: u64,
    /// Extra time each status waits, after it happened, before it joins a batch; its
    /// `timestamp` stays the time it happened.
    pub webhook_delay_ms: u64,
    /// Share of statuses posted a second time (byte-identical) in a later batch, `0..=1`.
    pub webhook_duplicate_rate: f64,
    /// When set, the statuses of each POST are shuffled, so `read` may come before
    /// `delivered`.
    pub webhook_reorder: bool,
    /// `metadata.display_phone_number` in webhooks.
    pub display_phone_number: String,
    /// `entry[].id` in webhooks.
    pub waba_id: String,
    /// How long a template created through `POST …/message_templates` stays `PENDING`
    /// before the simulator reviews it (`APPROVED` or `REJECTED`, see `templates`).
    pub template_review_ms: u64,
    /// When set, a template message must name a template (name and language) the
    /// simulator holds as `APPROVED`: otherwise 132001 (404), or 132015 when it is
    /// `PAUSED`, 132016 when `DISABLED`. Off by default, so sends of templates the
    /// simulator never saw are accepted.
    pub enforce_templates: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            access_token: None,
            app_secret: DEFAULT_APP_SECRET.to_owned(),
            webhook_url: None,
            latency_ms: DEFAULT_LATENCY_MS,
            latency_jitter_ms: DEFAULT_LATENCY_JITTER_MS,
            reset_rate: DEFAULT_RESET_RATE,
            reset_after_accept: DEFAULT_RESET_AFTER_ACCEPT,
            sent_after_ms: DEFAULT_SENT_AFTER_MS,
            delivered_after_ms: DEFAULT_DELIVERED_AFTER_MS,
            read_after_ms: DEFAULT_READ_AFTER_MS,
            read_ratio: DEFAULT_READ_RATIO,
            error_rate: DEFAULT_ERROR_RATE,
            failing_prefixes: Vec::new(),
            failing_region_error_code: None,
            fault_code: None,
            fault_rate: DEFAULT_FAULT_RATE,
            fault_prefixes: Vec::new(),
            webhook_batch_max: DEFAULT_WEBHOOK_BATCH_MAX,
            webhook_flush_ms: DEFAULT_WEBHOOK_FLUSH_MS,
            webhook_delay_ms: DEFAULT_WEBHOOK_DELAY_MS,
            webhook_duplicate_rate: DEFAULT_WEBHOOK_DUPLICATE_RATE,
            webhook_reorder: DEFAULT_WEBHOOK_REORDER,
            display_phone_number: DEFAULT_DISPLAY_PHONE_NUMBER.to_owned(),
            waba_id: DEFAULT_WABA_ID.to_owned(),
            template_review_ms: DEFAULT_TEMPLATE_REVIEW_MS,
            enforce_templates: DEFAULT_ENFORCE_TEMPLATES,
        }
    }
}

impl SimulatorConfig {
    /// Checks every value; the error names the first key that is wrong.
    pub fn validate(&self) -> Result<()> {
        check_ratio("read_ratio", self.read_ratio)?;
        check_ratio("error_rate", self.error_rate)?;
        check_ratio("fault_rate", self.fault_rate)?;
        check_ratio("reset_rate", self.reset_rate)?;
        check_ratio("webhook_duplicate_rate", self.webhook_duplicate_rate)?;
        if let Some(code) = self.failing_region_error_code
            && status_error(code).is_none()
        {
            return Err(invalid(
                "failing_region_error_code",
                format!("must be one of {FAILURE_CODES:?}, got {code}"),
            ));
        }
        if self
            .fault_prefixes
            .iter()
            .any(|prefix| prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("fault_prefixes", "prefixes are digits only".to_owned()));
        }
        if !(1..=MAX_WEBHOOK_BATCH).contains(&self.webhook_batch_max) {
            return Err(invalid(
                "webhook_batch_max",
                format!("must be 1..={MAX_WEBHOOK_BATCH}, got {}", self.webhook_batch_max),
            ));
        }
        if let Some(prefix) = self
            .failing_prefixes
            .iter()
            .find(|prefix| prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid(
                "failing_prefixes",
                format!("prefixes are digits only, got {prefix:?}"),
            ));
        }
        if let Some(url) = &self.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("webhook_url", format!("must be an http(s) URL, got {url:?}")));
        }
        Ok(())
    }

    /// Brings out-of-range values back into range, for updates that cannot fail.
    pub(crate) fn clamp(&mut self) {
        self.read_ratio = clamp_ratio(self.read_ratio);
        self.error_rate = clamp_ratio(self.error_rate);
        self.fault_rate = clamp_ratio(self.fault_rate);
        self.reset_rate = clamp_ratio(self.reset_rate);
        self.webhook_duplicate_rate = clamp_ratio(self.webhook_duplicate_rate);
        if self
            .failing_region_error_code
            .is_some_and(|code| status_error(code).is_none())
        {
            self.failing_region_error_code = None;
        }
        self.fault_prefixes
            .retain(|prefix| !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()));
        self.webhook_batch_max = self.webhook_batch_max.clamp(1, MAX_WEBHOOK_BATCH);
        self.failing_prefixes
            .retain(|prefix| !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()));
        if self
            .webhook_url
            .as_deref()
            .is_some_and(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            self.webhook_url = None;
        }
    }

    /// A copy safe to log or show: the token and the app secret are masked.
    pub fn masked(&self) -> Self {
        let mut copy = self.clone();
        if copy.access_token.is_some() {
            copy.access_token = Some(MASK.to_owned());
        }
        copy.app_secret = MASK.to_owned();
        copy
    }

    /// Applies a partial JSON object (the keys to change) and returns the checked result.
    pub fn patched(&self, patch: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(changes) = patch else {
            return Err(invalid("config", "a config update is a JSON object".to_owned()));
        };
        let mut current = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(invalid("config", "config is not an object".to_owned())),
            Err(source) => return Err(Error::ConfigEncoding(source)),
        };
        for (key, value) in changes {
            if !current.contains_key(&key) {
                return Err(invalid("config", format!("unknown key {key:?}")));
            }
            current.insert(key, value);
        }
        let next: Self = serde_json::from_value(serde_json::Value::Object(current))
            .map_err(|source| invalid("config", source.to_string()))?;
        next.validate()?;
        Ok(next)
    }

    /// The synchronous fault this send to `recipient_digits` gets, if any (drawn at random
    /// by `fault_rate`).
    pub fn fault_for(&self, recipient_digits: &str) -> Option<u32> {
        let code = self.fault_code?;
        let applies = self.fault_prefixes.is_empty()
            || self
                .fault_prefixes
                .iter()
                .any(|prefix| recipient_digits.starts_with(prefix.as_str()));
        (applies && self.fault_rate > 0.0 && rand::random::<f64>() < self.fault_rate).then_some(code)
    }

    /// Whether sends to this recipient (digits only) are to fail with 131026 (or
    /// `failing_region_error_code`).
    pub fn is_failing(&self, recipient_digits: &str) -> bool {
        self.failing_prefixes
            .iter()
            .any(|prefix| recipient_digits.starts_with(prefix.as_str()))
    }

    /// The error a message to this recipient (digits only) fails with, if it matches
    /// `failing_prefixes`.
    pub fn failure_for(&self, recipient_digits: &str) -> Option<&'static StatusError> {
        if !self.is_failing(recipient_digits) {
            return None;
        }
        Some(
            self.failing_region_error_code
                .and_then(status_error)
                .unwrap_or(&UNDELIVERABLE),
        )
    }

    /// How long this send waits before it is answered: `latency_ms` plus a uniform draw
    /// from `0..=latency_jitter_ms`.
    pub fn answer_delay(&self) -> Duration {
        let jitter = if self.latency_jitter_ms > 0 {
            rand::random_range(0..=self.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }

    /// Whether this send's connection is to be reset (drawn at random by `reset_rate`).
    pub fn draws_reset(&self) -> bool {
        self.reset_rate > 0.0 && rand::random::<f64>() < self.reset_rate
    }
}

fn check_ratio(field: &'static str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be within 0..=1, got {value}")))
    }
}

fn clamp_ratio(value: f64) -> f64 {
    if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) }
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

/// The live configuration: readers take a cheap snapshot, writers swap a new copy in.
#[derive(Debug)]
pub(crate) struct ConfigCell {
    current: RwLock<Arc<SimulatorConfig>>,
}

impl ConfigCell {
    pub(crate) fn new(config: SimulatorConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(config)),
        }
    }

    /// The configuration as it is now; later updates do not change the snapshot.
    pub(crate) fn snapshot(&self) -> Arc<SimulatorConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn replace(&self, config: SimulatorConfig) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    /// Runs `change` on a copy, clamps it into range and swaps it in.
    pub(crate) fn update(&self, change: impl FnOnce(&mut SimulatorConfig)) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = SimulatorConfig::clone(&guard);
        change(&mut next);
        next.clamp();
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_valid_and_missing_keys_take_them() {
        SimulatorConfig::default().validate().expect("defaults valid");
        let parsed: SimulatorConfig = serde_json::from_value(json!({"latency_ms": 5})).expect("partial config parses");
        assert_eq!(parsed.latency_ms, 5);
        assert_eq!(parsed.webhook_batch_max, DEFAULT_WEBHOOK_BATCH_MAX);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed = serde_json::from_value::<SimulatorConfig>(json!({"latency": 5}));
        assert!(parsed.is_err());
        let patched = SimulatorConfig::default().patched(json!({"latency": 5}));
        assert!(matches!(patched, Err(Error::InvalidConfig { .. })));
    }

    #[test]
    fn patch_changes_only_the_given_keys() {
        let base = SimulatorConfig {
            access_token: Some("token".into()),
            ..SimulatorConfig::default()
        };
        let next = base
            .patched(json!({"error_rate": 0.25, "failing_prefixes": ["62"]}))
            .expect("valid patch");
        assert_eq!(next.error_rate, 0.25);
        assert_eq!(next.failing_prefixes, vec!["62".to_owned()]);
        assert_eq!(next.access_token.as_deref(), Some("token"));
        let cleared = next.patched(json!({"access_token": null})).expect("valid");
        assert_eq!(cleared.access_token, None);
    }

    #[test]
    fn out_of_range_values_are_named() {
        let error = SimulatorConfig::default()
            .patched(json!({"read_ratio": 1.5}))
            .expect_err("out of range");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "read_ratio",
                ..
            }
        ));
        let error = SimulatorConfig::default()
            .patched(json!({"webhook_batch_max": 1001}))
            .expect_err("too big");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "webhook_batch_max",
                ..
            }
        ));
        let error = SimulatorConfig::default()
            .patched(json!({"failing_prefixes": ["+62"]}))
            .expect_err("not digits");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "failing_prefixes",
                ..
            }
        ));
    }

    #[test]
    fn update_clamps_instead_of_failing() {
        let cell = ConfigCell::new(SimulatorConfig::default());
        cell.update(|config| {
            config.error_rate = 7.0;
            config.webhook_batch_max = 0;
        });
        let now = cell.snapshot();
        assert_eq!(now.error_rate, 1.0);
        assert_eq!(now.webhook_batch_max, 1);
    }

    #[test]
    fn masked_hides_secrets() {
        let config = SimulatorConfig {
            access_token: Some("secret-token".into()),
            ..SimulatorConfig::default()
        };
        let masked = config.masked();
        assert_eq!(masked.access_token.as_deref(), Some(MASK));
        assert_eq!(masked.app_secret, MASK);
    }

    #[test]
    fn faults_apply_by_rate_and_prefix() {
        let mut config = SimulatorConfig {
            fault_code: Some(130429),
            fault_rate: 1.0,
            fault_prefixes: vec!["62".into()],
            ..SimulatorConfig::default()
        };
        assert_eq!(config.fault_for("6281234"), Some(130429));
        assert_eq!(config.fault_for("6581234"), None);
        config.fault_rate = 0.0;
        assert_eq!(config.fault_for("6281234"), None);
        let error = SimulatorConfig::default()
            .patched(json!({"fault_prefixes": ["x"]}))
            .expect_err("not digits");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "fault_prefixes",
                ..
            }
        ));
    }

    #[test]
    fn answer_delay_adds_a_bounded_jitter() {
        let mut config = SimulatorConfig {
            latency_ms: 20,
            ..SimulatorConfig::default()
        };
        assert_eq!(config.answer_delay(), Duration::from_millis(20));
        config.latency_jitter_ms = 10;
        let delays: Vec<u128> = (0..2_000).map(|_| config.answer_delay().as_millis()).collect();
        assert!(delays.iter().all(|delay| (20..=30).contains(delay)));
        assert!(delays.contains(&20) && delays.contains(&30), "both ends drawn");
    }

    #[test]
    fn resets_are_drawn_by_rate() {
        let mut config = SimulatorConfig::default();
        assert!(!config.draws_reset());
        config.reset_rate = 1.0;
        assert!(config.draws_reset());
        let error = config.patched(json!({"reset_rate": -0.1})).expect_err("out of range");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "reset_rate",
                ..
            }
        ));
        let error = config
            .patched(json!({"webhook_duplicate_rate": 2}))
            .expect_err("out of range");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "webhook_duplicate_rate",
                ..
            }
        ));
    }

    #[test]
    fn failing_region_error_code_picks_the_failure() {
        let mut config = SimulatorConfig {
            failing_prefixes: vec!["62".into()],
            ..SimulatorConfig::default()
        };
        assert_eq!(config.failure_for("16505551234"), None);
        assert_eq!(
            config.failure_for("6281234").map(|error| error.code),
            Some(DEFAULT_FAILING_REGION_ERROR_CODE)
        );
        config.failing_region_error_code = Some(131049);
        assert_eq!(config.failure_for("6281234").map(|error| error.code), Some(131049));
        let error = config
            .patched(json!({"failing_region_error_code": 42}))
            .expect_err("unknown code");
        assert!(matches!(
            error,
            Error::InvalidConfig {
                field: "failing_region_error_code",
                ..
            }
        ));
        let cell = ConfigCell::new(config);
        cell.update(|config| {
            config.failing_region_error_code = Some(42);
            config.reset_rate = 3.0;
        });
        assert_eq!(cell.snapshot().failing_region_error_code, None);
        assert_eq!(cell.snapshot().reset_rate, 1.0);
    }

    #[test]
    fn failing_prefix_matches_digits() {
        let config = SimulatorConfig {
            failing_prefixes: vec!["62".into()],
            ..SimulatorConfig::default()
        };
        assert!(config.is_failing("6281234"));
        assert!(!config.is_failing("16281234"));
    }
}
