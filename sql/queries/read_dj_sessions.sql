-- GET /api/dj/:slug: a DJ's latest 50 sessions, newest first (sessions_dj_idx), each with its
-- number of plays (counted on played_tracks_session_time_idx).
SELECT s.id, s.dj_name, s.started_at, s.ended_at,
       (SELECT count(*) FROM played_tracks p WHERE p.session_id = s.id) AS track_count
FROM sessions s
WHERE s.dj_id = %(dj_id)s
ORDER BY s.started_at DESC
LIMIT 50;
