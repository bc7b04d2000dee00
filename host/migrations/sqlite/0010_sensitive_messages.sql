-- Sensitive messages: their bodies (`content`, `content_sent`) are stored sealed
-- (AES-256-GCM, `wasp-aes256gcm-v1:<key id>:<nonce ‖ ciphertext>`), and purged once read or
-- after `store.sensitive_ttl_ms`: both emptied and `purged_at` set.
ALTER TABLE messages ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN purged_at INTEGER;

-- The TTL sweep walks only sensitive bodies not purged yet.
CREATE INDEX messages_sensitive_unpurged ON messages (created_at) WHERE sensitive = 1 AND purged_at IS NULL;
