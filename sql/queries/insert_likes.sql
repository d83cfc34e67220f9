-- Likes of one group-commit batch (`rows`: a JSON array of {session_id, client_id, match_key}),
-- each recorded on its track's latest play (by match key) in its session.  Returns one row per
-- like, in order: `played` false when the track was not played in the session, `liked` false when
-- the client liked it already (on any play, or earlier in this batch); only a row with `liked` was
-- written.
WITH v AS (
    SELECT *
    FROM ROWS FROM (
        json_to_recordset(%(rows)s::json) AS (session_id text, client_id text, match_key text)
    ) WITH ORDINALITY AS v (session_id, client_id, match_key, n)
),
latest AS (
    SELECT v.*, p.id AS play_id
    FROM v LEFT JOIN LATERAL (
        SELECT id FROM played_tracks
        WHERE session_id = v.session_id AND match_key = v.match_key
        ORDER BY played_at DESC, id DESC
        LIMIT 1
    ) p ON true
),
first AS (
    SELECT DISTINCT ON (session_id, client_id, match_key) *
    FROM latest
    WHERE play_id IS NOT NULL
    ORDER BY session_id, client_id, match_key, n
),
inserted AS (
    INSERT INTO likes (session_id, played_track_id, match_key, client_id)
    SELECT session_id, play_id, match_key, client_id FROM first
    ON CONFLICT ON CONSTRAINT likes_one_per_client_track DO NOTHING
    RETURNING session_id, client_id, match_key
)
SELECT l.n, l.play_id IS NOT NULL AS played, i.client_id IS NOT NULL AS liked
FROM latest l
LEFT JOIN first f ON f.n = l.n
LEFT JOIN inserted i
    ON (i.session_id, i.client_id, i.match_key) = (f.session_id, f.client_id, f.match_key)
ORDER BY l.n;
