-- The session's new active announcement (the previous one is cleared first, in the same transaction).
INSERT INTO announcements (session_id, message, dj_name, ends_at)
VALUES (%(session_id)s, %(message)s, %(dj_name)s, %(ends_at)s)
RETURNING id, created_at;
