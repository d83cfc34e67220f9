-- Forget the claims of refused actions in a batch (`pairs`: a JSON array of [sender, message_id]):
-- a refused message is never remembered, so a retry is processed anew.
DELETE FROM applied_messages
WHERE (sender, message_id) IN (SELECT p ->> 0, p ->> 1 FROM json_array_elements(%(pairs)s::json) AS p);
