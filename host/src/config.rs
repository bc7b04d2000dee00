//! The host's configuration: one typed tree read from a TOML file, every key with a named
//! default and overridable by a `WASP_…` environment variable.
//!
//! A key `section.some_key` is overridden by `WASP_SECTION_SOME_KEY`; the secrets and the
//! database URL also answer to the plain names in [`PLAIN_NAMES`]. A malformed value stops
//! start-up naming the variable. Owns no I/O beyond reading the file it is given.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.wasp/wasp.db";
pub const DEFAULT_WRITE_BATCH_ROWS: usize = 2_000;
pub const DEFAULT_SHARDS: u16 = 256;
pub const DEFAULT_WORKERS: usize = 4;
pub const DEFAULT_CLAIM_BATCH: usize = 512;
pub const DEFAULT_SENDS_IN_FLIGHT_PER_WORKER: usize = 64;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 200;
pub const DEFAULT_LEASE_MS: u64 = 30_000;
pub const DEFAULT_LEASE_TTL_MS: u64 = 5_000;
pub const DEFAULT_RENEW_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_CHANGE_POLL_MS: u64 = 250;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_RETRY_BASE_MS: u64 = 500;
pub const DEFAULT_RETRY_MAX_MS: u64 = 60_000;
pub const DEFAULT_PLUGINS_DIR: &str = "plugins-enabled";
pub const DEFAULT_COMPILED_CACHE_DIR: &str = ".wasp/compiled";
pub const DEFAULT_FUEL_PER_CALL: u64 = 50_000_000;
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_CALL_DEADLINE_MS: u64 = 100;
pub const DEFAULT_INSTANCES_PER_PLUGIN: usize = 8;
pub const DEFAULT_QUARANTINE_AFTER_FAULTS: u64 = 20;
pub const DEFAULT_CLOUD_API_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_CLOUD_API_VERSION: &str = "v23.0";
pub const DEFAULT_PHONE_NUMBER_ID: &str = "100000000000001";
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_SMS_BASE_URL: &str = "https://api.twilio.com";
pub const DEFAULT_LOG_FORMAT: &str = "text";
pub const DEFAULT_MAX_BATCH_BODY_BYTES: usize = 8 * 1024 * 1024;
pub const DEFAULT_MAX_BACKLOG: u64 = 1_000_000;
pub const DEFAULT_BACKLOG_RETRY_AFTER_MS: u64 = 1_000;
pub const DEFAULT_MESSAGE_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
/// A sensitive body is purged this long after acceptance, whatever its status.
pub const DEFAULT_SENSITIVE_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_RATE_LIMIT_HOLD_MS: u64 = 250;
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 80;
/// Meta's ceiling for one number's throughput.
pub const MAX_MESSAGES_PER_SECOND: u32 = 1_000;
pub const DEFAULT_PAIR_INTERVAL_MS: u64 = 6_000;
pub const DEFAULT_PAIR_BURST: u32 = 45;
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 500;
/// Distinct recipients per rolling 24 h for business-initiated conversations; 0: no limit.
/// Meta's tiers are 250, 2,000, 10,000 and 100,000.
pub const DEFAULT_DAILY_TIER_LIMIT: u32 = 0;
/// An inbound text that is one of these words, and nothing else, opts its sender out.
/// `CANCEL` is left out on purpose: businesses ask customers to reply CANCEL to call off a
/// booking or an order, and an opt-out would also stop their one-time passwords.
pub const DEFAULT_OPT_OUT_KEYWORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT"];
/// An inbound text that is one of these words, and nothing else, opts its sender back in.
pub const DEFAULT_OPT_IN_KEYWORDS: &[&str] = &["START", "UNSTOP"];
/// Days of per-minute stats rollups kept.
pub const DEFAULT_STATS_RETENTION_DAYS: u32 = 35;
/// Longest stats retention: ten years of minutes.
pub const MAX_STATS_RETENTION_DAYS: u32 = 3_650;

/// Plain environment names for the keys people set most, beside the generic `WASP_…` form.
pub const PLAIN_NAMES: &[(&str, &str)] = &[
    ("WASP_ADMIN_TOKEN", "server.admin_token"),
    ("WASP_METRICS_TOKEN", "server.metrics_token"),
    ("WASP_LISTEN", "server.listen"),
    ("WASP_DATABASE_URL", "store.database_url"),
    ("WASP_APP_SECRET", "webhook.app_secret"),
    ("WASP_VERIFY_TOKEN", "webhook.verify_token"),
    ("WASP_CLOUD_API_TOKEN", "channel.cloud_api.access_token"),
    ("WASP_SMS_AUTH_TOKEN", "channel.sms.auth_token"),
];

/// Keys without a default value (secrets): they exist only when set.
const OPTIONAL_KEYS: &[&str] = &[
    "server.admin_token",
    "server.metrics_token",
    "webhook.app_secret",
    "webhook.verify_token",
    "channel.cloud_api.access_token",
    "channel.sms.auth_token",
    "store.active_key_id",
    "callbacks.default_url",
    "callbacks.secret",
    "health.webhook_url",
];

/// Keys whose environment override is a JSON object of strings (a TOML table in the file).
const JSON_TABLE_KEYS: &[&str] = &["store.encryption_keys"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {variable}={value:?}: {message}")]
    Environment {
        variable: String,
        value: String,
        message: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub dispatch: DispatchConfig,
    pub policy: PolicyConfig,
    pub channel: ChannelConfig,
    pub webhook: WebhookConfig,
    pub regions: crate::regions::RegionConfig,
    pub contacts: ContactsConfig,
    pub log: LogConfig,
    pub callbacks: crate::callbacks::CallbackConfig,
    pub templates: crate::templates::TemplatesConfig,
    pub cluster: ClusterConfig,
    pub stats: StatsConfig,
    pub health: crate::health::config::HealthConfig,
}

/// The per-minute receipt and rate rollups (`GET /v1/stats`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Rollup minutes older than this many days are pruned (at most once an hour).
    pub retention_days: u32,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            retention_days: DEFAULT_STATS_RETENTION_DAYS,
        }
    }
}

/// Several nodes on one PostgreSQL: who this node is and how its shard leases run. A node on
/// SQLite is a cluster of one and holds every shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name; empty: the host name. Every start adds a random suffix, so a
    /// restarted process is a new node and takes its shards over with a new fencing epoch.
    pub node_id: String,
    /// Where other nodes and `wasp cluster status` reach this node's API; empty:
    /// `server.listen`.
    pub advertise_address: String,
    /// A shard lease not renewed for this long is lost and taken by another live node.
    pub lease_ttl_ms: u64,
    /// How often a node heartbeats and renews its leases.
    pub renew_interval_ms: u64,
    /// How often a node looks for admin changes made on other nodes (plugins, templates,
    /// tokens) and loads them.
    pub change_poll_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            advertise_address: String::new(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            renew_interval_ms: DEFAULT_RENEW_INTERVAL_MS,
            change_poll_ms: DEFAULT_CHANGE_POLL_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Bearer token for every `/v1` route.
    pub admin_token: Option<String>,
    /// Bearer token a scraper must present for `GET /metrics`; unset, the route is open to
    /// whoever reaches the listen address (bind it privately then).
    pub metrics_token: Option<String>,
    pub max_body_bytes: usize,
    /// Body limit of `POST /v1/messages/batch` (up to 1,000 messages).
    pub max_batch_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            admin_token: None,
            metrics_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_body_bytes: DEFAULT_MAX_BATCH_BODY_BYTES,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (one node) or `postgres://user@host/db` (one or more nodes
    /// sharing it).
    pub database_url: String,
    /// Most rows one group-commit transaction takes.
    pub write_batch_rows: usize,
    /// Keys that encrypt sensitive bodies at rest (AES-256-GCM): key id → base64 of 32
    /// bytes. Keep old keys after a rotation: the bodies they sealed need them.
    /// `WASP_STORE_ENCRYPTION_KEYS` takes them as a JSON object.
    pub encryption_keys: BTreeMap<String, String>,
    /// The key that seals new sensitive bodies; none: sensitive messages are refused.
    pub active_key_id: Option<String>,
    /// A sensitive body is purged this long after acceptance whatever its status (sooner
    /// once read); a message not sent by then ends `expired`.
    pub sensitive_ttl_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            write_batch_rows: DEFAULT_WRITE_BATCH_ROWS,
            encryption_keys: BTreeMap::new(),
            active_key_id: None,
            sensitive_ttl_ms: DEFAULT_SENSITIVE_TTL_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    pub shards: u16,
    pub workers: usize,
    /// Most messages taken from the store in one claim.
    pub claim_batch: usize,
    pub sends_in_flight_per_worker: usize,
    /// How often deferred and retried messages are looked for when nothing else wakes the dispatcher.
    pub poll_interval_ms: u64,
    /// How long a claimed message stays reserved for this process.
    pub lease_ms: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Pending messages (not yet sent nor ended) past which the API answers 429.
    pub max_backlog: u64,
    /// `Retry-After` of those 429 answers (sent in whole seconds, at least 1).
    pub backlog_retry_after_ms: u64,
    /// A message not sent this long after acceptance ends `expired`; 0: never.
    pub message_ttl_ms: u64,
    /// On SIGTERM, how long in-flight sends may take to finish before the process exits.
    pub drain_timeout_ms: u64,
    /// A send waiting for a rate limit longer than this goes back to the queue with a due
    /// time instead of holding its in-flight slot.
    pub rate_limit_hold_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            shards: DEFAULT_SHARDS,
            workers: DEFAULT_WORKERS,
            claim_batch: DEFAULT_CLAIM_BATCH,
            sends_in_flight_per_worker: DEFAULT_SENDS_IN_FLIGHT_PER_WORKER,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            lease_ms: DEFAULT_LEASE_MS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            max_backlog: DEFAULT_MAX_BACKLOG,
            backlog_retry_after_ms: DEFAULT_BACKLOG_RETRY_AFTER_MS,
            message_ttl_ms: DEFAULT_MESSAGE_TTL_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            rate_limit_hold_ms: DEFAULT_RATE_LIMIT_HOLD_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Where plugin components (`*.wasm`) are loaded from at start.
    pub plugins_dir: String,
    /// Compiled plugin code, keyed by the component's hash, so a restart does not recompile.
    pub compiled_cache_dir: String,
    pub fuel_per_call: u64,
    pub memory_limit_bytes: usize,
    pub call_deadline_ms: u64,
    pub instances_per_plugin: usize,
    /// Faults in a row after which a plugin is quarantined (skipped until activated again).
    pub quarantine_after_faults: u64,
    /// Plugins to seed the chain with, in order, the first time the store does not know them.
    /// Empty: every `*.wasm` in `plugins_dir`, by file name, default config.
    pub plugins: Vec<PluginEntry>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            plugins_dir: DEFAULT_PLUGINS_DIR.to_owned(),
            compiled_cache_dir: DEFAULT_COMPILED_CACHE_DIR.to_owned(),
            fuel_per_call: DEFAULT_FUEL_PER_CALL,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            call_deadline_ms: DEFAULT_CALL_DEADLINE_MS,
            instances_per_plugin: DEFAULT_INSTANCES_PER_PLUGIN,
            quarantine_after_faults: DEFAULT_QUARANTINE_AFTER_FAULTS,
            plugins: Vec::new(),
        }
    }
}

/// What happens to a message when its plugin faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The message is rejected with the fault as its reason.
    #[default]
    Closed,
    /// The plugin is skipped for this message.
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    pub name: String,
    /// File in `plugins_dir`; default `<name>.wasm`, or with `_` for `-` as cargo names it.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Handed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    pub cloud_api: CloudApiConfig,
    pub sms: SmsConfig,
}

/// A Twilio-compatible SMS provider; off while `from` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Option<String>,
    /// The sender number (E.164) or alphanumeric sender id.
    pub from: String,
    pub request_timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_SMS_BASE_URL.to_owned(),
            account_sid: String::new(),
            auth_token: None,
            from: String::new(),
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudApiConfig {
    pub base_url: String,
    /// Several upstream endpoints, in order of preference; empty: `base_url` alone.
    pub base_urls: Vec<String>,
    pub api_version: String,
    pub phone_number_id: String,
    /// Several sender numbers sharing the load of one logical sender; each recipient keeps
    /// to one of them. Empty: `phone_number_id` alone.
    pub phone_number_ids: Vec<String>,
    pub access_token: Option<String>,
    /// The WhatsApp Business Account that owns the templates (`/{id}/message_templates`).
    /// Unset: templates are not managed and messages naming one are not checked.
    pub business_account_id: Option<String>,
    pub request_timeout_ms: u64,
    /// How often an endpoint taken out of rotation is probed to bring it back.
    pub probe_interval_ms: u64,
    /// Throughput of the sender number (a token bucket); Meta allows 80 by default, up to
    /// 1,000. 0 turns the limit off (for benchmarks against the simulator).
    pub messages_per_second: u32,
    /// Per recipient: one message per this interval on average...
    pub pair_interval_ms: u64,
    /// ...after a burst of this many. 0 turns the pair limit off.
    pub pair_burst: u32,
    /// The business-initiated tier: distinct recipients a conversation may be opened with
    /// per rolling 24 h. When it is full, `bulk` messages wait; `critical` ones still go.
    /// 0: no limit.
    pub daily_tier_limit: u32,
}

impl CloudApiConfig {
    /// The endpoints in order of preference.
    pub fn endpoints(&self) -> Vec<String> {
        if self.base_urls.is_empty() {
            vec![self.base_url.clone()]
        } else {
            self.base_urls.clone()
        }
    }

    /// The sender numbers of the pool, in configured order.
    pub fn senders(&self) -> Vec<String> {
        if self.phone_number_ids.is_empty() {
            vec![self.phone_number_id.clone()]
        } else {
            self.phone_number_ids.clone()
        }
    }
}

impl Default for CloudApiConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_CLOUD_API_BASE_URL.to_owned(),
            api_version: DEFAULT_CLOUD_API_VERSION.to_owned(),
            phone_number_id: DEFAULT_PHONE_NUMBER_ID.to_owned(),
            access_token: None,
            business_account_id: None,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            base_urls: Vec::new(),
            probe_interval_ms: DEFAULT_PROBE_INTERVAL_MS,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            pair_interval_ms: DEFAULT_PAIR_INTERVAL_MS,
            pair_burst: DEFAULT_PAIR_BURST,
            phone_number_ids: Vec::new(),
            daily_tier_limit: DEFAULT_DAILY_TIER_LIMIT,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Meta's app secret: webhooks are checked against `X-Hub-Signature-256` with it.
    pub app_secret: Option<String>,
    /// Answers Meta's subscription handshake.
    pub verify_token: Option<String>,
}

/// What inbound messages say about a contact's consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactsConfig {
    /// An inbound text whose whole body (trimmed, any case) is one of these opts the contact out.
    pub opt_out_keywords: Vec<String>,
    /// ...and one of these opts it back in.
    pub opt_in_keywords: Vec<String>,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        let owned = |words: &[&str]| words.iter().map(|word| (*word).to_owned()).collect();
        Self {
            opt_out_keywords: owned(DEFAULT_OPT_OUT_KEYWORDS),
            opt_in_keywords: owned(DEFAULT_OPT_IN_KEYWORDS),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `RUST_LOG`-style filter; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: DEFAULT_LOG_FORMAT.to_owned(),
            filter: "info".to_owned(),
        }
    }
}

impl Config {
    /// Reads `path` (if given), then applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let origin = path.map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
        Self::from_parts(&text, &origin, &environment)
    }

    /// Builds the config from TOML text and an environment map; the pure core of [`Config::load`].
    pub fn from_parts(text: &str, origin: &str, environment: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut tree: toml::Table = toml::from_str(text).map_err(|error| Error::Parse {
            path: origin.to_owned(),
            message: error.to_string(),
        })?;
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|error| Error::Invalid(format!("serialising defaults: {error}")))?;
        let mut keys = Vec::new();
        collect_leaf_keys(&defaults, "", &mut keys);
        keys.extend(OPTIONAL_KEYS.iter().map(|key| ((*key).to_owned(), None)));
        keys.extend(
            JSON_TABLE_KEYS
                .iter()
                .map(|key| ((*key).to_owned(), Some(toml::Value::Table(toml::Table::new())))),
        );

        for (key, default) in &keys {
            let generic = format!("WASP_{}", key.replace('.', "_").to_uppercase());
            let plain = PLAIN_NAMES.iter().find(|(_, path)| path == key).map(|(name, _)| *name);
            // The plain name wins over the generic one when both are set.
            let found = plain
                .and_then(|name| environment.get(name).map(|value| (name.to_owned(), value)))
                .or_else(|| environment.get(&generic).map(|value| (generic.clone(), value)));
            let Some((variable, raw)) = found else { continue };
            let value = parse_override(raw, default.as_ref()).map_err(|message| Error::Environment {
                variable: variable.clone(),
                // Encryption keys are secrets: a malformed value is not repeated.
                value: if JSON_TABLE_KEYS.contains(&key.as_str()) {
                    "********".into()
                } else {
                    raw.clone()
                },
                message,
            })?;
            set_path(&mut tree, key, value);
        }

        let config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|error: toml::de::Error| Error::Parse {
                path: origin.to_owned(),
                message: error.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.dispatch.shards == 0 {
            return Err(Error::Invalid("dispatch.shards must be at least 1".into()));
        }
        if self.dispatch.workers == 0 {
            return Err(Error::Invalid("dispatch.workers must be at least 1".into()));
        }
        if self.dispatch.claim_batch == 0 || self.store.write_batch_rows == 0 {
            return Err(Error::Invalid(
                "dispatch.claim_batch and store.write_batch_rows must be at least 1".into(),
            ));
        }
        if self.channel.cloud_api.messages_per_second > MAX_MESSAGES_PER_SECOND {
            return Err(Error::Invalid(format!(
                "channel.cloud_api.messages_per_second {}: at most {MAX_MESSAGES_PER_SECOND}",
                self.channel.cloud_api.messages_per_second
            )));
        }
        if let Some(url) = self
            .channel
            .cloud_api
            .endpoints()
            .into_iter()
            .find(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(Error::Invalid(format!(
                "channel.cloud_api.base_urls: {url:?} is not an http(s) URL"
            )));
        }
        if let Some(id) = self
            .channel
            .cloud_api
            .senders()
            .into_iter()
            .find(|id| id.is_empty() || !id.bytes().all(|byte| byte.is_ascii_digit()))
        {
            return Err(Error::Invalid(format!(
                "channel.cloud_api.phone_number_ids: {id:?} is not a phone number id (digits)"
            )));
        }
        crate::store::Keyring::new(&self.store.encryption_keys, self.store.active_key_id.as_deref())
            .map_err(|error| Error::Invalid(format!("store.encryption_keys: {error}")))?;
        let url = &self.store.database_url;
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(Error::Invalid(format!(
                "store.database_url {url:?}: expected a sqlite: or postgres: URL"
            )));
        }
        let cluster = &self.cluster;
        if cluster.renew_interval_ms == 0 || cluster.lease_ttl_ms < cluster.renew_interval_ms.saturating_mul(2) {
            return Err(Error::Invalid(format!(
                "cluster.lease_ttl_ms ({}) must be at least twice cluster.renew_interval_ms ({}, at least 1)",
                cluster.lease_ttl_ms, cluster.renew_interval_ms
            )));
        }
        if cluster.change_poll_ms == 0 {
            return Err(Error::Invalid("cluster.change_poll_ms must be at least 1".into()));
        }
        if cluster.node_id.len() > 64
            || cluster
                .node_id
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            return Err(Error::Invalid(format!(
                "cluster.node_id {:?}: up to 64 letters, digits, '-', '_' or '.'",
                cluster.node_id
            )));
        }
        let contacts = &self.contacts;
        if let Some(blank) = contacts
            .opt_out_keywords
            .iter()
            .chain(&contacts.opt_in_keywords)
            .find(|word| word.trim().is_empty())
        {
            return Err(Error::Invalid(format!(
                "contacts.opt_out_keywords and opt_in_keywords: {blank:?} is blank"
            )));
        }
        if let Some(both) = contacts.opt_out_keywords.iter().find(|word| {
            contacts
                .opt_in_keywords
                .iter()
                .any(|other| other.trim().to_uppercase() == word.trim().to_uppercase())
        }) {
            return Err(Error::Invalid(format!(
                "contacts: {both:?} is both an opt-out and an opt-in keyword"
            )));
        }
        self.callbacks.validate().map_err(Error::Invalid)?;
        self.templates.validate().map_err(Error::Invalid)?;
        self.health.validate().map_err(Error::Invalid)?;
        if let Some(id) = &self.channel.cloud_api.business_account_id
            && (id.is_empty() || !id.bytes().all(|byte| byte.is_ascii_digit()))
        {
            return Err(Error::Invalid(format!(
                "channel.cloud_api.business_account_id {id:?} is not a business account id (digits)"
            )));
        }
        if !(1..=MAX_STATS_RETENTION_DAYS).contains(&self.stats.retention_days) {
            return Err(Error::Invalid(format!(
                "stats.retention_days {}: from 1 to {MAX_STATS_RETENTION_DAYS}",
                self.stats.retention_days
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(Error::Invalid(format!(
                "log.format {:?}: expected \"text\" or \"json\"",
                self.log.format
            )));
        }
        Ok(())
    }

    /// The resolved config as TOML with secrets masked, for the start-up log.
    pub fn masked(&self) -> String {
        let mut copy = self.clone();
        for secret in [
            &mut copy.server.admin_token,
            &mut copy.server.metrics_token,
            &mut copy.webhook.app_secret,
            &mut copy.webhook.verify_token,
            &mut copy.channel.cloud_api.access_token,
            &mut copy.channel.sms.auth_token,
            &mut copy.callbacks.secret,
        ] {
            if secret.is_some() {
                *secret = Some("********".into());
            }
        }
        for key in copy.store.encryption_keys.values_mut() {
            *key = "********".into();
        }
        toml::to_string(&copy).unwrap_or_else(|error| format!("(unprintable config: {error})"))
    }
}

fn collect_leaf_keys(table: &toml::Table, prefix: &str, out: &mut Vec<(String, Option<toml::Value>)>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => collect_leaf_keys(inner, &key, out),
            other => out.push((key, Some(other.clone()))),
        }
    }
}

/// A string default (or no default) takes the raw text; anything else is read as a TOML value
/// of the default's type.
fn parse_override(raw: &str, default: Option<&toml::Value>) -> Result<toml::Value, String> {
    match default {
        None | Some(toml::Value::String(_)) => Ok(toml::Value::String(raw.to_owned())),
        // A table (`store.encryption_keys`): a JSON object of strings.
        Some(toml::Value::Table(_)) => {
            let object: BTreeMap<String, String> = serde_json::from_str(raw)
                .map_err(|_| "expected a JSON object of strings, such as {\"k1\": \"<base64>\"}".to_owned())?;
            Ok(toml::Value::Table(
                object
                    .into_iter()
                    .map(|(key, value)| (key, toml::Value::String(value)))
                    .collect(),
            ))
        }
        Some(default) => {
            let parsed: toml::Table =
                toml::from_str(&format!("value = {raw}")).map_err(|_| format!("expected a {}", default.type_str()))?;
            let value = parsed
                .get("value")
                .cloned()
                .ok_or_else(|| format!("expected a {}", default.type_str()))?;
            if value.type_str() != default.type_str() {
                return Err(format!("expected a {}, got a {}", default.type_str(), value.type_str()));
            }
            Ok(value)
        }
    }
}

fn set_path(tree: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut table = tree;
    for part in parts {
        let entry = table
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        table = inner;
    }
    table.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(config.server.listen, DEFAULT_LISTEN);
        assert_eq!(config.dispatch.shards, 256);
        assert!(config.server.admin_token.is_none());
    }

    #[test]
    fn file_values_and_environment_overrides_apply() {
        let text = "[dispatch]\nworkers = 3\n[server]\nlisten = \"0.0.0.0:9000\"\n";
        let env = environment(&[
            ("WASP_DISPATCH_SHARDS", "64"),
            ("WASP_ADMIN_TOKEN", "secret-token"),
            ("WASP_CHANNEL_CLOUD_API_BASE_URL", "http://127.0.0.1:9999"),
        ]);
        let config = Config::from_parts(text, "wasp.toml", &env).unwrap();
        assert_eq!(config.dispatch.workers, 3);
        assert_eq!(config.dispatch.shards, 64);
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.server.admin_token.as_deref(), Some("secret-token"));
        assert_eq!(config.channel.cloud_api.base_url, "http://127.0.0.1:9999");
    }

    #[test]
    fn the_sender_pool_and_the_tier_come_from_the_file_or_the_environment() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(config.channel.cloud_api.senders(), [DEFAULT_PHONE_NUMBER_ID]);
        assert_eq!(config.channel.cloud_api.daily_tier_limit, DEFAULT_DAILY_TIER_LIMIT);
        let env = environment(&[
            ("WASP_CHANNEL_CLOUD_API_PHONE_NUMBER_IDS", "[\"1001\", \"1002\"]"),
            ("WASP_CHANNEL_CLOUD_API_DAILY_TIER_LIMIT", "250"),
        ]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.channel.cloud_api.senders(), ["1001", "1002"]);
        assert_eq!(config.channel.cloud_api.daily_tier_limit, 250);
        let error = Config::from_parts(
            "[channel.cloud_api]\nphone_number_ids = [\"10a\"]\n",
            "wasp.toml",
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("phone_number_ids"), "{error}");
    }

    #[test]
    fn stats_retention_has_a_default_an_override_and_bounds() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(config.stats.retention_days, DEFAULT_STATS_RETENTION_DAYS);
        let env = environment(&[("WASP_STATS_RETENTION_DAYS", "7")]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.stats.retention_days, 7);
        for days in ["0", "3651"] {
            let error = Config::from_parts(
                &format!("[stats]\nretention_days = {days}\n"),
                "wasp.toml",
                &BTreeMap::new(),
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains("stats.retention_days"), "{error}");
        }
    }

    #[test]
    fn malformed_environment_value_names_the_variable() {
        let env = environment(&[("WASP_DISPATCH_WORKERS", "many")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("WASP_DISPATCH_WORKERS"), "{error}");
        assert!(error.contains("many"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = Config::from_parts("[server]\nlisten_port = 1\n", "wasp.toml", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen_port"), "{error}");
    }

    #[test]
    fn callbacks_come_from_the_environment_and_the_secret_is_masked() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(config.callbacks.max_attempts, crate::callbacks::DEFAULT_MAX_ATTEMPTS);
        assert_eq!(config.callbacks.secret, None);
        let env = environment(&[
            ("WASP_CALLBACKS_SECRET", "callback-secret"),
            ("WASP_CALLBACKS_DEFAULT_URL", "https://hooks.example.com/wasp"),
            ("WASP_CALLBACKS_MAX_ATTEMPTS", "3"),
            ("WASP_CALLBACKS_INITIAL_BACKOFF_MS", "10"),
        ]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.callbacks.secret.as_deref(), Some("callback-secret"));
        assert_eq!(
            config.callbacks.default_url.as_deref(),
            Some("https://hooks.example.com/wasp")
        );
        assert_eq!(
            (config.callbacks.max_attempts, config.callbacks.initial_backoff_ms),
            (3, 10)
        );
        assert!(!config.masked().contains("callback-secret"));
        let env = environment(&[("WASP_CALLBACKS_DEFAULT_URL", "http://hooks.example.com/")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("callbacks.default_url"), "{error}");
    }

    #[test]
    fn masked_hides_secrets() {
        let env = environment(&[
            ("WASP_APP_SECRET", "very-secret"),
            ("WASP_METRICS_TOKEN", "scrape-secret"),
        ]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.server.metrics_token.as_deref(), Some("scrape-secret"));
        let printed = config.masked();
        assert!(!printed.contains("very-secret"));
        assert!(!printed.contains("scrape-secret"));
        assert!(printed.contains("********"));
    }

    #[test]
    fn encryption_keys_come_from_the_file_or_json_in_the_environment_and_are_masked() {
        let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert!(config.store.encryption_keys.is_empty());
        assert_eq!(config.store.active_key_id, None);
        assert_eq!(config.store.sensitive_ttl_ms, DEFAULT_SENSITIVE_TTL_MS);
        let text = format!("[store]\nencryption_keys = {{ k1 = \"{key}\" }}\nactive_key_id = \"k1\"\n");
        let config = Config::from_parts(&text, "wasp.toml", &BTreeMap::new()).unwrap();
        assert_eq!(config.store.encryption_keys["k1"], key);
        let printed = config.masked();
        assert!(!printed.contains(key), "{printed}");
        let json = format!("{{\"k1\": \"{key}\", \"k2\": \"{key}\"}}");
        let env = environment(&[
            ("WASP_STORE_ENCRYPTION_KEYS", json.as_str()),
            ("WASP_STORE_ACTIVE_KEY_ID", "k2"),
            ("WASP_STORE_SENSITIVE_TTL_MS", "60000"),
        ]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.store.encryption_keys.len(), 2);
        assert_eq!(config.store.active_key_id.as_deref(), Some("k2"));
        assert_eq!(config.store.sensitive_ttl_ms, 60_000);
        let env = environment(&[("WASP_STORE_ENCRYPTION_KEYS", "k1=abc")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("WASP_STORE_ENCRYPTION_KEYS"), "{error}");
        let env = environment(&[("WASP_STORE_ENCRYPTION_KEYS", r#"{"k1": "c2hvcnQ="}"#)]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("32 bytes"), "{error}");
        let env = environment(&[("WASP_STORE_ACTIVE_KEY_ID", "k1")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("active_key_id"), "{error}");
    }

    #[test]
    fn base_urls_come_from_a_list_or_fall_back_to_base_url() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(
            config.channel.cloud_api.endpoints(),
            vec![DEFAULT_CLOUD_API_BASE_URL.to_owned()]
        );
        let env = environment(&[(
            "WASP_CHANNEL_CLOUD_API_BASE_URLS",
            r#"["http://127.0.0.1:1", "http://127.0.0.1:2"]"#,
        )]);
        let config = Config::from_parts("", "(none)", &env).unwrap();
        assert_eq!(config.channel.cloud_api.endpoints().len(), 2);
        let env = environment(&[("WASP_CHANNEL_CLOUD_API_MESSAGES_PER_SECOND", "1001")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("messages_per_second"), "{error}");
    }

    #[test]
    fn opt_keywords_have_defaults_and_come_from_the_file_or_the_environment() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert!(config.contacts.opt_out_keywords.iter().any(|word| word == "STOP"));
        assert!(!config.contacts.opt_out_keywords.iter().any(|word| word == "CANCEL"));
        assert_eq!(config.contacts.opt_in_keywords, ["START", "UNSTOP"]);
        let env = environment(&[("WASP_CONTACTS_OPT_OUT_KEYWORDS", r#"["STOP", "ARRET"]"#)]);
        let config = Config::from_parts("[contacts]\nopt_in_keywords = [\"GO\"]\n", "wasp.toml", &env).unwrap();
        assert_eq!(config.contacts.opt_out_keywords, ["STOP", "ARRET"]);
        assert_eq!(config.contacts.opt_in_keywords, ["GO"]);
        let error = Config::from_parts(
            "[contacts]\nopt_in_keywords = [\"stop\"]\n",
            "wasp.toml",
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("both"), "{error}");
        let env = environment(&[("WASP_CONTACTS_OPT_IN_KEYWORDS", "START")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("WASP_CONTACTS_OPT_IN_KEYWORDS"), "{error}");
    }

    #[test]
    fn health_rules_come_from_the_file_and_their_mistakes_stop_start_up() {
        let config = Config::from_parts("", "(none)", &BTreeMap::new()).unwrap();
        assert_eq!(config.health.rules().unwrap().len(), 4, "the four default rules");
        let text = "[health]\nwebhook_url = \"https://ops.example.com/hook\"\n\n[[health.rules]]\nname = \"backlog\"\nmetric = \"backlog\"\nabove = 20\nclear = 5\naction = \"degrade\"\n";
        let env = environment(&[("WASP_HEALTH_EVALUATE_EVERY_MS", "250")]);
        let config = Config::from_parts(text, "wasp.toml", &env).unwrap();
        assert_eq!(config.health.evaluate_every_ms, 250);
        assert_eq!(
            config.health.webhook_url.as_deref(),
            Some("https://ops.example.com/hook")
        );
        let rules = config.health.rules().unwrap();
        assert_eq!((rules.len(), rules[0].threshold, rules[0].clear), (1, 20.0, 5.0));
        let config = Config::from_parts("[health]\nrules = []\n", "wasp.toml", &BTreeMap::new()).unwrap();
        assert!(config.health.rules().unwrap().is_empty());
        let error = Config::from_parts(
            "[[health.rules]]\nname = \"b\"\nmetric = \"backlog\"\nabove = 20\nclear = 30\naction = \"degrade\"\n",
            "wasp.toml",
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("health.rules[0]") && error.contains("clear"), "{error}");
        let env = environment(&[("WASP_HEALTH_WEBHOOK_URL", "http://ops.example.com/hook")]);
        let error = Config::from_parts("", "(none)", &env).unwrap_err().to_string();
        assert!(error.contains("health.webhook_url"), "{error}");
    }

    #[test]
    fn plugin_chain_reads_inline_config() {
        let text = r#"
[[policy.plugins]]
name = "button-limit"
failure = "open"
config = { max_buttons = 3 }
"#;
        let config = Config::from_parts(text, "wasp.toml", &BTreeMap::new()).unwrap();
        let entry = &config.policy.plugins[0];
        assert_eq!(entry.name, "button-limit");
        assert_eq!(entry.failure, FailurePolicy::Open);
        assert!(entry.config.is_some());
    }
}
