-- Tempo votes of one group-commit batch (`rows`: a JSON array of {play_id, client_id, preference,
-- cast_at}, cast_at in epoch seconds): one live vote per client per play, a new vote replaces the
-- old.  Two votes of one client for one play in the same batch (two tabs): the later one wins, as
-- if written one after the other.
INSERT INTO tempo_votes (played_track_id, client_id, preference, cast_at)
SELECT DISTINCT ON (play_id, client_id) play_id, client_id, preference, to_timestamp(cast_at)
FROM ROWS FROM (
    json_to_recordset(%(rows)s::json) AS (play_id bigint, client_id text, preference text, cast_at float8)
) WITH ORDINALITY AS v (play_id, client_id, preference, cast_at, n)
ORDER BY play_id, client_id, n DESC
ON CONFLICT (played_track_id, client_id)
DO UPDATE SET preference = EXCLUDED.preference, cast_at = EXCLUDED.cast_at;
