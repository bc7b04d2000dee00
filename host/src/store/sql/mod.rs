//! The SQL store both backends share: the group-commit writer, the statements, and the row
//! decoding. This file is compiled once per backend (`store::sqlite`, `store::postgres`), each
//! naming its database as `Db` and supplying the few statements that differ ([`super::dialect`]);
//! everything else is written once in SQL both accept (`$N` placeholders, `ON CONFLICT`,
//! `UPDATE … FROM`, `RETURNING`).
//!
//! One writer connection is owned by a group-commit task; reads use a pool. Hot paths are
//! multi-row statements: `INSERT … VALUES (…),(…)` and `WITH v(…) AS (VALUES …) UPDATE … FROM v`,
//! never one statement per message.

use std::{collections::HashMap, str::FromStr, sync::Arc};

use sqlx::{Connection, QueryBuilder, Row, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Db, dialect};
use crate::message::{Category, Content, MessageId, PhoneNumber, Priority, Status, Wamid};
use crate::store::{
    AcceptOutcome, Changes, Error, HistoryEntry, MessageView, NewMessage, PendingMessage, Result, Sealing, StateEntry,
    StateWrite, StatusReport, StatusUpdate, Transition, sealing,
};

type DbPool = sqlx::Pool<Db>;
type DbRow = <Db as sqlx::Database>::Row;
pub(super) type DbConnection = <Db as sqlx::Database>::Connection;
/// Opens a new writer connection (a server-side database can drop one).
pub(super) type Reconnect = Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<DbConnection>> + Send + Sync>;

/// The change-feed kinds: what other nodes reload when an admin changed it.
pub(super) const CHANGED_PLUGINS: &str = "plugins";
pub(super) const CHANGED_TEMPLATES: &str = "templates";
pub(super) const CHANGED_TOKENS: &str = "tokens";

/// Runs one statement group in a transaction of its own on a pool connection, again (up to
/// [`WRITE_RETRIES`] times) when it ran into another writer.
macro_rules! on_own_connection {
    ($store:ident, $transaction:ident => $work:expr) => {{
        let mut attempt = 0;
        loop {
            let mut $transaction = $store.readers.begin().await.map_err(database("begin"))?;
            let done = match $work.await {
                Ok(value) => $transaction.commit().await.map_err(database("commit")).map(|()| value),
                Err(error) => Err(error),
            };
            match done {
                Err(error) if is_transient(&error) && attempt < WRITE_RETRIES => attempt += 1,
                done => break done,
            }
        }
    }};
}

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters (PostgreSQL
/// allows 65,535).
const ROWS_PER_STATEMENT: usize = 500;
const WRITER_QUEUE: usize = 4_096;

mod audit;
mod callbacks;
mod cluster;
mod contacts;
mod facts;
mod listing;
mod plugins;
mod queue;
mod stats;
mod templates;
mod tokens;

#[cfg(test)]
mod tests;

/// A fresh store on this backend, and what keeps its database alive.
#[cfg(test)]
async fn fresh() -> (crate::store::Store, super::TestDatabase) {
    let database = super::TestDatabase::new().await;
    let store = crate::store::Store::open(&database.url, 1_000).await.unwrap();
    hold_every_shard(&store).await;
    (store, database)
}

/// Gives a test store's every shard to [`crate::store::TEST_NODE`], so its claims take work.
#[cfg(test)]
async fn hold_every_shard(store: &crate::store::Store) {
    store
        .renew_leases(crate::store::LeaseRequest {
            node_id: crate::store::TEST_NODE.to_owned(),
            want: (0..256).collect(),
            release: Vec::new(),
            ttl_ms: 3_600_000,
        })
        .await
        .unwrap();
}

/// The read pool of a store on this backend, for tests that look at rows directly.
#[cfg(test)]
fn readers_of(store: &crate::store::Store) -> &DbPool {
    &super::backend_of(store).readers
}

pub struct SqlStore {
    writer: mpsc::Sender<WriteOp>,
    readers: DbPool,
    /// Keys for sensitive bodies: sealed before a write reaches the writer, opened after a
    /// read, so neither costs the group-commit writer nor plain messages anything.
    sealing: Arc<Sealing>,
    /// The change feed: the writer sends each committed batch's status changes.
    changes: tokio::sync::broadcast::Sender<Arc<Vec<crate::store::Change>>>,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum WriteOp {
    /// The messages, the sealed body of each sensitive one (by position), and the token on
    /// whose behalf (sensitive sends are audited).
    Accept(
        Vec<NewMessage>,
        Vec<Option<String>>,
        Option<String>,
        Reply<Vec<AcceptOutcome>>,
    ),
    PurgeSensitive {
        now_ms: i64,
        ttl_ms: i64,
        reply: Reply<crate::store::SensitivePurge>,
    },
    Record(Vec<Transition>, Reply<()>),
    Statuses(Vec<StatusUpdate>, Reply<StatusReport>),
    Claim {
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
        node_id: String,
        classes: crate::store::ClaimClasses,
        reply: Reply<Vec<PendingMessage>>,
    },
    /// Transitions, the shard of each one's message, and the fence they are checked against.
    RecordFenced(
        Box<(Vec<Transition>, Vec<u16>, crate::store::Fence)>,
        Reply<Vec<MessageId>>,
    ),
    Heartbeat(crate::store::ClusterNode, Reply<crate::store::ClusterSnapshot>),
    Leases(crate::store::LeaseRequest, Reply<Vec<crate::store::HeldLease>>),
    Leave(String, Reply<()>),
    ReleaseLeases(Reply<u64>),
    State(Vec<StateWrite>, Reply<()>),
    Plugin(Vec<crate::store::PluginWrite>, Reply<()>),
    Contact(Vec<crate::store::ContactWrite>, Reply<()>),
    /// The original, the follow-up and its sealed body (when the original is sensitive).
    FallBack(
        MessageId,
        Box<NewMessage>,
        Vec<Option<String>>,
        Reply<crate::store::FallBackOutcome>,
    ),
    SenderNumber(crate::store::SenderNumber, Reply<()>),
    Token(
        crate::store::TokenWrite,
        crate::store::AuditEntry,
        Reply<crate::store::TokenOutcome>,
    ),
    Audit(Vec<crate::store::AuditEntry>, Reply<()>),
    AuditedContact(Vec<crate::store::ContactWrite>, crate::store::AuditEntry, Reply<()>),
    AuditedSenderNumber(crate::store::SenderNumber, crate::store::AuditEntry, Reply<()>),
    Cancel(MessageId, i64, Reply<crate::store::CancelOutcome>),
    /// An `Accept` (messages, sealed bodies, auditing token) whose messages of `targets` are
    /// subscribed to callbacks in the same transaction.
    AcceptWithCallbacks(Box<AcceptCallbacks>, Reply<Vec<AcceptOutcome>>),
    TokenWithCallback(
        Box<(
            crate::store::ApiToken,
            crate::store::TokenCallback,
            crate::store::AuditEntry,
        )>,
        Reply<crate::store::TokenOutcome>,
    ),
    Callbacks(Vec<crate::store::CallbackOutcome>, Reply<()>),
    ReplayCallbacks(crate::store::CallbackReplay, i64, crate::store::AuditEntry, Reply<u64>),
    Template(
        Box<crate::store::TemplateWrite>,
        Option<crate::store::AuditEntry>,
        Reply<Option<crate::store::TemplateVersion>>,
    ),
    /// Deletes stats rollup rows of minutes before this time (ms).
    PruneStats(i64, Reply<u64>),
}

struct AcceptCallbacks {
    messages: Vec<NewMessage>,
    sealed: Vec<Option<String>>,
    token_id: Option<String>,
    targets: Vec<crate::store::CallbackTarget>,
}

impl WriteOp {
    fn rows(&self) -> usize {
        match self {
            WriteOp::Accept(messages, ..) => messages.len(),
            WriteOp::AcceptWithCallbacks(accept, _) => accept.messages.len() + accept.targets.len(),
            WriteOp::Callbacks(outcomes, _) => outcomes.len(),
            WriteOp::TokenWithCallback(..) | WriteOp::ReplayCallbacks(..) => 2,
            WriteOp::PurgeSensitive { .. } => ROWS_PER_STATEMENT,
            WriteOp::PruneStats(..) => ROWS_PER_STATEMENT,
            WriteOp::Record(transitions, _) => transitions.len(),
            WriteOp::Statuses(updates, _) => updates.len(),
            WriteOp::Claim { limit, .. } => *limit,
            WriteOp::RecordFenced(fenced, _) => fenced.0.len(),
            WriteOp::Heartbeat(..) | WriteOp::Leave(..) => 1,
            WriteOp::Leases(request, _) => request.want.len() + request.release.len(),
            WriteOp::ReleaseLeases(_) => 1,
            WriteOp::State(writes, _) => writes.len(),
            WriteOp::Plugin(writes, _) => writes.len(),
            WriteOp::Contact(writes, _) => writes.len(),
            WriteOp::Audit(entries, _) => entries.len(),
            WriteOp::AuditedContact(writes, ..) => writes.len() + 1,
            WriteOp::Token(..) | WriteOp::AuditedSenderNumber(..) | WriteOp::Template(..) => 2,
            WriteOp::FallBack(..) | WriteOp::SenderNumber(..) | WriteOp::Cancel(..) => 1,
        }
    }
}

/// What one op produced inside the shared transaction, before the commit makes it true.
enum Output {
    Accept(Vec<AcceptOutcome>),
    Unit,
    Statuses(StatusReport),
    Claim(Vec<PendingMessage>),
    Count(u64),
    FallBack(crate::store::FallBackOutcome),
    Token(crate::store::TokenOutcome),
    Cancel(crate::store::CancelOutcome),
    Purge(crate::store::SensitivePurge),
    Template(Option<crate::store::TemplateVersion>),
    Fenced(Vec<MessageId>),
    Heartbeat(crate::store::ClusterSnapshot),
    Leases(Vec<crate::store::HeldLease>),
}

fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database { operation, source }
}

impl SqlStore {
    /// Starts the group-commit writer on `writer` (migrated already) beside the `readers`;
    /// `reconnect` opens a new writer connection when the server dropped this one.
    pub(super) fn start(
        writer: DbConnection,
        readers: DbPool,
        write_batch_rows: usize,
        sealing: Sealing,
        reconnect: Option<Reconnect>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE);
        let (changes, _) = tokio::sync::broadcast::channel(crate::store::CHANGE_FEED_BATCHES);
        tokio::spawn(run_writer(
            writer,
            receiver,
            write_batch_rows,
            reconnect,
            changes.clone(),
        ));
        Self {
            writer: sender,
            readers,
            sealing: Arc::new(sealing),
            changes,
        }
    }

    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<crate::store::Change>>> {
        self.changes.subscribe()
    }

    pub async fn stats(&self, query: &crate::store::StatsQuery) -> Result<crate::store::StatsReport> {
        stats::read(&self.readers, query).await
    }

    pub async fn prune_stats(&self, before_ms: i64) -> Result<u64> {
        self.submit(|reply| WriteOp::PruneStats(before_ms, reply)).await
    }

    pub fn can_seal(&self) -> bool {
        self.sealing.keyring.can_seal()
    }

    /// Opens the sealed bodies of sensitive messages as read. A body that cannot be opened
    /// marks its message unreadable (with why) instead of failing the read.
    fn open_sealed(&self, message: &mut PendingMessage) {
        let Some(sealed) = message.sealed.take() else {
            return;
        };
        let (content, content_sent) = *sealed;
        let opened = self
            .sealing
            .open_content(message.id, "content", &content)
            .and_then(|content| {
                let sent = content_sent
                    .map(|text| self.sealing.open_content(message.id, "content_sent", &text))
                    .transpose()?;
                Ok((content, sent))
            });
        match opened {
            Ok((content, content_sent)) => {
                message.content = content;
                message.content_sent = content_sent;
            }
            Err(error) => {
                tracing::warn!(message_id = %message.id, %error, "a sensitive body cannot be decrypted");
                message.unreadable = Some(format!("the sensitive body cannot be decrypted: {error}"));
            }
        }
    }

    /// Seals what a sensitive message's transitions store as `content_sent`.
    fn seal_transitions(&self, transitions: &mut [Transition]) {
        for transition in transitions.iter_mut().filter(|transition| transition.changes.sensitive) {
            let Some((content, _)) = &transition.changes.content_sent else {
                continue;
            };
            match self.sealing.seal_content(transition.id, "content_sent", content) {
                Ok(sealed) => transition.changes.sealed_content_sent = Some(sealed),
                // Never stored in the clear: the body sent is left unrecorded.
                Err(error) => {
                    tracing::warn!(message_id = %transition.id, %error, "the body sent of a sensitive message is not recorded")
                }
            }
        }
    }

    pub async fn purge_sensitive(&self, now_ms: i64) -> Result<crate::store::SensitivePurge> {
        let ttl_ms = self.sealing.ttl_ms();
        self.submit(|reply| WriteOp::PurgeSensitive { now_ms, ttl_ms, reply })
            .await
    }

    async fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(make(reply)).await.map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }

    pub async fn accept(&self, mut messages: Vec<NewMessage>, token_id: Option<String>) -> Result<Vec<AcceptOutcome>> {
        let sealed = self.seal_bodies(&mut messages)?;
        let classes = classes(&messages);
        let outcomes = self
            .submit(|reply| WriteOp::Accept(messages, sealed, token_id, reply))
            .await?;
        count_accepted(&classes, &outcomes);
        Ok(outcomes)
    }

    /// [`SqlStore::accept`], subscribing the messages of `targets` to callbacks in the same write.
    pub async fn accept_with_callbacks(
        &self,
        mut messages: Vec<NewMessage>,
        token_id: Option<String>,
        targets: Vec<crate::store::CallbackTarget>,
    ) -> Result<Vec<AcceptOutcome>> {
        let sealed = self.seal_bodies(&mut messages)?;
        let classes = classes(&messages);
        let accept = Box::new(AcceptCallbacks {
            messages,
            sealed,
            token_id,
            targets,
        });
        let outcomes = self.submit(|reply| WriteOp::AcceptWithCallbacks(accept, reply)).await?;
        count_accepted(&classes, &outcomes);
        Ok(outcomes)
    }

    /// The sealed body of each sensitive message, by position (empty when none is sensitive).
    /// A sensitive message's request hash is keyed too: its plain sha256 would give a short
    /// body (a one-time code) away to anyone who tries every value.
    fn seal_bodies(&self, messages: &mut [NewMessage]) -> Result<Vec<Option<String>>> {
        let mut sealed = Vec::new();
        if messages.iter().any(|message| message.sensitive) {
            sealed.reserve(messages.len());
            for message in messages.iter_mut() {
                if message.sensitive {
                    let keyed = self.sealing.keyring.keyed_digest(&message.request_hash);
                    message.request_hash = keyed.map_err(|error| Error::Sealing {
                        operation: "accept messages",
                        id: message.id,
                        source: error,
                    })?;
                }
                sealed.push(if message.sensitive {
                    Some(
                        self.sealing
                            .seal_content(message.id, "content", &message.submission.content)
                            .map_err(|error| Error::Sealing {
                                operation: "accept messages",
                                id: message.id,
                                source: error,
                            })?,
                    )
                } else {
                    None
                });
            }
        }
        Ok(sealed)
    }

    pub async fn record(&self, mut transitions: Vec<Transition>) -> Result<()> {
        self.seal_transitions(&mut transitions);
        self.submit(|reply| WriteOp::Record(transitions, reply)).await
    }

    pub async fn apply_statuses(&self, updates: Vec<StatusUpdate>) -> Result<StatusReport> {
        self.submit(|reply| WriteOp::Statuses(updates, reply)).await
    }

    pub async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
        node_id: &str,
        classes: crate::store::ClaimClasses,
    ) -> Result<Vec<PendingMessage>> {
        let mut claimed = self
            .submit(|reply| WriteOp::Claim {
                now_ms,
                limit,
                lease_until_ms,
                node_id: node_id.to_owned(),
                classes,
                reply,
            })
            .await?;
        self.open_all(&mut claimed);
        Ok(claimed)
    }

    pub async fn record_fenced(
        &self,
        mut transitions: Vec<Transition>,
        shards: Vec<u16>,
        fence: crate::store::Fence,
    ) -> Result<Vec<MessageId>> {
        self.seal_transitions(&mut transitions);
        self.submit(|reply| WriteOp::RecordFenced(Box::new((transitions, shards, fence)), reply))
            .await
    }

    // Lease rounds must not wait behind a long group commit (a late renewal loses the
    // leases): where the database takes several writers, they run in a transaction of their
    // own on a pool connection (again after a deadlock); SQLite has one writer, so they join
    // its queue.

    pub async fn heartbeat(&self, node: crate::store::ClusterNode) -> Result<crate::store::ClusterSnapshot> {
        if dialect::CONCURRENT_WRITERS {
            return on_own_connection!(self, transaction => cluster::heartbeat(&mut transaction, &node));
        }
        self.submit(|reply| WriteOp::Heartbeat(node, reply)).await
    }

    pub async fn renew_leases(&self, request: crate::store::LeaseRequest) -> Result<Vec<crate::store::HeldLease>> {
        if dialect::CONCURRENT_WRITERS {
            return on_own_connection!(self, transaction => cluster::renew_leases(&mut transaction, &request));
        }
        self.submit(|reply| WriteOp::Leases(request, reply)).await
    }

    pub async fn leave_cluster(&self, node_id: String) -> Result<()> {
        if dialect::CONCURRENT_WRITERS {
            return on_own_connection!(self, transaction => cluster::leave(&mut transaction, &node_id));
        }
        self.submit(|reply| WriteOp::Leave(node_id, reply)).await
    }

    /// The read pool, for a backend's own extras (PostgreSQL's notification listener).
    #[allow(dead_code, reason = "SQLite has no such extras")]
    pub(super) fn readers(&self) -> &DbPool {
        &self.readers
    }

    pub async fn cluster_snapshot(&self) -> Result<crate::store::ClusterSnapshot> {
        cluster::snapshot(&self.readers).await
    }

    pub async fn config_changes_since(&self, since_ms: i64) -> Result<Vec<(i64, String, i64)>> {
        cluster::changes_since(&self.readers, since_ms).await
    }

    /// Opens the sensitive bodies among `messages` and caps their deadline at the TTL.
    fn open_all(&self, messages: &mut [PendingMessage]) {
        for message in messages.iter_mut().filter(|message| message.sensitive) {
            self.open_sealed(message);
            let purge_at = message.created_at_ms.saturating_add(self.sealing.ttl_ms());
            message.expires_at_ms = Some(message.expires_at_ms.map_or(purge_at, |own| own.min(purge_at)));
        }
    }

    pub async fn release_leases(&self) -> Result<u64> {
        self.submit(WriteOp::ReleaseLeases).await
    }

    pub async fn write_state(&self, writes: Vec<StateWrite>) -> Result<()> {
        self.submit(|reply| WriteOp::State(writes, reply)).await
    }

    pub async fn plugin_writes(&self, writes: Vec<crate::store::PluginWrite>) -> Result<()> {
        self.submit(|reply| WriteOp::Plugin(writes, reply)).await
    }

    pub async fn contact_writes(&self, writes: Vec<crate::store::ContactWrite>) -> Result<()> {
        self.submit(|reply| WriteOp::Contact(writes, reply)).await
    }

    pub async fn held_wamids(&self, ids: &[MessageId]) -> Result<HashMap<MessageId, Wamid>> {
        const OPERATION: &str = "held statuses by message";
        let mut found = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<Db>::new("SELECT message_ref, wamid FROM orphan_statuses WHERE message_ref IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.to_string());
            }
            query.push(")");
            for row in query
                .build()
                .fetch_all(&self.readers)
                .await
                .map_err(database(OPERATION))?
            {
                let reference: String = row.try_get("message_ref").map_err(database(OPERATION))?;
                if let Ok(id) = reference.parse::<MessageId>() {
                    found.insert(id, Wamid(row.try_get("wamid").map_err(database(OPERATION))?));
                }
            }
        }
        Ok(found)
    }

    pub async fn contacts(&self, wa_ids: &[&str]) -> Result<Vec<crate::store::Contact>> {
        contacts::read(&self.readers, wa_ids).await
    }

    pub async fn plugin_bindings(&self) -> Result<Vec<crate::store::PluginBinding>> {
        plugins::bindings(&self.readers).await
    }

    pub async fn plugin_versions(&self, name: &str) -> Result<Vec<crate::store::PluginVersionRow>> {
        plugins::versions(&self.readers, name).await
    }

    pub async fn plugin_component(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
        plugins::component(&self.readers, name, version).await
    }

    pub async fn shadow_report(
        &self,
        plugin: &str,
        shadow_version: &str,
        samples: usize,
    ) -> Result<crate::store::ShadowReport> {
        plugins::shadow_report(&self.readers, plugin, shadow_version, samples).await
    }

    pub async fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<crate::store::Timer>> {
        plugins::due_timers(&self.readers, now_ms, limit).await
    }

    pub async fn pending_timers(&self, plugin: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plugin_timers WHERE plugin = $1")
            .bind(plugin)
            .fetch_one(&self.readers)
            .await
            .map_err(database("count plugin timers"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub async fn next_timer_due_ms(&self) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(due_at) FROM plugin_timers")
            .fetch_one(&self.readers)
            .await
            .map_err(database("next timer"))
    }

    pub async fn messages_by_id(&self, ids: &[MessageId]) -> Result<Vec<PendingMessage>> {
        const OPERATION: &str = "messages by id";
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Db>::new("SELECT * FROM messages WHERE id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            query.push(")");
            for row in query
                .build()
                .fetch_all(&self.readers)
                .await
                .map_err(database(OPERATION))?
            {
                found.push(pending_from_row(&row, OPERATION)?);
            }
        }
        self.open_all(&mut found);
        Ok(found)
    }

    pub async fn load_state(&self, plugin: &str, now_ms: i64) -> Result<Vec<StateEntry>> {
        let rows = sqlx::query(
            "SELECT key, value, expires_at FROM plugin_state
             WHERE plugin = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(plugin)
        .bind(now_ms)
        .fetch_all(&self.readers)
        .await
        .map_err(database("load plugin state"))?;
        rows.iter()
            .map(|row| {
                Ok(StateEntry {
                    key: row.try_get("key").map_err(database("load plugin state"))?,
                    value: row.try_get("value").map_err(database("load plugin state"))?,
                    expires_at_ms: row.try_get("expires_at").map_err(database("load plugin state"))?,
                })
            })
            .collect()
    }

    pub async fn next_due_ms(&self) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(due_at) FROM messages
             WHERE status IN ('accepted', 'queued', 'deferred', 'sending') AND lease_until IS NULL",
        )
        .fetch_one(&self.readers)
        .await
        .map_err(database("next due"))
    }

    pub async fn fall_back(
        &self,
        original: MessageId,
        mut follow_up: NewMessage,
    ) -> Result<crate::store::FallBackOutcome> {
        // The fallback of a sensitive message carries the same body: it is sensitive too.
        let sensitive: Option<bool> = sqlx::query_scalar("SELECT sensitive FROM messages WHERE id = $1")
            .bind(original.0)
            .fetch_optional(&self.readers)
            .await
            .map_err(database("fall back"))?;
        if sensitive == Some(true) {
            follow_up.sensitive = true;
        }
        let sealed = self.seal_bodies(std::slice::from_mut(&mut follow_up))?;
        self.submit(|reply| WriteOp::FallBack(original, Box::new(follow_up), sealed, reply))
            .await
    }

    pub async fn put_sender_number(&self, number: crate::store::SenderNumber) -> Result<()> {
        self.submit(|reply| WriteOp::SenderNumber(number, reply)).await
    }

    pub async fn send_counts(&self, wa_ids: &[&str], now_ms: i64) -> Result<HashMap<String, crate::store::SendCounts>> {
        facts::send_counts(&self.readers, wa_ids, now_ms).await
    }

    pub async fn account_sends_24h(&self, now_ms: i64) -> Result<u32> {
        facts::account_sends_24h(&self.readers, now_ms).await
    }

    pub async fn sender_numbers(&self) -> Result<Vec<crate::store::SenderNumber>> {
        facts::sender_numbers(&self.readers).await
    }

    pub async fn pending(&self) -> Result<Vec<(u16, String, u64)>> {
        queue::pending(&self.readers).await
    }

    pub async fn list_messages(&self, filter: &crate::store::MessageFilter) -> Result<crate::store::MessagePage> {
        listing::list(&self.readers, filter).await
    }

    pub async fn cancel(&self, id: MessageId, now_ms: i64) -> Result<crate::store::CancelOutcome> {
        self.submit(|reply| WriteOp::Cancel(id, now_ms, reply)).await
    }

    pub async fn token_write(
        &self,
        write: crate::store::TokenWrite,
        audit: crate::store::AuditEntry,
    ) -> Result<crate::store::TokenOutcome> {
        self.submit(|reply| WriteOp::Token(write, audit, reply)).await
    }

    pub async fn tokens(&self) -> Result<Vec<crate::store::ApiToken>> {
        tokens::all(&self.readers).await
    }

    pub async fn contact_writes_audited(
        &self,
        writes: Vec<crate::store::ContactWrite>,
        audit: crate::store::AuditEntry,
    ) -> Result<()> {
        self.submit(|reply| WriteOp::AuditedContact(writes, audit, reply)).await
    }

    pub async fn put_sender_number_audited(
        &self,
        number: crate::store::SenderNumber,
        audit: crate::store::AuditEntry,
    ) -> Result<()> {
        self.submit(|reply| WriteOp::AuditedSenderNumber(number, audit, reply))
            .await
    }

    pub async fn audit(&self, entries: Vec<crate::store::AuditEntry>) -> Result<()> {
        self.submit(|reply| WriteOp::Audit(entries, reply)).await
    }

    pub async fn audit_log(&self, filter: &crate::store::AuditFilter) -> Result<Vec<crate::store::AuditRecord>> {
        audit::read(&self.readers, filter).await
    }

    pub async fn create_token_with_callback(
        &self,
        token: crate::store::ApiToken,
        callback: crate::store::TokenCallback,
        audit: crate::store::AuditEntry,
    ) -> Result<crate::store::TokenOutcome> {
        self.submit(|reply| WriteOp::TokenWithCallback(Box::new((token, callback, audit)), reply))
            .await
    }

    pub async fn token_callbacks(&self) -> Result<Vec<crate::store::TokenCallback>> {
        callbacks::token_callbacks(&self.readers).await
    }

    pub async fn due_callbacks(&self, now_ms: i64, limit: usize) -> Result<Vec<crate::store::PendingCallback>> {
        callbacks::due(&self.readers, now_ms, limit).await
    }

    pub async fn next_callback_due_ms(&self) -> Result<Option<i64>> {
        callbacks::next_due(&self.readers).await
    }

    pub async fn record_callbacks(&self, outcomes: Vec<crate::store::CallbackOutcome>) -> Result<()> {
        self.submit(|reply| WriteOp::Callbacks(outcomes, reply)).await
    }

    pub async fn dead_callbacks(
        &self,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<crate::store::PendingCallback>> {
        callbacks::dead(&self.readers, after_seq, limit).await
    }

    pub async fn replay_callbacks(
        &self,
        which: crate::store::CallbackReplay,
        now_ms: i64,
        audit: crate::store::AuditEntry,
    ) -> Result<u64> {
        self.submit(|reply| WriteOp::ReplayCallbacks(which, now_ms, audit, reply))
            .await
    }

    pub async fn template_write(
        &self,
        write: crate::store::TemplateWrite,
        audit: Option<crate::store::AuditEntry>,
    ) -> Result<Option<crate::store::TemplateVersion>> {
        self.submit(|reply| WriteOp::Template(Box::new(write), audit, reply))
            .await
    }

    pub async fn template_versions(&self, name: Option<&str>) -> Result<Vec<crate::store::TemplateVersion>> {
        templates::versions(&self.readers, name).await
    }

    pub async fn templates_in(
        &self,
        status: crate::templates::TemplateStatus,
        limit: usize,
    ) -> Result<Vec<crate::store::TemplateVersion>> {
        templates::in_status(&self.readers, status, limit).await
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(|_| ())
            .map_err(database("ping"))
    }

    pub async fn message(&self, id: MessageId) -> Result<Option<MessageView>> {
        const OPERATION: &str = "get message";
        let Some(row) = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.readers)
            .await
            .map_err(database(OPERATION))?
        else {
            return Ok(None);
        };
        let history = sqlx::query("SELECT status, at, cause FROM message_history WHERE message_id = $1 ORDER BY seq")
            .bind(id.0)
            .fetch_all(&self.readers)
            .await
            .map_err(database(OPERATION))?
            .iter()
            .map(|row| {
                Ok(HistoryEntry {
                    status: parse_text(row, "status", OPERATION)?,
                    at_ms: row.try_get("at").map_err(database(OPERATION))?,
                    cause: row.try_get("cause").map_err(database(OPERATION))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut pending = pending_from_row(&row, OPERATION)?;
        self.open_sealed(&mut pending);
        let shown = !pending.purged && pending.unreadable.is_none();
        Ok(Some(MessageView {
            id: pending.id,
            to: pending.to,
            category: pending.category,
            priority: pending.priority,
            channel: pending.channel,
            shard: pending.shard,
            tags: pending.tags,
            status: pending.status,
            content: shown.then_some(pending.content),
            content_sent: pending.content_sent.filter(|_| shown),
            rewritten_by: pending.rewritten_by,
            sensitive: pending.sensitive,
            purged: pending.purged,
            unreadable: pending.unreadable,
            wamid: row
                .try_get::<Option<String>, _>("wamid")
                .map_err(database(OPERATION))?
                .map(Wamid),
            reason: row.try_get("reason").map_err(database(OPERATION))?,
            error_code: row.try_get("error_code").map_err(database(OPERATION))?,
            attempts: pending.attempts,
            created_at_ms: pending.created_at_ms,
            updated_at_ms: row.try_get("updated_at").map_err(database(OPERATION))?,
            due_at_ms: row.try_get("due_at").map_err(database(OPERATION))?,
            history,
        }))
    }
}

/// Category and priority of each message, by position: what the acceptance counter needs
/// once the messages themselves have moved into the write.
fn classes(messages: &[NewMessage]) -> Vec<(Category, Priority)> {
    messages
        .iter()
        .map(|message| (message.submission.category, message.submission.priority))
        .collect()
}

/// Counts the messages newly accepted (not duplicates or refusals), after the commit.
fn count_accepted(classes: &[(Category, Priority)], outcomes: &[AcceptOutcome]) {
    for ((category, priority), outcome) in classes.iter().zip(outcomes) {
        if matches!(outcome, AcceptOutcome::Accepted { .. }) {
            crate::telemetry::metrics::accepted(*category, *priority, 1);
        }
    }
}

/// The group-commit loop: takes every op waiting (up to `max_rows` rows), runs them in one
/// transaction, commits, then answers each caller.
async fn run_writer(
    mut connection: DbConnection,
    mut receiver: mpsc::Receiver<WriteOp>,
    max_rows: usize,
    reconnect: Option<Reconnect>,
    changes: tokio::sync::broadcast::Sender<Arc<Vec<crate::store::Change>>>,
) {
    let mut ops = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut rows = first.rows();
        ops.push(first);
        while rows < max_rows {
            match receiver.try_recv() {
                Ok(op) => {
                    rows += op.rows();
                    ops.push(op);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut executed = execute(&mut connection, &ops).await;
        // Two nodes' writers can deadlock on the same rows (PostgreSQL then aborts one) or
        // conflict under serialization: the batch rolled back whole, so it is run again.
        for _ in 0..WRITE_RETRIES {
            match &executed {
                Err(error) if is_transient(error) => {
                    tracing::debug!(%error, "store batch ran into another writer; running it again");
                    executed = execute(&mut connection, &ops).await;
                }
                _ => break,
            }
        }
        crate::telemetry::metrics::store_commit(rows, started.elapsed());
        match executed {
            Ok((outputs, moved)) => {
                // Sending never waits: a receiver too far behind skips ahead (`Lagged`).
                if !moved.is_empty() && changes.receiver_count() > 0 && changes.send(Arc::new(moved)).is_err() {
                    tracing::debug!("the change feed's last receiver left");
                }
                for (op, output) in ops.drain(..).zip(outputs) {
                    answer(op, Ok(output));
                }
            }
            Err(error) => {
                tracing::error!(%error, ops = ops.len(), "store batch failed; every caller in it is told");
                // The callers hear of the failure (nothing of the batch is assumed written);
                // the next batch gets a working connection.
                if let Some(reconnect) = &reconnect
                    && connection.ping().await.is_err()
                {
                    connection = reopen(reconnect).await;
                }
                let message = error.to_string();
                for op in ops.drain(..) {
                    answer(
                        op,
                        Err(Error::Corrupt {
                            operation: "group commit",
                            detail: message.clone(),
                        }),
                    );
                }
            }
        }
    }
}

/// Opens a new writer connection, trying again every second until the server answers.
async fn reopen(reconnect: &Reconnect) -> DbConnection {
    loop {
        match reconnect().await {
            Ok(connection) => {
                tracing::info!("store writer reconnected");
                return connection;
            }
            Err(error) => {
                tracing::warn!(%error, "store writer cannot reconnect; trying again in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Times a batch that hit a deadlock or a serialization failure is run again.
const WRITE_RETRIES: usize = 5;

/// A deadlock (`40P01`) or serialization failure (`40001`): the transaction rolled back and
/// may simply be run again.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Database {
            source: sqlx::Error::Database(database),
            ..
        } => matches!(database.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

fn answer(op: WriteOp, output: Result<Output>) {
    // A caller that gave up waiting is no error of the writer's: its reply is dropped.
    fn send<T>(reply: Reply<T>, value: Result<T>) {
        if reply.send(value).is_err() {
            tracing::debug!("store caller left before its write was answered");
        }
    }
    match (op, output) {
        (WriteOp::Accept(.., reply), Ok(Output::Accept(outcomes))) => send(reply, Ok(outcomes)),
        (WriteOp::PurgeSensitive { reply, .. }, Ok(Output::Purge(purge))) => send(reply, Ok(purge)),
        (WriteOp::PurgeSensitive { reply, .. }, Err(error)) => send(reply, Err(error)),
        (WriteOp::Record(_, reply), Ok(Output::Unit))
        | (WriteOp::State(_, reply), Ok(Output::Unit))
        | (WriteOp::Plugin(_, reply), Ok(Output::Unit))
        | (WriteOp::Contact(_, reply), Ok(Output::Unit)) => send(reply, Ok(())),
        (WriteOp::Statuses(_, reply), Ok(Output::Statuses(report))) => send(reply, Ok(report)),
        (WriteOp::Claim { reply, .. }, Ok(Output::Claim(messages))) => send(reply, Ok(messages)),
        (WriteOp::ReleaseLeases(reply), Ok(Output::Count(count))) => send(reply, Ok(count)),
        (WriteOp::FallBack(.., reply), Ok(Output::FallBack(outcome))) => send(reply, Ok(outcome)),
        (WriteOp::SenderNumber(_, reply), Ok(Output::Unit)) => send(reply, Ok(())),
        (WriteOp::Audit(_, reply), Ok(Output::Unit))
        | (WriteOp::AuditedContact(.., reply), Ok(Output::Unit))
        | (WriteOp::AuditedSenderNumber(.., reply), Ok(Output::Unit)) => send(reply, Ok(())),
        (WriteOp::Token(.., reply), Ok(Output::Token(outcome))) => send(reply, Ok(outcome)),
        (WriteOp::Token(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Audit(_, reply), Err(error))
        | (WriteOp::AuditedContact(.., reply), Err(error))
        | (WriteOp::AuditedSenderNumber(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Cancel(.., reply), Ok(Output::Cancel(outcome))) => send(reply, Ok(outcome)),
        (WriteOp::Cancel(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Template(.., reply), Ok(Output::Template(version))) => send(reply, Ok(version)),
        (WriteOp::Template(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::AcceptWithCallbacks(_, reply), Ok(Output::Accept(outcomes))) => send(reply, Ok(outcomes)),
        (WriteOp::AcceptWithCallbacks(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::TokenWithCallback(_, reply), Ok(Output::Token(outcome))) => send(reply, Ok(outcome)),
        (WriteOp::TokenWithCallback(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Callbacks(_, reply), Ok(Output::Unit)) => send(reply, Ok(())),
        (WriteOp::Callbacks(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::ReplayCallbacks(.., reply), Ok(Output::Count(count))) => send(reply, Ok(count)),
        (WriteOp::ReplayCallbacks(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::FallBack(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::SenderNumber(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Accept(.., reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Record(_, reply), Err(error))
        | (WriteOp::State(_, reply), Err(error))
        | (WriteOp::Plugin(_, reply), Err(error))
        | (WriteOp::Contact(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Statuses(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Claim { reply, .. }, Err(error)) => send(reply, Err(error)),
        (WriteOp::ReleaseLeases(reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::RecordFenced(_, reply), Ok(Output::Fenced(refused))) => send(reply, Ok(refused)),
        (WriteOp::RecordFenced(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Heartbeat(_, reply), Ok(Output::Heartbeat(nodes))) => send(reply, Ok(nodes)),
        (WriteOp::Heartbeat(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Leases(_, reply), Ok(Output::Leases(held))) => send(reply, Ok(held)),
        (WriteOp::Leases(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::Leave(_, reply), Ok(Output::Unit)) => send(reply, Ok(())),
        (WriteOp::Leave(_, reply), Err(error)) => send(reply, Err(error)),
        (WriteOp::PruneStats(_, reply), Ok(Output::Count(count))) => send(reply, Ok(count)),
        (WriteOp::PruneStats(_, reply), Err(error)) => send(reply, Err(error)),
        (_, Ok(_)) => tracing::error!("store writer produced an output of the wrong kind"),
    }
}

/// Runs one batch in one transaction; answers each op's output and the status changes the
/// batch made (its rollups written in the same transaction).
async fn execute(connection: &mut DbConnection, ops: &[WriteOp]) -> Result<(Vec<Output>, Vec<crate::store::Change>)> {
    let mut transaction = connection.begin().await.map_err(database("begin"))?;
    let mut outputs = Vec::with_capacity(ops.len());
    let mut tally = stats::Tally::default();
    for op in ops {
        let output = match op {
            WriteOp::Accept(messages, sealed, token_id, _) => {
                let outcomes = insert_sealed(&mut transaction, &mut tally, messages, sealed).await?;
                if let Some(token_id) = token_id {
                    audit_sensitive_sends(&mut transaction, messages, &outcomes, token_id).await?;
                }
                Output::Accept(outcomes)
            }
            WriteOp::PurgeSensitive { now_ms, ttl_ms, .. } => {
                Output::Purge(purge_expired_sensitive(&mut transaction, &mut tally, *now_ms, *ttl_ms).await?)
            }
            WriteOp::Record(transitions, _) => {
                apply_transitions(&mut transaction, &mut tally, transitions).await?;
                Output::Unit
            }
            WriteOp::Statuses(updates, _) => {
                Output::Statuses(apply_status_updates(&mut transaction, &mut tally, updates).await?)
            }
            WriteOp::Claim {
                now_ms,
                limit,
                lease_until_ms,
                node_id,
                classes,
                ..
            } => Output::Claim(
                queue::claim(&mut transaction, *now_ms, *limit, *lease_until_ms, node_id, *classes).await?,
            ),
            WriteOp::RecordFenced(fenced, _) => {
                let (transitions, shards, fence) = &**fenced;
                Output::Fenced(
                    cluster::record_fenced(
                        &mut transaction,
                        &mut tally,
                        transitions,
                        shards,
                        &fence.node_id,
                        &fence.epochs,
                    )
                    .await?,
                )
            }
            WriteOp::Heartbeat(node, _) => Output::Heartbeat(cluster::heartbeat(&mut transaction, node).await?),
            WriteOp::Leases(request, _) => Output::Leases(cluster::renew_leases(&mut transaction, request).await?),
            WriteOp::Leave(node_id, _) => {
                cluster::leave(&mut transaction, node_id).await?;
                Output::Unit
            }
            WriteOp::ReleaseLeases(_) => {
                let done = sqlx::query("UPDATE messages SET lease_until = NULL WHERE lease_until IS NOT NULL")
                    .execute(&mut *transaction)
                    .await
                    .map_err(database("release leases"))?;
                Output::Count(done.rows_affected())
            }
            WriteOp::State(writes, _) => {
                write_state(&mut transaction, writes).await?;
                Output::Unit
            }
            WriteOp::Plugin(writes, _) => {
                plugins::write(&mut transaction, writes).await?;
                if writes.iter().any(|write| {
                    matches!(
                        write,
                        crate::store::PluginWrite::PutBinding(_) | crate::store::PluginWrite::Delete { .. }
                    )
                }) {
                    cluster::note_change(&mut transaction, CHANGED_PLUGINS, crate::store::now_ms()).await?;
                }
                Output::Unit
            }
            WriteOp::Contact(writes, _) => {
                contacts::write(&mut transaction, writes).await?;
                Output::Unit
            }
            WriteOp::FallBack(original, follow_up, sealed, _) => {
                Output::FallBack(facts::fall_back(&mut transaction, &mut tally, *original, follow_up, sealed).await?)
            }
            WriteOp::SenderNumber(number, _) => {
                facts::put_sender_number(&mut transaction, number).await?;
                Output::Unit
            }
            WriteOp::Token(write, entry, _) => {
                let outcome = tokens::write(&mut transaction, write, entry).await?;
                cluster::note_change(&mut transaction, CHANGED_TOKENS, entry.at_ms).await?;
                Output::Token(outcome)
            }
            WriteOp::Audit(entries, _) => {
                audit::insert(&mut transaction, entries).await?;
                Output::Unit
            }
            WriteOp::AuditedSenderNumber(number, entry, _) => {
                facts::put_sender_number(&mut transaction, number).await?;
                audit::insert(&mut transaction, std::slice::from_ref(entry)).await?;
                Output::Unit
            }
            WriteOp::AuditedContact(writes, entry, _) => {
                contacts::write(&mut transaction, writes).await?;
                audit::insert(&mut transaction, std::slice::from_ref(entry)).await?;
                Output::Unit
            }
            WriteOp::Cancel(id, now_ms, _) => {
                tally.load(&mut transaction, &[*id]).await?;
                let outcome = listing::cancel(&mut transaction, *id, *now_ms).await?;
                if outcome == crate::store::CancelOutcome::Cancelled {
                    tally.moved(*id, Status::Cancelled, *now_ms, None, None);
                    callbacks::enqueue_latest(&mut transaction, *id).await?;
                }
                Output::Cancel(outcome)
            }
            WriteOp::AcceptWithCallbacks(accept, _) => {
                let outcomes = insert_sealed(&mut transaction, &mut tally, &accept.messages, &accept.sealed).await?;
                if let Some(token_id) = &accept.token_id {
                    audit_sensitive_sends(&mut transaction, &accept.messages, &outcomes, token_id).await?;
                }
                callbacks::subscribe(&mut transaction, &accept.messages, &outcomes, &accept.targets).await?;
                Output::Accept(outcomes)
            }
            WriteOp::TokenWithCallback(write, _) => {
                let (token, callback, entry) = &**write;
                let outcome = callbacks::create_token(&mut transaction, token, callback, entry).await?;
                cluster::note_change(&mut transaction, CHANGED_TOKENS, entry.at_ms).await?;
                Output::Token(outcome)
            }
            WriteOp::Callbacks(outcomes, _) => {
                callbacks::record(&mut transaction, outcomes).await?;
                Output::Unit
            }
            WriteOp::ReplayCallbacks(which, now_ms, entry, _) => {
                Output::Count(callbacks::replay(&mut transaction, which, *now_ms, entry).await?)
            }
            WriteOp::PruneStats(before_ms, _) => Output::Count(stats::prune(&mut transaction, *before_ms).await?),
            WriteOp::Template(write, entry, _) => {
                let version = templates::write(&mut transaction, write, entry.as_ref()).await?;
                cluster::note_change(&mut transaction, CHANGED_TEMPLATES, crate::store::now_ms()).await?;
                Output::Template(version)
            }
        };
        outputs.push(output);
    }
    // New work for the dispatchers of every node sharing the store (delivered on commit).
    if !dialect::NOTIFY_WORK.is_empty()
        && ops.iter().any(|op| {
            matches!(
                op,
                WriteOp::Accept(..) | WriteOp::AcceptWithCallbacks(..) | WriteOp::FallBack(..)
            )
        })
    {
        sqlx::query(dialect::NOTIFY_WORK)
            .execute(&mut *transaction)
            .await
            .map_err(database("notify new work"))?;
    }
    tally.write(&mut transaction).await?;
    transaction.commit().await.map_err(database("commit"))?;
    Ok((outputs, tally.into_changes()))
}

/// Inserts messages; `sealed[i]` is the sealed body of `messages[i]` when it is sensitive
/// (an empty `sealed`: none is). A sensitive message without its sealed body is refused:
/// a body is never stored in the clear.
async fn insert_sealed(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut stats::Tally,
    messages: &[NewMessage],
    sealed: &[Option<String>],
) -> Result<Vec<AcceptOutcome>> {
    const OPERATION: &str = "accept messages";
    let mut encoded = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let content = if message.sensitive {
            sealed.get(index).cloned().flatten().ok_or_else(|| Error::Corrupt {
                operation: OPERATION,
                detail: format!(
                    "sensitive message {} reached the writer without its sealed body",
                    message.id
                ),
            })?
        } else {
            serde_json::to_string(&message.submission.content).map_err(|error| Error::Corrupt {
                operation: OPERATION,
                detail: error.to_string(),
            })?
        };
        let tags = serde_json::to_string(&message.submission.tags).unwrap_or_else(|_| "[]".into());
        encoded.push((content, tags));
    }
    let mut inserted = std::collections::HashSet::with_capacity(messages.len());
    for (chunk, encoded) in messages
        .chunks(ROWS_PER_STATEMENT)
        .zip(encoded.chunks(ROWS_PER_STATEMENT))
    {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, idempotency_key, request_hash, recipient, category, priority, priority_rank, \
             channel, shard, tags, status, content, due_at, created_at, updated_at, expires_at, sensitive, \
             template_name, region) ",
        );
        query.push_values(chunk.iter().zip(encoded), |mut row, (message, (content, tags))| {
            let submission = &message.submission;
            row.push_bind(message.id.0)
                .push_bind(submission.idempotency_key.as_deref())
                .push_bind(message.request_hash.as_str())
                .push_bind(submission.to.as_str())
                .push_bind(submission.category.as_str())
                .push_bind(submission.priority.as_str())
                .push_bind(submission.priority.rank())
                .push_bind(submission.channel.as_str())
                .push_bind(i64::from(message.shard))
                .push_bind(tags.as_str())
                .push_bind(Status::Accepted.as_str())
                .push_bind(content.as_str())
                .push_bind(message.at_ms)
                .push_bind(message.at_ms)
                .push_bind(message.at_ms)
                .push_bind(message.expires_at_ms)
                .push_bind(message.sensitive)
                .push_bind(stats::template_name(&submission.content))
                .push_bind(submission.to.country_code().map(i64::from));
        });
        query.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            let id: Uuid = row.try_get("id").map_err(database(OPERATION))?;
            inserted.insert(id);
        }
    }

    // Keys that hit an earlier message: answer with that message, and notice a changed body.
    let mut earlier: HashMap<String, (Uuid, String)> = HashMap::new();
    let conflicting: Vec<&str> = messages
        .iter()
        .filter(|message| !inserted.contains(&message.id.0))
        .filter_map(|message| message.submission.idempotency_key.as_deref())
        .collect();
    for chunk in conflicting.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new(
            "SELECT id, idempotency_key, request_hash FROM messages WHERE idempotency_key IN (",
        );
        let mut list = query.separated(", ");
        for key in chunk {
            list.push_bind(*key);
        }
        query.push(")");
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            earlier.insert(
                row.try_get("idempotency_key").map_err(database(OPERATION))?,
                (
                    row.try_get("id").map_err(database(OPERATION))?,
                    row.try_get("request_hash").map_err(database(OPERATION))?,
                ),
            );
        }
    }

    let mut outcomes = Vec::with_capacity(messages.len());
    let mut history = Vec::with_capacity(messages.len());
    for message in messages {
        if inserted.contains(&message.id.0) {
            outcomes.push(AcceptOutcome::Accepted { id: message.id });
            history.push(Transition {
                id: message.id,
                status: Status::Accepted,
                at_ms: message.at_ms,
                cause: "accepted over the API".into(),
                changes: Changes::default(),
            });
            continue;
        }
        let key = message.submission.idempotency_key.as_deref().unwrap_or_default();
        let (id, hash) = earlier.get(key).ok_or_else(|| Error::Corrupt {
            operation: OPERATION,
            detail: format!(
                "message {} was neither inserted nor found by its idempotency key",
                message.id
            ),
        })?;
        let id = MessageId(*id);
        outcomes.push(if *hash == message.request_hash {
            AcceptOutcome::Duplicate { id }
        } else {
            AcceptOutcome::KeyReused { id }
        });
    }
    insert_history(transaction, &history).await?;
    tally.accepted(messages, |message| inserted.contains(&message.id.0));
    Ok(outcomes)
}

async fn insert_history(transaction: &mut Transaction<'_, Db>, transitions: &[Transition]) -> Result<()> {
    for chunk in transitions.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("INSERT INTO message_history (message_id, status, at, cause) ");
        query.push_values(chunk, |mut row, transition| {
            row.push_bind(transition.id.0)
                .push_bind(transition.status.as_str())
                .push_bind(transition.at_ms)
                .push_bind(transition.cause.as_str());
        });
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("insert history"))?;
    }
    Ok(())
}

/// One row per message with the last status and the latest value of each field, so a
/// multi-row `UPDATE … FROM` never joins a message twice.
struct MergedChange {
    id: MessageId,
    status: Status,
    at_ms: i64,
    content_sent: Option<String>,
    rewritten_by: Option<String>,
    wamid: Option<String>,
    due_at_ms: Option<i64>,
    reason: Option<String>,
    error_code: Option<i64>,
    attempts: Option<i64>,
    priority: Option<(&'static str, i64)>,
    /// When a `sent` among the transitions happened.
    sent_at_ms: Option<i64>,
    sender: Option<String>,
}

fn merge(transitions: &[Transition]) -> Result<Vec<MergedChange>> {
    let mut order: Vec<MessageId> = Vec::new();
    let mut merged: HashMap<MessageId, MergedChange> = HashMap::with_capacity(transitions.len());
    for transition in transitions {
        let entry = merged.entry(transition.id).or_insert_with(|| {
            order.push(transition.id);
            MergedChange {
                id: transition.id,
                status: transition.status,
                at_ms: transition.at_ms,
                content_sent: None,
                rewritten_by: None,
                wamid: None,
                due_at_ms: None,
                reason: None,
                error_code: None,
                attempts: None,
                priority: None,
                sent_at_ms: None,
                sender: None,
            }
        });
        entry.status = transition.status;
        entry.at_ms = transition.at_ms;
        if transition.status == Status::Sent {
            entry.sent_at_ms = entry.sent_at_ms.or(Some(transition.at_ms));
        }
        let changes = &transition.changes;
        if changes.sender.is_some() {
            entry.sender.clone_from(&changes.sender);
        }
        if let Some((content, plugins)) = &changes.content_sent {
            if changes.sensitive {
                // Sealed by the store before the write, or not recorded at all: never in the clear.
                if let Some(sealed) = &changes.sealed_content_sent {
                    entry.content_sent = Some(sealed.clone());
                }
            } else {
                entry.content_sent = Some(serde_json::to_string(content).map_err(|error| Error::Corrupt {
                    operation: "record transitions",
                    detail: error.to_string(),
                })?);
            }
            entry.rewritten_by = Some(serde_json::to_string(plugins).unwrap_or_else(|_| "[]".into()));
        }
        if let Some(wamid) = &changes.wamid {
            entry.wamid = Some(wamid.0.clone());
        }
        entry.due_at_ms = changes.due_at_ms.or(entry.due_at_ms);
        if changes.reason.is_some() {
            entry.reason.clone_from(&changes.reason);
        }
        entry.error_code = changes.error_code.or(entry.error_code);
        entry.attempts = changes.attempts.map(i64::from).or(entry.attempts);
        entry.priority = changes
            .priority
            .map(|priority| (priority.as_str(), priority.rank()))
            .or(entry.priority);
    }
    Ok(order.into_iter().filter_map(|id| merged.remove(&id)).collect())
}

async fn apply_transitions(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut stats::Tally,
    transitions: &[Transition],
) -> Result<()> {
    let merged = merge(transitions)?;
    let ids: Vec<MessageId> = merged.iter().map(|change| change.id).collect();
    tally.load(transaction, &ids).await?;
    let mut subscribed = callbacks::Subscriptions::new();
    for chunk in merged.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new(
            "WITH v (id, status, at, content_sent, rewritten_by, wamid, due_at, reason, error_code, attempts, \
             priority, priority_rank, sent_at, sender) AS (",
        );
        query.push_values(chunk, |mut row, change| {
            row.push_bind(change.id.0)
                .push_bind(change.status.as_str())
                .push_bind(change.at_ms)
                .push_bind(change.content_sent.as_deref())
                .push_bind(change.rewritten_by.as_deref())
                .push_bind(change.wamid.as_deref())
                .push_bind(change.due_at_ms)
                .push_bind(change.reason.as_deref())
                .push_bind(change.error_code)
                .push_bind(change.attempts)
                .push_bind(change.priority.map(|(name, _)| name))
                .push_bind(change.priority.map(|(_, rank)| rank))
                .push_bind(change.sent_at_ms)
                .push_bind(change.sender.as_deref());
        });
        query.push(
            ") UPDATE messages SET \
               status = v.status, \
               updated_at = v.at, \
               content_sent = COALESCE(v.content_sent, messages.content_sent), \
               rewritten_by = COALESCE(v.rewritten_by, messages.rewritten_by), \
               wamid = COALESCE(v.wamid, messages.wamid), \
               due_at = COALESCE(v.due_at, messages.due_at), \
               reason = COALESCE(v.reason, messages.reason), \
               error_code = COALESCE(v.error_code, messages.error_code), \
               attempts = COALESCE(v.attempts, messages.attempts), \
               priority = COALESCE(v.priority, messages.priority), \
               priority_rank = COALESCE(v.priority_rank, messages.priority_rank), \
               sent_at = COALESCE(messages.sent_at, v.sent_at), \
               sender = COALESCE(v.sender, messages.sender), \
               lease_until = CASE WHEN v.status = 'sending' THEN messages.lease_until ELSE NULL END \
             FROM v WHERE messages.id = v.id",
        );
        // Which messages want callbacks: read back from the same statement, no extra one.
        query.push(" RETURNING messages.id, messages.recipient, messages.callback_url, messages.callback_token");
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database("record transitions"))?
        {
            let url: Option<String> = row.try_get("callback_url").map_err(database("record transitions"))?;
            let token: Option<String> = row.try_get("callback_token").map_err(database("record transitions"))?;
            if let (Some(url), Some(token)) = (url, token) {
                let id: Uuid = row.try_get("id").map_err(database("record transitions"))?;
                let recipient: Option<String> = row.try_get("recipient").map_err(database("record transitions"))?;
                subscribed.insert(MessageId(id), (recipient, url, token));
            }
        }
    }
    insert_history(transaction, transitions).await?;
    tally.transitions(transitions);
    callbacks::enqueue(transaction, transitions, &subscribed).await?;

    // Sends Meta accepted count toward the contact's and the account's send facts.
    let sent: Vec<MessageId> = merged
        .iter()
        .filter(|change| change.status == Status::Sent && change.wamid.is_some())
        .map(|change| change.id)
        .collect();
    if !sent.is_empty() {
        let now = merged.iter().map(|change| change.at_ms).max().unwrap_or_default();
        facts::record_sends(transaction, &sent, now).await?;
    }

    // Statuses that came in before their wamid was known apply now, in the same transaction.
    let wamids: Vec<String> = merged.iter().filter_map(|change| change.wamid.clone()).collect();
    if !wamids.is_empty() {
        let held = take_orphans(transaction, &wamids).await?;
        if !held.is_empty() {
            let report = Box::pin(apply_status_updates(transaction, tally, &held)).await?;
            // Counted inside the group commit (these statuses reach no caller): a batch that
            // then fails to commit over-counts them, which the writer's error log shows.
            for applied in &report.applied {
                crate::telemetry::metrics::status(applied.update.status, applied.category, applied.priority);
            }
        }
    }
    Ok(())
}

async fn take_orphans(transaction: &mut Transaction<'_, Db>, wamids: &[String]) -> Result<Vec<StatusUpdate>> {
    const OPERATION: &str = "apply held statuses";
    let mut held = Vec::new();
    for chunk in wamids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("DELETE FROM orphan_statuses WHERE wamid IN (");
        let mut list = query.separated(", ");
        for wamid in chunk {
            list.push_bind(wamid.as_str());
        }
        query.push(") RETURNING seq, wamid, status, at, error_code, error_title, message_ref");
        let mut rows = query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
        rows.sort_by_key(|row| row.try_get::<i64, _>("seq").unwrap_or_default());
        for row in rows {
            held.push(StatusUpdate {
                wamid: Wamid(row.try_get("wamid").map_err(database(OPERATION))?),
                status: parse_text(&row, "status", OPERATION)?,
                at_ms: row.try_get("at").map_err(database(OPERATION))?,
                error_code: row.try_get("error_code").map_err(database(OPERATION))?,
                error_title: row.try_get("error_title").map_err(database(OPERATION))?,
                callback_data: row.try_get("message_ref").map_err(database(OPERATION))?,
            });
        }
    }
    Ok(held)
}

async fn apply_status_updates(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut stats::Tally,
    updates: &[StatusUpdate],
) -> Result<StatusReport> {
    const OPERATION: &str = "apply statuses";
    type Known = (MessageId, Status, String, Category, Priority);
    let mut current: HashMap<String, Known> = HashMap::with_capacity(updates.len());
    // Sensitive messages whose body is still there: purged once read.
    let mut sensitive: std::collections::HashSet<MessageId> = std::collections::HashSet::new();
    let mut wamids: Vec<&str> = updates.iter().map(|update| update.wamid.0.as_str()).collect();
    wamids.sort_unstable();
    wamids.dedup();
    for chunk in wamids.chunks(ROWS_PER_STATEMENT) {
        // With what the receipts tally needs, so it reads these messages no second time.
        let mut query = QueryBuilder::<Db>::new(format!(
            "SELECT {}, wamid, recipient, sensitive, purged_at, priority FROM messages WHERE wamid IN (",
            stats::TRACKED_COLUMNS
        ));
        let mut list = query.separated(", ");
        for wamid in chunk {
            list.push_bind(*wamid);
        }
        query.push(")");
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            tally.track(&row, OPERATION)?;
            let id: Uuid = row.try_get("id").map_err(database(OPERATION))?;
            if row.try_get::<bool, _>("sensitive").map_err(database(OPERATION))?
                && row
                    .try_get::<Option<i64>, _>("purged_at")
                    .map_err(database(OPERATION))?
                    .is_none()
            {
                sensitive.insert(MessageId(id));
            }
            current.insert(
                row.try_get("wamid").map_err(database(OPERATION))?,
                (
                    MessageId(id),
                    parse_text(&row, "status", OPERATION)?,
                    row.try_get("recipient").map_err(database(OPERATION))?,
                    parse_text(&row, "category", OPERATION)?,
                    parse_text(&row, "priority", OPERATION)?,
                ),
            );
        }
    }

    let mut report = StatusReport::default();
    let mut transitions = Vec::new();
    let mut orphans = Vec::new();
    for update in updates {
        let Some((id, status, recipient, category, priority)) = current.get_mut(&update.wamid.0) else {
            orphans.push(update);
            continue;
        };
        if status.is_final() || update.status.delivery_rank() <= status.delivery_rank() {
            report.ignored += 1;
            continue;
        }
        *status = update.status;
        let cause = match (update.error_code, &update.error_title) {
            (Some(code), Some(title)) => format!("webhook: {} ({code} {title})", update.status),
            (Some(code), None) => format!("webhook: {} ({code})", update.status),
            _ => format!("webhook: {}", update.status),
        };
        transitions.push(Transition {
            id: *id,
            status: update.status,
            at_ms: update.at_ms,
            cause,
            changes: Changes {
                error_code: update.error_code,
                reason: update.error_title.clone(),
                ..Changes::default()
            },
        });
        report.applied.push(crate::store::AppliedStatus {
            id: *id,
            recipient: recipient.clone(),
            category: *category,
            priority: *priority,
            update: update.clone(),
        });
    }
    if !transitions.is_empty() {
        Box::pin(apply_transitions(transaction, tally, &transitions)).await?;
    }
    if !sensitive.is_empty() {
        let read: Vec<(MessageId, i64)> = transitions
            .iter()
            .filter(|transition| transition.status == Status::Read && sensitive.contains(&transition.id))
            .map(|transition| (transition.id, transition.at_ms))
            .collect();
        purge_bodies(transaction, &read, Status::Read).await?;
    }
    report.held = orphans.len();
    let received_at = crate::store::now_ms();
    for chunk in orphans.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO orphan_statuses (wamid, status, at, error_code, error_title, received_at, message_ref) ",
        );
        query.push_values(chunk, |mut row, update| {
            row.push_bind(update.wamid.0.as_str())
                .push_bind(update.status.as_str())
                .push_bind(update.at_ms)
                .push_bind(update.error_code)
                .push_bind(update.error_title.as_deref())
                .push_bind(received_at)
                .push_bind(
                    update
                        .callback_data
                        .as_deref()
                        .map(crate::message::callback_message_ref),
                );
        });
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("hold statuses"))?;
    }
    Ok(report)
}

async fn write_state(transaction: &mut Transaction<'_, Db>, writes: &[StateWrite]) -> Result<()> {
    for write in writes {
        match &write.value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO plugin_state (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                )
                .bind(&write.plugin)
                .bind(&write.key)
                .bind(value)
                .bind(write.expires_at_ms)
                .execute(&mut **transaction)
                .await
                .map_err(database("write plugin state"))?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_state WHERE plugin = $1 AND key = $2")
                    .bind(&write.plugin)
                    .bind(&write.key)
                    .execute(&mut **transaction)
                    .await
                    .map_err(database("delete plugin state"))?;
            }
        }
    }
    Ok(())
}

fn parse_text<T: FromStr<Err = String>>(row: &DbRow, column: &str, operation: &'static str) -> Result<T> {
    let text: String = row.try_get(column).map_err(database(operation))?;
    text.parse().map_err(|detail| Error::Corrupt { operation, detail })
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, operation: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| Error::Corrupt {
        operation,
        detail: error.to_string(),
    })
}

fn pending_from_row(row: &DbRow, operation: &'static str) -> Result<PendingMessage> {
    let id: Uuid = row.try_get("id").map_err(database(operation))?;
    let recipient: String = row.try_get("recipient").map_err(database(operation))?;
    let tags: String = row.try_get("tags").map_err(database(operation))?;
    let content: String = row.try_get("content").map_err(database(operation))?;
    let content_sent: Option<String> = row.try_get("content_sent").map_err(database(operation))?;
    let sensitive: bool = row.try_get("sensitive").map_err(database(operation))?;
    let purged = row
        .try_get::<Option<i64>, _>("purged_at")
        .map_err(database(operation))?
        .is_some();
    // A sensitive body stays sealed here (the store opens it outside the writer); a purged
    // one is gone.
    let (content, content_sent, sealed) = if purged {
        (sealing::placeholder_content(), None, None)
    } else if sensitive {
        (
            sealing::placeholder_content(),
            None,
            Some(Box::new((content, content_sent))),
        )
    } else {
        (
            parse_json::<Content>(&content, operation)?,
            content_sent.map(|text| parse_json(&text, operation)).transpose()?,
            None,
        )
    };
    let rewritten_by: Option<String> = row.try_get("rewritten_by").map_err(database(operation))?;
    let shard: i64 = row.try_get("shard").map_err(database(operation))?;
    let attempts: i64 = row.try_get("attempts").map_err(database(operation))?;
    Ok(PendingMessage {
        id: MessageId(id),
        to: PhoneNumber::parse(&recipient).map_err(|error| Error::Corrupt {
            operation,
            detail: format!("recipient {recipient:?}: {error}"),
        })?,
        category: parse_text(row, "category", operation)?,
        priority: parse_text(row, "priority", operation)?,
        channel: parse_text(row, "channel", operation)?,
        shard: u16::try_from(shard).unwrap_or_default(),
        tags: parse_json(&tags, operation)?,
        status: parse_text(row, "status", operation)?,
        content,
        content_sent,
        sensitive,
        purged,
        unreadable: None,
        sealed,
        rewritten_by: rewritten_by
            .map(|text| parse_json(&text, operation))
            .transpose()?
            .unwrap_or_default(),
        attempts: u32::try_from(attempts).unwrap_or_default(),
        created_at_ms: row.try_get("created_at").map_err(database(operation))?,
        expires_at_ms: row.try_get("expires_at").map_err(database(operation))?,
    })
}

/// Purges the bodies of sensitive messages: `content` and `content_sent` are emptied and
/// `purged_at` set, with one history row each (in `status`, the status they are in). Bodies
/// already purged are left alone.
async fn purge_bodies(
    transaction: &mut Transaction<'_, Db>,
    messages: &[(MessageId, i64)],
    status: Status,
) -> Result<()> {
    const OPERATION: &str = "purge sensitive bodies";
    let mut history = Vec::with_capacity(messages.len());
    for chunk in messages.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("WITH v (id, at) AS (");
        query.push_values(chunk, |mut row, (id, at_ms)| {
            row.push_bind(id.0).push_bind(*at_ms);
        });
        query.push(
            ") UPDATE messages SET content = '', content_sent = NULL, purged_at = v.at \
             FROM v WHERE messages.id = v.id AND messages.sensitive = TRUE AND messages.purged_at IS NULL \
             RETURNING messages.id, messages.purged_at",
        );
        for row in query
            .build()
            .fetch_all(&mut **transaction)
            .await
            .map_err(database(OPERATION))?
        {
            let id: Uuid = row.try_get(0).map_err(database(OPERATION))?;
            history.push(Transition {
                id: MessageId(id),
                status,
                at_ms: row.try_get(1).map_err(database(OPERATION))?,
                cause: crate::store::PURGED_CAUSE.into(),
                changes: Changes::default(),
            });
        }
    }
    insert_history(transaction, &history).await
}

/// The TTL sweep: every sensitive body accepted `ttl_ms` or more before `now_ms` is purged.
/// A message among them not sent yet and not leased ends `expired` first, so it is never sent
/// without its body; a leased one is left to its worker (whose deadline is capped at the
/// TTL) and purged by a later sweep.
async fn purge_expired_sensitive(
    transaction: &mut Transaction<'_, Db>,
    tally: &mut stats::Tally,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<crate::store::SensitivePurge> {
    const OPERATION: &str = "purge expired sensitive bodies";
    let rows = sqlx::query(
        "SELECT id, status FROM messages \
         WHERE sensitive = TRUE AND purged_at IS NULL AND created_at <= $1 \
           AND NOT (status IN ('accepted', 'queued', 'deferred', 'sending') AND lease_until IS NOT NULL) \
         LIMIT $2",
    )
    .bind(now_ms.saturating_sub(ttl_ms))
    .bind(i64::try_from(crate::store::SENSITIVE_PURGE_BATCH).unwrap_or(i64::MAX))
    .fetch_all(&mut **transaction)
    .await
    .map_err(database(OPERATION))?;
    let mut expiring = Vec::new();
    let mut by_status: HashMap<Status, Vec<(MessageId, i64)>> = HashMap::new();
    for row in &rows {
        let id = MessageId(row.try_get("id").map_err(database(OPERATION))?);
        let status: Status = parse_text(row, "status", OPERATION)?;
        if status.is_pending() {
            expiring.push(Transition {
                id,
                status: Status::Expired,
                at_ms: now_ms,
                cause: "expired: not sent within store.sensitive_ttl_ms, when its sensitive body is purged".into(),
                changes: Changes {
                    reason: Some("not sent before its sensitive body was purged".into()),
                    ..Changes::default()
                },
            });
            by_status.entry(Status::Expired).or_default().push((id, now_ms));
        } else {
            by_status.entry(status).or_default().push((id, now_ms));
        }
    }
    if !expiring.is_empty() {
        apply_transitions(transaction, tally, &expiring).await?;
    }
    for (status, messages) in &by_status {
        purge_bodies(transaction, messages, *status).await?;
    }
    Ok(crate::store::SensitivePurge {
        purged: u64::try_from(rows.len()).unwrap_or(u64::MAX),
        expired: u64::try_from(expiring.len()).unwrap_or(u64::MAX),
    })
}

/// One audit row per sensitive message accepted (not for a repeat of an earlier one).
async fn audit_sensitive_sends(
    transaction: &mut Transaction<'_, Db>,
    messages: &[NewMessage],
    outcomes: &[AcceptOutcome],
    token_id: &str,
) -> Result<()> {
    let entries: Vec<crate::store::AuditEntry> = messages
        .iter()
        .zip(outcomes)
        .filter(|(message, outcome)| message.sensitive && matches!(outcome, AcceptOutcome::Accepted { .. }))
        .map(|(message, _)| crate::store::AuditEntry {
            at_ms: message.at_ms,
            token_id: token_id.to_owned(),
            action: crate::store::SENSITIVE_SEND_ACTION.to_owned(),
            target: Some(message.id.to_string()),
            outcome: "ok".to_owned(),
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    audit::insert(transaction, &entries).await
}
