-- The frames of a big batch, read once by each process that received its notification.
SELECT frames FROM bus_events WHERE id = %(id)s;
