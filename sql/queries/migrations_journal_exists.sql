-- Migration runner: does the journal table exist?  Lets `status`, `verify` and dry runs read
-- a database without creating anything in it.
SELECT to_regclass('schema_migrations') IS NOT NULL AS present;
