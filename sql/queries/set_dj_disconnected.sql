-- The DJ's connection closed: the session enters its grace period.
UPDATE sessions SET dj_disconnected_at = %(at)s
WHERE id = %(session_id)s AND ended_at IS NULL;
