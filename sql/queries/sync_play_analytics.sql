-- POST {P}/:id/sync-fingerprints: analytics the DJ's software knows, onto every play of that
-- track (by match key) in the session; a field the DJ does not send keeps its stored value.
UPDATE played_tracks
SET bpm = COALESCE(%(bpm)s, bpm), key = COALESCE(%(key)s, key), energy = COALESCE(%(energy)s, energy),
    danceability = COALESCE(%(danceability)s, danceability), brightness = COALESCE(%(brightness)s, brightness),
    acousticness = COALESCE(%(acousticness)s, acousticness), groove = COALESCE(%(groove)s, groove)
WHERE session_id = %(session_id)s AND match_key = %(match_key)s;
