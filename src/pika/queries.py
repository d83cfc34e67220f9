"""Every SQL statement Pika! runs, loaded by name from `sql/queries/<name>.sql`.

Modules declare the statements they use at import time (`INSERT_X = query("insert_x")`);
`load_queries` reads the folder once at start and refuses to start when a declared name has
no file, so a typo fails on boot and not at the first dancer's tap.  Parameters are always
bound by psycopg (`%(name)s`), never formatted into the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pika.errors import ConfigError

_declared: set[str] = set()


@dataclass(frozen=True)
class Query:
    """A reference to one statement by name; the text comes from the loaded `Queries`."""

    name: str


def query(name: str) -> Query:
    """Declare that this module runs `sql/queries/<name>.sql`."""
    _declared.add(name)
    return Query(name)


class Queries:
    """The loaded statements: name -> SQL text."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    def __getitem__(self, q: Query | str) -> str:
        name = q.name if isinstance(q, Query) else q
        try:
            return self._texts[name]
        except KeyError:
            raise ConfigError(f"no SQL file for query {name!r} (expected sql/queries/{name}.sql)") from None

    def __contains__(self, name: str) -> bool:
        return name in self._texts


def load_queries(folder: Path) -> Queries:
    """Read `folder/*.sql`; fail when any declared query is missing or a file is empty."""
    if not folder.is_dir():
        raise ConfigError(
            f"query folder {folder} does not exist (set PIKA_SQL_DIR to the repo's sql/ folder)"
        )
    texts = {}
    for path in sorted(folder.glob("*.sql")):
        text = path.read_text(encoding="utf-8").strip()
        if not _without_comments(text):
            raise ConfigError(f"{path} holds no SQL statement")
        texts[path.stem] = text
    missing = sorted(_declared - texts.keys())
    if missing:
        raise ConfigError(f"missing SQL files in {folder}: {', '.join(m + '.sql' for m in missing)}")
    return Queries(texts)


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("--")).strip()
