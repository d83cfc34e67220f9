-- messageIds applied within the retry window, oldest first, to rebuild the dedupe mirror at start.
SELECT sender, message_id, extract(epoch FROM applied_at)::float8 AS applied_at
FROM applied_messages
WHERE applied_at >= now() - interval '10 minutes'
ORDER BY applied_at;
