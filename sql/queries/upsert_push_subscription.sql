-- POST /api/push/subscribe: store a browser's Web Push subscription, one row per endpoint
-- (push_subscriptions_endpoint_key); subscribing again replaces keys, client and session.
-- An unknown session id is stored as NULL rather than refused.
INSERT INTO push_subscriptions (endpoint, p256dh, auth, client_id, session_id)
VALUES (%(endpoint)s, %(p256dh)s, %(auth)s, %(client_id)s,
        (SELECT id FROM sessions WHERE id = %(session_id)s))
ON CONFLICT (endpoint) DO UPDATE
SET p256dh = excluded.p256dh,
    auth = excluded.auth,
    client_id = excluded.client_id,
    session_id = excluded.session_id;
