-- Thank-yous (and other reactions) dancers sent the DJ: one group-commit batch in one statement,
-- each column an array, one element per reaction.
INSERT INTO reactions (session_id, client_id, reaction)
SELECT * FROM unnest(%(session_id)s::text[], %(client_id)s::text[], %(reaction)s::text[]);
