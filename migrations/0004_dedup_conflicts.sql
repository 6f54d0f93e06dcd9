-- Idempotency conflicts: a dedup row remembers who sent the message and a
-- SHA-256 of its payload, so a repeat of the client_message_id with another
-- author or payload is rejected (AlreadyExists) instead of answered as a
-- duplicate. NULL means unknown: the check is skipped for that field.
ALTER TABLE dedup ADD COLUMN author_id TEXT;
ALTER TABLE dedup ADD COLUMN payload_sha256 BLOB;

-- Rows from before this migration: the author never changes, so it is taken
-- from the message. The payload hash stays NULL: the payload may have been
-- redacted already, and nodes run this migration at different log indexes
-- (before or after a redaction), so a hash computed here could differ
-- between nodes; unknown on every node keeps the state machine deterministic.
UPDATE dedup SET author_id = (
    SELECT m.author_id FROM messages AS m
    WHERE m.channel_id = dedup.channel_id AND m.sequence = dedup.sequence
);
