-- GET /api/dj/:slug: a DJ account by slug (djs_slug_key) with its totals over every session
-- (sessions_dj_idx, then played_tracks_session_time_idx per session); no row = 404.
SELECT d.id, d.slug, d.display_name,
       (SELECT count(*) FROM sessions s WHERE s.dj_id = d.id) AS total_sessions,
       (SELECT count(*)
        FROM sessions s
        JOIN played_tracks p ON p.session_id = s.id
        WHERE s.dj_id = d.id) AS total_tracks
FROM djs d
WHERE d.slug = %(slug)s;
