-- Migration runner: the journal of applied migration files, created on first use.
-- One row per file in sql/migrations/; sha256 is the hex digest of the file bytes as applied, so an
-- edited file is noticed.  duration_ms is NULL for rows written by `baseline` (marked, never run).
-- Run only while holding the migration advisory lock, so two runners never race to create it.
CREATE TABLE IF NOT EXISTS schema_migrations (
    filename        text PRIMARY KEY,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at      timestamptz NOT NULL DEFAULT now(),
    duration_ms     integer CHECK (duration_ms >= 0)
);
