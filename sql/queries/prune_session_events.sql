-- Retention: delete one batch of telemetry older than the retention window (PIKA_RETENTION_DAYS).
-- A batch is at most %(batch)s rows, so no delete holds its locks for long; run it until it
-- deletes fewer rows than that.
DELETE FROM session_events
WHERE ctid IN (
    SELECT ctid FROM session_events
    WHERE created_at < now() - make_interval(days => %(days)s)
    LIMIT %(batch)s
);
