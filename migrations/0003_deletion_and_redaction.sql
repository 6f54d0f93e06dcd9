-- Redaction: the payload is emptied and the message marked; its sequence,
-- author, time and client_message_id stay.
ALTER TABLE messages ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;

-- Deleted channels: the last sequence a deleted channel had, so that a
-- channel created again with its id continues after it (a reader holding an
-- old sequence never mistakes new messages for ones it has seen). The row
-- goes when the id is created again.
CREATE TABLE deleted_channels (
    channel_id    TEXT    PRIMARY KEY,
    last_sequence INTEGER NOT NULL,
    deleted_index INTEGER NOT NULL -- Raft log index of the ChannelDeleted event
) WITHOUT ROWID;
