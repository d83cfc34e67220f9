-- Is the ownership connection (and with it every lock it holds) still alive?
SELECT 1 AS alive;
