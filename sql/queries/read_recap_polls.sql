-- GET {P}/:id/recap (owning DJ only): a session's polls in the order they started
-- (polls_session_idx), with one vote count per option, in option order; the counts come from
-- the poll_votes primary key (poll_id, client_id).
SELECT p.id, p.question, p.options, p.status, p.started_at, p.ended_at,
       ARRAY(
           SELECT count(v.client_id)
           FROM generate_series(0, cardinality(p.options) - 1) AS o (i)
           LEFT JOIN poll_votes v ON v.poll_id = p.id AND v.option_index = o.i
           GROUP BY o.i
           ORDER BY o.i
       ) AS votes
FROM polls p
WHERE p.session_id = %(session_id)s
ORDER BY p.started_at, p.id;
