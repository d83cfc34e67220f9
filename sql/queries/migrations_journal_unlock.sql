-- Migration runner: release the migration lock taken by migrations_journal_lock or _try_lock.
SELECT pg_advisory_unlock(%(key)s);
