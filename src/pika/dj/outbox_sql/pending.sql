-- Everything not yet confirmed for a session, oldest first.
SELECT seq, session_id, message_id, track, played_at FROM outbox WHERE session_id = ? ORDER BY seq;
