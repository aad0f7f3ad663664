"""A connector's request budget: proactive rate limiting before the API says 429.

Rules are moving windows (`connectors.window`), matched on method and URL; a request waits
until every rule it matches has room. One budget per connector instance is shared by reads and
writes, so neither can starve the other of the API's allowance: a rule may hold back slots that
only writes (`reserved_for_writes`) or only reads (`reserved_for_reads`) may use.

Requests are reads when their method is GET, HEAD or OPTIONS, writes otherwise; a connector whose
API reads by POST (a query endpoint) wraps those calls in `request_kind("read")`.

A rule may also be scoped: it then counts only the requests made inside `budget_scope(name)`
with one of its names. A connector whose endpoints have limits of their own (an export allowed
10 requests a minute under a total of 700) scopes those rules, so they count every request of
their endpoint whatever its URL (next-page links included) and the total still counts them too.

Waits go through `budget_sleep`, which a daemon worker replaces (`waiting_with`) by a sleep that
its shutdown can cut short. A wait longer than a few seconds is logged (`waiting_for_budget`),
so a quiet process says why it is quiet. A request that never reached the API (its connection
failed) gives its slots back (`refund`): an unreachable host must not use up the budget.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from pmsync.connectors.window import MovingWindow
from pmsync.logs import get_logger

Kind = Literal["read", "write"]
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A budget wait at least this long is logged before it starts.
LOGGED_WAIT_SECONDS = 5.0

log = get_logger("pmsync.connectors.budget")
#: The slots one request took: (rule name, timestamp) per matching rule, for `refund`.
Taken = tuple[tuple[str, float], ...]

_kind: ContextVar[Kind | None] = ContextVar("pmsync_request_kind", default=None)
_sleep: ContextVar[Callable[[float], None]] = ContextVar("pmsync_budget_sleep", default=time.sleep)
_scopes: ContextVar[frozenset[str]] = ContextVar("pmsync_budget_scopes", default=frozenset())


@dataclass(frozen=True)
class BudgetRule:
    """At most N requests a second, minute, hour or day to matching URLs (set exactly one)."""

    name: str
    url_pattern: str
    per_minute: int | None = None
    per_second: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    methods: frozenset[str] | None = None
    reserved_for_writes: int = 0
    reserved_for_reads: int = 0
    scopes: frozenset[str] | None = None  # None: every request; else only inside budget_scope


@dataclass(frozen=True)
class BudgetUsage:
    """What a rule (or a quota the API reported) has used of its limit, for metrics."""

    rule: str
    used: int
    limit: int
    window_seconds: float


@contextmanager
def request_kind(kind: Kind) -> Iterator[None]:
    """Count the requests made inside as reads or writes, whatever their HTTP method."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


@contextmanager
def budget_scope(*names: str) -> Iterator[None]:
    """Requests made inside also count against the rules scoped to any of `names`."""
    token = _scopes.set(_scopes.get() | frozenset(names))
    try:
        yield
    finally:
        _scopes.reset(token)


@contextmanager
def waiting_with(sleep: Callable[[float], None]) -> Iterator[None]:
    """Budget waits in this context call `sleep` (which may raise to abandon the request)."""
    token = _sleep.set(sleep)
    try:
        yield
    finally:
        _sleep.reset(token)


def budget_sleep(seconds: float) -> None:
    """Sleep the way the current context wants budget waits done."""
    _sleep.get()(seconds)


def kind_of(method: str) -> Kind:
    explicit = _kind.get()
    if explicit is not None:
        return explicit
    return "read" if method.upper() in READ_METHODS else "write"


class RequestBudget:
    """Blocks a request until its rules allow it; counts how long it waited."""

    def __init__(self, rules: list[BudgetRule], *, sleep: object = None) -> None:
        self._rules = [(rule, re.compile(rule.url_pattern), _window(rule)) for rule in rules]
        self._lock = threading.Lock()
        self._reported: dict[str, BudgetUsage] = {}
        self.waited_seconds = 0.0

    def acquire(self, method: str, url: str) -> Taken | None:
        """Wait until every matching rule has room for this request, then take it in all.

        Slots are taken together, so a request waiting for a narrow rule (an endpoint's own
        limit) holds no slot of a wide one (the connector's total) that others could use.
        Returns the slots taken, for `refund`.
        """
        kind = kind_of(method)
        matching = list(self._matching(method, url))
        while True:
            with self._lock:
                delays = [
                    (delay, rule.name)
                    for rule, _pattern, window in matching
                    if (delay := _room(rule, window, kind)) is not None
                ]
                if not delays:
                    return tuple((rule.name, window.hit()) for rule, _p, window in matching)
            delay, rule_name = max(delays)
            if delay >= LOGGED_WAIT_SECONDS:
                log.info(
                    "waiting_for_budget",
                    rule=rule_name,
                    seconds=round(delay, 1),
                    request=f"{method.upper()} {_path(url)}",
                )
            self.waited_seconds += delay
            budget_sleep(delay)

    def try_acquire(self, method: str, url: str) -> bool:
        """Take room for a request only if every matching rule has it now; never waits."""
        kind = kind_of(method)
        with self._lock:
            matching = list(self._matching(method, url))
            if any(_room(rule, window, kind) is not None for rule, _p, window in matching):
                return False
            for _rule, _pattern, window in matching:
                window.hit()
        return True

    def refund(self, taken: Taken | None) -> None:
        """Give back the slots of a request that never reached the API (no connection)."""
        if not taken:
            return
        windows = {rule.name: window for rule, _pattern, window in self._rules}
        with self._lock:
            for name, stamp in taken:
                if name in windows:
                    windows[name].unhit(stamp)

    def usage(self) -> list[BudgetUsage]:
        """Per rule: requests in the current window and the limit; then reported quotas."""
        found: list[BudgetUsage] = []
        with self._lock:
            for rule, _pattern, window in self._rules:
                found.append(BudgetUsage(rule.name, window.count(), window.limit, window.seconds))
            found.extend(self._reported.values())
        return found

    def report_quota(self, name: str, used: int, limit: int, window_seconds: float) -> None:
        """Record a quota the API itself reports (e.g. a daily allocation), for metrics."""
        with self._lock:
            self._reported[name] = BudgetUsage(name, used, limit, window_seconds)

    # ---- internals ----------------------------------------------------------------------

    def _matching(
        self, method: str, url: str
    ) -> Iterator[tuple[BudgetRule, re.Pattern[str], MovingWindow]]:
        scopes = _scopes.get()
        for rule, pattern, window in self._rules:
            if rule.methods is not None and method.upper() not in rule.methods:
                continue
            if rule.scopes is not None and not rule.scopes & scopes:
                continue
            if pattern.search(url):
                yield rule, pattern, window


def _room(rule: BudgetRule, window: MovingWindow, kind: Kind) -> float | None:
    """None when `kind` may take a slot now, else the seconds until the window has room."""
    held_back = rule.reserved_for_writes if kind == "read" else rule.reserved_for_reads
    delay = window.wait(window.limit - held_back)
    if delay is None:
        return None
    return delay + arrival_margin(window.seconds)


def arrival_margin(window_seconds: float) -> float:
    """How long past the window a request waits: the API stamped our earlier request when it
    arrived, slightly later than we counted it, so a request sent exactly when our window has
    room could reach it a hair early. The gap is the spread of send-to-arrival delays, not a
    share of the window: 1% of it, at least 40 ms (twice the spread seen with a sync and an
    apply's three connectors sharing two loaded cores) and at most 1 s. A tenth, as before,
    capped a per-second budget at 10/11 of its rate."""
    return min(1.0, max(0.04, window_seconds * 0.01))


def _path(url: str) -> str:
    """The URL without its query (which may carry parameters that are nobody's business)."""
    return url.split("?", 1)[0]


_SECONDS = (
    ("per_second", 1.0),
    ("per_minute", 60.0),
    ("per_hour", 3600.0),
    ("per_day", 86400.0),
)


def _window(rule: BudgetRule) -> MovingWindow:
    chosen = [
        (amount, seconds)
        for name, seconds in _SECONDS
        if (amount := getattr(rule, name)) is not None
    ]
    if len(chosen) != 1:
        raise ValueError(f"budget rule {rule.name} must set exactly one limit")
    amount, seconds = chosen[0]
    if rule.reserved_for_reads + rule.reserved_for_writes >= amount:
        raise ValueError(f"budget rule {rule.name} reserves its whole limit")
    return MovingWindow(amount, seconds)
