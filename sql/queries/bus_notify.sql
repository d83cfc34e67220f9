-- One notification per room batch, all in one round trip, delivered in this order at commit.
SELECT pg_notify('pika_bus', payload) FROM unnest(%(payloads)s::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY n;
