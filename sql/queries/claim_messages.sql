-- Record messageIds as applied, in the same transaction as their effects: `pairs` is a JSON array
-- of [sender, message_id] pairs, each pair given once.  Returns the pairs that are new for their
-- sender (or whose previous use is older than the retry window); a pair not returned was applied
-- before.  JSON, not arrays: psycopg dumps a text array element by element in Python, json.dumps
-- a batch in C.
INSERT INTO applied_messages (sender, message_id)
SELECT p ->> 0, p ->> 1 FROM json_array_elements(%(pairs)s::json) AS p
ON CONFLICT (sender, message_id) DO UPDATE SET applied_at = now()
    WHERE applied_messages.applied_at < now() - interval '10 minutes'
RETURNING sender, message_id;
