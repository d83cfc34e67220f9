-- End a live session by hand (python -m pika.admin end-session): its current play ends, an active
-- poll closes and an active announcement is cleared with it.  Returns the id, or nothing when the
-- session is unknown or already ended.
WITH ended AS (
    UPDATE sessions
    SET ended_at = now(), end_reason = 'admin', current_play_id = NULL
    WHERE id = %(session_id)s AND ended_at IS NULL
    RETURNING id
), plays AS (
    UPDATE played_tracks SET ended_at = now()
    WHERE session_id IN (SELECT id FROM ended) AND ended_at IS NULL
), polls_closed AS (
    UPDATE polls SET status = 'closed', ended_at = now()
    WHERE session_id IN (SELECT id FROM ended) AND status = 'active'
), announcements_cleared AS (
    UPDATE announcements SET cleared_at = now()
    WHERE session_id IN (SELECT id FROM ended) AND cleared_at IS NULL
)
SELECT id FROM ended;
