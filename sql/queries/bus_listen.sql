-- Every server process waits for the bus's notifications (pika/bus/postgres.py).
LISTEN pika_bus;
