-- Record a play and make it the session's current track; returns its id.
WITH play AS (
    INSERT INTO played_tracks (session_id, artist, title, match_key, bpm, key, energy,
                               danceability, brightness, acousticness, groove)
    VALUES (%(session_id)s, %(artist)s, %(title)s, %(match_key)s, %(bpm)s, %(key)s, %(energy)s,
            %(danceability)s, %(brightness)s, %(acousticness)s, %(groove)s)
    RETURNING id
), current AS (
    UPDATE sessions SET current_play_id = (SELECT id FROM play), last_activity_at = now()
    WHERE id = %(session_id)s
)
SELECT id AS play_id FROM play;
