-- Record messageIds as applied, in the same transaction as their effects: one (sender, message_id)
-- pair per array element, each pair given once.  Returns the pairs that are new for their sender
-- (or whose previous use is older than the retry window); a pair not returned was applied before.
INSERT INTO applied_messages (sender, message_id)
SELECT * FROM unnest(%(senders)s::text[], %(message_ids)s::text[])
ON CONFLICT (sender, message_id) DO UPDATE SET applied_at = now()
    WHERE applied_messages.applied_at < now() - interval '10 minutes'
RETURNING sender, message_id;
