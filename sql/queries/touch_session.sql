-- A DJ action: the session is not idle.
UPDATE sessions SET last_activity_at = now() WHERE id = %(session_id)s;
