-- The account's sends per hour are counted in slots (one per writer, summed when read), so
-- writers never wait on one another for the hour's single row.
CREATE TABLE account_sends_slotted (
    hour        INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (hour, slot)
) WITHOUT ROWID;
INSERT INTO account_sends_slotted (hour, slot, count) SELECT hour, 0, count FROM account_sends;
DROP TABLE account_sends;
ALTER TABLE account_sends_slotted RENAME TO account_sends;
