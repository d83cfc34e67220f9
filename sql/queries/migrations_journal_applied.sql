-- Migration runner: every file the journal records as applied, with the checksum it had then.
SELECT filename, sha256
FROM schema_migrations
ORDER BY filename;
