-- The server's admin channel waits for notifications of python -m pika.admin (admin_insert_action.sql).
LISTEN pika_admin;
