"""When each stream runs next: its poll interval after a success, exponential back-off after a
failure, both with jitter so streams and replicas spread their calls.

Times are monotonic seconds inside the process; `restore` turns the `next_attempt_at` stored by a
previous process (or another replica) back into one, so a back-off survives restarts and
takeovers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

StreamKey = tuple[str, str]  # (connector, stream)


def jittered(seconds: float, jitter: float, rng: random.Random) -> float:
    """`seconds` moved by up to +/- `jitter` of itself."""
    if seconds <= 0 or jitter <= 0:
        return max(0.0, seconds)
    return seconds * (1.0 + rng.uniform(-jitter, jitter))


def failure_delay(failures: int, initial: float, maximum: float) -> float:
    """Back-off after `failures` failed runs in a row: initial, 2x, 4x, ... up to maximum."""
    if failures <= 0:
        return 0.0
    return min(maximum, initial * 2.0 ** min(failures - 1, 60))


@dataclass
class StreamTimer:
    next_due: float = 0.0
    failures: int = 0


class Schedule:
    """Due times of every stream this process may run; shared by the connector workers."""

    def __init__(
        self,
        *,
        jitter: float,
        failure_backoff: float,
        max_failure_backoff: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jitter = jitter
        self.failure_backoff = failure_backoff
        self.max_failure_backoff = max_failure_backoff
        self.rng = rng or random.Random()
        self.clock = clock
        self._timers: dict[StreamKey, StreamTimer] = {}
        self._lock = threading.Lock()

    def timer(self, key: StreamKey) -> StreamTimer:
        with self._lock:
            return self._timers.setdefault(key, StreamTimer())

    def restore(self, key: StreamKey, failures: int, next_attempt_at: datetime | None) -> None:
        """Adopt a stored back-off: a failing stream waits for its stored next attempt."""
        timer = self.timer(key)
        timer.failures = failures
        if failures > 0 and next_attempt_at is not None:
            wait = next_attempt_at.timestamp() - time.time()
            timer.next_due = self.clock() + max(0.0, min(wait, self.max_failure_backoff))
        else:
            timer.next_due = self.clock()

    def due(self, keys: Iterable[StreamKey]) -> list[StreamKey]:
        """The keys due now, the longest overdue first."""
        now = self.clock()
        timers = [(self.timer(k).next_due, k) for k in keys]
        return [k for due, k in sorted(timers) if due <= now]

    def seconds_until_due(self, keys: Iterable[StreamKey]) -> float | None:
        dues = [self.timer(k).next_due for k in keys]
        if not dues:
            return None
        return max(0.0, min(dues) - self.clock())

    def succeeded(self, key: StreamKey, interval: float) -> float:
        """Plan the next run one (jittered) poll interval from now; returns the delay."""
        timer = self.timer(key)
        timer.failures = 0
        delay = jittered(interval, self.jitter, self.rng)
        timer.next_due = self.clock() + delay
        return delay

    def failed(self, key: StreamKey) -> float:
        """Count a failure and back off exponentially; returns the delay."""
        timer = self.timer(key)
        timer.failures += 1
        base = failure_delay(timer.failures, self.failure_backoff, self.max_failure_backoff)
        delay = min(self.max_failure_backoff, jittered(base, self.jitter, self.rng))
        timer.next_due = self.clock() + delay
        return delay

    def postpone(self, key: StreamKey, delay: float) -> None:
        """Run no earlier than `delay` from now (a connector out of quota waits a cycle)."""
        timer = self.timer(key)
        timer.next_due = max(timer.next_due, self.clock() + delay)

    def snapshot(self) -> dict[StreamKey, StreamTimer]:
        with self._lock:
            return {k: StreamTimer(t.next_due, t.failures) for k, t in self._timers.items()}

    def run_now(self, key: StreamKey) -> None:
        self.timer(key).next_due = self.clock()
