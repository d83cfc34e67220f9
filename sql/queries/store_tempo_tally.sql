-- The tally the DJ last saw for a play, stored when it stops being current.
UPDATE played_tracks
SET tempo_slower = %(slower)s, tempo_perfect = %(perfect)s, tempo_faster = %(faster)s
WHERE id = %(play_id)s;
