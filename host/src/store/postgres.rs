//! The PostgreSQL backend, for several nodes sharing one database: one writer connection per
//! node (its group-commit task) and a pool of readers. The statements are the shared ones in
//! `sql/`; this module connects, migrates (its own migrations, `migrations/postgres`) and says
//! where PostgreSQL's dialect differs: claims lock what they take with `FOR UPDATE SKIP
//! LOCKED`, so two nodes never take the same message even during a shard handover.

use std::{str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions, Connection, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub(super) use sqlx::Postgres as Db;

use super::{Error, Result, Sealing};

// The shared statements, compiled once for each backend (on purpose: the same source over
// another `Db`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub use sql::SqlStore as PgStore;

const READERS: u32 = 8;

/// How long a session may sit in an open transaction without running a statement. The
/// writer's transactions run statement after statement, so only a stalled process gets there.
const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 2_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub async fn open(url: &str, write_batch_rows: usize, sealing: Sealing) -> Result<PgStore> {
    let database = |operation| move |source| Error::Database { operation, source };
    let options = PgConnectOptions::from_str(url)
        .map_err(database("parse url"))?
        .application_name("wasp")
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2))
        // A node stopped in the middle of a transaction (paused, frozen) would hold its row
        // locks and stall every other node's writes: the server ends such a session.
        .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT_MS)]);
    let mut writer = PgConnection::connect_with(&options)
        .await
        .map_err(database("open writer"))?;
    // Several nodes may start at once: the migrator holds an advisory lock while it runs.
    MIGRATOR.run(&mut writer).await?;
    let readers = PgPoolOptions::new()
        .max_connections(READERS)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(database("open readers"))?;
    let reconnect_options = options.clone();
    let reconnect: sql::Reconnect = Box::new(move || {
        let options = reconnect_options.clone();
        Box::pin(async move {
            PgConnection::connect_with(&options)
                .await
                .map_err(|source| Error::Database {
                    operation: "reconnect the writer",
                    source,
                })
        })
    });
    keep_statistics(readers.clone());
    Ok(PgStore::start(
        writer,
        readers,
        write_batch_rows,
        sealing,
        Some(reconnect),
    ))
}

/// How often the message table's statistics are looked at.
const STATISTICS_CHECK: Duration = Duration::from_secs(5);

/// Keeps the planner's statistics of `messages` current. The claim's plan depends on them: on
/// a table that grew from nothing faster than autovacuum looks (once a minute), PostgreSQL
/// still believes it empty and picks a plan that reads every pending row for every candidate
/// (seconds instead of milliseconds at 20,000 pending). So once a tenth of the rows (and at
/// least a thousand) changed since the last `ANALYZE`, this runs one. Every node may; a
/// second one at the same time waits for the first.
fn keep_statistics(readers: sqlx::PgPool) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(STATISTICS_CHECK);
        loop {
            ticker.tick().await;
            let changed: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(
                "SELECT COALESCE(n_mod_since_analyze, 0), COALESCE(n_live_tup, 0) FROM pg_stat_user_tables \
                 WHERE relname = 'messages' AND schemaname = current_schema()",
            )
            .fetch_optional(&readers)
            .await;
            match changed {
                Ok(Some((modified, live))) if modified > 1_000 + live / 10 => {
                    if let Err(error) = sqlx::query("ANALYZE messages").execute(&readers).await {
                        tracing::warn!(%error, "refreshing the message table's statistics failed");
                    } else {
                        tracing::debug!(modified, live, "message table statistics refreshed");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "reading the message table's statistics failed"),
            }
        }
    });
}

/// Wakes `wake` whenever any node commits new messages, so a shard's holder sends them without
/// waiting for its next poll. Listens on one connection of the read pool; reconnects after a
/// failure (the poll covers the gap).
pub fn listen_for_work(store: &PgStore, wake: std::sync::Arc<tokio::sync::Notify>) {
    let readers = store.readers().clone();
    tokio::spawn(async move {
        loop {
            let listened: Result<std::convert::Infallible, sqlx::Error> = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&readers).await?;
                listener.listen("wasp_work").await?;
                loop {
                    listener.recv().await?;
                    wake.notify_one();
                }
            }
            .await;
            let Err(error) = listened;
            tracing::warn!(%error, "listening for new work failed; polling until it is back");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Where PostgreSQL's SQL differs from SQLite's.
mod dialect {
    pub const GREATEST: &str = "GREATEST";
    pub const LEAST: &str = "LEAST";
    /// Locks the lease rows of the shards a claim reads, passing over those another node is
    /// changing (a takeover under way).
    pub const FOR_UPDATE_SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
    /// Holds the lease rows a fenced write checked until it commits: a takeover waits.
    pub const FOR_SHARE: &str = " FOR SHARE";
    /// Tells every node's dispatcher that messages were accepted (delivered on commit, once
    /// per group commit).
    pub const NOTIFY_WORK: &str = "NOTIFY wasp_work";
    /// A claim's shards, bound as one parameter: an array.
    pub type ShardList = Vec<i64>;
    pub const SHARD_IN_LIST: &str = "m.shard = ANY($6)";
    pub fn shard_list(shards: Vec<i64>) -> ShardList {
        shards
    }
    /// Whether writes may run beside the writer's: lease rounds run beside the group commit, on a connection of their own.
    pub const CONCURRENT_WRITERS: bool = true;
    /// The database's clock in Unix milliseconds: one clock for every node.
    pub const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    /// `tags` (a JSON array stored as text) holds the bound value.
    pub fn push_has_tag(query: &mut sqlx::QueryBuilder<'_, super::Db>, tag: &str) {
        query.push(" AND tags::jsonb ? ").push_bind(tag.to_owned());
    }
}

/// A fresh database for one test: a schema of its own in the PostgreSQL at
/// `WASP_TEST_POSTGRES_URL` (the local one by default), dropped when it drops.
#[cfg(test)]
pub(crate) struct TestDatabase {
    pub url: String,
    schema: String,
    server: String,
}

#[cfg(test)]
impl TestDatabase {
    pub async fn new() -> Self {
        let server = super::test_postgres_url();
        let schema = format!("wasp_test_{}", uuid::Uuid::now_v7().simple());
        let mut connection = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL at {server} (WASP_TEST_POSTGRES_URL) is unreachable: {error}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await
            .unwrap();
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        Self { url, schema, server }
    }

    /// Whether `needle` appears in any row of any table of the test's schema.
    pub fn holds_bytes(&self, needle: &str) -> bool {
        let (server, schema, needle) = (self.server.clone(), self.schema.clone(), needle.to_owned());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut connection = PgConnection::connect(&server).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(&schema)
                .fetch_all(&mut connection)
                .await
                .unwrap();
                for table in tables {
                    let found: bool = sqlx::query_scalar(&format!(
                        "SELECT EXISTS (SELECT 1 FROM {schema}.{table} AS t WHERE t::text LIKE '%' || $1 || '%')"
                    ))
                    .bind(&needle)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap();
                    if found {
                        return true;
                    }
                }
                false
            })
        })
        .join()
        .unwrap()
    }
}

#[cfg(test)]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, schema) = (self.server.clone(), self.schema.clone());
        // Dropped inside a test's runtime: the schema goes on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut connection = PgConnection::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut connection)
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

#[cfg(test)]
fn backend_of(store: &super::Store) -> &PgStore {
    match &*store.backend {
        super::Backend::Postgres(postgres) => postgres,
        super::Backend::Sqlite(_) => panic!("a PostgreSQL test was given a SQLite store"),
    }
}
