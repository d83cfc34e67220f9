-- The Web Push subscriptions of one session: who gets its `push: true` announcements.
SELECT endpoint, p256dh, auth
FROM push_subscriptions
WHERE session_id = %(session_id)s;
