"""Load tests and benchmarks for Pika!.

`python -m loadtest SCENARIO` is the capacity suite (see `loadtest/__main__.py`);
`python -m loadtest.db` compares PostgreSQL round trips from trio;
`python -m loadtest.yardstick` is the minimal `websockets` room server the suite compares against.
"""
