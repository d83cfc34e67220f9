-- One session by id, live or ended.
SELECT id, dj_id, dj_name, resume_key_sha256, started_at, last_activity_at,
       dj_disconnected_at, ended_at, end_reason, current_play_id
FROM sessions
WHERE id = %(session_id)s;
