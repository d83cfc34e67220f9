-- Migration runner: record one file as applied, in the same transaction as the file's own SQL.
-- duration_ms is NULL when `baseline` marks a file applied without running it.
INSERT INTO schema_migrations (filename, sha256, duration_ms)
VALUES (%(filename)s, %(sha256)s, %(duration_ms)s);
