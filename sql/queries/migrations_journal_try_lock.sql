-- Migration runner: take the migration lock if it is free (session-level advisory lock, held until
-- unlocked or the connection ends).  False means another runner holds it; the caller says so and waits.
SELECT pg_try_advisory_lock(%(key)s) AS locked;
