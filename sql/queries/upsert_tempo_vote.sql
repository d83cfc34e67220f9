-- One live tempo vote per client per play; a new vote replaces the old.
INSERT INTO tempo_votes (played_track_id, client_id, preference, cast_at)
VALUES (%(play_id)s, %(client_id)s, %(preference)s, %(cast_at)s)
ON CONFLICT (played_track_id, client_id)
DO UPDATE SET preference = EXCLUDED.preference, cast_at = EXCLUDED.cast_at;
