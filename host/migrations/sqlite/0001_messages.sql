-- Messages, their history, and webhook statuses that arrived before their message's wamid.
-- Times are milliseconds since the Unix epoch; ids are UUIDv7 (time-ordered) as 16-byte blobs.

CREATE TABLE messages (
    id              BLOB    PRIMARY KEY,
    idempotency_key TEXT    UNIQUE,
    request_hash    TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    priority_rank   INTEGER NOT NULL,
    channel         TEXT    NOT NULL DEFAULT 'whatsapp',
    shard           INTEGER NOT NULL,
    tags            TEXT    NOT NULL DEFAULT '[]',
    status          TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    content_sent    TEXT,
    rewritten_by    TEXT,
    wamid           TEXT,
    reason          TEXT,
    error_code      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- The dispatcher's queue: only pending messages are indexed, in the order they go out.
CREATE INDEX messages_pending ON messages (priority_rank, due_at, id)
    WHERE status IN ('accepted', 'queued', 'deferred', 'sending');

CREATE UNIQUE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;

CREATE TABLE message_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  BLOB    NOT NULL,
    status      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    cause       TEXT    NOT NULL
);

CREATE INDEX message_history_message ON message_history (message_id, seq);

CREATE TABLE orphan_statuses (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    wamid       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    error_code  INTEGER,
    error_title TEXT,
    received_at INTEGER NOT NULL
);

CREATE INDEX orphan_statuses_wamid ON orphan_statuses (wamid);

CREATE TABLE plugin_state (
    plugin      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
