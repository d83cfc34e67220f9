-- Thank-yous (and other reactions) dancers sent the DJ: one group-commit batch in one statement,
-- `rows` a JSON array of {session_id, client_id, reaction}.
INSERT INTO reactions (session_id, client_id, reaction)
SELECT session_id, client_id, reaction
FROM json_to_recordset(%(rows)s::json) AS v (session_id text, client_id text, reaction text);
