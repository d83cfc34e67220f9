-- Record a messageId as applied, in the same transaction as its effect.  Returns a row only
-- when the id is new for this sender (or its previous use is older than the retry window).
INSERT INTO applied_messages (sender, message_id) VALUES (%(sender)s, %(message_id)s)
ON CONFLICT (sender, message_id) DO UPDATE SET applied_at = now()
    WHERE applied_messages.applied_at < now() - interval '10 minutes'
RETURNING 1 AS claimed;
