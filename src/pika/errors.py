"""Errors that end a command with one clear line instead of a traceback.

Each carries the exit code the CLI uses, so `__main__` maps them without guessing.
"""


class PikaError(Exception):
    """A failure a person can act on; `str(exc)` is the one line to print."""

    exit_code = 1


class ConfigError(PikaError):
    """A setting has a value Pika! cannot use."""

    exit_code = 2


class DatabaseUnavailable(PikaError):
    """PostgreSQL cannot be reached; the message names host and database, never a password."""

    exit_code = 2


class MigrationRefused(PikaError):
    """The migration journal and the files disagree; nothing was applied."""

    exit_code = 1
