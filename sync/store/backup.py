"""A copy of a SQLite store before its schema is upgraded.

Migrations run when the store opens (the daemon's start after an upgrade). On SQLite the file
is the whole installation, so a pending upgrade first copies it, through SQLite's online backup
API (consistent even while another process reads it), next to the original:
`pmsync.db.before-0002-20261122T101500Z`. PostgreSQL has its own backup tools; nothing is done
there.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pmsync.errors import ConfigError, Problem
from pmsync.logs import get_logger
from pmsync.private import private_file

log = get_logger("pmsync.store")


def pending_upgrade(connection: sa.Connection, config: AlembicConfig) -> tuple[str, str] | None:
    """(current, head) when a store that has a schema is behind the newest revision."""
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(config).get_current_head()
    if current is None or head is None or current == head:
        return None
    return current, head


def backup_sqlite(database: Path, head: str, *, now: datetime | None = None) -> Path:
    """Copy `database` to `<name>.before-<head>-<UTC time>` and return the copy's path.

    The copy is created 0600 before SQLite writes a byte into it (it holds what the store
    holds), whatever the umask and the original's mode.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = database.with_name(f"{database.name}.before-{head}-{stamp}")
    private_file(target)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
    finally:
        source.close()
    target.chmod(0o600)
    return target


def backup_before_upgrade(engine: sa.Engine, config: AlembicConfig) -> Path | None:
    """Back up a SQLite store file whose schema is about to be upgraded; None if not needed."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with engine.connect() as connection:
        pending = pending_upgrade(connection, config)
    if pending is None:
        return None
    current, head = pending
    try:
        copy = backup_sqlite(path, head)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            Problem(
                None,
                "store.url",
                f"the store {path} must be upgraded ({current} -> {head}) but its backup "
                f"failed ({exc}); free space or fix permissions next to it, then start again",
            )
        ) from None
    log.warning("store_backed_up", database=str(path), backup=str(copy), current=current, to=head)
    return copy
