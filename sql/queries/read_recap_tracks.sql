-- GET {P}/:id/recap: every play of a session in play order, with its like count and the
-- stored tempo tally (NULL columns = never stored).  Plays come from
-- played_tracks_session_time_idx read backwards; likes are counted once per session through
-- the likes_one_per_client unique index (session_id, client_id, played_track_id).
SELECT p.id, p.artist, p.title, p.bpm, p.key, p.energy, p.danceability, p.brightness,
       p.acousticness, p.groove, p.played_at, p.tempo_slower, p.tempo_perfect, p.tempo_faster,
       coalesce(l.likes, 0) AS likes
FROM played_tracks p
LEFT JOIN (
    SELECT played_track_id, count(*) AS likes
    FROM likes
    WHERE session_id = %(session_id)s
    GROUP BY played_track_id
) l ON l.played_track_id = p.id
WHERE p.session_id = %(session_id)s
ORDER BY p.played_at, p.id;
