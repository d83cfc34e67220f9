-- End an active poll as closed or cancelled.
UPDATE polls SET status = %(status)s, ended_at = now()
WHERE id = %(poll_id)s AND status = 'active';
