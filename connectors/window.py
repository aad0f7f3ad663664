"""A moving-window counter: the requests sent in the last N seconds, and when the next may go.

The request budget keeps one per rule. It is a deque of monotonic timestamps, pruned as the
window moves: counting, taking and giving back a slot cost microseconds and start no thread
(the `limits` library's MemoryStorage started a `threading.Timer` on nearly every request to
expire its keys, about 8 ms a request). Not thread-safe: the budget holds its lock around it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class MovingWindow:
    """At most `limit` events in any `seconds`-long window."""

    def __init__(
        self, limit: int, seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a moving window needs a limit of at least 1 and a positive length")
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._stamps: deque[float] = deque()

    def count(self) -> int:
        """Events within the window that ends now."""
        self._prune(self._clock())
        return len(self._stamps)

    def wait(self, allowed: int) -> float | None:
        """None when fewer than `allowed` events are in the window (one more may go now); else
        the seconds until enough of them have left it."""
        now = self._clock()
        self._prune(now)
        excess = len(self._stamps) - allowed
        if excess < 0:
            return None
        if allowed <= 0:
            return self.seconds  # nothing may ever go; callers refuse such rules
        return self._stamps[excess] + self.seconds - now

    def hit(self) -> float:
        """Count one event now; returns its timestamp (for `unhit`)."""
        stamp = self._clock()
        self._prune(stamp)
        self._stamps.append(stamp)
        return stamp

    def unhit(self, stamp: float) -> None:
        """Forget an event counted by `hit` (a request that never reached the API)."""
        try:
            self._stamps.remove(stamp)
        except ValueError:
            return  # it has left the window already

    def _prune(self, now: float) -> None:
        cutoff = now - self.seconds
        stamps = self._stamps
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
