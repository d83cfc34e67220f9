-- GET /api/stats/top-tracks: the 10 most liked tracks across all sessions, one row per track
-- (match_key: artist + title case-folded), shown with the spelling of its latest liked play.
-- A whole-table aggregate: the route caches it for a few seconds.
SELECT (array_agg(p.artist ORDER BY p.id DESC))[1] AS artist,
       (array_agg(p.title ORDER BY p.id DESC))[1] AS title,
       count(*) AS like_count
FROM likes l
JOIN played_tracks p ON p.id = l.played_track_id
GROUP BY p.match_key
ORDER BY like_count DESC, p.match_key
LIMIT 10;
