-- Tempo votes of every live session's current play, to rebuild tallies at start.
SELECT s.id AS session_id, v.client_id, v.preference, v.cast_at
FROM sessions s
JOIN tempo_votes v ON v.played_track_id = s.current_play_id
WHERE s.ended_at IS NULL;
