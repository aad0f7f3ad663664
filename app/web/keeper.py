"""Keeps the current snapshot: rebuilt in the background when the store or the link files
change, so no page waits for a derivation (except the very first one)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pmsync.app.web.snapshot import Snapshot, build_snapshot
from pmsync.errors import ConfigError
from pmsync.logs import get_logger
from pmsync.redact import redact
from pmsync.sync.store.schema import records

if TYPE_CHECKING:
    from pmsync.app.runtime import Runtime

log = get_logger("pmsync.web")


def store_fingerprint(runtime: Runtime) -> tuple[Any, ...]:
    """Changes whenever a record is stored, changed or deleted, or a link file is edited.

    One aggregate query over the records table plus the modification times of the
    configuration, mapping and overrides files; cheap next to a derivation.
    """
    query = sa.select(
        sa.func.count(),
        sa.func.max(records.c.last_seen_at),
        sa.func.max(records.c.deleted_at),
    )
    with runtime.store.engine.connect() as connection:
        row = connection.execute(query).one()
    return (tuple(row), input_files(runtime))


def input_files(runtime: Runtime) -> tuple[tuple[str, int], ...]:
    """The files a derivation reads, with their modification times."""
    files = [runtime.config.path, *runtime.config.mapping_paths()]
    if runtime.mappings.overrides_path is not None:
        files.append(runtime.mappings.overrides_path)
    return tuple((str(path), _mtime(path)) for path in files)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def settle_memory() -> None:
    """Collect the previous snapshot now, then freeze what is alive (the new one).

    A snapshot of a large company is millions of objects; left to the cyclic garbage
    collector, its full passes would land inside page requests (a second or more at 10x the
    demo company). Frozen objects are skipped by those passes and still freed when no longer
    referenced; unfreezing first lets this collection reclaim the previous snapshot.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class SnapshotKeeper:
    """The latest snapshot and a thread that replaces it when the inputs change."""

    def __init__(
        self,
        runtime_factory: Callable[[], Runtime],
        interval: float,
        *,
        builder: Callable[[Runtime, tuple[Any, ...]], Snapshot] = build_snapshot,
    ) -> None:
        self._runtime_factory = runtime_factory
        self._interval = interval
        self._builder = builder
        self._snapshot: Snapshot | None = None
        self._runtime: Runtime | None = None
        self._loaded_files: tuple[tuple[str, int], ...] = ()
        self._error: str | None = None
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pmsync-web-data", daemon=True)

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def error(self) -> str | None:
        """Why the last rebuild failed (the previous snapshot, if any, is still served)."""
        return self._error

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        if self._runtime is not None and not self._thread.is_alive():
            self._runtime.close()
            self._runtime = None

    def refresh_soon(self) -> None:
        """Check the inputs now (after a review decision) instead of at the next interval."""
        self._wake.set()

    def refresh_now(self) -> Snapshot | None:
        """One check-and-rebuild in the calling thread (tests, benchmarks)."""
        self._refresh_once()
        return self._snapshot

    def wait_ready(self, timeout: float) -> Snapshot | None:
        self._ready.wait(timeout)
        return self._snapshot

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._refresh_once()
            self._wake.wait(self._interval)
            self._wake.clear()

    def _refresh_once(self) -> None:
        try:
            runtime = self._current_runtime()
            fingerprint = store_fingerprint(runtime)
            current = self._snapshot
            if current is not None and current.fingerprint == fingerprint:
                return
            started = time.perf_counter()
            snapshot = self._builder(runtime, fingerprint)
        except Exception as exc:  # noqa: BLE001 - the previous snapshot stays served
            self._failed(exc)
            return
        self._snapshot = snapshot
        self._error = None
        settle_memory()
        self._ready.set()
        log.info(
            "web_data_refreshed",
            seconds=round(time.perf_counter() - started, 2),
            issues=len(snapshot.issues),
            tickets=len(snapshot.world.tickets),
        )

    def _current_runtime(self) -> Runtime:
        """The loaded configuration and mappings, loaded again when one of their files changed."""
        if self._runtime is not None and input_files(self._runtime) == self._loaded_files:
            return self._runtime
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        runtime = self._runtime_factory()
        self._runtime = runtime
        self._loaded_files = input_files(runtime)
        return runtime

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, ConfigError):
            text = "; ".join(str(p) for p in exc.problems) or str(exc)
        else:
            text = f"{type(exc).__name__}: {exc}"
        self._error = redact(text)
        log.error("web_data_refresh_failed", error=self._error)
        self._ready.set()
