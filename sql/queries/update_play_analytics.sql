-- METADATA_UPDATED: new analytics for the current play.
UPDATE played_tracks
SET bpm = %(bpm)s, key = %(key)s, energy = %(energy)s, danceability = %(danceability)s,
    brightness = %(brightness)s, acousticness = %(acousticness)s, groove = %(groove)s
WHERE id = %(play_id)s;
