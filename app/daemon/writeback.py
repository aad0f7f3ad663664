"""The hook write-back cycles plug into: plan and, when `[writeback] auto_apply`, apply.

Each cycle plans only the targets whose figures or remote values changed since the connector's
last clean write-back (`Runtime.plan_changes`): a quiet cycle derives and plans nothing.

After each read cycle of a connector, its worker calls the daemon's `WriteBack` with that
connector, in the same thread and while it still owns the connector: the writes therefore share
the connector's one HTTP session and request budget with its reads, and no other replica writes
to the same API at the same time. A connector no write-back writes to (a CRM only read, the
analytics tool) returns at once: no lock, no derivation. The lock is the connector's own, so a
long apply to Jira holds up no other connector. `should_stop` turns true on SIGTERM, reload or
lost ownership; a cycle checks it between writes and while waiting for a lock or a retry, and
returns what it has done so far.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pmsync.app.runtime import Runtime
from pmsync.connectors.base import Connector
from pmsync.errors import Interrupted, PmsyncError
from pmsync.logs import get_logger
from pmsync.sync.writeback.plan import PlannedWrite

log = get_logger("pmsync.daemon.writeback")

LOCK_WAIT_SECONDS = 30.0  # longest wait for the connector's write-back lock in one cycle


@dataclass(frozen=True)
class WriteBackReport:
    """What one write-back cycle did; exported as pmsync_writebacks_* metrics."""

    planned: int = 0
    applied: int = 0
    failed: int = 0
    writes_to: bool = False  # the connector has write-backs (else nothing was attempted)
    error: str | None = None  # the first failed write's error, when one failed


class WriteBack(Protocol):
    def __call__(
        self,
        runtime: Runtime,
        connector: Connector,
        /,
        *,
        should_stop: Callable[[], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> WriteBackReport:
        """Plan and apply the field writes due for `connector` (config, mappings and store
        come with `runtime`); `sleep` waits between attempts of a retried write."""


def no_write_back(
    runtime: Runtime,
    connector: Connector,
    *,
    should_stop: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> WriteBackReport:
    """Until write-back exists: nothing planned, nothing applied."""
    return WriteBackReport()


def auto_write_back(
    runtime: Runtime,
    connector: Connector,
    *,
    should_stop: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> WriteBackReport:
    """Plan the writes due for `connector` and apply them when the configuration says so.

    A plan that trips the mass-change guard is not applied: it waits, logged, for someone to
    run `pmsync apply --confirm`.
    """
    if not runtime.config.settings.writeback.auto_apply or not runtime.writes_to(connector.name):
        return WriteBackReport()
    with contextlib.ExitStack() as held:
        _take_lock(held, runtime, connector.name, should_stop)
        if should_stop():
            return WriteBackReport(writes_to=True)
        plan, dirty = runtime.plan_changes(connector.name, should_stop=should_stop)
        planned = len(plan.writes)
        if plan.guard:
            log.warning(
                "write_back_needs_confirmation",
                connector=connector.name,
                trips=[t.writeback for t in plan.guard],
                planned=planned,
            )
            return WriteBackReport(planned=planned, writes_to=True)
        if not plan.writes:
            runtime.done_planning(dirty)
            return WriteBackReport(writes_to=True)
        result = runtime.apply(plan, should_stop=should_stop, sleep=sleep)
        if not result.failed and len(result.applied) == planned:
            runtime.done_planning(dirty)  # else these targets are planned again next cycle
    return WriteBackReport(
        planned=planned,
        applied=len(result.applied),
        failed=len(result.failed),
        writes_to=True,
        error=_first_error(result.failed),
    )


def _take_lock(
    stack: contextlib.ExitStack, runtime: Runtime, name: str, should_stop: Callable[[], bool]
) -> None:
    """The connector's write-back lock, waited for at most LOCK_WAIT_SECONDS: a process that
    hangs holding it (paused mid-apply) must not hold up this worker's reads as well."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS

    def stop_waiting() -> bool:
        return should_stop() or time.monotonic() > deadline

    try:
        stack.enter_context(runtime.writeback_lock([name], should_stop=stop_waiting))
    except Interrupted:
        if should_stop():
            raise
        raise PmsyncError(
            f"the store's write-back lock of {name} stayed taken for {LOCK_WAIT_SECONDS:.0f} s "
            "(another process applies, or one that did hangs); tried again after the next reads"
        ) from None


def _first_error(failed: list[tuple[PlannedWrite, str]]) -> str | None:
    if not failed:
        return None
    write, error = failed[0]
    more = f" (and {len(failed) - 1} more failed writes)" if len(failed) > 1 else ""
    return f"{write.target_key}: {error}{more}"
