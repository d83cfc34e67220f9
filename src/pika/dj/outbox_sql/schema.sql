-- The queue file's tables: plays not yet ACKed, the set's confirmed tracks, each session's resumeKey.
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    track      TEXT NOT NULL,
    played_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS setlist (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    track      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    resume_key TEXT,
    last_match TEXT
);
