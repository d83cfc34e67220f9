-- python -m pika.admin telemetry: how stable DJ connections were over the last %(days)s days.
-- A DJ connection is a `connect` (a new session) or a `reconnect` (a resumed one); the
-- disconnect rate is the share of them that dropped; reconnectMs is how long the DJ was gone.
SELECT count(DISTINCT session_id) AS sessions,
       count(*) FILTER (WHERE event_type IN ('connect', 'reconnect')) AS connections,
       count(*) FILTER (WHERE event_type = 'disconnect') AS disconnects,
       round(100.0 * count(*) FILTER (WHERE event_type = 'disconnect')
             / nullif(count(*) FILTER (WHERE event_type IN ('connect', 'reconnect')), 0), 1) AS disconnect_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (metadata ->> 'reconnectMs')::double precision)
           FILTER (WHERE event_type = 'reconnect') AS reconnect_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY (metadata ->> 'reconnectMs')::double precision)
           FILTER (WHERE event_type = 'reconnect') AS reconnect_p95_ms
FROM session_events
WHERE created_at >= now() - make_interval(days => %(days)s);
