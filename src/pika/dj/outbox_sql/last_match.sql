-- The match key of the session's last queued track (a repeat in a row is sent once).
SELECT last_match FROM sessions WHERE session_id = ?;
