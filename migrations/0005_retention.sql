-- Retention (issue 12): each channel's limits (0 = none; max_age in
-- nanoseconds), the payload bytes it holds, and the highest sequence
-- retention removed (reads after a smaller one are OutOfRange). Messages are
-- trimmed oldest first, so the held sequences stay contiguous.
ALTER TABLE channels ADD COLUMN max_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN max_age INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN max_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN retained_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN trimmed_through INTEGER NOT NULL DEFAULT 0;

-- Derived from the rows at whatever log index a node runs this: the same
-- function of the same state on every node.
UPDATE channels SET retained_bytes = COALESCE(
    (SELECT SUM(length(m.payload)) FROM messages AS m WHERE m.channel_id = channels.channel_id), 0);

-- The channels MessagesExpired events visit.
CREATE INDEX channels_with_max_age ON channels (max_age) WHERE max_age > 0;

-- The dedup horizon: dedup rows of trimmed messages wait here, by the
-- created_at of their message, until MessagesExpired events carrying a
-- horizon remove them. Filled only while the horizon (the last one a
-- MessagesExpired carried, in retention_settings) is above 0.
CREATE TABLE dedup_trimmed (
    channel_id        TEXT    NOT NULL,
    sequence          INTEGER NOT NULL,
    client_message_id TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (channel_id, sequence)
) WITHOUT ROWID;
CREATE INDEX dedup_trimmed_by_time ON dedup_trimmed (created_at);

-- One row: the dedup horizon in nanoseconds (0 = keep dedup rows forever),
-- as the last MessagesExpired event set it.
CREATE TABLE retention_settings (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    dedup_horizon INTEGER NOT NULL
);
INSERT INTO retention_settings (id, dedup_horizon) VALUES (1, 0);
