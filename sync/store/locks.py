"""Named locks on a store, held across threads and processes.

"writeback:<connector>": planning and applying one connector's writes happen under it, so a
daemon's automatic apply and a person's `pmsync apply` never both decide that the same note is
missing and both post it, and the second plan sees what the first one wrote. Each connector has
its own: a long apply to Jira holds up no other connector's write-back. `pmsync apply` takes
the lock of every connector it writes to, in name order (no two holders can deadlock).

"derive": linking reads the whole store and writes the links and rollups it computed; under the
lock, a slower run cannot store results older than a faster one's.

Waiting for a lock can be cut short: `should_stop` is looked at while waiting (a daemon's
SIGTERM must not sit behind another thread's apply), and Interrupted is raised.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import sqlalchemy as sa

from pmsync.errors import ConfigError, Interrupted, Problem
from pmsync.sync.store.store import Store

_POLL = 0.1  # seconds between attempts while another holder has the lock
StopCheck = Callable[[], bool]


def lock_id(name: str) -> int:
    """A PostgreSQL advisory lock id for a lock name (stable across processes and versions)."""
    digest = hashlib.blake2b(f"pmsync:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def store_lock(store: Store, name: str, *, should_stop: StopCheck | None = None) -> Iterator[None]:
    """Hold the store's lock `name` (waiting for it) while the block runs."""
    stop = should_stop or (lambda: False)
    if store.dialect == "postgresql":
        with _pg_lock(store, name, stop):
            yield
        return
    database = store.engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database)
    safe = name.replace(":", "-").replace("/", "-")
    handle = os.open(
        path.with_name(f"{path.name}.{safe}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        _wait(lambda: _try_flock(handle), stop, name)
        yield
    finally:
        os.close(handle)


@contextmanager
def store_locks(
    store: Store, names: Sequence[str], *, should_stop: StopCheck | None = None
) -> Iterator[None]:
    """Hold several locks, taken in name order."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(store_lock(store, name, should_stop=should_stop))
        yield


@contextmanager
def _pg_lock(store: Store, name: str, stop: StopCheck) -> Iterator[None]:
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # Advisory locks are per database, stores are per schema: two pmsync stores sharing one
        # database (a schema each) must not wait on each other's locks.
        schema = connection.execute(sa.text("SELECT current_schema()")).scalar()
        if schema is None:
            raise ConfigError(
                Problem(None, "store.url", "its search_path names no schema that exists")
            )
        # The default schema keeps the bare name, so replicas of an older release agree on its id.
        ident = lock_id(name if schema == "public" else f"{schema}:{name}")

        def attempt() -> bool:
            query = sa.text("SELECT pg_try_advisory_lock(:id)")
            return bool(connection.execute(query, {"id": ident}).scalar())

        _wait(attempt, stop, name)
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": ident})


def _try_flock(handle: int) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(attempt: Callable[[], bool], stop: StopCheck, name: str) -> None:
    while not attempt():
        if stop():
            raise Interrupted(f"stop requested while waiting for the store's {name} lock")
        time.sleep(_POLL)
