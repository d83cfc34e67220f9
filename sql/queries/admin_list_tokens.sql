-- One DJ's tokens for python -m pika.admin list-tokens: never the digest.
SELECT id, name, created_at, last_used_at, revoked_at
FROM dj_tokens
WHERE dj_id = %(dj_id)s
ORDER BY created_at, id;
