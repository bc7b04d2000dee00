-- The whole schema for PostgreSQL, equivalent to the SQLite migrations up to 0012 plus the
-- cluster tables (0013). Integers are BIGINT (Rust i64), flags BOOLEAN, JSON kept as TEXT so
-- both backends decode the same columns; ids are UUIDs (time-ordered UUIDv7).

CREATE TABLE messages (
    id              UUID    PRIMARY KEY,
    idempotency_key TEXT    UNIQUE,
    request_hash    TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    priority_rank   BIGINT  NOT NULL,
    channel         TEXT    NOT NULL DEFAULT 'whatsapp',
    shard           BIGINT  NOT NULL,
    tags            TEXT    NOT NULL DEFAULT '[]',
    status          TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    content_sent    TEXT,
    rewritten_by    TEXT,
    wamid           TEXT,
    reason          TEXT,
    error_code      BIGINT,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    due_at          BIGINT  NOT NULL,
    lease_until     BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    expires_at      BIGINT,
    sensitive       BOOLEAN NOT NULL DEFAULT FALSE,
    purged_at       BIGINT,
    callback_url    TEXT,
    callback_token  TEXT
);

-- The claim reads one shard set at a time: the shard leads the pending index here.
CREATE INDEX messages_pending ON messages (shard, priority_rank, due_at, id)
    WHERE status IN ('accepted', 'queued', 'deferred', 'sending');
CREATE INDEX messages_pending_due ON messages (priority_rank, due_at, id)
    WHERE status IN ('accepted', 'queued', 'deferred', 'sending');
CREATE UNIQUE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;
CREATE INDEX messages_recipient_pending ON messages (recipient, priority_rank, id)
    WHERE status IN ('accepted', 'queued', 'deferred', 'sending');
CREATE INDEX messages_sensitive_unpurged ON messages (created_at) WHERE sensitive AND purged_at IS NULL;

CREATE TABLE message_history (
    seq         BIGSERIAL PRIMARY KEY,
    message_id  UUID    NOT NULL,
    status      TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    cause       TEXT    NOT NULL
);
CREATE INDEX message_history_message ON message_history (message_id, seq);

CREATE TABLE orphan_statuses (
    seq         BIGSERIAL PRIMARY KEY,
    wamid       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    error_code  BIGINT,
    error_title TEXT,
    received_at BIGINT  NOT NULL,
    message_ref TEXT
);
CREATE INDEX orphan_statuses_wamid ON orphan_statuses (wamid);
CREATE INDEX orphan_statuses_message_ref ON orphan_statuses (message_ref) WHERE message_ref IS NOT NULL;

CREATE TABLE plugin_state (
    plugin      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (plugin, key)
);

CREATE TABLE plugin_versions (
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    component   BYTEA   NOT NULL,
    size_bytes  BIGINT  NOT NULL,
    uploaded_at BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE plugins (
    name              TEXT    PRIMARY KEY,
    live_version      TEXT,
    previous_versions TEXT    NOT NULL DEFAULT '[]',
    shadow_version    TEXT,
    shadow_config     TEXT,
    position          BIGINT  NOT NULL,
    hooks             TEXT    NOT NULL,
    failure           TEXT    NOT NULL,
    limits            TEXT    NOT NULL,
    config            TEXT    NOT NULL,
    quarantined       BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at        BIGINT  NOT NULL,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE shadow_verdicts (
    seq             BIGSERIAL PRIMARY KEY,
    plugin          TEXT    NOT NULL,
    shadow_version  TEXT    NOT NULL,
    live_version    TEXT    NOT NULL,
    message_id      UUID    NOT NULL,
    hook            TEXT    NOT NULL,
    live_verdict    TEXT    NOT NULL,
    shadow_verdict  TEXT    NOT NULL,
    agreed          BOOLEAN NOT NULL,
    at              BIGINT  NOT NULL
);
CREATE INDEX shadow_verdicts_plugin ON shadow_verdicts (plugin, shadow_version, seq);

CREATE TABLE plugin_timers (
    plugin      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    due_at      BIGINT  NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE INDEX plugin_timers_due ON plugin_timers (due_at);

CREATE TABLE contacts (
    wa_id           TEXT    PRIMARY KEY,
    first_seen      BIGINT  NOT NULL,
    last_inbound    BIGINT,
    interactions    BIGINT  NOT NULL DEFAULT 0,
    opted_out       BOOLEAN NOT NULL DEFAULT FALSE,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE inbound_messages (
    wamid       TEXT    PRIMARY KEY,
    wa_id       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);

CREATE TABLE contact_sends (
    wa_id       TEXT    NOT NULL,
    hour        BIGINT  NOT NULL,
    category    TEXT    NOT NULL,
    count       BIGINT  NOT NULL,
    PRIMARY KEY (wa_id, hour, category)
);
CREATE INDEX contact_sends_hour ON contact_sends (hour);

CREATE TABLE account_sends (
    hour        BIGINT  PRIMARY KEY,
    count       BIGINT  NOT NULL
);

CREATE TABLE sender_numbers (
    phone_number TEXT    PRIMARY KEY,
    tier_limit   BIGINT,
    quality      TEXT    NOT NULL,
    last_event   TEXT,
    source       TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    digest      BYTEA   NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    seq         BIGSERIAL PRIMARY KEY,
    at          BIGINT  NOT NULL,
    token_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT,
    outcome     TEXT    NOT NULL
);
CREATE INDEX audit_log_token ON audit_log (token_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE token_callbacks (
    token_id TEXT PRIMARY KEY NOT NULL,
    url TEXT,
    secret TEXT NOT NULL
);

CREATE TABLE callback_outbox (
    seq BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    message_id UUID NOT NULL,
    url TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    cause TEXT NOT NULL,
    recipient TEXT,
    error_code BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    dead_at BIGINT
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_at) WHERE dead_at IS NULL;
CREATE INDEX callback_outbox_message ON callback_outbox (message_id, seq) WHERE dead_at IS NULL;
CREATE INDEX callback_outbox_dead ON callback_outbox (seq) WHERE dead_at IS NOT NULL;

CREATE TABLE templates (
    name        TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    category    TEXT    NOT NULL,
    definition  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    reason      TEXT,
    meta_id     TEXT,
    quality     TEXT,
    findings    TEXT    NOT NULL DEFAULT '[]',
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (name, language, version)
);
CREATE INDEX templates_status ON templates (status, updated_at);
CREATE INDEX templates_meta_id ON templates (meta_id);

-- The cluster: nodes that heartbeat, one lease per shard, and the change feed that tells every
-- node to reload what an admin changed.
CREATE TABLE cluster_nodes (
    id           TEXT    PRIMARY KEY,
    address      TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    heartbeat_at BIGINT  NOT NULL
);

CREATE TABLE shard_leases (
    shard        BIGINT  PRIMARY KEY,
    node_id      TEXT,
    epoch        BIGINT  NOT NULL DEFAULT 0,
    acquired_at  BIGINT  NOT NULL DEFAULT 0,
    expires_at   BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE config_changes (
    seq   BIGSERIAL PRIMARY KEY,
    kind  TEXT    NOT NULL,
    at    BIGINT  NOT NULL
);
