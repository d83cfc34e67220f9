-- A new active poll; the partial unique index keeps one active poll per session: a second one
-- returns nothing (and writes nothing).
INSERT INTO polls (session_id, played_track_id, question, options, ends_at)
VALUES (%(session_id)s, %(play_id)s, %(question)s, %(options)s, %(ends_at)s)
ON CONFLICT DO NOTHING
RETURNING id, started_at;
