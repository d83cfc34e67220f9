-- GET /api/stats/global: how many sessions, plays and likes there have ever been.
-- Whole-table counts (index-only scans on the primary keys at best): the route caches them.
SELECT (SELECT count(*) FROM sessions) AS total_sessions,
       (SELECT count(*) FROM played_tracks) AS total_tracks,
       (SELECT count(*) FROM likes) AS total_likes;
