-- Facts policies decide on: business sends per contact and category, rolled up per hour (the
-- 24-hour and 7-day counts sum at most 168 rows per contact), the account's business-initiated
-- sends per hour, and what Meta (or an operator) said of each sender number's tier and quality.

CREATE TABLE contact_sends (
    wa_id       TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (wa_id, hour, category)
) WITHOUT ROWID;

CREATE INDEX contact_sends_hour ON contact_sends (hour);

CREATE TABLE account_sends (
    hour        INTEGER PRIMARY KEY,
    count       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sender_numbers (
    phone_number TEXT    PRIMARY KEY,
    tier_limit   INTEGER,
    quality      TEXT    NOT NULL,
    last_event   TEXT,
    source       TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE plugins ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
