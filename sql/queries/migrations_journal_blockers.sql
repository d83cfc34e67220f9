-- Migration runner: the locks the runner's connection (%(pid)s) waits for and who holds them, so
-- that a stuck wait names the relation and the session to look at.
SELECT w.locktype,
       w.mode,
       CASE WHEN w.locktype = 'relation' THEN w.relation::regclass::text END AS relation,
       b.pid,
       b.state,
       left(regexp_replace(coalesce(b.query, ''), '\s+', ' ', 'g'), 80) AS query
FROM pg_locks w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker (pid)
JOIN pg_stat_activity b ON b.pid = blocker.pid
WHERE w.pid = %(pid)s AND NOT w.granted
ORDER BY b.pid;
