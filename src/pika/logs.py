"""Structured log lines: one line per event, `ts level logger msg key=value …`.

Call sites pass fields as `extra={"fields": {...}}`; values are quoted when they hold spaces,
so a line greps and parses without a JSON tool at 2 a.m.
"""

from __future__ import annotations

import logging
import sys
import time


class LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [ts, record.levelname.lower(), record.name, _value(record.getMessage())]
        for key, value in (getattr(record, "fields", None) or {}).items():
            parts.append(f"{key}={_value(value)}")
        if record.exc_info:
            parts.append("exc=" + _value(self.formatException(record.exc_info)))
        return " ".join(parts)


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn's own access/error logs go through the same formatter; access lines only at DEBUG.
    logging.getLogger("hypercorn.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
