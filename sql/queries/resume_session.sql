-- A DJ connection took the session back: new name and resume key, grace period over.
UPDATE sessions
SET dj_name = %(dj_name)s, resume_key_sha256 = %(resume_key_sha256)s,
    dj_disconnected_at = NULL, last_activity_at = now()
WHERE id = %(session_id)s AND ended_at IS NULL;
