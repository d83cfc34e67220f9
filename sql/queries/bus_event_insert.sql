-- A batch of frames too big for a NOTIFY payload; the notification carries only this id.
INSERT INTO bus_events (session_id, frames) VALUES (%(session_id)s, %(frames)s) RETURNING id;
