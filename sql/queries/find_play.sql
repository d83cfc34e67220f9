-- The latest play of a track (by match key) in a session: what a like refers to.
SELECT id AS play_id FROM played_tracks
WHERE session_id = %(session_id)s AND match_key = %(match_key)s
ORDER BY played_at DESC, id DESC
LIMIT 1;
