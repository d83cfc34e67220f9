-- A thank-you (or other reaction) a dancer sent the DJ.
INSERT INTO reactions (session_id, client_id, reaction) VALUES (%(session_id)s, %(client_id)s, %(reaction)s);
