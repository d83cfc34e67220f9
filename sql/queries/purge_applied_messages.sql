-- Forget message ids older than the 10-minute retry window.
DELETE FROM applied_messages WHERE applied_at < now() - interval '10 minutes';
