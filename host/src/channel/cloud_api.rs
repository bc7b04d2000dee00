//! The WhatsApp Cloud API client: `POST {base_url}/{version}/{phone_number_id}/messages` with
//! a bearer token and Meta's JSON body; reads the wamid from `messages[0].id` and Meta's error
//! object (`error.code`, `error_subcode`, `message`, `error_data.details`) on failure.
//!
//! Failover: several base URLs, in order of preference, each with a circuit breaker. A
//! connection error or a 5xx answer takes the endpoint out of rotation at once and the same
//! send goes to the next endpoint in the same call (Meta did not accept it, so nothing is sent
//! twice). Other transport failures (a timeout, a reset mid-answer) also take the endpoint out,
//! but the send is not repeated here: whether it arrived is unknown, so it goes back to the
//! dispatcher's retry (at least once). A prober brings endpoints back when they answer again.
//!
//! Sender pool: with several phone number ids configured, each recipient keeps to one of them
//! ([`sender_index`], a stable hash of the recipient's digits), so a conversation never
//! changes number, and the load spreads over the pool.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    config::CloudApiConfig,
    message::{Content, PhoneNumber, Wamid},
};

/// How the dispatcher should treat a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try again with backoff.
    Retry,
    /// A rate limit: wait longer before trying again.
    RateLimited,
    /// Final: the message fails with Meta's code and message.
    Permanent,
}

impl ErrorClass {
    /// The metric label (`outcome` of `wasp_upstream_request_duration_seconds`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retry => "retry",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Permanent => "permanent",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("Cloud API answered HTTP {http_status}, code {code}: {message}")]
    Rejected {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        details: Option<String>,
    },
    #[error("Cloud API unreachable: {0}")]
    Transport(String),
    /// No connection could be made: the request never left, so another endpoint may take it.
    #[error("Cloud API endpoint refused the connection: {0}")]
    Unreachable(String),
    #[error("Cloud API answer not understood (HTTP {http_status}): {detail}")]
    Malformed { http_status: u16, detail: String },
}

impl SendError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::Rejected { code, http_status, .. } => classify(*code, *http_status),
            SendError::Transport(_) | SendError::Unreachable(_) => ErrorClass::Retry,
            SendError::Malformed { http_status, .. } if *http_status >= 500 => ErrorClass::Retry,
            SendError::Malformed { .. } => ErrorClass::Permanent,
        }
    }

    /// Which limit a rate-limit answer is about: the sender number's throughput (and the
    /// app, account and spam limits that act on the whole sender) or one recipient.
    pub fn rate_scope(&self) -> Option<RateScope> {
        match self {
            SendError::Rejected { code: 131056, .. } => Some(RateScope::Recipient),
            SendError::Rejected {
                code: 130429 | 131048 | 4 | 80007,
                ..
            } => Some(RateScope::Sender),
            _ => None,
        }
    }

    /// The endpoint failed (not the message): it leaves the rotation.
    fn is_endpoint_failure(&self) -> bool {
        match self {
            SendError::Transport(_) | SendError::Unreachable(_) => true,
            SendError::Rejected { http_status, .. } | SendError::Malformed { http_status, .. } => *http_status >= 500,
        }
    }

    /// Certainly not accepted upstream: the same send may go to another endpoint at once.
    fn is_failover_safe(&self) -> bool {
        match self {
            SendError::Unreachable(_) => true,
            SendError::Rejected { http_status, .. } | SendError::Malformed { http_status, .. } => *http_status >= 500,
            SendError::Transport(_) => false,
        }
    }

    /// Meta's error code, when Meta gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Meta's error codes by what to do about them.
pub fn classify(code: i64, http_status: u16) -> ErrorClass {
    match code {
        // Throughput, pair rate, spam rate, application and account rate limits.
        130429 | 131056 | 131048 | 4 | 80007 => ErrorClass::RateLimited,
        // Service errors and overload; an expired token is an operator's fix, not the message's fault.
        131000 | 131016 | 1 | 2 | 190 => ErrorClass::Retry,
        _ if http_status >= 500 => ErrorClass::Retry,
        _ => ErrorClass::Permanent,
    }
}

/// What a rate-limit answer slows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    Sender,
    Recipient,
}

/// Which number of a pool of `senders` sends to `recipient`: FNV-1a over the digits, the same
/// on every node and in every release. 0 for a pool of one (or none).
pub fn sender_index(recipient: &PhoneNumber, senders: usize) -> usize {
    if senders <= 1 {
        return 0;
    }
    let hash = recipient
        .digits()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // Both fit: the remainder is below `senders`.
    usize::try_from(hash % u64::try_from(senders).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// One upstream base URL and its circuit breaker.
struct Endpoint {
    base_url: String,
    /// One per sender number of the pool, in the pool's order.
    messages_urls: Vec<String>,
    /// Any answer below 500 here means the endpoint is back.
    probe_url: String,
    healthy: AtomicBool,
}

/// Counters of the failover machinery, for `wasp bench` and the logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FailoverStats {
    /// Endpoints taken out of rotation.
    pub trips: u64,
    /// Sends moved to another endpoint within the same call.
    pub failovers: u64,
    /// Endpoints brought back by the prober.
    pub recoveries: u64,
    /// When an endpoint was last taken out, in µs since the Unix epoch (0: never).
    pub last_trip_unix_us: i64,
}

pub struct CloudApi {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    access_token: Option<String>,
    /// The sender numbers of the pool; never empty.
    phone_number_ids: Vec<String>,
    probe_interval: Duration,
    trips: AtomicU64,
    failovers: AtomicU64,
    recoveries: AtomicU64,
    last_trip_unix_us: AtomicI64,
}

#[derive(Deserialize)]
struct SuccessBody {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: MetaError,
}

#[derive(Deserialize)]
struct MetaError {
    message: String,
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl CloudApi {
    pub fn new(config: &CloudApiConfig) -> Result<Self, SendError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| SendError::Transport(format!("building the HTTP client: {error}")))?;
        let phone_number_ids = config.senders();
        let probe_id = phone_number_ids.first().map_or("", String::as_str);
        let endpoints = config
            .endpoints()
            .into_iter()
            .map(|base_url| {
                let base = base_url.trim_end_matches('/');
                Endpoint {
                    messages_urls: phone_number_ids
                        .iter()
                        .map(|id| format!("{base}/{}/{id}/messages", config.api_version))
                        .collect(),
                    probe_url: format!("{base}/{}/{}", config.api_version, probe_id),
                    base_url: base.to_owned(),
                    healthy: AtomicBool::new(true),
                }
            })
            .collect();
        Ok(Self {
            client,
            endpoints,
            access_token: config.access_token.clone(),
            phone_number_ids,
            probe_interval: Duration::from_millis(config.probe_interval_ms.max(1)),
            trips: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            last_trip_unix_us: AtomicI64::new(0),
        })
    }

    pub fn failover_stats(&self) -> FailoverStats {
        FailoverStats {
            trips: self.trips.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            last_trip_unix_us: self.last_trip_unix_us.load(Ordering::Relaxed),
        }
    }

    /// Base URLs currently in rotation.
    pub fn healthy_endpoints(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .filter(|endpoint| endpoint.healthy.load(Ordering::Relaxed))
            .map(|endpoint| endpoint.base_url.clone())
            .collect()
    }

    /// Starts the task that probes endpoints out of rotation and brings them back; it ends
    /// when the client is dropped.
    pub fn spawn_prober(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.probe_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(api) = weak.upgrade() else { return };
                api.probe_once().await;
            }
        });
    }

    async fn probe_once(&self) {
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if endpoint.healthy.load(Ordering::Relaxed) {
                continue;
            }
            let answer = self
                .client
                .get(&endpoint.probe_url)
                .timeout(self.probe_interval)
                .send()
                .await;
            if let Ok(response) = answer
                && response.status().as_u16() < 500
            {
                endpoint.healthy.store(true, Ordering::Relaxed);
                self.recoveries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(endpoint = index, "Cloud API endpoint answers again; back in rotation");
            }
        }
    }

    fn trip(&self, index: usize, error: &SendError) {
        if self.endpoints[index].healthy.swap(false, Ordering::Relaxed) {
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX));
            self.last_trip_unix_us.store(now_us, Ordering::Relaxed);
            self.trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(endpoint = index, %error, "Cloud API endpoint out of rotation");
        }
    }

    /// The first sender id of the pool.
    pub fn phone_number_id(&self) -> &str {
        self.phone_number_ids.first().map_or("", String::as_str)
    }

    /// The sender id messages to `to` leave from.
    pub fn phone_number_id_for(&self, to: &PhoneNumber) -> &str {
        self.phone_number_ids
            .get(sender_index(to, self.phone_number_ids.len()))
            .map_or("", String::as_str)
    }

    /// Meta's request body for `content` to `to`. `reference` (the message id) travels as
    /// `biz_opaque_callback_data`, which Meta echoes on every status of the message.
    pub fn body(to: &PhoneNumber, content: &Content, reference: &str) -> Value {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
            "biz_opaque_callback_data": reference,
        });
        if let (Value::Object(target), Ok(Value::Object(fields))) = (&mut body, serde_json::to_value(content)) {
            target.extend(fields);
        }
        body
    }

    /// Sends over the first endpoint in rotation; when it fails before Meta accepted the
    /// message, over the next one, each endpoint at most once.
    pub async fn send(&self, to: &PhoneNumber, content: &Content, reference: &str) -> Result<Wamid, SendError> {
        let body = Self::body(to, content, reference);
        let sender = sender_index(to, self.phone_number_ids.len());
        let mut tried = vec![false; self.endpoints.len()];
        let mut last_error = None;
        loop {
            let healthy = (0..self.endpoints.len())
                .find(|&index| !tried[index] && self.endpoints[index].healthy.load(Ordering::Relaxed));
            // Every endpoint out of rotation: the first is tried anyway, it may be back.
            let next = healthy.or_else(|| (last_error.is_none()).then_some(0));
            let (Some(index), false) = (next, self.endpoints.is_empty()) else {
                return Err(last_error.unwrap_or_else(|| SendError::Unreachable("no endpoint configured".into())));
            };
            tried[index] = true;
            if last_error.is_some() {
                self.failovers.fetch_add(1, Ordering::Relaxed);
            }
            match self.post(index, sender, &body).await {
                Ok(wamid) => return Ok(wamid),
                Err(error) if error.is_endpoint_failure() => {
                    self.trip(index, &error);
                    if !error.is_failover_safe() {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn post(&self, index: usize, sender: usize, body: &Value) -> Result<Wamid, SendError> {
        let mut request = self
            .client
            .post(&self.endpoints[index].messages_urls[sender])
            .json(body);
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                SendError::Unreachable(error.to_string())
            } else {
                SendError::Transport(error.to_string())
            }
        })?;
        let http_status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| SendError::Transport(format!("reading the answer: {error}")))?;
        if (200..300).contains(&http_status) {
            let body: SuccessBody = serde_json::from_slice(&bytes).map_err(|error| SendError::Malformed {
                http_status,
                detail: error.to_string(),
            })?;
            let first = body.messages.into_iter().next().ok_or_else(|| SendError::Malformed {
                http_status,
                detail: "no messages[0].id in a success answer".into(),
            })?;
            return Ok(Wamid(first.id));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) => Err(SendError::Rejected {
                http_status,
                code: error.code,
                subcode: error.error_subcode,
                message: error.message,
                details: error.error_data.and_then(|data| data.details),
            }),
            Err(_) => Err(SendError::Malformed {
                http_status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_meta_shape() {
        let to = PhoneNumber::parse("+6591234567").unwrap();
        let content: Content = serde_json::from_value(json!({"type": "text", "text": {"body": "hi"}})).unwrap();
        assert_eq!(
            CloudApi::body(&to, &content, "m-1"),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "6591234567",
                   "biz_opaque_callback_data": "m-1", "type": "text", "text": {"body": "hi"}})
        );
    }

    #[test]
    fn error_codes_are_classified() {
        assert_eq!(classify(130429, 429), ErrorClass::RateLimited);
        assert_eq!(classify(131056, 400), ErrorClass::RateLimited);
        assert_eq!(classify(131000, 500), ErrorClass::Retry);
        assert_eq!(classify(131047, 400), ErrorClass::Permanent);
        assert_eq!(classify(131009, 400), ErrorClass::Permanent);
        assert_eq!(classify(132001, 404), ErrorClass::Permanent);
        assert_eq!(classify(99999, 503), ErrorClass::Retry);
    }

    fn rejected(code: i64, http_status: u16) -> SendError {
        SendError::Rejected {
            http_status,
            code,
            subcode: None,
            message: String::new(),
            details: None,
        }
    }

    #[test]
    fn rate_limits_name_what_they_slow_down() {
        assert_eq!(rejected(130429, 429).rate_scope(), Some(RateScope::Sender));
        assert_eq!(rejected(80007, 429).rate_scope(), Some(RateScope::Sender));
        assert_eq!(rejected(131056, 429).rate_scope(), Some(RateScope::Recipient));
        assert_eq!(rejected(131047, 400).rate_scope(), None);
    }

    #[test]
    fn only_failures_before_acceptance_move_to_another_endpoint() {
        assert!(SendError::Unreachable("refused".into()).is_failover_safe());
        assert!(rejected(131000, 500).is_failover_safe());
        assert!(!SendError::Transport("timed out".into()).is_failover_safe());
        assert!(SendError::Transport("timed out".into()).is_endpoint_failure());
        assert!(!rejected(131047, 400).is_endpoint_failure());
    }

    fn pool(ids: &[&str]) -> CloudApi {
        CloudApi::new(&CloudApiConfig {
            phone_number_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            base_urls: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2/".into()],
            ..CloudApiConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_recipient_always_maps_to_the_same_number() {
        let to = PhoneNumber::parse("+6591234567").unwrap();
        let first = sender_index(&to, 3);
        assert!((0..100).all(|_| sender_index(&to, 3) == first));
        assert_eq!(sender_index(&to, 1), 0);
        assert_eq!(sender_index(&to, 0), 0);
        let api = pool(&["1001", "1002", "1003"]);
        assert_eq!(api.phone_number_id_for(&to), ["1001", "1002", "1003"][first]);
        // Every endpoint posts for the same number.
        for endpoint in &api.endpoints {
            assert!(
                endpoint.messages_urls[first]
                    .ends_with(&format!("/v23.0/{}/messages", ["1001", "1002", "1003"][first]))
            );
        }
        assert_eq!(
            api.endpoints[1].messages_urls[0],
            "http://127.0.0.1:2/v23.0/1001/messages"
        );
    }

    #[test]
    fn recipients_spread_over_the_numbers() {
        let mut counts = [0_usize; 4];
        for index in 0..4_000 {
            let to = PhoneNumber::parse(&format!("+6591{index:06}")).unwrap();
            counts[sender_index(&to, 4)] += 1;
        }
        assert!(counts.iter().all(|count| (800..1_200).contains(count)), "{counts:?}");
    }

    #[test]
    fn without_a_pool_the_single_number_sends() {
        let api = CloudApi::new(&CloudApiConfig::default()).unwrap();
        let to = PhoneNumber::parse("+6591234567").unwrap();
        assert_eq!(api.phone_number_id_for(&to), crate::config::DEFAULT_PHONE_NUMBER_ID);
        assert_eq!(api.endpoints[0].messages_urls.len(), 1);
    }
}
