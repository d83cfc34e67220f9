-- GET /api/client/:clientId/likes: a client's latest 200 likes, newest first (likes_client_idx),
-- with the track and the session it was liked in; total_likes counts all of them (the window
-- runs before LIMIT).
SELECT l.id, l.session_id, p.artist, p.title, l.liked_at, s.dj_name, s.started_at AS session_date,
       count(*) OVER () AS total_likes
FROM likes l
JOIN played_tracks p ON p.id = l.played_track_id
JOIN sessions s ON s.id = l.session_id
WHERE l.client_id = %(client_id)s
ORDER BY l.liked_at DESC, l.id DESC
LIMIT 200;
