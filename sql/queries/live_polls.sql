-- Active polls of live sessions, to rebuild rooms at start.
SELECT p.id, p.session_id, p.question, p.options, p.started_at, p.ends_at
FROM polls p JOIN sessions s ON s.id = p.session_id
WHERE p.status = 'active' AND s.ended_at IS NULL;
