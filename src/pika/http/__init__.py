"""The HTTP API (Quart on hypercorn's trio worker): JSON in, JSON out, errors as `{"error": …}`."""
