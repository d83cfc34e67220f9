-- GET {P}/:id/recap: the session itself (primary key), live or ended; no row = 404.
SELECT id, dj_id, dj_name, started_at, ended_at
FROM sessions
WHERE id = %(session_id)s;
