-- A poll by id, whatever its status (to tell "ended" from "not found").
SELECT id, session_id, status FROM polls WHERE id = %(poll_id)s;
