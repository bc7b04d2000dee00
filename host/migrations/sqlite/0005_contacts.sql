-- What wasp knows of each contact (by wa_id, the digits of the number): when it was first
-- seen, its inbound interactions, opt-out, and attributes set over the admin API. Inbound
-- messages are kept by wamid so a webhook Meta delivers twice counts once.

CREATE TABLE contacts (
    wa_id           TEXT    PRIMARY KEY,
    first_seen      INTEGER NOT NULL,
    last_inbound    INTEGER,
    interactions    INTEGER NOT NULL DEFAULT 0,
    opted_out       INTEGER NOT NULL DEFAULT 0,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE inbound_messages (
    wamid       TEXT    PRIMARY KEY,
    wa_id       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
