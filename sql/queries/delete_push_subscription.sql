-- DELETE /api/push/subscribe, or the push service answered 404/410: the subscription is gone.
DELETE FROM push_subscriptions
WHERE endpoint = %(endpoint)s;
