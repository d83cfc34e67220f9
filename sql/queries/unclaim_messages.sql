-- Forget the claims of refused actions in a batch: a refused message is never remembered, so a
-- retry is processed anew.
DELETE FROM applied_messages
WHERE (sender, message_id) IN (SELECT * FROM unnest(%(senders)s::text[], %(message_ids)s::text[]));
