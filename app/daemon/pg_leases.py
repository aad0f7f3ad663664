"""Replicas on one PostgreSQL: connector ownership through session-level advisory locks.

Each replica keeps one dedicated connection (TCP keepalives on) that holds
  * a shared advisory lock on a membership key: the holders are the live replicas;
  * an exclusive advisory lock per connector it runs (`pg_try_advisory_lock`).
PostgreSQL releases a session's locks when the session ends, so when a replica dies (kill -9,
lost host) its connectors are free at once, and the others take them over at their next
`lease_interval` tick. Nothing is decided outside the database: no home-made consensus.

Work is shared by a fair share, ceil(connectors / live replicas): a replica takes connectors
while under it and hands one over (between cycles, never mid-read) while over it.

Fencing: a worker's store transactions first check, in the same database, that the lock
connection still holds its connector's lock; when it does not, the transaction fails with
LeaseLost and the page is not committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from pmsync.app.daemon.leases import LeaseLost

log = structlog.get_logger("pmsync.leases")

MEMBERSHIP = "__replicas__"
_MASK64 = (1 << 64) - 1

# (classid, objid, lock-connection pid) of the connector the current thread works for.
_fence: ContextVar[tuple[int, int, int, str] | None] = ContextVar("pmsync_fence", default=None)

_HOLDS = sa.text(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = CAST(:classid AS oid) AND objid = CAST(:objid AS oid) AND objsubid = 1"
    " AND pid = :pid AND mode = 'ExclusiveLock'"
)
_MEMBERS = sa.text(
    "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = CAST(:classid AS oid) AND objid = CAST(:objid AS oid) AND objsubid = 1"
    " AND mode = 'ShareLock'"
)


def lock_key(namespace: str, name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` within `namespace` (database.schema)."""
    digest = hashlib.blake2b(f"{namespace}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def split_key(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint key: (classid, objid) = (high half, low half), unsigned."""
    unsigned = key & _MASK64
    return unsigned >> 32, unsigned & 0xFFFFFFFF


class PostgresLeases:
    """Connector ownership for this replica, held on one dedicated connection."""

    def __init__(self, url: URL, *, replica: str, interval: float) -> None:
        self.replica = replica
        self.interval = interval
        idle = max(1, int(interval))
        self._engine = sa.create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "keepalives": 1,
                "keepalives_idle": idle,
                "keepalives_interval": idle,
                "keepalives_count": 3,
                "connect_timeout": max(2, int(interval)),
                "application_name": f"pmsync-leases-{replica}"[:63],
            },
        )
        self._lock = threading.RLock()
        self._connection: sa.Connection | None = None
        self._pid = 0
        self._namespace = ""
        self._held: dict[str, int] = {}
        self._live = 1
        self._last_handover = 0.0
        self._connect()

    # ---- connection ---------------------------------------------------------------------

    def _connect(self) -> None:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        timeout_ms = int(max(2.0, self.interval) * 1000)
        connection.execute(sa.text(f"SET statement_timeout = {timeout_ms}"))
        row = connection.execute(
            sa.text("SELECT pg_backend_pid(), current_database() || '.' || current_schema()")
        ).one()
        self._pid, self._namespace = int(row[0]), str(row[1])
        connection.execute(
            sa.text("SELECT pg_advisory_lock_shared(:key)"), {"key": self._key(MEMBERSHIP)}
        )
        self._connection = connection
        self._count_members()
        log.info("lease_connection_open", replica=self.replica, pid=self._pid, live=self._live)

    def _drop(self, error: BaseException) -> None:
        """The lock connection failed: every lease is gone with it."""
        lost = sorted(self._held)
        self._held.clear()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
        self._connection = None
        log.error(
            "lease_connection_lost", error=f"{type(error).__name__}: {error}", lost=lost or None
        )

    def _execute(self, statement: sa.TextClause, params: dict[str, Any]) -> Any:
        """Run on the lock connection; None (and every lease dropped) if it failed."""
        if self._connection is None:
            return None
        try:
            return self._connection.execute(statement, params).scalar()
        except sa.exc.DBAPIError as exc:
            self._drop(exc)
            return None

    def _key(self, name: str) -> int:
        return lock_key(self._namespace, name)

    def _count_members(self) -> None:
        classid, objid = split_key(self._key(MEMBERSHIP))
        count = self._execute(_MEMBERS, {"classid": classid, "objid": objid})
        if count is not None:
            self._live = max(1, int(count))

    # ---- leases -------------------------------------------------------------------------

    def fair_share(self, total: int) -> int:
        return max(1, math.ceil(total / max(1, self._live)))

    def try_acquire(self, name: str, total: int) -> bool:
        with self._lock:
            if name in self._held:
                return True
            if self._connection is None:
                return False
            if len(self._held) >= self.fair_share(total):
                self._count_members()  # a replica may have died since the last heartbeat
                if len(self._held) >= self.fair_share(total):
                    return False
            key = self._key(name)
            taken = self._execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            if not taken:
                return False
            self._held[name] = key
            return True

    def holds(self, name: str) -> bool:
        return name in self._held

    def release(self, name: str) -> None:
        with self._lock:
            key = self._held.pop(name, None)
            if key is not None:
                self._execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    def should_release(self, name: str, total: int) -> bool:
        """Over the fair share: hand over one connector per interval, so others can catch it."""
        with self._lock:
            if name not in self._held or len(self._held) <= self.fair_share(total):
                return False
            now = time.monotonic()
            if now - self._last_handover < self.interval:
                return False
            self._last_handover = now
            return True

    def heartbeat(self) -> None:
        with self._lock:
            if self._connection is None:
                try:
                    self._connect()
                except sa.exc.DBAPIError as exc:
                    log.warning("lease_reconnect_failed", error=type(exc).__name__)
                return
            self._count_members()

    def live_replicas(self) -> int:
        return self._live

    @contextlib.contextmanager
    def fenced(self, name: str) -> Iterator[None]:
        key = self._held.get(name)
        if key is None:
            raise LeaseLost(f"connector '{name}' is not owned by this replica")
        classid, objid = split_key(key)
        token = _fence.set((classid, objid, self._pid, name))
        try:
            yield
        finally:
            _fence.reset(token)

    def guard_store(self, engine: sa.Engine) -> None:
        if not sa.event.contains(engine, "begin", self._check_fence):
            sa.event.listen(engine, "begin", self._check_fence)

    def _check_fence(self, connection: sa.Connection) -> None:
        """Store `begin` hook: a fenced thread may only write while its lock is held."""
        fence = _fence.get()
        if fence is None:
            return
        classid, objid, pid, name = fence
        held = connection.execute(_HOLDS, {"classid": classid, "objid": objid, "pid": pid}).scalar()
        if not held:
            raise LeaseLost(f"connector '{name}' is no longer owned by this replica")

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
            self._connection = None
            self._engine.dispose()
