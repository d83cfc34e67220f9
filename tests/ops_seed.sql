-- A realistic small production database for the operations tests (tests/test_operations_doc.py,
-- tests/test_retention.py): two DJs with tokens, a live session and three ended ones (one 40
-- days old), plays, likes, polls, telemetry with disconnects, reconnects and client versions.
INSERT INTO djs (email, display_name, slug, password_hash) VALUES
    ('dj@example.com', 'DJ Ana', 'dj-ana', 'not-a-hash'),
    ('mo@example.com', 'DJ Mo', 'dj-mo', 'not-a-hash');

INSERT INTO dj_tokens (dj_id, token_sha256, name, created_at, last_used_at, revoked_at)
SELECT d.id, encode(sha256(convert_to(t.name || d.slug, 'UTF8')), 'hex'), t.name,
       now() - t.age, now() - t.used, now() - t.revoked
FROM djs d,
     (VALUES ('laptop', interval '60 days', interval '1 hour', NULL::interval),
             ('phone', interval '20 days', interval '3 days', NULL),
             ('old laptop', interval '90 days', interval '70 days', interval '60 days')) AS t (name, age, used, revoked);

INSERT INTO sessions (id, dj_id, dj_name, resume_key_sha256, started_at, last_activity_at, ended_at, end_reason)
VALUES
    ('friday_milonga', (SELECT id FROM djs WHERE slug = 'dj-ana'), 'DJ Ana', repeat('a', 64),
     now() - interval '2 hours', now() - interval '1 minute', NULL, NULL),
    ('thursday_practica', (SELECT id FROM djs WHERE slug = 'dj-mo'), 'DJ Mo', repeat('b', 64),
     now() - interval '6 days 3 hours', now() - interval '6 days', now() - interval '6 days', 'dj_ended'),
    ('anon_salsa_night', NULL, 'Guest', repeat('c', 64),
     now() - interval '3 days 4 hours', now() - interval '3 days 2 hours', now() - interval '3 days', 'grace_expired'),
    ('summer_marathon', (SELECT id FROM djs WHERE slug = 'dj-ana'), 'DJ Ana', repeat('d', 64),
     now() - interval '41 days', now() - interval '40 days', now() - interval '40 days', 'dj_ended');

INSERT INTO played_tracks (session_id, artist, title, match_key, bpm, key, played_at, ended_at)
SELECT s.id, 'Artist ' || n, 'Track ' || n, 'artist ' || n || ' - track ' || n, 90 + n, '8A',
       s.started_at + n * interval '4 minutes',
       CASE WHEN s.ended_at IS NULL AND n = s.plays THEN NULL ELSE s.started_at + (n + 1) * interval '4 minutes' END
FROM (SELECT id, started_at, ended_at,
             CASE id WHEN 'friday_milonga' THEN 25 WHEN 'thursday_practica' THEN 15 ELSE 8 END AS plays
      FROM sessions) s,
     generate_series(1, s.plays) AS n;

UPDATE sessions s SET current_play_id = (
    SELECT max(id) FROM played_tracks p WHERE p.session_id = s.id)
WHERE s.ended_at IS NULL;

INSERT INTO likes (session_id, played_track_id, match_key, client_id, liked_at)
SELECT p.session_id, p.id, p.match_key, 'client-' || c, p.played_at + interval '1 minute'
FROM played_tracks p, generate_series(1, 30) AS c
WHERE (p.id + c) % 3 = 0;

INSERT INTO polls (session_id, question, options, status, started_at, ends_at, ended_at)
VALUES
    ('friday_milonga', 'Next tanda?', ARRAY['Tango', 'Vals', 'Milonga'], 'active',
     now() - interval '1 minute', now() + interval '2 minutes', NULL),
    ('thursday_practica', 'Slower?', ARRAY['Yes', 'No'], 'closed',
     now() - interval '6 days 1 hour', now() - interval '6 days 55 minutes', now() - interval '6 days 55 minutes');

INSERT INTO poll_votes (poll_id, client_id, option_index)
SELECT p.id, 'client-' || c, c % cardinality(p.options)
FROM polls p, generate_series(1, 12) AS c;

INSERT INTO reactions (session_id, client_id, reaction, created_at)
SELECT 'friday_milonga', 'client-' || c, 'thank_you', now() - interval '10 minutes'
FROM generate_series(1, 5) AS c;

-- Telemetry as the server writes it (pika/telemetry.py): connect {authenticated, version},
-- disconnect {reason}, reconnect {reconnectMs}, end {reason}.
INSERT INTO session_events (session_id, event_type, metadata, created_at)
SELECT s.id, e.event_type, e.metadata, s.started_at + e.after
FROM sessions s,
     LATERAL (VALUES
        ('connect', jsonb_build_object('authenticated', s.dj_id IS NOT NULL,
                                       'version', CASE WHEN s.dj_id IS NULL THEN '1.3.2' ELSE '1.4.0' END),
         interval '0 seconds'),
        ('disconnect', '{"reason": "connection lost"}'::jsonb, interval '20 minutes'),
        ('reconnect', '{"reconnectMs": 1800}'::jsonb, interval '20 minutes 2 seconds'),
        ('disconnect', '{"reason": "connection lost"}'::jsonb, interval '50 minutes'),
        ('reconnect', '{"reconnectMs": 12500}'::jsonb, interval '50 minutes 13 seconds'),
        ('connect', '{"authenticated": true, "version": "1.4.1"}'::jsonb, interval '60 minutes')
     ) AS e (event_type, metadata, after);

INSERT INTO session_events (session_id, event_type, metadata, created_at)
SELECT id, 'end', jsonb_build_object('reason', end_reason), ended_at FROM sessions WHERE ended_at IS NOT NULL;

INSERT INTO push_subscriptions (endpoint, p256dh, auth, client_id, session_id, created_at)
VALUES
    ('https://push.example/live', 'key', 'auth', 'client-1', 'friday_milonga', now() - interval '1 hour'),
    ('https://push.example/recent', 'key', 'auth', 'client-2', 'thursday_practica', now() - interval '6 days'),
    ('https://push.example/old', 'key', 'auth', 'client-3', 'summer_marathon', now() - interval '41 days');

INSERT INTO session_listeners (session_id, client_id, left_at)
SELECT 'friday_milonga', 'client-' || c, CASE WHEN c > 20 THEN now() - interval '2 minutes' END
FROM generate_series(1, 30) AS c;

-- A second live session, just opened (no plays yet): the one the runbook's end-session ends.
INSERT INTO sessions (id, dj_id, dj_name, resume_key_sha256, started_at, last_activity_at)
VALUES ('saturday_social', (SELECT id FROM djs WHERE slug = 'dj-mo'), 'DJ Mo', repeat('e', 64),
        now() - interval '5 minutes', now() - interval '5 minutes');
