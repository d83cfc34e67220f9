-- One live session with its current play: a process that does not own the room answers its
-- subscribers from here (pika/live/replica.py).
SELECT s.id, s.dj_name, p.id AS play_id, p.artist, p.title, p.bpm, p.key, p.energy, p.danceability,
       p.brightness, p.acousticness, p.groove
FROM sessions s
LEFT JOIN played_tracks p ON p.id = s.current_play_id
WHERE s.id = %(session_id)s AND s.ended_at IS NULL;
