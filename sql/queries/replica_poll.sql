-- The active poll of one live session with its ballots (client -> option index), for a replica.
SELECT p.id, p.session_id, p.question, p.options, p.started_at, p.ends_at,
       coalesce(jsonb_object_agg(v.client_id, v.option_index) FILTER (WHERE v.client_id IS NOT NULL),
                '{}'::jsonb) AS ballots
FROM polls p
LEFT JOIN poll_votes v ON v.poll_id = p.id
WHERE p.session_id = %(session_id)s AND p.status = 'active'
GROUP BY p.id;
