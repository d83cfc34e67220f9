-- 0002_one_like_per_track: rules the schema now enforces instead of trusting the code.
--
-- * One like per client per *track* per session (PROTOCOL.md §3.2), not per play: a track played
--   twice was likeable twice, and an unlike removed both.  Likes carry the track's match key
--   (artist + title, whitespace-collapsed, case-folded); existing duplicates are merged, the
--   earliest kept.
-- * A like's session is its play's session, and its match key its play's (composite foreign key);
--   a session's current play belongs to that session, and an ended session has none.
-- * reactions.reaction and sessions.end_reason hold only what the server writes.
-- * Indexes no query in sql/queries uses are dropped (nothing deletes sessions or plays, so the
--   foreign keys' cascades need no index either).
--
-- Applied once by `python -m pika.migrate up`, in one transaction with its journal row, so
-- write no BEGIN/COMMIT.  Once applied anywhere, never edit this file: add a new migration.

-- Likes: the play decides the session, then the match key.
UPDATE likes l SET session_id = p.session_id
FROM played_tracks p
WHERE p.id = l.played_track_id AND l.session_id <> p.session_id;

ALTER TABLE likes ADD COLUMN match_key text;
UPDATE likes l SET match_key = p.match_key FROM played_tracks p WHERE p.id = l.played_track_id;
ALTER TABLE likes ALTER COLUMN match_key SET NOT NULL;

DELETE FROM likes l
USING likes earlier
WHERE earlier.session_id = l.session_id
  AND earlier.client_id = l.client_id
  AND earlier.match_key = l.match_key
  AND (earlier.liked_at, earlier.id) < (l.liked_at, l.id);

ALTER TABLE likes DROP CONSTRAINT likes_one_per_client;
ALTER TABLE likes ADD CONSTRAINT likes_one_per_client_track UNIQUE (session_id, client_id, match_key);

ALTER TABLE played_tracks ADD CONSTRAINT played_tracks_id_session_key UNIQUE (id, session_id);
ALTER TABLE played_tracks
    ADD CONSTRAINT played_tracks_id_session_match_key UNIQUE (id, session_id, match_key);
ALTER TABLE likes DROP CONSTRAINT likes_played_track_id_fkey;
ALTER TABLE likes
    ADD CONSTRAINT likes_play_fk FOREIGN KEY (played_track_id, session_id, match_key)
    REFERENCES played_tracks (id, session_id, match_key) ON DELETE CASCADE;

-- Sessions: the current play is one of the session's own, and only while it is live.
UPDATE sessions s SET current_play_id = NULL
WHERE current_play_id IS NOT NULL
  AND (ended_at IS NOT NULL
       OR NOT EXISTS (SELECT 1 FROM played_tracks p WHERE p.id = s.current_play_id AND p.session_id = s.id));
ALTER TABLE sessions DROP CONSTRAINT sessions_current_play_fk;
ALTER TABLE sessions
    ADD CONSTRAINT sessions_current_play_fk FOREIGN KEY (current_play_id, id)
    REFERENCES played_tracks (id, session_id) ON DELETE SET NULL (current_play_id);
ALTER TABLE sessions
    ADD CONSTRAINT sessions_ended_has_no_current_play CHECK (ended_at IS NULL OR current_play_id IS NULL);
ALTER TABLE sessions
    ADD CONSTRAINT sessions_end_reason_check CHECK (
        end_reason IS NULL
        OR (ended_at IS NOT NULL AND end_reason IN ('dj_ended', 'grace_expired', 'idle', 'max_age', 'admin'))
    );

ALTER TABLE reactions ADD CONSTRAINT reactions_reaction_check CHECK (reaction IN ('thank_you'));

DROP INDEX played_tracks_match_idx;        -- no query looks a match key up across sessions
DROP INDEX likes_track_idx;                -- likes are read by session (likes_one_per_client_track) or client
DROP INDEX reactions_session_idx;          -- reactions are only written
DROP INDEX session_events_session_idx;     -- telemetry is only written
DROP INDEX push_subscriptions_session_idx; -- subscriptions are only upserted, by endpoint
