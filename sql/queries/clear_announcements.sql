-- Clear the session's active announcement (cancelled, replaced, expired or session ended).
UPDATE announcements SET cleared_at = now()
WHERE session_id = %(session_id)s AND cleared_at IS NULL;
