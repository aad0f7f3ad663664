"""Who runs a connector: one process at a time, decided by the store's database.

The unit of ownership is a connector instance, with all its streams (and, later, its write-backs):
its API budget then lives in one process, so replicas never add up to more than the API allows.
On PostgreSQL (`pg_leases.PostgresLeases`) replicas share the connectors through leases that
expire unless renewed (a paused replica loses them) and fence a stale holder's commits;
on SQLite a single daemon runs, which `SingleProcessLease` enforces with a lock file next to the
database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

from pmsync.errors import Interrupted, StoreBusy

CLI_LEASE_INTERVAL = 10.0  # seconds: `pmsync sync` renews its leases this often (x 1.5 to live)


class LeaseLost(Interrupted):
    """This process no longer owns the connector; the transaction in hand is not committed."""


class Leases(Protocol):
    """Ownership of connectors by this process."""

    replica: str

    def try_acquire(self, name: str, total: int) -> bool:
        """Take `name` if nobody holds it and this process is under its fair share."""

    def holds(self, name: str) -> bool:
        """True while this process owns `name`: a lease not renewed in time is no longer held."""

    def release(self, name: str) -> None: ...

    def should_release(self, name: str, total: int) -> bool:
        """True when this process holds more than its share and may hand `name` over now."""

    def heartbeat(self) -> None:
        """Renew the leases (reconnecting if needed) and count live replicas; a lease kind that
        renews from a thread of its own does nothing here."""

    def live_replicas(self) -> int: ...

    def fenced(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Within: store transactions of this thread fail with LeaseLost once `name` is lost."""

    def guard_store(self, engine: sa.Engine) -> None:
        """Make `engine`'s transactions check the fence of the thread that opens them."""

    def close(self) -> None: ...


class SingleProcessLease:
    """SQLite: one daemon per database file, held by an exclusive lock on `<db>.lock`."""

    def __init__(self, database: Path | None, replica: str) -> None:
        self.replica = replica
        self._held: set[str] = set()
        self._file: int | None = None
        if database is not None:
            self._file = _lock_file(database.with_name(database.name + ".lock"), database)

    def try_acquire(self, name: str, total: int) -> bool:
        self._held.add(name)
        return True

    def holds(self, name: str) -> bool:
        return name in self._held

    def release(self, name: str) -> None:
        self._held.discard(name)

    def should_release(self, name: str, total: int) -> bool:
        return False

    def heartbeat(self) -> None:
        return None

    def live_replicas(self) -> int:
        return 1

    def fenced(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def guard_store(self, engine: sa.Engine) -> None:
        return None

    def close(self) -> None:
        self._held.clear()
        if self._file is not None:
            os.close(self._file)
            self._file = None


def _lock_file(path: Path, database: Path) -> int:
    """Take the daemon lock for `database`, or explain who holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(handle)
        raise StoreBusy(
            f"another pmsync process (pid {holder}) already syncs into {database}; a SQLite "
            "store takes one at a time: stop it, or use PostgreSQL to run several replicas"
        ) from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    return handle


def make_leases(engine: sa.Engine, replica: str, interval: float) -> Leases:
    """The lease kind the store's database supports."""
    if engine.dialect.name == "postgresql":
        from pmsync.app.daemon.pg_leases import PostgresLeases

        return PostgresLeases(engine.url, replica=replica, interval=interval)
    database = engine.url.database
    path = Path(database) if database and database != ":memory:" else None
    return SingleProcessLease(path, replica)


@contextlib.contextmanager
def cli_ownership(engine: sa.Engine, connectors: Sequence[str]) -> Iterator[set[str]]:
    """For `pmsync sync`: the connectors no daemon owns right now, held while the sync runs.

    SQLite: the daemon's lock file (StoreBusy naming the holder when a daemon runs).
    PostgreSQL: each connector's lease, tried without waiting (and renewed while the sync
    runs); connectors a daemon replica owns are left out (the daemon syncs them).
    """
    if engine.dialect.name != "postgresql":
        database = engine.url.database
        handle = None
        if database and database != ":memory:":
            path = Path(database)
            handle = _lock_file(path.with_name(path.name + ".lock"), path)
        try:
            yield set(connectors)
        finally:
            if handle is not None:
                os.close(handle)
        return
    import uuid

    from pmsync.app.daemon.pg_leases import PostgresLeases

    leases = PostgresLeases(
        engine.url,
        replica=f"sync-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        interval=CLI_LEASE_INTERVAL,
        member=False,
    )
    try:
        yield {name for name in connectors if leases.try_take(name)}
    finally:
        leases.close()
