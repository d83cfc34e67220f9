-- Remember the session's last queued track.
INSERT INTO sessions (session_id, last_match) VALUES (?, ?)
ON CONFLICT (session_id) DO UPDATE SET last_match = excluded.last_match;
