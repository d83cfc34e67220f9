-- claim_message for a whole batch of dancer actions (group commit): returns the pairs that are
-- new for their sender (or whose previous use is older than the retry window).  The caller
-- passes each (sender, message_id) once.
INSERT INTO applied_messages (sender, message_id)
SELECT * FROM unnest(%(senders)s::text[], %(message_ids)s::text[])
ON CONFLICT (sender, message_id) DO UPDATE SET applied_at = now()
    WHERE applied_messages.applied_at < now() - interval '10 minutes'
RETURNING sender, message_id;
