-- Votes of active polls in live sessions, to rebuild rooms at start.
SELECT v.poll_id, v.client_id, v.option_index
FROM poll_votes v JOIN polls p ON p.id = v.poll_id JOIN sessions s ON s.id = p.session_id
WHERE p.status = 'active' AND s.ended_at IS NULL;
