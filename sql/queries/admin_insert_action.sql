-- Record an admin action for the running server and wake it (pika.admin; the server's
-- admin channel reads pending rows, see sql/migrations/0004_admin_actions.sql).
WITH action AS (
    INSERT INTO admin_actions (action, session_id, dj_id)
    VALUES (%(action)s, %(session_id)s, %(dj_id)s)
    RETURNING id
)
SELECT id, pg_notify('pika_admin', id::text) FROM action;
