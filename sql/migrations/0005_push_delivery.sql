-- Web Push delivery (issue 16): an announcement is pushed to one session's subscribers, so they
-- are read by session again; and a local test push service speaks http:// (the server refuses
-- http:// endpoints unless PIKA_PUSH_ALLOW_HTTP, so production still stores https:// only).
CREATE INDEX push_subscriptions_session_idx ON push_subscriptions (session_id);
ALTER TABLE push_subscriptions DROP CONSTRAINT push_subscriptions_endpoint_check;
ALTER TABLE push_subscriptions
    ADD CONSTRAINT push_subscriptions_endpoint_check
    CHECK (endpoint ~ '^https?://' AND length(endpoint) <= 2048);
