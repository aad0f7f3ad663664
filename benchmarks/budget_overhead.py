"""What the request budget costs a request: pmsync's moving window against `limits`.

The budget used the `limits` library's MovingWindowRateLimiter on its MemoryStorage, which
starts a `threading.Timer` (10 ms) to expire keys whenever the last one has finished: with
requests further apart than that, as API calls are, on every request (issue 14). It now counts
with `pmsync.connectors.window`. This times N acquisitions of a generous rule (never a wait)
both ways, in one run, `--gap` apart (a stand-in for the request itself, not timed), and
prints the cost per request, the ratio and the threads each started.
`limits` is still installed while the Jira write pacer uses it; without it only pmsync's
figure is printed. Run:

    python benchmarks/budget_overhead.py [--requests 500] [--gap 0.015]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from pmsync.connectors.budget import BudgetRule, RequestBudget

URL = "https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json"


def with_window() -> Callable[[], None]:
    budget = RequestBudget([BudgetRule("plan", "/api/", per_minute=10**7)])

    def acquire() -> None:
        budget.acquire("GET", URL)

    return acquire


def with_limits() -> Callable[[], None] | None:
    """The calls the old budget made per request: window stats per rule, then a hit."""
    try:
        from limits import RateLimitItemPerMinute
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter
    except ImportError:
        return None
    limiter = MovingWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(10**7)

    def acquire() -> None:
        limiter.get_window_stats(item, "plan")
        limiter.hit(item, "plan")

    return acquire


def measure(acquire: Callable[[], None], requests: int, gap: float) -> tuple[float, int]:
    """(seconds per request spent in the budget, threads started meanwhile)."""
    started_threads = _threads_started()
    spent = 0.0
    for _ in range(requests):
        started = time.perf_counter()
        acquire()
        spent += time.perf_counter() - started
        time.sleep(gap)
    return spent / requests, _threads_started() - started_threads


_started = 0
_original_start = threading.Thread.start


def _counting_start(self: threading.Thread) -> None:
    global _started  # noqa: PLW0603 - a benchmark's own counter
    _started += 1
    _original_start(self)


def _threads_started() -> int:
    return _started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--gap", type=float, default=0.015, help="seconds between requests")
    args = parser.parse_args()
    threading.Thread.start = _counting_start  # type: ignore[method-assign]
    ours, our_threads = measure(with_window(), args.requests, args.gap)
    print(f"pmsync window: {ours * 1e6:8.1f} us a request, {our_threads} threads started")
    old = with_limits()
    if old is None:
        print("limits is not installed: nothing to compare with")
        return
    theirs, their_threads = measure(old, args.requests, args.gap)
    print(f"limits:        {theirs * 1e6:8.1f} us a request, {their_threads} threads started")
    print(f"ratio: the old budget cost {theirs / ours:.0f}x as much a request")


if __name__ == "__main__":
    main()
