-- python -m pika.admin restore: how many tables the target database holds (0 = safe to restore).
SELECT count(*) AS tables
FROM pg_catalog.pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema');
