"""Keep part of the org's daily API allocation for its other integrations.

Salesforce reports usage on every answer (`Sforce-Limit-Info: api-usage=used/total`). The
guard remembers the latest figures and refuses, before sending, any call that would eat into
the reserve: the sync stops with QuotaExhausted, the engine marks the stream paused, and a
later cycle resumes from the stored cursor. The allocation is a rolling 24-hour window, so
figures go stale: once stopped, the first call of a later read may check again, at most once
per `recheck` interval (that one call is the only one that can touch the reserve).

It sits where the connector's request budget sits (ConnectorAdapter waits on it before every
request), so reads, sweeps and writes through any client library all pass it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable

from pmsync.connectors.budget import RequestBudget
from pmsync.errors import QuotaExhausted

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# Logins and the versions list do not count against the allocation.
_FREE = re.compile(r"/services/(oauth2/|Soap/u/|data/?$)")


def parse_limit_info(header: str) -> tuple[int, int] | None:
    """(used, total) from a Sforce-Limit-Info header, if it carries api-usage."""
    match = _USAGE.search(header)
    return (int(match.group(1)), int(match.group(2))) if match else None


class QuotaGuard(RequestBudget):
    """Refuses calls that would use the reserve; fed by every answer's Sforce-Limit-Info."""

    def __init__(
        self,
        connector: str,
        *,
        reserve_percent: float,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__([])
        self.connector = connector
        self.reserve_percent = reserve_percent
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self.used: int | None = None
        self.total: int | None = None
        self.observed_at: float | None = None
        self._probe = False
        self._guard_lock = threading.Lock()

    @property
    def reserve(self) -> int:
        return math.ceil((self.total or 0) * self.reserve_percent / 100)

    @property
    def ceiling(self) -> int | None:
        """The most calls the org may have used for pmsync to send another one."""
        return None if self.total is None else self.total - self.reserve

    def observe(self, used: int, total: int) -> None:
        with self._guard_lock:
            self.used, self.total, self.observed_at = used, total, self.clock()

    def mark_exhausted(self) -> None:
        """Salesforce answered REQUEST_LIMIT_EXCEEDED: the whole allocation is gone."""
        with self._guard_lock:
            if self.total is not None:
                self.used = self.total
            self.observed_at = self.clock()

    def begin(self) -> None:
        """A read, sweep or write starts: let one call re-check figures that have gone stale."""
        with self._guard_lock:
            stale = self.observed_at is None or (
                self.clock() - self.observed_at >= self.recheck_seconds
            )
            self._probe = stale

    def exhausted(self) -> bool:
        ceiling = self.ceiling
        return self.used is not None and ceiling is not None and self.used + 1 > ceiling

    def acquire(self, method: str, url: str) -> None:
        if _FREE.search(url.split("?", 1)[0]):
            return
        with self._guard_lock:
            probe, self._probe = self._probe, False
            if not self.exhausted() or probe:
                return
        raise self.error()

    def error(self) -> QuotaExhausted:
        return QuotaExhausted(
            f"the daily API allocation is down to its reserve (used {self.used:,} of "
            f"{self.total:,}; {self.reserve:,} kept for other integrations); "
            "the sync resumes on a later cycle",
            connector=self.connector,
        )
