-- The cluster tables. A SQLite node is a cluster of one: it holds every shard through the same
-- leases a PostgreSQL cluster splits between nodes.
CREATE TABLE cluster_nodes (
    id           TEXT    PRIMARY KEY,
    address      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE shard_leases (
    shard        INTEGER PRIMARY KEY,
    node_id      TEXT,
    epoch        INTEGER NOT NULL DEFAULT 0,
    acquired_at  INTEGER NOT NULL DEFAULT 0,
    expires_at   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE config_changes (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT    NOT NULL,
    at    INTEGER NOT NULL
);
