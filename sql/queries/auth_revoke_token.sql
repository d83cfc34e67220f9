-- Revoke one unrevoked token by its digest; returns the owner's id, or nothing when the token is
-- unknown or already revoked (so two racing regenerations cannot both succeed).
UPDATE dj_tokens
SET revoked_at = now()
WHERE token_sha256 = %(token_sha256)s AND revoked_at IS NULL
RETURNING dj_id;
