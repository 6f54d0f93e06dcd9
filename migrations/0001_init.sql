-- The projection of the Raft log: what every node derives, identically, from
-- the same committed events. Times are Unix nanoseconds (UTC) stamped by the
-- leader; read them with datetime(created_at / 1000000000, 'unixepoch').

-- One row: the last Raft log entry whose effects are in this database.
-- Written in the same transaction as those effects, so a replayed entry at or
-- below it is skipped.
CREATE TABLE raft_applied (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    applied_index INTEGER NOT NULL,
    applied_term  INTEGER NOT NULL
);
INSERT INTO raft_applied (id, applied_index, applied_term) VALUES (1, 0, 0);

CREATE TABLE channels (
    channel_id    TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_index INTEGER NOT NULL, -- Raft log index of the ChannelCreated event
    last_sequence INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE messages (
    channel_id        TEXT    NOT NULL REFERENCES channels (channel_id),
    sequence          INTEGER NOT NULL,
    author_id         TEXT    NOT NULL,
    payload           BLOB    NOT NULL,
    client_message_id TEXT    NOT NULL DEFAULT '', -- '' when the client sent none
    created_at        INTEGER NOT NULL,
    raft_index        INTEGER NOT NULL, -- Raft log index of the MessageSent event
    PRIMARY KEY (channel_id, sequence)
) WITHOUT ROWID; -- clustered by (channel_id, sequence): history reads are range scans

-- The dedup index: one client_message_id maps to one sequence per channel,
-- forever. Messages sent without a client_message_id have no row here.
CREATE TABLE dedup (
    channel_id        TEXT    NOT NULL,
    client_message_id TEXT    NOT NULL,
    sequence          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, client_message_id)
) WITHOUT ROWID;
