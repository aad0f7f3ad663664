"""Whether a store is there, found without creating one.

Only the commands that write (`sync`, `run`, `apply`, `demo`) create a store. A read-only
command pointed at a mistyped SQLite path must not leave directories and an empty store behind,
and one pointed at a shared PostgreSQL database must not put pmsync's tables into its schema.
A store is there when pmsync's migration table (`alembic_version`) is: the SQLite file is read
in read-only mode, PostgreSQL is asked in the schema the URL's search_path makes current.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

VERSION_TABLE = "alembic_version"


class StoreAbsent(Exception):
    """No store at the URL; the message says what was found instead (no file, no tables)."""


class StoreUnreachable(Exception):
    """The database could not be asked; the message is the driver's reason."""


def check_store_present(url: str) -> None:
    """Return when a store is at `url`; StoreAbsent or StoreUnreachable say why not."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database)
    else:
        _check_server(url)


def shown_url(url: str) -> str:
    """The URL as it may be printed: a password in it is masked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(a URL that does not parse)"


def _check_sqlite(database: str | None) -> None:
    if not database or database == ":memory:":
        raise StoreAbsent("an in-memory database holds no store between commands")
    path = Path(database)
    if not path.is_file():
        raise StoreAbsent("no such file" if not path.exists() else "not a file")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise StoreUnreachable(
            f"the file is not a SQLite database pmsync can read ({exc})"
        ) from None
    if row is None:
        raise StoreAbsent("the file holds no pmsync tables")


def _check_server(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(sa.text("SELECT current_schema()")).scalar()
            found = sa.inspect(connection).has_table(VERSION_TABLE, schema=schema)
    except sa.exc.DBAPIError as exc:
        raise StoreUnreachable(str(exc.orig).strip().splitlines()[0]) from None
    finally:
        engine.dispose()
    if not found:
        where = f"schema {schema}" if schema else "the database (no schema is current)"
        raise StoreAbsent(f"pmsync's tables are absent (no {VERSION_TABLE} table in {where})")
