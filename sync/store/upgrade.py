"""Schema upgrades, in this process or in a child process of their own.

Alembic (with Mako and the migration scripts it loads) is about 9 MiB of a process's memory,
kept for the process's whole life, for an upgrade that runs once, when the store opens. The
commands that keep running (`sync`, `run`, `apply`, `demo`) therefore upgrade the store in a
child: `python -m pmsync.sync.store.upgrade`, which reads the store URL and the log settings on
its stdin, never from its command line (a URL may hold a password, and `ps` shows every
process's arguments to every user). The child does what `upgrade` does in process (the SQLite
backup first, PostgreSQL's advisory lock serialising replicas), writes its log lines to the
same stderr, and hands a ConfigError's problems back as JSON on its stdout, so that the parent
raises the ConfigError the in-process path would have raised. Tests and library use
(`Store(url)`) stay in process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import astuple
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pmsync.errors import ConfigError, PmsyncError, Problem
from pmsync.sync.store.presence import MIGRATIONS
from pmsync.sync.store.store import create_store_engine

MODULE = "pmsync.sync.store.upgrade"
_MIGRATION_LOCK_ID = 0x706D73796E63  # "pmsync": serialises migrations between replicas
_CONFIG_EXIT = 78  # the child found a configuration problem: its problems are on stdout


class UpgradeFailed(PmsyncError):
    """The child process upgrading the store failed other than with a ConfigError (its
    traceback is on stderr, above)."""


def upgrade(engine: Engine) -> None:
    """Bring the schema at `engine` to the newest revision (a SQLite file is copied first, see
    `backup.py`); replicas take turns on PostgreSQL. A store that cannot be opened, or whose
    backup fails, is a ConfigError on `store.url`."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from pmsync.sync.store.backup import backup_before_upgrade

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        backup_before_upgrade(engine, config)
        with (
            engine.connect().execution_options(pmsync_write=True) as connection,
            connection.begin(),
        ):
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise ConfigError(
            Problem(None, "store.url", f"cannot open the store: {exc.orig}")
        ) from None


def upgrade_in_child(url: str) -> None:
    """`upgrade` the store at `url` in a child process, so that this one never imports Alembic;
    its ConfigError is raised here as it was raised there."""
    from pmsync.logs import logging_settings

    level, fmt = logging_settings()
    request = json.dumps({"url": url, "log_level": level, "log_format": fmt})
    result = subprocess.run(  # noqa: S603 - our interpreter, our module, no shell
        [sys.executable, "-m", MODULE],
        input=request,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return
    if result.returncode == _CONFIG_EXIT:
        raise ConfigError(_problems(result.stdout))
    raise UpgradeFailed(
        f"upgrading the store's schema failed in its child process (exit status "
        f"{result.returncode}; its error is above)"
    )


def _problems(output: str) -> list[Problem]:
    """The problems the child wrote as its last line of output."""
    lines = output.strip().splitlines()
    rows: list[Any] = json.loads(lines[-1]) if lines else []
    return [Problem(file, path, message) for file, path, message in rows]


def main() -> int:
    """The child: read the request on stdin, upgrade, report a ConfigError on stdout."""
    from pmsync.logs import configure_logging

    request = json.loads(sys.stdin.read())
    configure_logging(request["log_level"], request["log_format"])
    try:
        # The parent created the store file (private) and checked its mode already.
        engine = create_store_engine(request["url"], prepare_file=False)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    except ConfigError as exc:
        problems = exc.problems
    except OSError as exc:  # as the runtime words it in process (`Runtime._open_store`)
        reason = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        problems = [Problem(None, "store.url", f"cannot create the store ({reason})")]
    else:
        return 0
    print(json.dumps([astuple(problem) for problem in problems]), flush=True)
    return _CONFIG_EXIT


if __name__ == "__main__":
    sys.exit(main())
