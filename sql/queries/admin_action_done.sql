-- The server carried out an admin action.
UPDATE admin_actions SET done_at = now() WHERE id = %(id)s AND done_at IS NULL;
