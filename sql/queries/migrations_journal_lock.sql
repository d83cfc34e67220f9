-- Migration runner: wait for the migration lock held by another runner, then take it.
SELECT pg_advisory_lock(%(key)s);
