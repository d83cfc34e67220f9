-- A `clear` removes the client's tempo vote for the play.
DELETE FROM tempo_votes WHERE played_track_id = %(play_id)s AND client_id = %(client_id)s;
