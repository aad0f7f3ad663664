"""Replicas on one PostgreSQL: connector ownership through leases that expire.

A lease is a `connector_leases` row: holder, expiry by the database's clock (`clock_timestamp()`)
and an epoch that every takeover increments. A replica renews its leases and its
`daemon_replicas` row every quarter `lease_interval`, from a thread of its own on a dedicated
connection; a lease lives `LEASE_FACTOR` x `lease_interval` past its last renewal.

Why not session advisory locks (as before): a paused replica (SIGSTOP, a VM pause, a long GC, a
half-open network) keeps its TCP session and with it its locks, so its connectors went unread
for as long as it stayed paused. A lease instead expires:
  * the holder stops working on a connector once its own last renewal is older than the lease
    (counted on its monotonic clock from before the renewal was sent, so it gives up first);
  * others take a lease once it expired, or at once when the holder's lease session is gone
    (a kill -9: `pg_stat_activity` no longer lists it), trying every 0.2-0.4 x `lease_interval`:
    a paused holder's connectors move within 2 x `lease_interval` of its last renewal;
  * fencing: a worker's store commits check, in the same transaction and as its last statement,
    that the lease row still names this replica with the epoch its cycle started under (taking
    a KEY SHARE row lock a takeover waits for); a woken stale holder's commit finds the row
    changed and rolls back with LeaseLost. A write transaction under a lease is also ended by
    the server when it sits idle longer than the lease (a holder paused mid-transaction would
    otherwise keep the row locks a successor's commits need).

Work is shared by a fair share, ceil(connectors / live replicas): a replica takes connectors
while under it and hands one over (between cycles, never mid-read) while over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from pmsync.app.daemon.leases import LeaseLost
from pmsync.logs import get_logger

log = get_logger("pmsync.leases")

LEASE_FACTOR = 1.5  # a lease lives this many lease intervals past its last renewal
RENEWALS_PER_INTERVAL = 4
_MASK64 = (1 << 64) - 1
_RETRY_LATER = frozenset({"55P03", "57014", "40001", "40P01"})  # lock/statement timeout etc.


@dataclass(frozen=True)
class _Fence:
    name: str
    holder: str
    epoch: int
    idle_ms: int


# The connector (and lease epoch) the current thread works for; None outside a worker cycle.
_fence: ContextVar[_Fence | None] = ContextVar("pmsync_fence", default=None)

_ENSURE_ROW = sa.text(
    "INSERT INTO connector_leases (connector, holder, holder_pid, epoch, expires_at)"
    " VALUES (:name, '', NULL, 0, to_timestamp(0)) ON CONFLICT (connector) DO NOTHING"
)
_TAKE = sa.text(
    "UPDATE connector_leases SET holder = :me, holder_pid = :pid, epoch = epoch + 1,"
    " expires_at = clock_timestamp() + make_interval(secs => :ttl)"
    " WHERE connector = (SELECT l.connector FROM connector_leases l WHERE l.connector = :name"
    "   AND (l.expires_at <= clock_timestamp() OR l.holder = :me OR l.holder_pid IS NULL"
    "        OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.holder_pid))"
    "   FOR UPDATE SKIP LOCKED)"
    " RETURNING epoch"
)
_RENEW = sa.text(
    "UPDATE connector_leases SET expires_at = clock_timestamp() + make_interval(secs => :ttl)"
    " WHERE connector = :name AND holder = :me AND epoch = :epoch RETURNING 1"
)
_RELEASE = sa.text(
    "UPDATE connector_leases SET expires_at = to_timestamp(0)"
    " WHERE connector = :name AND holder = :me AND epoch = :epoch"
)
_JOIN = sa.text(
    "INSERT INTO daemon_replicas (replica, pid, expires_at)"
    " VALUES (:me, :pid, clock_timestamp() + make_interval(secs => :ttl))"
    " ON CONFLICT (replica) DO UPDATE SET pid = EXCLUDED.pid, expires_at = EXCLUDED.expires_at"
)
_MEMBERS = sa.text(
    "SELECT count(*) FROM daemon_replicas r WHERE r.expires_at > clock_timestamp()"
    " AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.pid)"
)
_FORGET = sa.text(
    "DELETE FROM daemon_replicas WHERE replica = :me"
    " OR expires_at < clock_timestamp() - interval '1 day'"
)
_FENCE_CHECK = (
    "SELECT 1 FROM connector_leases WHERE connector = %s AND holder = %s AND epoch = %s"
    " AND expires_at > clock_timestamp() FOR KEY SHARE"
)


def lock_key(namespace: str, name: str) -> int:
    """A signed 64-bit key for `name` within `namespace` (database.schema); kept for tools."""
    digest = hashlib.blake2b(f"{namespace}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def split_key(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint key: (classid, objid) = (high half, low half), unsigned."""
    unsigned = key & _MASK64
    return unsigned >> 32, unsigned & 0xFFFFFFFF


class PostgresLeases:
    """Connector leases for this replica, renewed on one dedicated connection.

    `member`: counted among the live replicas (a daemon); `pmsync sync` takes leases without.
    `background`: renew from a thread of its own; otherwise `heartbeat()` renews (tests).
    """

    def __init__(
        self,
        url: URL,
        *,
        replica: str,
        interval: float,
        member: bool = True,
        background: bool = True,
    ) -> None:
        self.replica = replica
        self.interval = interval
        self.ttl = interval * LEASE_FACTOR
        self.member = member
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
        self._held: dict[str, int] = {}  # connector -> epoch
        self._valid_until: dict[str, float] = {}  # connector -> monotonic deadline
        self._live = 1
        self._last_handover = 0.0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._connect()
        if background:
            self._thread = threading.Thread(
                target=self._renew_forever, name=f"pmsync-leases-{replica}", daemon=True
            )
            self._thread.start()

    # ---- connection ---------------------------------------------------------------------

    def _connect(self) -> None:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        timeout_ms = int(max(0.5, self.interval / 2) * 1000)
        connection.execute(sa.text(f"SET statement_timeout = {timeout_ms}"))
        connection.execute(sa.text(f"SET lock_timeout = {timeout_ms}"))
        self._pid = int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        self._connection = connection
        self._join()
        say = log.info if self.member else log.debug  # `pmsync sync` prints no log lines
        say("lease_connection_open", replica=self.replica, pid=self._pid, live=self._live)

    def _drop(self, error: BaseException) -> None:
        """The lease connection failed: this replica no longer knows its leases hold."""
        lost = sorted(self._held)
        self._held.clear()
        self._valid_until.clear()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
        self._connection = None
        log.error(
            "lease_connection_lost", error=f"{type(error).__name__}: {error}", lost=lost or None
        )

    def _rows(self, statement: sa.TextClause, params: dict[str, Any]) -> list[Any] | None:
        """Run on the lease connection: its rows, or None when it failed (a timeout: try again
        later; a broken connection: every lease dropped)."""
        if self._connection is None:
            return None
        try:
            result = self._connection.execute(statement, params)
            return list(result.all()) if result.returns_rows else []
        except sa.exc.DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code in _RETRY_LATER and not exc.connection_invalidated:
                log.warning("lease_statement_timeout", error=type(exc.orig).__name__)
                return None
            self._drop(exc)
            return None

    def _connected(self) -> bool:
        return self._connection is not None

    def _join(self) -> None:
        if self.member:
            self._rows(_JOIN, {"me": self.replica, "pid": self._pid, "ttl": self.ttl})
        self._count_members()

    def _count_members(self) -> None:
        if not self.member:
            return
        rows = self._rows(_MEMBERS, {})
        if rows:
            self._live = max(1, int(rows[0][0]))

    # ---- leases -------------------------------------------------------------------------

    def fair_share(self, total: int) -> int:
        return max(1, math.ceil(total / max(1, self._live)))

    def try_acquire(self, name: str, total: int) -> bool:
        """Take `name` when its lease is free and this replica is under its fair share."""
        with self._lock:
            if self.holds(name):
                return True
            if self._connection is None:
                return False
            mine = sum(1 for held in self._held if held != name)
            if mine >= self.fair_share(total):
                self._count_members()  # a replica may have gone since the last renewal
                if mine >= self.fair_share(total):
                    return False
            return self.try_take(name)

    def try_take(self, name: str) -> bool:
        """Take `name` when its lease is free, whatever the share (`pmsync sync`)."""
        with self._lock:
            if self.holds(name):
                return True
            started = time.monotonic()
            if self._rows(_ENSURE_ROW, {"name": name}) is None:
                return False
            params = {"name": name, "me": self.replica, "pid": self._pid, "ttl": self.ttl}
            rows = self._rows(_TAKE, params)
            if not rows:
                self._held.pop(name, None)
                return False
            self._held[name] = int(rows[0][0])
            self._valid_until[name] = started + self.ttl
            return True

    def holds(self, name: str) -> bool:
        """True while the lease was renewed within the lease time, by this process's clock."""
        until = self._valid_until.get(name)
        return until is not None and name in self._held and time.monotonic() < until

    def epoch(self, name: str) -> int | None:
        return self._held.get(name)

    def release(self, name: str) -> None:
        with self._lock:
            epoch = self._held.pop(name, None)
            self._valid_until.pop(name, None)
            if epoch is not None:
                self._rows(_RELEASE, {"name": name, "me": self.replica, "epoch": epoch})

    def should_release(self, name: str, total: int) -> bool:
        """Over the fair share: hand over one connector per interval, so others can catch it."""
        with self._lock:
            if not self.holds(name) or len(self._held) <= self.fair_share(total):
                return False
            now = time.monotonic()
            if now - self._last_handover < self.interval:
                return False
            self._last_handover = now
            return True

    def heartbeat(self) -> None:
        """Renew now, unless a thread of this object does it."""
        if self._thread is None:
            self.renew()

    def renew(self) -> None:
        """Renew every lease held (those taken over meanwhile are lost) and the membership."""
        with self._lock:
            if self._connection is None:
                try:
                    self._connect()
                except sa.exc.DBAPIError as exc:
                    log.warning("lease_reconnect_failed", error=type(exc).__name__)
                return
            for name, epoch in list(self._held.items()):
                started = time.monotonic()
                params = {"name": name, "me": self.replica, "epoch": epoch, "ttl": self.ttl}
                rows = self._rows(_RENEW, params)
                if not self._connected():
                    return  # dropped: every lease with it
                if rows is None:
                    continue  # a timeout: still held until its deadline, tried again soon
                if rows:
                    self._valid_until[name] = started + self.ttl
                else:
                    self._held.pop(name, None)
                    self._valid_until.pop(name, None)
                    log.warning("lease_taken_over", lease=name, epoch=epoch)
            self._join()

    def _renew_forever(self) -> None:
        period = self.interval / RENEWALS_PER_INTERVAL
        while not self._closed.wait(period):
            try:
                self.renew()
            except Exception:  # the thread must outlive any one failure
                log.exception("lease_renewal_error")

    def live_replicas(self) -> int:
        return self._live

    # ---- fencing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def fenced(self, name: str) -> Iterator[None]:
        epoch = self._held.get(name)
        if epoch is None or not self.holds(name):
            raise LeaseLost(f"connector '{name}' is not owned by this replica")
        idle_ms = max(1000, int(self.ttl * 1000))
        token = _fence.set(_Fence(name, self.replica, epoch, idle_ms))
        try:
            yield
        finally:
            _fence.reset(token)

    def guard_store(self, engine: sa.Engine) -> None:
        if not sa.event.contains(engine, "begin", _bound_idle):
            sa.event.listen(engine, "begin", _bound_idle)
        if not sa.event.contains(engine, "commit", _check_fence):
            sa.event.listen(engine, "commit", _check_fence)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.interval))
        with self._lock:
            for name in list(self._held):
                self.release(name)
            if self.member and self._connection is not None:
                self._rows(_FORGET, {"me": self.replica})
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
            self._connection = None
            self._engine.dispose()


def _autocommit(connection: sa.Connection) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _bound_idle(connection: sa.Connection) -> None:
    """Store `begin` hook: a transaction under a lease may not sit idle longer than the lease."""
    fence = _fence.get()
    if fence is None or _autocommit(connection):
        return
    if not connection.get_execution_options().get("pmsync_write"):
        return  # a read holds no row lock a successor could wait for
    connection.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {fence.idle_ms}")


def _check_fence(connection: sa.Connection) -> None:
    """Store `commit` hook: commit only while the lease still names this replica and epoch.

    Runs as the transaction's last statement (on the driver's cursor: the transaction is being
    committed); the row lock it takes keeps a takeover waiting until the commit is done.
    """
    fence = _fence.get()
    if fence is None or _autocommit(connection):
        return
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(_FENCE_CHECK, (fence.name, fence.holder, fence.epoch))
        held = cursor.fetchone() is not None
    finally:
        cursor.close()
    if not held:
        raise LeaseLost(f"connector '{fence.name}' is no longer owned by this replica")
