-- Was this messageId applied for this sender within the retry window?
SELECT 1 AS applied FROM applied_messages
WHERE sender = %(sender)s AND message_id = %(message_id)s
  AND applied_at >= now() - interval '10 minutes';
