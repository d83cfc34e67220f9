-- REMOVE_LIKE: this client's like of that track (by match key) in the session.
DELETE FROM likes
WHERE session_id = %(session_id)s AND client_id = %(client_id)s AND match_key = %(match_key)s;
