-- Record a play and make it the session's current track, and end the play before it
-- (`ended_play_id`, NULL for none: as end_play.sql, with its tempo tally); returns the new play's
-- id, or nothing, and changes nothing, when the session has ended (FOR UPDATE: an END_SESSION
-- committing meanwhile is waited for and seen).  One statement: one round trip fewer before a
-- new track's NOW_PLAYING.
WITH live AS (
    SELECT id FROM sessions WHERE id = %(session_id)s AND ended_at IS NULL FOR UPDATE
), play AS (
    INSERT INTO played_tracks (session_id, artist, title, match_key, bpm, key, energy,
                               danceability, brightness, acousticness, groove)
    SELECT id, %(artist)s, %(title)s, %(match_key)s, %(bpm)s, %(key)s, %(energy)s,
           %(danceability)s, %(brightness)s, %(acousticness)s, %(groove)s
    FROM live
    RETURNING id, session_id
), current AS (
    UPDATE sessions s SET current_play_id = play.id, last_activity_at = now()
    FROM play
    WHERE s.id = play.session_id
), ended AS (
    UPDATE played_tracks
    SET ended_at = coalesce(ended_at, now()),
        tempo_slower = %(slower)s, tempo_perfect = %(perfect)s, tempo_faster = %(faster)s
    WHERE id = %(ended_play_id)s AND EXISTS (SELECT FROM play)
)
SELECT id AS play_id FROM play;
