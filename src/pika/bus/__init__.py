"""The bus between server processes: room events over PostgreSQL LISTEN/NOTIFY (issue 17)."""
