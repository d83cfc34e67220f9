-- Mixxx's history: the tracks of its set-log playlists (Playlists.hidden = 2) with a row id above
-- :after, in the order Mixxx added them. Parameters: after (the highest PlaylistTracks.id seen).
SELECT pt.id, pt.pl_datetime_added, lib.artist, lib.title, lib.bpm, lib.key
FROM PlaylistTracks AS pt
JOIN Playlists AS pl ON pl.id = pt.playlist_id
JOIN library AS lib ON lib.id = pt.track_id
WHERE pl.hidden = 2 AND pt.id > :after
ORDER BY pt.id
