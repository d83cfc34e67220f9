-- Every live session with its current play, to rebuild rooms at start.
SELECT s.id, s.dj_id, s.dj_name, s.resume_key_sha256, s.started_at, s.last_activity_at,
       s.dj_disconnected_at,
       p.id AS play_id, p.artist, p.title, p.bpm, p.key, p.energy, p.danceability,
       p.brightness, p.acousticness, p.groove
FROM sessions s
LEFT JOIN played_tracks p ON p.id = s.current_play_id
WHERE s.ended_at IS NULL
ORDER BY s.started_at;
