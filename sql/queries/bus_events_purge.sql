-- Big batches whose notifications were delivered long ago.
DELETE FROM bus_events WHERE created_at < now() - make_interval(secs => %(older_than)s);
