-- Queue one BROADCAST_TRACK with the messageId it keeps until ACKed.
INSERT INTO outbox (session_id, message_id, track, played_at) VALUES (?, ?, ?, ?);
