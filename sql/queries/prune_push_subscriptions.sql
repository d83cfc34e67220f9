-- Retention: delete one batch of Web Push subscriptions whose session ended longer ago than the
-- retention window (PIKA_RETENTION_DAYS): nothing will ever be pushed to them again.
DELETE FROM push_subscriptions
WHERE ctid IN (
    SELECT p.ctid FROM push_subscriptions p
    JOIN sessions s ON s.id = p.session_id
    WHERE s.ended_at < now() - make_interval(days => %(days)s)
    LIMIT %(batch)s
);
