-- The session's confirmed tracks, in play order.
SELECT track FROM setlist WHERE session_id = ? ORDER BY seq;
