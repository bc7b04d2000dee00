-- Receipts and rates: what a message is counted under, kept on the message so every later
-- status lands in the same rollup key, and per-minute rollups the writer adds to as it commits.
ALTER TABLE messages ADD COLUMN template_name TEXT;
ALTER TABLE messages ADD COLUMN region INTEGER;
ALTER TABLE messages ADD COLUMN sender TEXT;
-- When the message was first `sent`: time to delivered and to read are measured from it.
ALTER TABLE messages ADD COLUMN sent_at INTEGER;

-- Counters per minute (its start, ms since the epoch) and key. `template` and `sender` are ''
-- and `region` 0 when none is known. `slot` is the writer's own row, so nodes sharing the
-- database never wait on one another for a row; reads sum the slots.
CREATE TABLE stats_minutes (
    minute      INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      INTEGER NOT NULL,
    sender      TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    accepted    INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    delivered   INTEGER NOT NULL DEFAULT 0,
    read        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    fell_back   INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    expired     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, category, template, region, sender, slot)
) WITHOUT ROWID;

-- Time from `sent` to `delivered` (measure 'delivered') and to `read` (measure 'read'), as a
-- count per log-scale bucket: medians come from the rollup.
CREATE TABLE stats_latency (
    minute      INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      INTEGER NOT NULL,
    sender      TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    measure     TEXT    NOT NULL,
    bucket      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (minute, category, template, region, sender, slot, measure, bucket)
) WITHOUT ROWID;

-- Failures by Meta's error code.
CREATE TABLE stats_failures (
    minute      INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      INTEGER NOT NULL,
    sender      TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    code        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (minute, category, template, region, sender, slot, code)
) WITHOUT ROWID;
