-- Pika! initial schema: accounts, live sessions and what happens in them.
--
-- Design notes
-- * Everything a dancer or DJ can see is a row here before it is broadcast, so a restarted
--   server rebuilds every live room from these tables (sessions.ended_at IS NULL = live).
-- * "One per client" rules are constraints, not code: a restart or a second server can never
--   double-count a like, a tempo vote or a poll vote.
-- * ON DELETE: a session's own data (plays, likes, votes, polls, announcements, telemetry)
--   goes with the session (CASCADE); deleting a DJ account keeps its sessions' history
--   (SET NULL) but takes its tokens (CASCADE).

CREATE TABLE djs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$'),
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT djs_email_key UNIQUE (email),
    CONSTRAINT djs_slug_key UNIQUE (slug)
);

-- API tokens: only the SHA-256 hex digest of `pk_dj_…` is ever stored.
CREATE TABLE dj_tokens (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dj_id           bigint NOT NULL REFERENCES djs (id) ON DELETE CASCADE,
    token_sha256    text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    name            text NOT NULL DEFAULT 'token',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    CONSTRAINT dj_tokens_sha256_key UNIQUE (token_sha256)
);
CREATE INDEX dj_tokens_dj_idx ON dj_tokens (dj_id);

CREATE TABLE sessions (
    id                  text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{8,64}$'),
    dj_id               bigint REFERENCES djs (id) ON DELETE SET NULL,   -- NULL = anonymous
    dj_name             text NOT NULL CHECK (length(dj_name) BETWEEN 1 AND 100),
    resume_key_sha256   text NOT NULL CHECK (resume_key_sha256 ~ '^[0-9a-f]{64}$'),
    started_at          timestamptz NOT NULL DEFAULT now(),
    last_activity_at    timestamptz NOT NULL DEFAULT now(),
    dj_disconnected_at  timestamptz,          -- set while the DJ connection is gone (grace period)
    ended_at            timestamptz,
    end_reason          text,
    current_play_id     bigint,               -- FK added below (played_tracks refers back here)
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX sessions_live_idx ON sessions (started_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended_idx ON sessions (ended_at DESC) WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_dj_idx ON sessions (dj_id, started_at DESC);

CREATE TABLE played_tracks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    artist          text NOT NULL CHECK (length(artist) BETWEEN 1 AND 500),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    match_key       text NOT NULL,        -- artist + title, whitespace-collapsed and case-folded
    bpm             double precision CHECK (bpm BETWEEN 40 AND 300),
    key             text CHECK (length(key) <= 10),
    energy          double precision CHECK (energy BETWEEN 0 AND 100),
    danceability    double precision CHECK (danceability BETWEEN 0 AND 100),
    brightness      double precision CHECK (brightness BETWEEN 0 AND 100),
    acousticness    double precision CHECK (acousticness BETWEEN 0 AND 100),
    groove          double precision CHECK (groove BETWEEN 0 AND 100),
    played_at       timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    -- the tempo tally stored when the track stops being current (NULL = never stored)
    tempo_slower    integer CHECK (tempo_slower >= 0),
    tempo_perfect   integer CHECK (tempo_perfect >= 0),
    tempo_faster    integer CHECK (tempo_faster >= 0)
);
CREATE INDEX played_tracks_session_time_idx ON played_tracks (session_id, played_at DESC, id DESC);
CREATE INDEX played_tracks_session_match_idx ON played_tracks (session_id, match_key);
CREATE INDEX played_tracks_match_idx ON played_tracks (match_key);

ALTER TABLE sessions
    ADD CONSTRAINT sessions_current_play_fk
    FOREIGN KEY (current_play_id) REFERENCES played_tracks (id) ON DELETE SET NULL;

CREATE TABLE likes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    played_track_id bigint NOT NULL REFERENCES played_tracks (id) ON DELETE CASCADE,
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 8 AND 256),
    liked_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT likes_one_per_client UNIQUE (session_id, client_id, played_track_id)
);
CREATE INDEX likes_client_idx ON likes (client_id, liked_at DESC);
CREATE INDEX likes_track_idx ON likes (played_track_id);

-- Live tempo votes: one row per client for a play; `clear` deletes it; a vote lapses by age.
CREATE TABLE tempo_votes (
    played_track_id bigint NOT NULL REFERENCES played_tracks (id) ON DELETE CASCADE,
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 8 AND 256),
    preference      text NOT NULL CHECK (preference IN ('faster', 'perfect', 'slower')),
    cast_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (played_track_id, client_id)
);

CREATE TABLE polls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    played_track_id bigint REFERENCES played_tracks (id) ON DELETE SET NULL,  -- playing when it started
    question        text NOT NULL CHECK (length(question) BETWEEN 1 AND 500),
    options         text[] NOT NULL CHECK (cardinality(options) BETWEEN 2 AND 100),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed', 'cancelled')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ends_at         timestamptz,          -- NULL = open until ended
    ended_at        timestamptz,
    CHECK ((status = 'active') = (ended_at IS NULL))
);
CREATE UNIQUE INDEX polls_one_active_per_session ON polls (session_id) WHERE status = 'active';
CREATE INDEX polls_session_idx ON polls (session_id, started_at);

CREATE TABLE poll_votes (
    poll_id         bigint NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 8 AND 256),
    option_index    integer NOT NULL CHECK (option_index >= 0),
    voted_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, client_id)
);

CREATE TABLE announcements (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    message         text NOT NULL CHECK (length(message) BETWEEN 1 AND 200),
    dj_name         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ends_at         timestamptz,          -- NULL = until cancelled
    cleared_at      timestamptz           -- cancelled, replaced, expired or session ended
);
CREATE UNIQUE INDEX announcements_one_active_per_session ON announcements (session_id) WHERE cleared_at IS NULL;

-- Thank-yous and other reactions the DJ received (for the recap; REACTION_RECEIVED is live only).
CREATE TABLE reactions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id       text NOT NULL,
    reaction        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reactions_session_idx ON reactions (session_id);

-- Idempotent retries: a messageId applied for a sender in the last 10 minutes is not applied again.
-- sender = 'session:<id>' for a DJ, 'client:<clientId>' for a dancer.
CREATE TABLE applied_messages (
    sender          text NOT NULL,
    message_id      text NOT NULL CHECK (length(message_id) BETWEEN 1 AND 128),
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX applied_messages_age_idx ON applied_messages (applied_at);

-- Telemetry, written off the hot path.  No FK: telemetry may outlive a deleted session.
CREATE TABLE session_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN ('connect', 'disconnect', 'reconnect', 'end', 'expire')),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_events_session_idx ON session_events (session_id, created_at);

CREATE TABLE push_subscriptions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        text NOT NULL CHECK (endpoint ~ '^https://' AND length(endpoint) <= 2048),
    p256dh          text NOT NULL,
    auth            text NOT NULL,
    client_id       text,
    session_id      text REFERENCES sessions (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT push_subscriptions_endpoint_key UNIQUE (endpoint)
);
CREATE INDEX push_subscriptions_session_idx ON push_subscriptions (session_id);
