-- Migration runner: give up any lock wait (the migration lock, a table a migration alters) after
-- %(timeout)s, e.g. '30000ms', for this connection; a server start then fails instead of hanging.
SELECT set_config('lock_timeout', %(timeout)s, false);
