-- The dispatcher at scale: a deadline per message, and the index that keeps one recipient's
-- messages of one class in order (a later message waits while an earlier one is leased or
-- waiting for a retry).

ALTER TABLE messages ADD COLUMN expires_at INTEGER;

CREATE INDEX messages_recipient_pending ON messages (recipient, priority_rank, id)
    WHERE status IN ('accepted', 'queued', 'deferred', 'sending');
