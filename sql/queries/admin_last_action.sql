-- The newest admin action's id: where a starting server process begins to follow them.
SELECT coalesce(max(id), 0) AS last FROM admin_actions;
