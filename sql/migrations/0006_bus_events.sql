-- The bus between server processes (issue 17): a room's batch of frames too big for one NOTIFY
-- payload (8000 bytes) is stored here, announced by its id, and read once by each process.
-- Rows are only needed for as long as a notification is in flight: the bus deletes them after an hour.
CREATE TABLE bus_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id text NOT NULL,
    frames text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bus_events_created_at_idx ON bus_events (created_at);
