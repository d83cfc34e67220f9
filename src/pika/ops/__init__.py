"""Operator tasks behind `python -m pika.admin`: the telemetry report, backup and restore."""
