"""Structured log lines: one line per event, `ts level logger msg key=value …`, or one JSON
object per line with `PIKA_LOG_FORMAT=json` (for log shippers).

Call sites pass fields as `extra={"fields": {...}}`; values are quoted when they hold spaces,
so a line greps and parses without a JSON tool at 2 a.m.
"""

from __future__ import annotations

import json
import logging
import sys
import time


class LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname.lower(), record.name, _value(record.getMessage())]
        for key, value in (getattr(record, "fields", None) or {}).items():
            parts.append(f"{key}={_value(value)}")
        if record.exc_info:
            parts.append("exc=" + _value(self.formatException(record.exc_info)))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", <fields>…, "exc"}`; a field never replaces those four."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        line: dict[str, object] = {key: _json_value(value) for key, value in fields.items()}
        level, message = record.levelname.lower(), record.getMessage()
        line.update(ts=_timestamp(record), level=level, logger=record.name, msg=message)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _json_value(value: object) -> object:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def setup(level: str, log_format: str = "line") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn's own access/error logs go through the same formatter; access lines only at DEBUG.
    logging.getLogger("hypercorn.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    # The audit trail (pika/audit.py) is kept whatever the level: it is what incidents are read from.
    logging.getLogger("pika.audit").setLevel(logging.INFO)
