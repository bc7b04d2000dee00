//! The store: every message, its history, and the queue the dispatcher works from.
//!
//! One interface ([`Store`]) over backends; SQLite (a file, WAL) is the embedded default.
//! All writes go through one group-commit writer: many requests share one transaction, and a
//! caller hears back only after the commit, so an answer means durable. Reads use a pool.
//! May call nothing else in wasp.

mod postgres;
pub mod sealing;
mod sqlite;

use std::sync::Arc;

use serde::Serialize;

use crate::message::{
    Category, Channel, Content, MessageId, PhoneNumber, Priority, Quality, Status, Submission, Wamid,
};
use crate::templates::{LintFinding, TemplateStatus};

pub use postgres::PgStore;
pub use sealing::{Keyring, SealError, Sealing};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store {operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("store migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store {operation}: stored row is malformed: {detail}")]
    Corrupt { operation: &'static str, detail: String },
    #[error("store writer has stopped")]
    WriterGone,
    #[error("store: unsupported database URL {0:?}")]
    UnsupportedUrl(String),
    /// A sensitive body could not be sealed (no active key, say).
    #[error("store {operation}: message {id}: {source}")]
    Sealing {
        operation: &'static str,
        id: MessageId,
        #[source]
        source: SealError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A message ready to be written at acceptance.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub submission: Submission,
    pub shard: u16,
    /// Identifies the request body, so a reused idempotency key with other content is caught.
    pub request_hash: String,
    pub at_ms: i64,
    /// The deadline: not sent by then, the message ends `expired`.
    pub expires_at_ms: Option<i64>,
    /// Its body (and the body sent, once policies rewrote it) is encrypted at rest and purged
    /// once read or after `store.sensitive_ttl_ms`.
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted {
        id: MessageId,
    },
    /// The idempotency key was seen before with the same request: the first answer stands.
    Duplicate {
        id: MessageId,
    },
    /// The idempotency key was seen before with a different request.
    KeyReused {
        id: MessageId,
    },
}

/// A pending message as the dispatcher claims it.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: MessageId,
    pub to: PhoneNumber,
    pub category: Category,
    pub priority: Priority,
    pub channel: Channel,
    pub shard: u16,
    pub tags: Vec<String>,
    pub status: Status,
    /// As submitted.
    pub content: Content,
    /// As admitted by the policies, once they have run.
    pub content_sent: Option<Content>,
    pub rewritten_by: Vec<String>,
    pub attempts: u32,
    pub created_at_ms: i64,
    /// The deadline: not sent by then, the message ends `expired`. For a sensitive message,
    /// never later than acceptance plus `store.sensitive_ttl_ms`.
    pub expires_at_ms: Option<i64>,
    /// Encrypted at rest; `content` and `content_sent` are decrypted as read.
    pub sensitive: bool,
    /// A sensitive body that was purged: `content` is a blank stand-in, `content_sent` none.
    pub purged: bool,
    /// A sensitive body that cannot be decrypted (its key is gone, say): why. `content` is a
    /// blank stand-in; the dispatcher ends such a message `failed`.
    pub unreadable: Option<String>,
    /// The sealed bodies (`content`, `content_sent`) as read, until the store opens them.
    pub(crate) sealed: Option<Box<(String, Option<String>)>>,
}

/// One state change: a history row, and the fields it sets on the message.
#[derive(Debug, Clone)]
pub struct Transition {
    pub id: MessageId,
    pub status: Status,
    pub at_ms: i64,
    /// Why, in words, for the history.
    pub cause: String,
    pub changes: Changes,
}

#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The content as the policies left it, and the plugins that changed it.
    pub content_sent: Option<(Content, Vec<String>)>,
    pub wamid: Option<Wamid>,
    pub due_at_ms: Option<i64>,
    pub reason: Option<String>,
    pub error_code: Option<i64>,
    pub attempts: Option<u32>,
    pub priority: Option<Priority>,
    /// The message is sensitive: `content_sent` is stored encrypted (the store seals it).
    pub sensitive: bool,
    /// `content_sent` as the store sealed it.
    pub(crate) sealed_content_sent: Option<String>,
    /// The phone number id the message left from, once sent: its receipts are counted under it.
    pub sender: Option<String>,
}

/// A message's status moved, as the store's change feed tells it once the write committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: MessageId,
    pub status: Status,
    pub at_ms: i64,
    pub category: Category,
    /// The template's name, for a template message.
    pub template: Option<String>,
    /// The recipient's country calling code.
    pub region: Option<u16>,
    /// Meta's error code, for a failure.
    pub error_code: Option<i64>,
}

/// How many messages reached each step (a step a status skipped counts too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub fell_back: i64,
    pub rejected: i64,
    pub expired: i64,
}

/// What [`Store::stats`] groups the rollups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsDimension {
    Category,
    Template,
    Region,
    Sender,
    /// One group per minute of the window, in time order, empty minutes included.
    Minute,
}

/// What [`Store::stats`] reads: the rollup minutes starting in `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// Ms since the epoch; rounded down to its minute.
    pub from_ms: i64,
    /// Ms since the epoch; rounded up to a minute.
    pub to_ms: i64,
    pub by: StatsDimension,
}

/// What one group of [`StatsReport`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatsKey {
    Category(Category),
    /// The template's name; none for messages that are not templates.
    Template(Option<String>),
    /// The recipient's country calling code; none when it is not known.
    Region(Option<u16>),
    /// The phone number id the messages left from; none before a message was sent (its
    /// `accepted`) or when it left by SMS.
    Sender(Option<String>),
    /// The minute's start, ms since the epoch.
    Minute(i64),
}

/// Categories by name, the rest by value (none first): the order groups are answered in.
impl Ord for StatsKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use StatsKey::*;
        match (self, other) {
            (Category(mine), Category(theirs)) => mine.as_str().cmp(theirs.as_str()),
            (Template(mine), Template(theirs)) | (Sender(mine), Sender(theirs)) => mine.cmp(theirs),
            (Region(mine), Region(theirs)) => mine.cmp(theirs),
            (Minute(mine), Minute(theirs)) => mine.cmp(theirs),
            _ => self.dimension_rank().cmp(&other.dimension_rank()),
        }
    }
}

impl PartialOrd for StatsKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl StatsKey {
    fn dimension_rank(&self) -> u8 {
        match self {
            StatsKey::Category(_) => 0,
            StatsKey::Template(_) => 1,
            StatsKey::Region(_) => 2,
            StatsKey::Sender(_) => 3,
            StatsKey::Minute(_) => 4,
        }
    }
}

/// Counts, medians and failure codes of one group (or of the whole window).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsFigures {
    pub counts: Counts,
    /// Median time from `sent` to `delivered`, from the rollups' histogram; none without samples.
    pub median_ms_to_delivered: Option<i64>,
    pub median_ms_to_read: Option<i64>,
    /// (Meta's error code, failures), by code.
    pub failure_codes: Vec<(i64, i64)>,
}

impl StatsFigures {
    /// delivered / sent, to four places; none when nothing was sent.
    pub fn delivered_rate(&self) -> Option<f64> {
        rate(self.counts.delivered, self.counts.sent)
    }

    /// read / delivered, to four places; none when nothing was delivered.
    pub fn read_rate(&self) -> Option<f64> {
        rate(self.counts.read, self.counts.delivered)
    }
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsGroup {
    pub key: StatsKey,
    pub figures: StatsFigures,
}

/// What [`Store::stats`] answers: the groups (by key; minutes in time order) and the total.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsReport {
    /// The window as read, minute-aligned.
    pub from_ms: i64,
    pub to_ms: i64,
    pub groups: Vec<StatsGroup>,
    pub total: StatsFigures,
}

impl Counts {
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    pub fn add(&mut self, other: &Counts) {
        self.accepted += other.accepted;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.read += other.read;
        self.failed += other.failed;
        self.fell_back += other.fell_back;
        self.rejected += other.rejected;
        self.expired += other.expired;
    }
}

/// A status Meta reported for a wamid.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub wamid: Wamid,
    pub status: Status,
    pub at_ms: i64,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    /// The `biz_opaque_callback_data` the send carried: wasp puts the message id there.
    pub callback_data: Option<String>,
}

/// A status that moved its message on.
#[derive(Debug, Clone)]
pub struct AppliedStatus {
    pub id: MessageId,
    /// The message's recipient, E.164.
    pub recipient: String,
    /// Its class, for the status counters.
    pub category: crate::message::Category,
    pub priority: crate::message::Priority,
    pub update: StatusUpdate,
}

/// What applying a webhook's statuses did.
#[derive(Debug, Clone, Default)]
pub struct StatusReport {
    /// Statuses that moved their message on.
    pub applied: Vec<AppliedStatus>,
    /// Repeated or late statuses that would have moved a message backwards.
    pub ignored: usize,
    /// Statuses for wamids not recorded yet, kept until the send is recorded.
    pub held: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: Status,
    pub at_ms: i64,
    pub cause: String,
}

/// A message as `GET /v1/messages/{id}` shows it.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: MessageId,
    pub to: PhoneNumber,
    pub category: Category,
    pub priority: Priority,
    pub channel: Channel,
    pub shard: u16,
    pub tags: Vec<String>,
    pub status: Status,
    /// As submitted; none once a sensitive body was purged or when it cannot be decrypted.
    pub content: Option<Content>,
    pub content_sent: Option<Content>,
    pub rewritten_by: Vec<String>,
    pub sensitive: bool,
    pub purged: bool,
    /// Why a sensitive body cannot be shown (its key is gone, say).
    pub unreadable: Option<String>,
    pub wamid: Option<Wamid>,
    pub reason: Option<String>,
    pub error_code: Option<i64>,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When a waiting message is due to go (deferred: the time a policy named).
    pub due_at_ms: i64,
    pub history: Vec<HistoryEntry>,
}

/// A write to a plugin's key/value state.
#[derive(Debug, Clone)]
pub struct StateWrite {
    pub plugin: String,
    pub key: String,
    /// None deletes the key.
    pub value: Option<String>,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct StateEntry {
    pub key: String,
    pub value: String,
    pub expires_at_ms: Option<i64>,
}

/// A stored plugin component version (its bytes are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersionRow {
    pub name: String,
    /// sha256 of the component, hex.
    pub version: String,
    pub size_bytes: i64,
    pub uploaded_at_ms: i64,
}

/// How a plugin takes part in the chain; the admin API's view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginBinding {
    pub name: String,
    pub live_version: Option<String>,
    /// Earlier live versions with the config each ran with, most recent last: what
    /// `rollback` returns to.
    pub previous_versions: Vec<PreviousVersion>,
    pub shadow_version: Option<String>,
    /// The shadow's own config; none: the live config.
    pub shadow_config: Option<serde_json::Value>,
    pub position: i64,
    pub hooks: Vec<String>,
    pub failure: String,
    pub limits: serde_json::Value,
    pub config: serde_json::Value,
    pub quarantined: bool,
    /// Out of the chain when false; versions, config and state are kept.
    pub enabled: bool,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PreviousVersion {
    pub version: String,
    pub config: serde_json::Value,
}

/// A shadow plugin's verdict beside the live one, for one message and hook.
#[derive(Debug, Clone)]
pub struct ShadowRecord {
    pub plugin: String,
    pub shadow_version: String,
    pub live_version: String,
    pub message_id: MessageId,
    pub hook: String,
    pub live_verdict: String,
    pub shadow_verdict: String,
    pub agreed: bool,
    pub at_ms: i64,
}

/// How a shadow version compares with the live one so far.
#[derive(Debug, Clone, Default)]
pub struct ShadowReport {
    pub compared: u64,
    pub agreed: u64,
    /// The latest disagreements, newest first.
    pub disagreements: Vec<ShadowRecord>,
}

/// A timer a plugin set: it fires as an `on-event` timer event at `due_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub plugin: String,
    pub key: String,
    pub payload: String,
    pub due_at_ms: i64,
}

/// Writes of the plugin platform; all go through the group-commit writer.
#[derive(Debug, Clone)]
pub enum PluginWrite {
    PutVersion {
        name: String,
        version: String,
        component: Vec<u8>,
        at_ms: i64,
    },
    PutBinding(PluginBinding),
    /// Removes the binding and every stored version of the plugin.
    Delete {
        name: String,
    },
    ShadowVerdicts(Vec<ShadowRecord>),
    SetTimer(Timer),
    CancelTimer {
        plugin: String,
        key: String,
    },
    /// Removes fired timers, unless they were set again meanwhile (another `due_at_ms`).
    FiredTimers(Vec<Timer>),
}

/// What wasp knows of a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The number's digits, as Meta's `wa_id`.
    pub wa_id: String,
    pub first_seen_ms: i64,
    pub last_inbound_ms: Option<i64>,
    /// Inbound messages received from the contact.
    pub interactions: u32,
    pub opted_out: bool,
    pub attributes: ContactAttributes,
    pub updated_at_ms: i64,
}

/// Attributes set over the admin API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ContactAttributes {
    /// IANA time zone; overrides the zone derived from the number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Such as `old-device`.
    pub device_hints: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum ContactWrite {
    /// An inbound message; counted once per wamid. `opted_out`: the message was an opt-out
    /// (`Some(true)`) or opt-in (`Some(false)`) keyword, applied with it.
    Inbound {
        wamid: String,
        wa_id: String,
        kind: String,
        at_ms: i64,
        opted_out: Option<bool>,
    },
    /// Attributes and opt-out from the admin API; `None` leaves a value as it is.
    Put {
        wa_id: String,
        attributes: Option<ContactAttributes>,
        opted_out: Option<bool>,
        at_ms: i64,
    },
}

/// Sends by category over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CategoryCounts {
    pub authentication: u32,
    pub utility: u32,
    pub marketing: u32,
    pub service: u32,
}

impl CategoryCounts {
    pub fn add(&mut self, category: Category, count: u32) {
        let slot = match category {
            Category::Authentication => &mut self.authentication,
            Category::Utility => &mut self.utility,
            Category::Marketing => &mut self.marketing,
            Category::Service => &mut self.service,
        };
        *slot = slot.saturating_add(count);
    }

    /// Authentication, utility and marketing: what the business started.
    pub fn business_initiated(&self) -> u32 {
        self.authentication
            .saturating_add(self.utility)
            .saturating_add(self.marketing)
    }
}

/// WhatsApp sends to one contact, by category, over the last 24 hours and 7 days (counted in
/// whole hours: the current hour and the 23 or 167 before it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendCounts {
    pub last_24h: CategoryCounts,
    pub last_7d: CategoryCounts,
}

/// What is known of one sender number's messaging tier and quality rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderNumber {
    /// The display number Meta reports (digits), or the phone number id an operator named.
    pub phone_number: String,
    /// Business-initiated conversations allowed per 24 h; none: unlimited.
    pub tier_limit: Option<u32>,
    pub quality: Quality,
    /// Meta's event that set it (`UPGRADE`, `FLAGGED`, ...), if it came from a webhook.
    pub last_event: Option<String>,
    /// `webhook` or `admin`.
    pub source: String,
    pub updated_at_ms: i64,
}

/// What a fallback request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallBackOutcome {
    /// The follow-up was accepted and the original ended `fell_back`.
    FellBack {
        follow_up: MessageId,
    },
    /// The original had already ended otherwise (read, say) or never left: nothing was sent.
    Skipped {
        status: Status,
    },
    UnknownOriginal,
}

/// What `GET /v1/messages` asks for: every filter optional, newest first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    /// Any of these statuses; empty: any status.
    pub statuses: Vec<Status>,
    pub category: Option<Category>,
    /// The recipient, E.164.
    pub to: Option<PhoneNumber>,
    /// Messages carrying this tag.
    pub tag: Option<String>,
    /// Created at or after, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Created before, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Only messages older than this one (ids are UUIDv7, so older is smaller): the cursor.
    pub before: Option<MessageId>,
    /// Most messages answered.
    pub limit: usize,
}

/// A message as `GET /v1/messages` lists it: no content, no history.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSummary {
    pub id: MessageId,
    pub to: String,
    pub category: Category,
    pub priority: Priority,
    pub channel: Channel,
    pub status: Status,
    pub tags: Vec<String>,
    pub reason: Option<String>,
    pub error_code: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One page of `GET /v1/messages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessagePage {
    pub messages: Vec<MessageSummary>,
    /// Where the next page starts (pass it as [`MessageFilter::before`]); none: no more.
    /// A page may be short, even empty, while this is set: each page examines a bounded
    /// number of messages, so a filter that matches few never scans the whole table at once.
    pub next_cursor: Option<MessageId>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The message ended `cancelled`; it will not be sent.
    Cancelled,
    /// Too late: the message is being sent (`leased`: a dispatch worker holds it) or has
    /// left or ended; it stays as it is.
    TooLate {
        status: Status,
        leased: bool,
    },
    UnknownMessage,
}

/// What a sweep of expired sensitive bodies did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensitivePurge {
    pub purged: u64,
    /// Of those, messages not yet sent that ended `expired`.
    pub expired: u64,
}

/// Most sensitive bodies one TTL sweep purges.
pub const SENSITIVE_PURGE_BATCH: u64 = 500;

/// The audit action of a sensitive send.
pub const SENSITIVE_SEND_ACTION: &str = "message.sensitive_send";

/// The history cause of a purge.
pub const PURGED_CAUSE: &str = "body purged (sensitive)";

/// An API token as stored: never its secret, only the secret's sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// Scope names as granted (`messages:send`, `admin`, ...).
    pub scopes: Vec<String>,
    /// sha256 of the secret.
    pub digest: [u8; 32],
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum TokenWrite {
    Create(ApiToken),
    /// Revoking a revoked token changes nothing.
    Revoke {
        id: String,
        at_ms: i64,
    },
}

/// What a token write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    Created,
    Revoked,
    AlreadyRevoked,
    UnknownToken,
}

/// Which priority classes a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimClasses {
    All,
    /// Degraded mode: `bulk` stays queued.
    AllButBulk,
}

/// One admin action for the append-only audit log: who, what, when, and how it ended.
/// Never a secret or a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// The token that acted (`bootstrap` for the configured admin token).
    pub token_id: String,
    /// Such as `plugin.activate`.
    pub action: String,
    /// What it acted on: a plugin name, a wa_id, a token id.
    pub target: Option<String>,
    /// `ok`, or the error code the API answered.
    pub outcome: String,
}

/// One stored version of a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateVersion {
    pub name: String,
    pub language: String,
    pub version: u32,
    pub category: Category,
    /// The Cloud API's creation body as the business gave it (or as Meta listed it).
    pub definition: serde_json::Value,
    pub status: TemplateStatus,
    pub reason: Option<String>,
    /// Meta's template id, once created there.
    pub meta_id: Option<String>,
    /// Meta's quality rating of the template (`GREEN`, `YELLOW`, `RED`), once known.
    pub quality: Option<String>,
    /// Lint warnings kept with the version.
    pub findings: Vec<LintFinding>,
    /// The token that created it (`meta` for templates imported from the Cloud API).
    pub created_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A change to the stored templates.
#[derive(Debug, Clone)]
pub enum TemplateWrite {
    /// A new version of (name, language), numbered after its newest.
    Create(Box<TemplateVersion>),
    /// One version moves to `status`, if it stands in one of `from` (empty: whatever it is).
    Status {
        name: String,
        language: String,
        version: u32,
        from: Vec<TemplateStatus>,
        status: TemplateStatus,
        reason: Option<String>,
        meta_id: Option<String>,
        at_ms: i64,
    },
    /// What the Cloud API says of the template with `meta_id` (its newest version here):
    /// each `Some` field is set.
    Meta {
        meta_id: String,
        status: Option<TemplateStatus>,
        reason: Option<String>,
        quality: Option<String>,
        category: Option<Category>,
        at_ms: i64,
    },
}

/// An audit row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increases with every row: the order, and the paging cursor.
    pub seq: i64,
    pub entry: AuditEntry,
}

/// What `GET /v1/audit` asks for: every filter optional, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub token_id: Option<String>,
    pub target: Option<String>,
    /// At or after, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Before, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Only rows older than this `seq`: the cursor.
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// What waits to be sent, per shard and per priority class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingBacklog {
    pub by_shard: Vec<(u16, u64)>,
    pub by_priority: Vec<(crate::message::Priority, u64)>,
}

/// A node of the cluster as its heartbeat row has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    /// Where its API listens.
    pub address: String,
    pub started_at_ms: i64,
    /// The database's time of its last heartbeat.
    pub heartbeat_at_ms: i64,
}

/// What one node asks of the shard leases in one round.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub node_id: String,
    /// Shards to renew or acquire (those free, expired or already this node's).
    pub want: Vec<u16>,
    /// Shards this node gives up now, having stopped using them.
    pub release: Vec<u16>,
    pub ttl_ms: i64,
}

/// A shard lease a node holds after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub shard: u16,
    /// The fencing epoch: moves on whenever the shard changes hands.
    pub epoch: i64,
    /// Acquired in this round (from another node, or back after it ran out).
    pub taken_over: bool,
}

/// One shard's lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub shard: u16,
    pub node_id: Option<String>,
    pub epoch: i64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The cluster as the store has it, with the database's time to age it by.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub now_ms: i64,
    pub nodes: Vec<ClusterNode>,
    pub leases: Vec<LeaseRow>,
}

/// What a node holds, for its writes to be checked against: its id and the epoch of each
/// shard it believes it holds.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    pub node_id: Arc<str>,
    pub epochs: Arc<Vec<(u16, i64)>>,
}

/// The store, cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs the same call on whichever backend the store has: both expose the same methods.
macro_rules! on_backend {
    ($self:ident, $store:ident => $body:expr) => {
        match &*$self.backend {
            Backend::Sqlite($store) => $body,
            Backend::Postgres($store) => $body,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs its migrations.
    pub async fn open(url: &str, write_batch_rows: usize) -> Result<Self> {
        Self::open_with(url, write_batch_rows, Sealing::default()).await
    }

    /// [`Store::open`] with the keys that encrypt sensitive bodies and their TTL.
    pub async fn open_with(url: &str, write_batch_rows: usize, sealing: Sealing) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::open(url, write_batch_rows, sealing).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::open(url, write_batch_rows, sealing).await?)
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        Ok(Self {
            backend: Arc::new(backend),
        })
    }

    pub async fn accept(&self, messages: Vec<NewMessage>) -> Result<Vec<AcceptOutcome>> {
        on_backend!(self, store => store.accept(messages, None).await)
    }

    /// The change feed: after each write batch commits, the status changes it made (accepts,
    /// transitions, webhook statuses applied, cancels, expiries, fallbacks), in order, as one
    /// item. Sent only while someone listens; a receiver that falls more than
    /// [`CHANGE_FEED_BATCHES`] batches behind hears `Lagged` and skips ahead: the writer never
    /// waits for a listener.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<Change>>> {
        on_backend!(self, store => store.subscribe_changes())
    }

    /// Receipts and rates over a window, from the per-minute rollups the writer keeps (never
    /// a scan of the messages), summed over every node. Each group (and the total) has the
    /// messages that reached each step in the window, the rates between steps, the median
    /// times from `sent` to `delivered` and to `read`, and the failures by Meta's error code.
    /// A status is counted in the minute it happened, under the message's category, template
    /// and region and the number it was sent from. For example, each template's read rate
    /// over the last hour: `store.stats(&StatsQuery { from_ms: now - 3_600_000, to_ms: now,
    /// by: StatsDimension::Template })`.
    pub async fn stats(&self, query: &StatsQuery) -> Result<StatsReport> {
        on_backend!(self, store => store.stats(query).await)
    }

    /// Deletes rollup rows of minutes before `before_ms`, at most about [`STATS_PRUNE_BATCH`]
    /// per call; answers how many went (call again while it is the full batch).
    pub async fn prune_stats(&self, before_ms: i64) -> Result<u64> {
        on_backend!(self, store => store.prune_stats(before_ms).await)
    }

    /// [`Store::accept`] on behalf of the token `token_id`: each sensitive message accepted
    /// gets an audit row (`message.sensitive_send`, target its id) in the same transaction.
    pub async fn accept_audited(&self, messages: Vec<NewMessage>, token_id: &str) -> Result<Vec<AcceptOutcome>> {
        on_backend!(self, store => store.accept(messages, Some(token_id.to_owned())).await)
    }

    /// Whether a sensitive message can be stored: an encryption key is active.
    pub fn can_seal(&self) -> bool {
        on_backend!(self, store => store.can_seal())
    }

    /// Purges the sensitive bodies accepted `store.sensitive_ttl_ms` or more before `now_ms`;
    /// a message among them not sent yet (and not in a worker's hands) ends `expired` first.
    /// Returns how many were purged and how many of those ended `expired`.
    pub async fn purge_sensitive(&self, now_ms: i64) -> Result<SensitivePurge> {
        on_backend!(self, store => store.purge_sensitive(now_ms).await)
    }

    /// Takes up to `limit` due messages of the shards `node_id` holds a live lease on, highest
    /// class first, and leases them until `lease_until_ms` so no other claim takes them
    /// meanwhile.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
        node_id: &str,
    ) -> Result<Vec<PendingMessage>> {
        self.claim_due_classes(now_ms, limit, lease_until_ms, node_id, ClaimClasses::All)
            .await
    }

    /// [`Store::claim_due`] of the given classes only (degraded mode leaves `bulk` queued).
    pub async fn claim_due_classes(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
        node_id: &str,
        classes: ClaimClasses,
    ) -> Result<Vec<PendingMessage>> {
        on_backend!(self, store => store.claim_due(now_ms, limit, lease_until_ms, node_id, classes).await)
    }

    pub async fn record(&self, transitions: Vec<Transition>) -> Result<()> {
        if transitions.is_empty() {
            return Ok(());
        }
        on_backend!(self, store => store.record(transitions).await)
    }

    /// Records the transitions of messages whose shard (`shards[i]` for `transitions[i]`)
    /// `fence` still holds at the epoch it believes, checked in the same transaction; answers
    /// the messages refused (their transitions are not written).
    pub async fn record_fenced(
        &self,
        transitions: Vec<Transition>,
        shards: Vec<u16>,
        fence: &Fence,
    ) -> Result<Vec<MessageId>> {
        if transitions.is_empty() {
            return Ok(Vec::new());
        }
        on_backend!(self, store => store.record_fenced(transitions, shards, fence.clone()).await)
    }

    /// Records `node`'s heartbeat; answers the cluster as it stands (nodes, leases, the
    /// database's time).
    pub async fn heartbeat(&self, node: ClusterNode) -> Result<ClusterSnapshot> {
        on_backend!(self, store => store.heartbeat(node).await)
    }

    /// Releases, renews and acquires shard leases as `request` asks; answers the leases held.
    pub async fn renew_leases(&self, request: LeaseRequest) -> Result<Vec<HeldLease>> {
        on_backend!(self, store => store.renew_leases(request).await)
    }

    /// Ends `node_id`'s leases and forgets it: the others take its shards at once.
    pub async fn leave_cluster(&self, node_id: &str) -> Result<()> {
        on_backend!(self, store => store.leave_cluster(node_id.to_owned()).await)
    }

    pub async fn cluster_snapshot(&self) -> Result<ClusterSnapshot> {
        on_backend!(self, store => store.cluster_snapshot().await)
    }

    /// The admin changes (plugins, templates, tokens) noted at or after `since_ms` by the
    /// writing node's clock: sequence number, kind, time. Read by time, not from the last
    /// sequence number seen: numbers are taken in insert order but become visible in commit
    /// order, so a smaller one can appear after a larger one.
    pub async fn config_changes_since(&self, since_ms: i64) -> Result<Vec<(i64, String, i64)>> {
        on_backend!(self, store => store.config_changes_since(since_ms).await)
    }

    /// Wakes `wake` when any node sharing the store accepts messages (PostgreSQL: on its
    /// notifications). A SQLite node wakes its dispatcher in-process already.
    pub fn listen_for_work(&self, wake: Arc<tokio::sync::Notify>) {
        if let Backend::Postgres(store) = &*self.backend {
            postgres::listen_for_work(store, wake);
        }
    }

    /// Whether several nodes can share this store (PostgreSQL); SQLite is one node's own.
    pub fn is_shared(&self) -> bool {
        matches!(&*self.backend, Backend::Postgres(_))
    }

    /// The backend's name: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies webhook statuses; each one that moved its message on is counted once committed.
    pub async fn apply_statuses(&self, updates: Vec<StatusUpdate>) -> Result<StatusReport> {
        let report = on_backend!(self, store => store.apply_statuses(updates).await?);
        for applied in &report.applied {
            crate::telemetry::metrics::status(applied.update.status, applied.category, applied.priority);
        }
        Ok(report)
    }

    /// Frees every lease: at start, no claim of this single node is still running.
    pub async fn release_leases(&self) -> Result<u64> {
        on_backend!(self, store => store.release_leases().await)
    }

    pub async fn message(&self, id: MessageId) -> Result<Option<MessageView>> {
        on_backend!(self, store => store.message(id).await)
    }

    /// The earliest `due_at` among pending messages that are not leased, if any.
    pub async fn next_due_ms(&self) -> Result<Option<i64>> {
        on_backend!(self, store => store.next_due_ms().await)
    }

    pub async fn write_state(&self, writes: Vec<StateWrite>) -> Result<()> {
        on_backend!(self, store => store.write_state(writes).await)
    }

    pub async fn load_state(&self, plugin: &str, now_ms: i64) -> Result<Vec<StateEntry>> {
        on_backend!(self, store => store.load_state(plugin, now_ms).await)
    }

    pub async fn plugin_writes(&self, writes: Vec<PluginWrite>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        on_backend!(self, store => store.plugin_writes(writes).await)
    }

    pub async fn plugin_bindings(&self) -> Result<Vec<PluginBinding>> {
        on_backend!(self, store => store.plugin_bindings().await)
    }

    pub async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginVersionRow>> {
        on_backend!(self, store => store.plugin_versions(name).await)
    }

    pub async fn plugin_component(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
        on_backend!(self, store => store.plugin_component(name, version).await)
    }

    pub async fn shadow_report(&self, plugin: &str, shadow_version: &str, samples: usize) -> Result<ShadowReport> {
        on_backend!(self, store => store.shadow_report(plugin, shadow_version, samples).await)
    }

    /// Timers due by `now_ms`, earliest first.
    pub async fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<Timer>> {
        on_backend!(self, store => store.due_timers(now_ms, limit).await)
    }

    /// Timers a plugin has set that have not fired yet.
    pub async fn pending_timers(&self, plugin: &str) -> Result<u64> {
        on_backend!(self, store => store.pending_timers(plugin).await)
    }

    pub async fn next_timer_due_ms(&self) -> Result<Option<i64>> {
        on_backend!(self, store => store.next_timer_due_ms().await)
    }

    /// Messages by id, as the dispatcher sees them (for events about them).
    pub async fn messages_by_id(&self, ids: &[MessageId]) -> Result<Vec<PendingMessage>> {
        on_backend!(self, store => store.messages_by_id(ids).await)
    }

    pub async fn contact_writes(&self, writes: Vec<ContactWrite>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        on_backend!(self, store => store.contact_writes(writes).await)
    }

    pub async fn contacts(&self, wa_ids: &[&str]) -> Result<Vec<Contact>> {
        on_backend!(self, store => store.contacts(wa_ids).await)
    }

    /// [`Store::contacts`], keyed by wa_id.
    pub async fn contacts_by_wa_id(&self, wa_ids: &[&str]) -> Result<std::collections::HashMap<String, Contact>> {
        Ok(self
            .contacts(wa_ids)
            .await?
            .into_iter()
            .map(|contact| (contact.wa_id.clone(), contact))
            .collect())
    }

    /// For interrupted sends: the wamid of a held status whose callback data names the message,
    /// proof that Meta accepted the earlier attempt.
    pub async fn held_wamids(&self, ids: &[MessageId]) -> Result<std::collections::HashMap<MessageId, Wamid>> {
        on_backend!(self, store => store.held_wamids(ids).await)
    }

    /// Sends `follow_up` as the fallback of `original` (over another channel), atomically: the
    /// original ends `fell_back` naming the follow-up, unless it was read, ended otherwise,
    /// or never left meanwhile; then nothing is accepted.
    pub async fn fall_back(&self, original: MessageId, follow_up: NewMessage) -> Result<FallBackOutcome> {
        on_backend!(self, store => store.fall_back(original, follow_up).await)
    }

    /// Sends per contact over the last 24 h and 7 days, for the contacts that have any.
    pub async fn send_counts(
        &self,
        wa_ids: &[&str],
        now_ms: i64,
    ) -> Result<std::collections::HashMap<String, SendCounts>> {
        on_backend!(self, store => store.send_counts(wa_ids, now_ms).await)
    }

    /// Business-initiated WhatsApp sends of the whole account over the last 24 h.
    pub async fn account_sends_24h(&self, now_ms: i64) -> Result<u32> {
        on_backend!(self, store => store.account_sends_24h(now_ms).await)
    }

    pub async fn sender_numbers(&self) -> Result<Vec<SenderNumber>> {
        on_backend!(self, store => store.sender_numbers().await)
    }

    pub async fn put_sender_number(&self, number: SenderNumber) -> Result<()> {
        on_backend!(self, store => store.put_sender_number(number).await)
    }

    /// The backlog: messages waiting to be sent (accepted, queued, deferred or sending) per
    /// shard and per priority class, from one scan; shards and classes with none left out.
    /// Read at start and at each resync, kept in memory between.
    pub async fn pending_backlog(&self) -> Result<PendingBacklog> {
        let rows = on_backend!(self, store => store.pending().await?);
        let mut by_shard: std::collections::BTreeMap<u16, u64> = std::collections::BTreeMap::new();
        let mut by_priority: Vec<(crate::message::Priority, u64)> = Vec::new();
        for (shard, priority, count) in rows {
            let priority: crate::message::Priority = priority.parse().map_err(|detail| Error::Corrupt {
                operation: "count pending messages",
                detail,
            })?;
            *by_shard.entry(shard).or_default() += count;
            match by_priority.iter_mut().find(|(known, _)| *known == priority) {
                Some((_, total)) => *total += count,
                None => by_priority.push((priority, count)),
            }
        }
        Ok(PendingBacklog {
            by_shard: by_shard.into_iter().collect(),
            by_priority,
        })
    }

    /// [`Store::pending_backlog`] per shard.
    pub async fn pending_by_shard(&self) -> Result<Vec<(u16, u64)>> {
        Ok(self.pending_backlog().await?.by_shard)
    }

    /// Messages matching `filter`, newest first, at most `filter.limit`, and where the next
    /// page starts.
    pub async fn list_messages(&self, filter: &MessageFilter) -> Result<MessagePage> {
        on_backend!(self, store => store.list_messages(filter).await)
    }

    /// Ends a message `cancelled` if it is not sent yet and no dispatch worker holds it, in one
    /// conditional write, so a cancel and a claim never both win.
    pub async fn cancel(&self, id: MessageId, now_ms: i64) -> Result<CancelOutcome> {
        on_backend!(self, store => store.cancel(id, now_ms).await)
    }

    /// Creates or revokes a token; when it changes anything, `audit` is written in the same
    /// transaction (outcome `ok`).
    pub async fn token_write(&self, write: TokenWrite, audit: AuditEntry) -> Result<TokenOutcome> {
        on_backend!(self, store => store.token_write(write, audit).await)
    }

    /// Every token, revoked ones too, oldest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        on_backend!(self, store => store.tokens().await)
    }

    /// A sender number an operator set, with its audit row, in one transaction.
    pub async fn put_sender_number_audited(&self, number: SenderNumber, audit: AuditEntry) -> Result<()> {
        on_backend!(self, store => store.put_sender_number_audited(number, audit).await)
    }

    /// Contact writes with their audit row, in one transaction.
    pub async fn contact_writes_audited(&self, writes: Vec<ContactWrite>, audit: AuditEntry) -> Result<()> {
        on_backend!(self, store => store.contact_writes_audited(writes, audit).await)
    }

    /// Appends audit rows on their own (for changes made by another part's write).
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        on_backend!(self, store => store.audit(entries).await)
    }

    /// Audit rows matching `filter`, newest first, at most `filter.limit`.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        on_backend!(self, store => store.audit_log(filter).await)
    }

    /// Applies a template change, with its audit row when there is one, in one transaction.
    /// Answers the version as it stands after the write, or `None` when nothing matched (an
    /// unknown version or meta id, or a version no longer in `from`).
    pub async fn template_write(
        &self,
        write: TemplateWrite,
        audit: Option<AuditEntry>,
    ) -> Result<Option<TemplateVersion>> {
        on_backend!(self, store => store.template_write(write, audit).await)
    }

    /// Every version of every template, by name, language and version.
    pub async fn template_versions(&self) -> Result<Vec<TemplateVersion>> {
        on_backend!(self, store => store.template_versions(None).await)
    }

    /// The versions of the templates named `name`, by language and version.
    pub async fn template_versions_named(&self, name: &str) -> Result<Vec<TemplateVersion>> {
        on_backend!(self, store => store.template_versions(Some(name)).await)
    }

    /// Versions standing in `status`, oldest change first, at most `limit`.
    pub async fn templates_in(&self, status: TemplateStatus, limit: usize) -> Result<Vec<TemplateVersion>> {
        on_backend!(self, store => store.templates_in(status, limit).await)
    }

    /// Readiness: the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_backend!(self, store => store.ping().await)
    }
}

/// Where a new message's callbacks go, and the token whose secret signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    pub message_id: MessageId,
    pub url: String,
    pub token_id: String,
}

/// A token's callback defaults: its default URL (if any) and its signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCallback {
    pub token_id: String,
    pub url: Option<String>,
    pub secret: String,
}

/// One callback in the outbox: waiting (`dead_at_ms` empty) or dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCallback {
    /// Outbox order; `X-Wasp-Event-Seq`.
    pub seq: i64,
    /// Unique per callback; `X-Wasp-Delivery`.
    pub delivery_id: String,
    pub message_id: MessageId,
    pub url: String,
    pub token_id: String,
    pub status: Status,
    pub at_ms: i64,
    pub cause: String,
    pub recipient: Option<String>,
    pub error_code: Option<i64>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub next_at_ms: i64,
    pub last_error: Option<String>,
    pub dead_at_ms: Option<i64>,
}

/// What one delivery attempt of a callback came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The receiver answered 2xx: the row leaves the outbox.
    Delivered { seq: i64 },
    /// Try again at `next_at_ms`.
    Retry {
        seq: i64,
        attempts: u32,
        next_at_ms: i64,
        error: String,
    },
    /// No more attempts: onto the dead-letter list.
    Dead {
        seq: i64,
        attempts: u32,
        at_ms: i64,
        error: String,
    },
}

/// Which dead callbacks a replay puts back in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackReplay {
    /// By delivery id.
    Ids(Vec<String>),
    All,
}

impl Store {
    /// Accepts messages as [`Store::accept`] does, and subscribes those of `targets` that were
    /// newly accepted to callbacks, writing their `accepted` callback in the same transaction.
    /// `audited_by`: as [`Store::accept_audited`], the token sensitive sends are audited for.
    pub async fn accept_with_callbacks(
        &self,
        messages: Vec<NewMessage>,
        audited_by: Option<&str>,
        targets: Vec<CallbackTarget>,
    ) -> Result<Vec<AcceptOutcome>> {
        on_backend!(self, store => store.accept_with_callbacks(messages, audited_by.map(str::to_owned), targets).await)
    }

    /// Creates a token with its callback defaults and its audit row, in one transaction.
    pub async fn create_token_with_callback(
        &self,
        token: ApiToken,
        callback: TokenCallback,
        audit: AuditEntry,
    ) -> Result<TokenOutcome> {
        on_backend!(self, store => store.create_token_with_callback(token, callback, audit).await)
    }

    /// Every token's callback defaults (revoked tokens too: their messages still call back).
    pub async fn token_callbacks(&self) -> Result<Vec<TokenCallback>> {
        on_backend!(self, store => store.token_callbacks().await)
    }

    /// Up to `limit` callbacks due by `now_ms`, each the oldest waiting one of its message,
    /// in outbox order.
    pub async fn due_callbacks(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingCallback>> {
        on_backend!(self, store => store.due_callbacks(now_ms, limit).await)
    }

    /// When the next waiting callback is due, if any waits.
    pub async fn next_callback_due_ms(&self) -> Result<Option<i64>> {
        on_backend!(self, store => store.next_callback_due_ms().await)
    }

    /// Records what delivery attempts came to, in one write.
    pub async fn record_callbacks(&self, outcomes: Vec<CallbackOutcome>) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        on_backend!(self, store => store.record_callbacks(outcomes).await)
    }

    /// Dead-lettered callbacks after outbox position `after_seq`, oldest first, at most `limit`.
    pub async fn dead_callbacks(&self, after_seq: Option<i64>, limit: usize) -> Result<Vec<PendingCallback>> {
        on_backend!(self, store => store.dead_callbacks(after_seq, limit).await)
    }

    /// Puts dead callbacks back in the queue, due at `now_ms` with their attempts reset, with
    /// the audit row in the same transaction; answers how many went back.
    pub async fn replay_callbacks(&self, which: CallbackReplay, now_ms: i64, audit: AuditEntry) -> Result<u64> {
        on_backend!(self, store => store.replay_callbacks(which, now_ms, audit).await)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Committed batches the change feed holds for a slow receiver before it skips ahead.
pub const CHANGE_FEED_BATCHES: usize = 1_024;

/// Rollup rows one [`Store::prune_stats`] call deletes at most (about: whole minutes go).
pub const STATS_PRUNE_BATCH: u64 = 10_000;

/// The PostgreSQL the tests use: `WASP_TEST_POSTGRES_URL`, else the local one.
#[cfg(test)]
pub(crate) fn test_postgres_url() -> String {
    std::env::var("WASP_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The node a test store's leases are held by: every shard, for an hour.
#[cfg(test)]
pub(crate) const TEST_NODE: &str = "test-node";
