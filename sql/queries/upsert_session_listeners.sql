-- Listener changes of one flush (each column an array, one element per client): `left_at` NULL
-- = connected, else when its last connection closed.  Rows for a session that has ended since
-- are skipped.
INSERT INTO session_listeners (session_id, client_id, left_at)
SELECT l.session_id, l.client_id, l.left_at
FROM unnest(%(session_id)s::text[], %(client_id)s::text[], %(left_at)s::timestamptz[])
    AS l (session_id, client_id, left_at)
JOIN sessions s ON s.id = l.session_id AND s.ended_at IS NULL
ON CONFLICT (session_id, client_id) DO UPDATE SET left_at = EXCLUDED.left_at;
