-- TRACK_STOPPED: no current track; the history keeps the play.
UPDATE sessions SET current_play_id = NULL, last_activity_at = now() WHERE id = %(session_id)s;
