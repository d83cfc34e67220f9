-- python -m pika.admin telemetry: the ten sessions of the last %(days)s days with the most
-- dancers (distinct clients who liked a track), with their plays, likes and DJ disconnects.
SELECT s.id AS session_id,
       s.dj_name,
       s.started_at,
       s.ended_at,
       (SELECT count(*) FROM played_tracks p WHERE p.session_id = s.id) AS plays,
       (SELECT count(*) FROM likes l WHERE l.session_id = s.id) AS likes,
       (SELECT count(DISTINCT l.client_id) FROM likes l WHERE l.session_id = s.id) AS dancers,
       (SELECT count(*) FROM session_events e
        WHERE e.session_id = s.id AND e.event_type = 'disconnect') AS disconnects
FROM sessions s
WHERE s.ended_at IS NULL OR s.ended_at >= now() - make_interval(days => %(days)s)
ORDER BY dancers DESC, likes DESC, s.started_at DESC
LIMIT 10;
