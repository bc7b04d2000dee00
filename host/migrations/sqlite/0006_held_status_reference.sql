-- A held status (its wamid not recorded yet) keeps the `biz_opaque_callback_data` Meta echoed:
-- the id of the message it belongs to, so an interrupted send can be recognised as arrived.
ALTER TABLE orphan_statuses ADD COLUMN message_ref TEXT;
CREATE INDEX orphan_statuses_message_ref ON orphan_statuses (message_ref) WHERE message_ref IS NOT NULL;
