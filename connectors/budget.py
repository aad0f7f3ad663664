"""A connector's request budget: proactive rate limiting before the API says 429.

Rules are moving windows from the `limits` library, matched on method and URL; a request waits
until every rule it matches has room. One budget per connector instance is shared by reads and
writes, so neither can starve the other of the API's allowance.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class BudgetRule:
    """At most `per_minute` requests a minute (or `per_second` a second) to matching URLs."""

    name: str
    url_pattern: str
    per_minute: int | None = None
    per_second: int | None = None
    methods: frozenset[str] | None = None


class RequestBudget:
    """Blocks a request until its rules allow it; counts how long it waited."""

    def __init__(self, rules: list[BudgetRule], *, sleep: object = None) -> None:
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._rules = [(rule, re.compile(rule.url_pattern), _item(rule)) for rule in rules]
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self, method: str, url: str) -> None:
        for rule, pattern, item in self._rules:
            if rule.methods is not None and method.upper() not in rule.methods:
                continue
            if not pattern.search(url):
                continue
            while True:
                with self._lock:
                    if self._limiter.hit(item, rule.name):
                        break
                    stats = self._limiter.get_window_stats(item, rule.name)
                # Wait a little past the window: the API stamped our earlier request when it
                # arrived, slightly later than we counted it.
                margin = min(1.0, item.get_expiry() * 0.1)
                delay = max(0.05, stats.reset_time - time.time() + margin)
                self.waited_seconds += delay
                time.sleep(delay)


def _item(rule: BudgetRule) -> RateLimitItem:
    if rule.per_second is not None:
        return RateLimitItemPerSecond(rule.per_second)
    if rule.per_minute is not None:
        return RateLimitItemPerMinute(rule.per_minute)
    raise ValueError(f"budget rule {rule.name} sets no limit")
