-- GET {P}/recent: the 5 most recently ended sessions, newest first (sessions_ended_idx).
SELECT id, dj_name, started_at, ended_at
FROM sessions
WHERE ended_at IS NOT NULL
ORDER BY ended_at DESC
LIMIT 5;
