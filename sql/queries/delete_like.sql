-- REMOVE_LIKE: this client's likes of any play of that track in the session.
DELETE FROM likes
WHERE session_id = %(session_id)s AND client_id = %(client_id)s
  AND played_track_id IN (
      SELECT id FROM played_tracks WHERE session_id = %(session_id)s AND match_key = %(match_key)s
  );
