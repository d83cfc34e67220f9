-- A new active poll; the partial unique index refuses a second active poll per session.
INSERT INTO polls (session_id, played_track_id, question, options, ends_at)
VALUES (%(session_id)s, %(play_id)s, %(question)s, %(options)s, %(ends_at)s)
RETURNING id, started_at;
