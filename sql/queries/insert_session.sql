-- Open a new live session; returns nothing when the id is already taken (live or ended).
INSERT INTO sessions (id, dj_id, dj_name, resume_key_sha256)
VALUES (%(session_id)s, %(dj_id)s, %(dj_name)s, %(resume_key_sha256)s)
ON CONFLICT (id) DO NOTHING
RETURNING id, started_at, last_activity_at;
