-- API tokens with scopes, and the append-only audit log of admin actions.
--
-- A token's secret is never stored: `digest` is its sha256. A revoked token keeps its row
-- (`revoked_at` set) so the audit log's token ids stay meaningful.

CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,   -- JSON array of scope names
    digest      BLOB    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) WITHOUT ROWID;

-- Rows are only ever inserted. `seq` orders them (newest first) and is the paging cursor.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    token_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT,
    outcome     TEXT    NOT NULL
);

CREATE INDEX audit_log_token ON audit_log (token_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);
