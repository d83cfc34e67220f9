-- The account an unrevoked token belongs to, looked up by the token's SHA-256 digest; marks the
-- token used.  Returns nothing for an unknown or revoked token.
UPDATE dj_tokens AS t
SET last_used_at = now()
FROM djs AS d
WHERE t.token_sha256 = %(token_sha256)s
  AND t.revoked_at IS NULL
  AND d.id = t.dj_id
RETURNING d.id, d.email, d.display_name, d.slug, t.token_sha256;
