-- Admin actions the server has not carried out yet, oldest first.
SELECT id, action, session_id, dj_id, created_at
FROM admin_actions
WHERE done_at IS NULL
ORDER BY id;
