-- Store a new API token for a DJ: only its SHA-256 hex digest, never the token.
INSERT INTO dj_tokens (dj_id, token_sha256, name)
VALUES (%(dj_id)s, %(token_sha256)s, %(name)s)
RETURNING id;
