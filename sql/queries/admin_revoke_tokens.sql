-- Revoke every unrevoked token of one DJ (python -m pika.admin revoke-tokens).
UPDATE dj_tokens
SET revoked_at = now()
WHERE dj_id = %(dj_id)s AND revoked_at IS NULL;
