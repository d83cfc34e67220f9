-- Admin actions that must reach the running server (python -m pika.admin end-session,
-- revoke-tokens; reset-password only for the server's audit log).  The CLI inserts a row and sends NOTIFY pika_admin in the same transaction; the
-- server LISTENs, and also reads every row not yet done at start and after its listening
-- connection reconnects, so an action made while no server ran takes effect when one starts.
CREATE TABLE admin_actions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('end_session', 'revoke_tokens', 'reset_password')),
    session_id  text,
    dj_id       bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);

CREATE INDEX admin_actions_pending ON admin_actions (id) WHERE done_at IS NULL;
