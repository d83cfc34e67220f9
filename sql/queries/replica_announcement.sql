-- The active announcement of one live session, for a replica.
SELECT a.session_id, a.message, a.dj_name, a.created_at, a.ends_at
FROM announcements a
WHERE a.session_id = %(session_id)s AND a.cleared_at IS NULL
ORDER BY a.created_at DESC
LIMIT 1;
