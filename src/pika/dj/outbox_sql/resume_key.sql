-- The session's resumeKey, if the server gave one.
SELECT resume_key FROM sessions WHERE session_id = ?;
