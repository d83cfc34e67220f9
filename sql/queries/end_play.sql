-- The play stops being current (a new track, TRACK_STOPPED or the end of the session).
UPDATE played_tracks SET ended_at = now() WHERE id = %(play_id)s AND ended_at IS NULL;
