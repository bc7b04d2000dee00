-- The account's sends per hour are counted in slots (one per node's writer, summed when read),
-- so the writers of several nodes never wait on one another for the hour's single row.
ALTER TABLE account_sends ADD COLUMN slot BIGINT NOT NULL DEFAULT 0;
ALTER TABLE account_sends DROP CONSTRAINT account_sends_pkey;
ALTER TABLE account_sends ADD PRIMARY KEY (hour, slot);
