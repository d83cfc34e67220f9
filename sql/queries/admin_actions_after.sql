-- Admin actions recorded after the last one this server process followed, done or not: with
-- several processes, each carries out every action for its own connections (admin_channel.py).
SELECT id, action, session_id, dj_id, created_at
FROM admin_actions
WHERE id > %(after)s
ORDER BY id;
