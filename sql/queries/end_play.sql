-- The play stops being current (a new track, TRACK_STOPPED or the end of the session), and the
-- tempo tally the DJ last saw for it is stored (NULL when nobody voted): one row, one statement.
UPDATE played_tracks
SET ended_at = coalesce(ended_at, now()),
    tempo_slower = %(slower)s, tempo_perfect = %(perfect)s, tempo_faster = %(faster)s
WHERE id = %(play_id)s;
