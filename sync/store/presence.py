"""Whether a store is there, and current, found without creating one.

Only the commands that write (`sync`, `run`, `apply`, `demo`) create a store. A read-only
command pointed at a mistyped SQLite path must not leave directories and an empty store behind,
and one pointed at a shared PostgreSQL database must not put pmsync's tables into its schema.
A store is there when pmsync's migration table (`alembic_version`) is: the SQLite file is read
in read-only mode, PostgreSQL is asked in the schema the URL's search_path makes current.

SQLite and psycopg URLs are read here as SQLAlchemy reads them, and the store asked through
sqlite3 or psycopg, without SQLAlchemy (about 0.2 s of CPU to import, most of `pmsync
status`'s start-up); any other URL (several hosts, another driver) is left to SQLAlchemy.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote

from pmsync.logs import get_logger
from pmsync.private import open_to_others, private_directories, private_file

VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"
# A SQLite URL with nothing but a path (SQLAlchemy percent-decodes it): no query, no host.
_PLAIN_SQLITE = re.compile(r"sqlite(?:\+pysqlite)?:///(?P<database>[^?]+)")
# SQLAlchemy's own URL pattern (`sqlalchemy.engine.url._parse_url`): both read a URL alike.
_URL = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/\?]+)\]|(?P<ipv4host>[^/:\?]+))?(?::(?P<port>[^/\?]*))?)?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)
# pmsync's migration table in the schema the search_path makes current (as SQLAlchemy's
# `has_table` asks: tables, partitions, foreign tables, views, materialized views).
_VERSION_TABLE_IN_SCHEMA = (
    "SELECT current_schema(), EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relname = '{VERSION_TABLE}' AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "AND n.nspname = current_schema())"
)
_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.M)
BUSY_TIMEOUT_S = 30  # as the store's connections wait for a writer (store._sqlite_pragmas)

log = get_logger("pmsync.store")


class StoreAbsent(Exception):
    """No store at the URL; the message says what was found instead (no file, no tables)."""


class StoreUnreachable(Exception):
    """The database could not be asked; the message is the driver's reason."""


def plain_sqlite_database(url: str) -> str | None:
    """The database a SQLite URL with only a path names, as SQLAlchemy reads it; None for any
    other URL (SQLAlchemy reads those)."""
    match = _PLAIN_SQLITE.fullmatch(url)
    return None if match is None else unquote(match.group("database"))


def psycopg_arguments(url: str) -> dict[str, Any] | None:
    """What SQLAlchemy passes `psycopg.connect` for a `postgresql+psycopg` URL: user,
    password, host, port, database and the query's parameters; None for any other URL, and for
    one only SQLAlchemy reads (several hosts, a repeated parameter, a port that is no number)."""
    match = _URL.match(url)
    if match is None or match["name"] != "postgresql+psycopg":
        return None
    port, query = match["port"] or "", parse_qsl(match["query"] or "")
    names = [name for name, _value in query]
    if port and not port.isdecimal():
        return None
    if len(set(names)) < len(names) or {"host", "port"} & {*names}:
        return None
    found = {
        "host": match["ipv4host"] or match["ipv6host"],
        "port": int(port or 0),
        "user": unquote(match["username"] or ""),
        "password": unquote(match["password"] or ""),
        "dbname": unquote(match["database"] or ""),
    }
    return {name: value for name, value in found.items() if value} | dict(query)


def readable_without_sqlalchemy(url: str) -> bool:
    """Whether this module reads `url` itself: a SQLite file's, or a PostgreSQL one whose
    driver (psycopg) is installed."""
    if plain_sqlite_database(url) is not None:
        return True
    if psycopg_arguments(url) is None:
        return False
    try:
        import psycopg  # noqa: F401 - what SQLAlchemy would import for this URL
    except ImportError:
        return False
    return True


def check_store_present(url: str) -> None:
    """Return when a store is at `url`; StoreAbsent or StoreUnreachable say why not."""
    database = plain_sqlite_database(url)
    if database is not None:
        _check_sqlite(database)
        return
    arguments = psycopg_arguments(url)
    if arguments is not None:
        _check_psycopg(arguments)
        return
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database)
    else:
        _check_server(url)


def store_place(url: str) -> str:
    """Where the store at `url` is, as a message may print it: a SQLite database's path, or
    the URL with any password in it masked."""
    database = plain_sqlite_database(url)
    if database is not None:
        return database
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "(a URL that does not parse)"
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.render_as_string(hide_password=True)


def head_revision() -> str | None:
    """The newest migration's revision, read from the migration files' `revision` and
    `down_revision` lines (the one revision no other names as its parent), so that checking a
    store needs no Alembic. A layout this cannot read gives None: Alembic then decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for match in _REVISION.finditer(path.read_text(encoding="utf-8")):
            value = match.group(2) or match.group(3)
            if value:
                (parents if match.group(1) else revisions).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_store_connection(url: str) -> Any | None:
    """A connection of the driver itself (sqlite3, psycopg) to the store at `url` when it is
    at the newest revision; None when a `Store` must open it (to upgrade it first, or for a URL
    only SQLAlchemy reads). The store is there: `check_store_present` said so."""
    database = plain_sqlite_database(url)
    if database is not None and database != ":memory:":
        return _current_sqlite(Path(database))
    arguments = psycopg_arguments(url)
    return None if arguments is None else _current_psycopg(arguments)


def _current_sqlite(path: Path) -> sqlite3.Connection | None:
    try:  # mode=rw: never creates a file (a `Store` creates a store, 0600)
        opened = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error:
        return None  # a `Store` says why it cannot open the store, as before
    connection: sqlite3.Connection | None = _if_current(opened, sqlite3)
    if connection is not None:
        private_sqlite_file(path)  # as a `Store` does: warns if others may read it
    return connection


def _current_psycopg(arguments: dict[str, Any]) -> Any | None:
    import psycopg

    try:
        return _if_current(psycopg.connect(**arguments), psycopg)
    except psycopg.Error:
        return None  # a `Store` says why it cannot open the store, as before


def _if_current(connection: Any, driver: ModuleType) -> Any | None:
    """`connection` when its store is at the newest revision; else None (it is closed)."""
    try:
        row = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except driver.Error:
        row = None
    if row is not None and row[0] == head_revision():
        return connection
    connection.close()
    return None


def private_sqlite_file(path: Path) -> None:
    """Create the store file 0600 (in 0700 directories) before SQLite does it 0644: SQLite
    gives its -wal, -shm and -journal files the database file's mode, so they are 0600 too.
    An existing store others may read is left as it is, and logged."""
    private_directories(path.parent)
    if not private_file(path) and open_to_others(path):
        log.warning(
            "store_open_to_others",
            database=str(path),
            mode=oct(path.stat().st_mode & 0o777),
            hint=f"it holds customer data: chmod 600 {path}*",
        )


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


def _check_psycopg(arguments: dict[str, Any]) -> None:
    import psycopg

    try:
        with psycopg.connect(**arguments) as connection:
            schema, found = connection.execute(_VERSION_TABLE_IN_SCHEMA).fetchone() or (None, False)
    except psycopg.Error as exc:
        raise StoreUnreachable(str(exc).strip().splitlines()[0]) from None
    _absent_unless(bool(found), schema)


def _absent_unless(found: bool, schema: str | None) -> None:
    if not found:
        where = f"schema {schema}" if schema else "the database (no schema is current)"
        raise StoreAbsent(f"pmsync's tables are absent (no {VERSION_TABLE} table in {where})")


def _check_server(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(sa.text("SELECT current_schema()")).scalar()
            found = sa.inspect(connection).has_table(VERSION_TABLE, schema=schema)
    except sa.exc.DBAPIError as exc:
        raise StoreUnreachable(str(exc.orig).strip().splitlines()[0]) from None
    finally:
        engine.dispose()
    _absent_unless(found, schema)
