-- Own a room's decisions: a session-level advisory lock keyed by a 64-bit hash of the session id,
-- held by this connection until released or until the connection ends (pika/bus/ownership.py).
SELECT pg_try_advisory_lock(hashtextextended(%(session_id)s, 17)) AS claimed;
