-- ReadHistory's after_time: the first message of a channel created at or
-- after a time, by one index seek instead of a scan. The index holds the
-- primary key's sequence too, so ties on created_at come in sequence order.
CREATE INDEX messages_by_time ON messages (channel_id, created_at);
