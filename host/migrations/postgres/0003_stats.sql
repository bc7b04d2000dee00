-- Receipts and rates: what a message is counted under, kept on the message so every later
-- status lands in the same rollup key, and per-minute rollups the writer adds to as it commits.
ALTER TABLE messages ADD COLUMN template_name TEXT;
ALTER TABLE messages ADD COLUMN region BIGINT;
ALTER TABLE messages ADD COLUMN sender TEXT;
-- When the message was first `sent`: time to delivered and to read are measured from it.
ALTER TABLE messages ADD COLUMN sent_at BIGINT;

-- Counters per minute (its start, ms since the epoch) and key. `template` and `sender` are ''
-- and `region` 0 when none is known. `slot` is the writer's own row, so nodes sharing the
-- database never wait on one another for a row; reads sum the slots.
CREATE TABLE stats_minutes (
    minute      BIGINT NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      BIGINT NOT NULL,
    sender      TEXT    NOT NULL,
    slot        BIGINT NOT NULL,
    accepted    BIGINT NOT NULL DEFAULT 0,
    sent        BIGINT NOT NULL DEFAULT 0,
    delivered   BIGINT NOT NULL DEFAULT 0,
    read        BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    fell_back   BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    expired     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, category, template, region, sender, slot)
);

-- Time from `sent` to `delivered` (measure 'delivered') and to `read` (measure 'read'), as a
-- count per log-scale bucket: medians come from the rollup.
CREATE TABLE stats_latency (
    minute      BIGINT NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      BIGINT NOT NULL,
    sender      TEXT    NOT NULL,
    slot        BIGINT NOT NULL,
    measure     TEXT    NOT NULL,
    bucket      BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (minute, category, template, region, sender, slot, measure, bucket)
);

-- Failures by Meta's error code.
CREATE TABLE stats_failures (
    minute      BIGINT NOT NULL,
    category    TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    region      BIGINT NOT NULL,
    sender      TEXT    NOT NULL,
    slot        BIGINT NOT NULL,
    code        BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (minute, category, template, region, sender, slot, code)
);
