-- Callbacks to the business. A message with a callback URL keeps it (and the token whose
-- secret signs its callbacks); every history row of such a message adds one outbox row in the
-- same transaction. Rows leave the outbox when delivered; after the last attempt they stay,
-- with dead_at set, as the dead-letter list until replayed.
ALTER TABLE messages ADD COLUMN callback_url TEXT;
ALTER TABLE messages ADD COLUMN callback_token TEXT;

-- A token's default callback URL and its signing secret (HMAC-SHA256 needs the secret itself).
CREATE TABLE token_callbacks (
    token_id TEXT PRIMARY KEY NOT NULL,
    url TEXT,
    secret TEXT NOT NULL
);

CREATE TABLE callback_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    message_id BLOB NOT NULL,
    url TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    cause TEXT NOT NULL,
    recipient TEXT,
    error_code INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    dead_at INTEGER
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_at) WHERE dead_at IS NULL;
CREATE INDEX callback_outbox_message ON callback_outbox (message_id, seq) WHERE dead_at IS NULL;
CREATE INDEX callback_outbox_dead ON callback_outbox (seq) WHERE dead_at IS NOT NULL;
