//! Callbacks to the business: every state change of a message that has a callback URL is
//! POSTed there as signed JSON. Owns the `[callbacks]` config, the URL rule, the payload and
//! its signature, the backoff schedule, and the delivery task that drains the outbox.
//!
//! The outbox rows are written by the store in the same transaction as the history rows they
//! report, so a crash never loses one. This task reads the due rows (each the oldest waiting
//! one of its message, so one message's callbacks arrive in order), posts them concurrently
//! across messages, each attempt on its own so a slow receiver holds back only its messages,
//! and records outcomes as they come: delivered rows leave, failed ones wait with exponential
//! backoff and jitter, and after `max_attempts` (or a final 4xx) they go to the dead-letter
//! list. May call the store; nothing calls back into it.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::store::{CallbackOutcome, PendingCallback, Store};

pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 1_000;
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 300_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// How often the outbox is looked at when nothing is due sooner.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 200;
/// Attempts under way at once (each a different message: only a message's oldest waiting
/// callback is ever due).
pub const MAX_IN_FLIGHT: usize = 64;

/// The signature header: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Wasp-Signature-256";
/// A unique id per callback (the same on every attempt of it).
pub const DELIVERY_HEADER: &str = "X-Wasp-Delivery";
/// The callback's position in the outbox: increases with every callback written.
pub const EVENT_SEQ_HEADER: &str = "X-Wasp-Event-Seq";

/// `[callbacks]`: where the bootstrap token's callbacks go and how deliveries are retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// The bootstrap admin token's default callback URL (`WASP_CALLBACKS_DEFAULT_URL`).
    pub default_url: Option<String>,
    /// The bootstrap admin token's signing secret (`WASP_CALLBACKS_SECRET`); masked in logs.
    pub secret: Option<String>,
    /// Attempts per callback before it is dead-lettered.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Per attempt, the whole request and answer.
    pub timeout_ms: u64,
    pub poll_interval_ms: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            default_url: None,
            secret: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
        }
    }
}

impl CallbackConfig {
    /// Checks the values, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("callbacks.max_attempts must be at least 1".into());
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err("callbacks.initial_backoff_ms must be at least 1 and at most max_backoff_ms".into());
        }
        if self.timeout_ms == 0 || self.poll_interval_ms == 0 {
            return Err("callbacks.timeout_ms and poll_interval_ms must be at least 1".into());
        }
        if let Some(url) = &self.default_url {
            check_url(url).map_err(|error| format!("callbacks.default_url {url:?}: {error}"))?;
        }
        if self.secret.as_deref().is_some_and(str::is_empty) {
            return Err("callbacks.secret is empty".into());
        }
        Ok(())
    }
}

/// A callback URL must be `https`, or `http` to a loopback host (for tests and local receivers).
pub fn check_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|error| format!("is not a URL: {error}"))?;
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| "has no host".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; callbacks are signed instead".into());
    }
    // Cloud metadata services and the like live on link-local addresses: never a callback.
    let address = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    if let Some(address) = address {
        let forbidden = address.is_unspecified()
            || address.is_multicast()
            || match address {
                std::net::IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
                std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            };
        if forbidden {
            return Err(format!("{address} is a link-local, unspecified or multicast address"));
        }
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must be https (http only to a loopback address)".into())
            }
        }
        other => Err(format!("must be https, not {other}")),
    }
}

/// The wait after failed attempt `attempt` (1-based): `initial × 2^(attempt-1)`, capped at
/// `max`, then jittered to between half and all of it (`jitter` in `[0, 1]`).
pub fn backoff_ms(config: &CallbackConfig, attempt: u32, jitter: f64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(62);
    let base = config
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(config.max_backoff_ms);
    let half = base / 2;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let spread = ((base - half) as f64 * jitter.clamp(0.0, 1.0)) as u64;
    half + spread
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|moment| moment.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The JSON posted for one attempt: never the message body.
pub fn payload(callback: &PendingCallback, attempt: u32) -> Value {
    let mut body = json!({
        "id": callback.message_id,
        "status": callback.status.as_str(),
        "at": format_time(callback.at_ms),
        "cause": callback.cause,
        "attempt": attempt,
    });
    if let Some(recipient) = &callback.recipient {
        body["to"] = Value::String(recipient.clone());
    }
    if let Some(code) = callback.error_code {
        body["error_code"] = Value::from(code);
    }
    body
}

/// What an attempt came to, before the backoff is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Network error, timeout, 5xx or 429: try again.
    Retryable(String),
    /// Another answer (4xx but 429, or a redirect): no use trying again.
    Final(String),
}

/// Classifies an HTTP answer.
pub fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        429 | 500..=599 => Attempt::Retryable(format!("answered {status}")),
        _ => Attempt::Final(format!("answered {status}")),
    }
}

/// The outcome to record for `callback` after `attempt` (its `attempts + 1`).
pub fn outcome(
    config: &CallbackConfig,
    callback: &PendingCallback,
    result: Attempt,
    now_ms: i64,
    jitter: f64,
) -> CallbackOutcome {
    let attempts = callback.attempts.saturating_add(1);
    match result {
        Attempt::Delivered => CallbackOutcome::Delivered { seq: callback.seq },
        Attempt::Retryable(error) if attempts < config.max_attempts => CallbackOutcome::Retry {
            seq: callback.seq,
            attempts,
            next_at_ms: now_ms.saturating_add(i64::try_from(backoff_ms(config, attempts, jitter)).unwrap_or(i64::MAX)),
            error,
        },
        Attempt::Retryable(error) | Attempt::Final(error) => CallbackOutcome::Dead {
            seq: callback.seq,
            attempts,
            at_ms: now_ms,
            error,
        },
    }
}

/// The delivery task: signs with the secrets of the tokens behind the messages.
pub struct Deliverer {
    store: Store,
    config: CallbackConfig,
    client: reqwest::Client,
    /// Token id → signing secret; the bootstrap token's from config, others read once.
    secrets: HashMap<String, String>,
}

impl Deliverer {
    pub fn new(store: Store, config: CallbackConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut secrets = HashMap::new();
        if let Some(secret) = &config.secret {
            secrets.insert(crate::api::auth::BOOTSTRAP_TOKEN_ID.to_owned(), secret.clone());
        }
        Ok(Self {
            store,
            config,
            client,
            secrets,
        })
    }

    /// Runs until the process ends, delivering while `leader` holds shard 0 (once in the
    /// cluster).
    pub fn spawn(self, leader: std::sync::Arc<crate::cluster::Cluster>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(leader))
    }

    /// Keeps up to [`MAX_IN_FLIGHT`] attempts under way, each on its own, so a slow receiver
    /// holds back only its own messages; outcomes are recorded as they come, those finished
    /// together in one write.
    async fn run(mut self, leader: std::sync::Arc<crate::cluster::Cluster>) {
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let mut in_flight: JoinSet<(PendingCallback, Attempt)> = JoinSet::new();
        let mut busy: HashSet<i64> = HashSet::new();
        loop {
            if in_flight.is_empty() && !leader.is_leader() {
                tokio::time::sleep(poll).await;
                continue;
            }
            if busy.len() < MAX_IN_FLIGHT && leader.is_leader() {
                self.start_due(&mut in_flight, &mut busy).await;
            }
            let wait = if busy.len() >= MAX_IN_FLIGHT {
                poll
            } else {
                self.next_wait(poll, &busy).await
            };
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let mut finished = vec![done];
                    while let Some(done) = in_flight.try_join_next() {
                        finished.push(done);
                    }
                    self.record(finished, &mut busy).await;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long to wait for more work: until the next callback is due, at most `poll`.
    async fn next_wait(&self, poll: Duration, busy: &HashSet<i64>) -> Duration {
        match self.store.next_callback_due_ms().await {
            // Due now but already under way: wait for it to finish, or the poll.
            Ok(Some(_)) if !busy.is_empty() => poll,
            Ok(Some(due)) => {
                let ahead = u64::try_from(due.saturating_sub(crate::store::now_ms())).unwrap_or(0);
                poll.min(Duration::from_millis(ahead)).max(Duration::from_millis(1))
            }
            Ok(None) => poll,
            Err(error) => {
                tracing::warn!(%error, "reading the callback outbox failed; trying again");
                poll
            }
        }
    }

    /// Starts an attempt for every due callback not already under way.
    async fn start_due(&mut self, in_flight: &mut JoinSet<(PendingCallback, Attempt)>, busy: &mut HashSet<i64>) {
        let due = match self
            .store
            .due_callbacks(crate::store::now_ms(), MAX_IN_FLIGHT + busy.len())
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "reading the callback outbox failed; trying again");
                return;
            }
        };
        for callback in due {
            if busy.len() >= MAX_IN_FLIGHT {
                break;
            }
            if !busy.insert(callback.seq) {
                continue;
            }
            let secret = self.secret(&callback.token_id).await;
            let client = self.client.clone();
            in_flight.spawn(async move {
                let result = attempt(&client, &callback, secret.as_deref()).await;
                (callback, result)
            });
        }
    }

    async fn record(
        &self,
        finished: Vec<Result<(PendingCallback, Attempt), tokio::task::JoinError>>,
        busy: &mut HashSet<i64>,
    ) {
        let now_ms = crate::store::now_ms();
        let jitters: Vec<f64> = {
            let mut rng = rand::rng();
            finished.iter().map(|_| rng.random::<f64>()).collect()
        };
        let mut outcomes = Vec::with_capacity(finished.len());
        let mut seqs = Vec::with_capacity(finished.len());
        for (done, jitter) in finished.into_iter().zip(jitters) {
            let (callback, result) = match done {
                Ok(done) => done,
                Err(error) => {
                    // The attempt's seq is unknown here: the next poll takes it up again.
                    tracing::error!(%error, "a callback attempt panicked");
                    busy.clear();
                    continue;
                }
            };
            seqs.push(callback.seq);
            let outcome = outcome(&self.config, &callback, result, now_ms, jitter);
            match &outcome {
                CallbackOutcome::Delivered { .. } => {
                    tracing::debug!(message_id = %callback.message_id, seq = callback.seq, "callback delivered");
                }
                CallbackOutcome::Retry { attempts, error, .. } => {
                    tracing::info!(message_id = %callback.message_id, seq = callback.seq, attempts, %error, "callback failed; retrying");
                }
                CallbackOutcome::Dead { attempts, error, .. } => {
                    tracing::warn!(message_id = %callback.message_id, seq = callback.seq, attempts, %error, "callback dead-lettered");
                }
            }
            outcomes.push(outcome);
        }
        if let Err(error) = self.store.record_callbacks(outcomes).await {
            // Not recorded: these callbacks are still waiting and go again (at least once).
            tracing::error!(%error, "recording callback outcomes failed");
        }
        for seq in seqs {
            busy.remove(&seq);
        }
    }

    async fn secret(&mut self, token_id: &str) -> Option<String> {
        if !self.secrets.contains_key(token_id) {
            match self.store.token_callbacks().await {
                Ok(stored) => {
                    for callback in stored {
                        self.secrets.insert(callback.token_id, callback.secret);
                    }
                }
                Err(error) => tracing::warn!(%error, "reading callback secrets failed"),
            }
        }
        self.secrets.get(token_id).cloned()
    }
}

/// One POST of `callback`, signed with `secret`.
async fn attempt(client: &reqwest::Client, callback: &PendingCallback, secret: Option<&str>) -> Attempt {
    let Some(secret) = secret else {
        return Attempt::Final(format!("no callback secret for token {}", callback.token_id));
    };
    let body = match serde_json::to_vec(&payload(callback, callback.attempts.saturating_add(1))) {
        Ok(body) => body,
        Err(error) => return Attempt::Final(format!("encoding the callback: {error}")),
    };
    let answer = client
        .post(&callback.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sign(secret, &body))
        .header(DELIVERY_HEADER, &callback.delivery_id)
        .header(EVENT_SEQ_HEADER, callback.seq.to_string())
        .body(body)
        .send()
        .await;
    match answer {
        Ok(response) => classify(response.status().as_u16()),
        Err(error) if error.is_timeout() => Attempt::Retryable("timed out".into()),
        Err(error) => Attempt::Retryable(format!("could not be reached: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageId, Status};

    fn config() -> CallbackConfig {
        CallbackConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            max_attempts: 4,
            ..CallbackConfig::default()
        }
    }

    fn callback(attempts: u32) -> PendingCallback {
        PendingCallback {
            seq: 7,
            delivery_id: "d".into(),
            message_id: MessageId::new(),
            url: "https://example.com/hook".into(),
            token_id: "bootstrap".into(),
            status: Status::Sent,
            at_ms: 0,
            cause: "sent".into(),
            recipient: Some("+6591234567".into()),
            error_code: None,
            attempts,
            next_at_ms: 0,
            last_error: None,
            dead_at_ms: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() {
        let config = config();
        let full: Vec<u64> = (1..=6).map(|attempt| backoff_ms(&config, attempt, 1.0)).collect();
        assert_eq!(full, [100, 200, 400, 800, 1_000, 1_000]);
        let least: Vec<u64> = (1..=6).map(|attempt| backoff_ms(&config, attempt, 0.0)).collect();
        assert_eq!(least, [50, 100, 200, 400, 500, 500]);
        assert_eq!(backoff_ms(&config, 200, 1.0), 1_000, "no overflow");
    }

    #[test]
    fn retryable_failures_retry_until_the_last_attempt_then_die() {
        let config = config();
        let retry = outcome(
            &config,
            &callback(0),
            Attempt::Retryable("answered 500".into()),
            1_000,
            1.0,
        );
        assert_eq!(
            retry,
            CallbackOutcome::Retry {
                seq: 7,
                attempts: 1,
                next_at_ms: 1_100,
                error: "answered 500".into()
            }
        );
        let dead = outcome(
            &config,
            &callback(3),
            Attempt::Retryable("timed out".into()),
            5_000,
            0.5,
        );
        assert_eq!(
            dead,
            CallbackOutcome::Dead {
                seq: 7,
                attempts: 4,
                at_ms: 5_000,
                error: "timed out".into()
            }
        );
        let final_ = outcome(&config, &callback(0), classify(404), 5_000, 0.5);
        assert!(
            matches!(final_, CallbackOutcome::Dead { attempts: 1, .. }),
            "{final_:?}"
        );
        assert_eq!(
            outcome(&config, &callback(2), classify(204), 1, 0.0),
            CallbackOutcome::Delivered { seq: 7 }
        );
    }

    #[test]
    fn answers_are_classified_by_status() {
        assert_eq!(classify(200), Attempt::Delivered);
        assert!(matches!(classify(429), Attempt::Retryable(_)));
        assert!(matches!(classify(503), Attempt::Retryable(_)));
        assert!(matches!(classify(400), Attempt::Final(_)));
        assert!(matches!(classify(301), Attempt::Final(_)));
    }

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(check_url("https://hooks.example.com/wasp").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://hooks.example.com/wasp").is_err());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("not a url").is_err());
        // Metadata services, credentials in the URL, and addresses that are no one host.
        assert!(check_url("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check_url("https://[fe80::1]/hook").is_err());
        assert!(check_url("https://0.0.0.0/hook").is_err());
        assert!(check_url("https://224.0.0.1/hook").is_err());
        assert!(check_url("https://user:pass@hooks.example.com/wasp").is_err());
    }

    #[test]
    fn the_payload_carries_the_change_and_never_the_body() {
        let mut callback = callback(0);
        callback.error_code = Some(131_026);
        let body = payload(&callback, 2);
        assert_eq!(body["status"], "sent");
        assert_eq!(body["attempt"], 2);
        assert_eq!(body["to"], "+6591234567");
        assert_eq!(body["error_code"], 131_026);
        assert_eq!(body["at"], "1970-01-01T00:00:00Z");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
