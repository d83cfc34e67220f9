-- python -m pika.admin telemetry: which DJ client versions connected in the last %(days)s days
-- (the `version` of each `connect` event; '' when the client sent none).
SELECT coalesce(nullif(metadata ->> 'version', ''), 'unknown') AS version,
       count(*) AS connects,
       count(DISTINCT session_id) AS sessions,
       max(created_at) AS last_seen
FROM session_events
WHERE event_type = 'connect' AND created_at >= now() - make_interval(days => %(days)s)
GROUP BY 1
ORDER BY last_seen DESC;
