-- One like per client per play per session; returns nothing for a repeat.
INSERT INTO likes (session_id, played_track_id, client_id)
VALUES (%(session_id)s, %(play_id)s, %(client_id)s)
ON CONFLICT ON CONSTRAINT likes_one_per_client DO NOTHING
RETURNING id;
