-- One vote per client per poll; returns nothing for a second vote.
INSERT INTO poll_votes (poll_id, client_id, option_index)
VALUES (%(poll_id)s, %(client_id)s, %(option_index)s)
ON CONFLICT (poll_id, client_id) DO NOTHING
RETURNING poll_id;
