-- Give up a room's decisions (the DJ left for good, or the session ended).
SELECT pg_advisory_unlock(hashtextextended(%(session_id)s, 17)) AS released;
