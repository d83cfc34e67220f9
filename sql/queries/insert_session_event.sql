-- Telemetry: one row per session event (connect, disconnect, reconnect, end, expire).
INSERT INTO session_events (session_id, event_type, metadata, created_at)
VALUES (%(session_id)s, %(event_type)s, %(metadata)s, %(created_at)s);
