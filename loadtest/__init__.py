"""Load tests and benchmarks for Pika!; run each module with `python -m loadtest.<name>`."""
