-- A client's like of a track (by match key) in a session, recorded on the track's latest play.
-- Returns the like's id; nothing when the track was not played in the session or this client
-- liked it already, on any play (find_play tells which).  One statement: the lookup and the
-- insert in one round trip.
INSERT INTO likes (session_id, played_track_id, match_key, client_id)
SELECT %(session_id)s, p.id, p.match_key, %(client_id)s
FROM played_tracks p
WHERE p.session_id = %(session_id)s AND p.match_key = %(match_key)s
ORDER BY p.played_at DESC, p.id DESC
LIMIT 1
ON CONFLICT ON CONSTRAINT likes_one_per_client_track DO NOTHING
RETURNING id;
