"""The hook write-back cycles plug into: plan and, when `[writeback] auto_apply`, apply.

After each read cycle of a connector, its worker calls the daemon's `WriteBack` with that
connector, in the same thread and while it still owns the connector: the writes therefore share
the connector's one HTTP session and request budget with its reads, and no other replica writes
to the same API at the same time. `should_stop` turns true on SIGTERM, reload or lost ownership;
a cycle checks it between batches and returns what it has done so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from pmsync.app.runtime import Runtime
from pmsync.connectors.base import Connector

log = structlog.get_logger("pmsync.daemon.writeback")


@dataclass(frozen=True)
class WriteBackReport:
    """What one write-back cycle did; exported as pmsync_writebacks_* metrics."""

    planned: int = 0
    applied: int = 0
    failed: int = 0


class WriteBack(Protocol):
    def __call__(
        self, runtime: Runtime, connector: Connector, *, should_stop: Callable[[], bool]
    ) -> WriteBackReport:
        """Plan and apply the field writes due for `connector` (config, mappings and store
        come with `runtime`)."""


def no_write_back(
    runtime: Runtime, connector: Connector, *, should_stop: Callable[[], bool]
) -> WriteBackReport:
    """Until write-back exists: nothing planned, nothing applied."""
    return WriteBackReport()


def auto_write_back(
    runtime: Runtime, connector: Connector, *, should_stop: Callable[[], bool]
) -> WriteBackReport:
    """Plan the writes due for `connector` and apply them when the configuration says so.

    A plan that trips the mass-change guard is not applied: it waits, logged, for someone to
    run `pmsync apply --confirm`.
    """
    if not runtime.config.settings.writeback.auto_apply:
        return WriteBackReport()
    with runtime.writeback_lock():
        plan = runtime.plan(only_connector=connector.name)
        planned = len(plan.writes)
        if plan.guard:
            log.warning(
                "write_back_needs_confirmation",
                connector=connector.name,
                trips=[t.writeback for t in plan.guard],
                planned=planned,
            )
            return WriteBackReport(planned=planned)
        if not plan.writes:
            return WriteBackReport()
        result = runtime.apply(plan, should_stop=should_stop)
    return WriteBackReport(planned=planned, applied=len(result.applied), failed=len(result.failed))
