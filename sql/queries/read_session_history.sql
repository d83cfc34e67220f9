-- GET {P}/:id/history: a session's latest 50 plays, newest first.
-- Walks played_tracks_session_time_idx (session_id, played_at DESC, id DESC) and stops at 50.
SELECT id, artist, title, played_at
FROM played_tracks
WHERE session_id = %(session_id)s
ORDER BY played_at DESC, id DESC
LIMIT 50;
