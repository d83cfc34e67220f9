-- Listeners behind LISTENER_COUNT survive a restart (PROTOCOL.md §7: a client counts for five
-- minutes after its last connection closed).
--
-- * One row per client that has listened to a live session: `left_at` NULL means it was
--   connected at the last flush.  Rows are written in batches off the hot path, only when a
--   client's first connection opens or its last one closes.
-- * `sessions.listeners_seen_at` is when the server last flushed that session's listeners: after
--   a crash, a client still marked connected counts as having left then, and lingers from then.
-- * Rows of ended sessions are purged by the server's housekeeping.

CREATE TABLE session_listeners (
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 8 AND 256),
    left_at         timestamptz,
    PRIMARY KEY (session_id, client_id)
);

ALTER TABLE sessions ADD COLUMN listeners_seen_at timestamptz;
