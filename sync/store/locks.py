"""Named locks on a store, held across threads and processes.

"writeback": planning and applying happen under it, so a daemon's automatic apply and a
person's `pmsync apply` never both decide that the same note is missing and both post it, and
the second plan sees what the first one wrote. "derive": linking reads the whole store and
writes the links and rollups it computed; under the lock, a slower run cannot store results
older than a faster one's.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from pmsync.sync.store.store import Store

_LOCK_IDS = {"writeback": 0x706D77726974, "derive": 0x706D64657269}  # "pmwrit", "pmderi"


@contextmanager
def store_lock(store: Store, name: str) -> Iterator[None]:
    """Hold the store's lock `name` (waiting for it) while the block runs."""
    if store.dialect == "postgresql":
        lock_id = _LOCK_IDS[name]
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
        return
    database = store.engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database)
    handle = os.open(
        path.with_name(f"{path.name}.{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
