-- A confirmed track joins the set list (for the end-of-set sync).
INSERT INTO setlist (session_id, track) VALUES (?, ?);
