-- Plugin components (immutable, by sha256), how each plugin is bound into the chain, shadow
-- verdicts, and the timers plugins set.

CREATE TABLE plugin_versions (
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    component   BLOB    NOT NULL,
    size_bytes  INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

CREATE TABLE plugins (
    name              TEXT    PRIMARY KEY,
    live_version      TEXT,
    previous_versions TEXT    NOT NULL DEFAULT '[]',
    shadow_version    TEXT,
    shadow_config     TEXT,
    position          INTEGER NOT NULL,
    hooks             TEXT    NOT NULL,
    failure           TEXT    NOT NULL,
    limits            TEXT    NOT NULL,
    config            TEXT    NOT NULL,
    quarantined       INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE shadow_verdicts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin          TEXT    NOT NULL,
    shadow_version  TEXT    NOT NULL,
    live_version    TEXT    NOT NULL,
    message_id      BLOB    NOT NULL,
    hook            TEXT    NOT NULL,
    live_verdict    TEXT    NOT NULL,
    shadow_verdict  TEXT    NOT NULL,
    agreed          INTEGER NOT NULL,
    at              INTEGER NOT NULL
);

CREATE INDEX shadow_verdicts_plugin ON shadow_verdicts (plugin, shadow_version, seq);

CREATE TABLE plugin_timers (
    plugin      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    due_at      INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;

CREATE INDEX plugin_timers_due ON plugin_timers (due_at);
