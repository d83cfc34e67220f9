-- Forget the listeners of sessions that have ended.
DELETE FROM session_listeners l
WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = l.session_id AND s.ended_at IS NULL);
