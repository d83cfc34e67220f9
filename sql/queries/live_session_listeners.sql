-- Listeners of every live session still counting at start: connected at the last flush (they
-- count as having left at that flush, after a crash), or left within the linger.
SELECT l.session_id, l.client_id, coalesce(l.left_at, s.listeners_seen_at) AS left_at
FROM session_listeners l
JOIN sessions s ON s.id = l.session_id
WHERE s.ended_at IS NULL AND coalesce(l.left_at, s.listeners_seen_at) > %(since)s;
