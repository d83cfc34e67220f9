-- End a live session; its current play ends with it (the history keeps it).
WITH ended AS (
    UPDATE sessions
    SET ended_at = now(), end_reason = %(reason)s, current_play_id = NULL
    WHERE id = %(session_id)s AND ended_at IS NULL
    RETURNING id
)
UPDATE played_tracks SET ended_at = now()
WHERE session_id IN (SELECT id FROM ended) AND ended_at IS NULL;
