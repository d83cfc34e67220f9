-- Active announcements of live sessions, to rebuild rooms at start (expired ones included:
-- the room clears them at once).
SELECT a.session_id, a.message, a.dj_name, a.created_at, a.ends_at
FROM announcements a JOIN sessions s ON s.id = a.session_id
WHERE a.cleared_at IS NULL AND s.ended_at IS NULL;
