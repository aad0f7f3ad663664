"""A private temporary SQLite file that a full derivation copies records into, to look them up
a batch at a time instead of holding them (`spilled_links.py`, `spilled_people.py`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

from pmsync.errors import PmsyncError

# Values one statement names (a bound parameter each, under SQLite's old limit of 999).
KEYS = 900
_MARKS = ",".join("?" * KEYS)

Row = tuple[Any, ...]


class SpillFile:
    """The file, its writes and its look-ups. Close it (or use it as a context manager) to
    delete it."""

    def __init__(self, schema: Iterable[str], what: str) -> None:
        # "": a private on-disk database, created in $SQLITE_TMPDIR, $TMPDIR, /var/tmp or /tmp
        # once its pages outgrow the cache, and deleted when it is closed.
        self.db = sqlite3.connect("")
        # A batch reads a few rows by index: a page cache of 512 KiB (not SQLite's 2 MiB) is
        # enough, and is memory held for the whole derivation.
        self.db.execute("PRAGMA cache_size = -512")
        for statement in schema:
            self.db.execute(statement)
        self.what = what

    def write(self, runs: Iterable[tuple[str, Sequence[Row]]]) -> None:
        """Run each statement over its rows, in order, in one transaction."""
        try:
            with self.db:
                for statement, rows in runs:
                    self.db.executemany(statement, rows)
        except sqlite3.OperationalError as exc:  # no room, or no writable temporary folder
            raise PmsyncError(
                f"cannot keep the {self.what} in a temporary file ({exc}): set TMPDIR to a "
                "writable folder with room"
            ) from exc

    def select_in(self, query: str, values: Sequence[str], order: str = "") -> Iterator[Row]:
        """Rows of `query` (ending in "IN ") for `values`, some at a time, each statement's
        in `order` (all the rows of one value come from one statement).

        Every statement names `KEYS` values (the last one repeated): Python's sqlite3 keeps
        the last 128 statements it prepared, and a batch's count of values differs from the
        last's, so statements of every length were kept, 12 MiB of them at 150,000 tickets."""
        for start in range(0, len(values), KEYS):
            wanted = list(values[start : start + KEYS])
            wanted += wanted[-1:] * (KEYS - len(wanted))
            yield from self.db.execute(f"{query}({_MARKS}){order}", wanted)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
