-- Take one entry off the queue (ACKed, or refused for good).
DELETE FROM outbox WHERE seq = ?;
