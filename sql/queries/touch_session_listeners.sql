-- These live sessions' listeners were just flushed: a client still marked connected after a
-- crash counts as having left at this time.
UPDATE sessions SET listeners_seen_at = %(at)s
WHERE id = ANY(%(session_ids)s::text[]) AND ended_at IS NULL;
