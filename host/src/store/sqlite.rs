//! The SQLite backend: one file in WAL mode, `synchronous = FULL` so a commit survives power
//! loss, one writer connection (the group-commit task's) and a pool of read-only readers.
//! The statements are the shared ones in `sql/`; this module opens the file and says where
//! SQLite's dialect differs.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Connection, SqliteConnection,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub(super) use sqlx::Sqlite as Db;

use super::{Error, Result, Sealing};

// The shared statements, compiled once for each backend (on purpose: the same source over
// another `Db`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub use sql::SqlStore as SqliteStore;

const READERS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub async fn open(url: &str, write_batch_rows: usize, sealing: Sealing) -> Result<SqliteStore> {
    let database = |operation| move |source| Error::Database { operation, source };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(database("parse url"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536");
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|error| Error::Database {
                operation: "create database directory",
                source: sqlx::Error::Io(error),
            })?;
        }
    }
    let mut writer = SqliteConnection::connect_with(&options)
        .await
        .map_err(database("open writer"))?;
    MIGRATOR.run(&mut writer).await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options.read_only(true))
        .await
        .map_err(database("open readers"))?;
    // A SQLite file does not drop its connection: nothing to reconnect.
    Ok(SqliteStore::start(writer, readers, write_batch_rows, sealing, None))
}

/// Where SQLite's SQL differs from PostgreSQL's.
mod dialect {
    /// The larger / smaller of two values (SQLite's scalar `MAX` / `MIN`).
    pub const GREATEST: &str = "MAX";
    pub const LEAST: &str = "MIN";
    /// Locks the lease rows of the shards a claim reads: SQLite has one writer, nothing to add.
    pub const FOR_UPDATE_SKIP_LOCKED: &str = "";
    /// Locks lease rows a fenced write checks until the commit: nothing to add either.
    pub const FOR_SHARE: &str = "";
    /// Tells other nodes' dispatchers of new work: a SQLite file has no other nodes.
    pub const NOTIFY_WORK: &str = "";
    /// A claim's shards, bound as one parameter: a JSON array, read back with `json_each`.
    pub type ShardList = String;
    pub const SHARD_IN_LIST: &str = "m.shard IN (SELECT value FROM json_each($6))";
    pub fn shard_list(shards: Vec<i64>) -> ShardList {
        serde_json::to_string(&shards).unwrap_or_else(|_| "[]".to_owned())
    }
    /// Whether writes may run beside the writer's: one writer at a time: lease rounds join the group commit.
    pub const CONCURRENT_WRITERS: bool = false;
    /// The database's clock in Unix milliseconds.
    pub const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    /// `tags` (a JSON array stored as text) holds the bound value: a cheap `instr` sieve on
    /// the text first, then `json_each` decides.
    pub fn push_has_tag(query: &mut sqlx::QueryBuilder<'_, super::Db>, tag: &str) {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        query
            .push(" AND instr(tags, ")
            .push_bind(quoted)
            .push(") > 0 AND EXISTS (SELECT 1 FROM json_each(messages.tags) WHERE value = ")
            .push_bind(tag.to_owned())
            .push(")");
    }
}

/// A fresh database for one test: a file in a directory removed when it drops.
#[cfg(test)]
pub(crate) struct TestDatabase {
    pub url: String,
    directory: tempfile::TempDir,
}

#[cfg(test)]
impl TestDatabase {
    pub async fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/wasp.db", directory.path().display());
        Self { url, directory }
    }

    /// Whether `needle` appears anywhere in what the database wrote to disk.
    pub fn holds_bytes(&self, needle: &str) -> bool {
        std::fs::read_dir(self.directory.path()).unwrap().any(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
        })
    }
}

#[cfg(test)]
fn backend_of(store: &super::Store) -> &SqliteStore {
    match &*store.backend {
        super::Backend::Sqlite(sqlite) => sqlite,
        super::Backend::Postgres(_) => panic!("a SQLite test was given a PostgreSQL store"),
    }
}
