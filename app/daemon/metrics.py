"""Prometheus metrics of the daemon (prometheus-client, one registry per daemon).

Counted as it happens, in this process: records read and written per stream (page by page, so a
long first sync shows progress), runs by outcome, errors, API requests per connector by answer,
write-backs. Read from the store at scrape time, so every replica shows the whole picture: last
success and freshness per stream, failing streams, open dead letters. Read from the connectors'
request budgets at scrape time: what each budget rule (or API-reported quota) has used.

API requests are attributed to the connector whose session sends them (`connectors.attribution`:
a Jira request a Zendesk worker makes while linking counts under Jira), else to the connector
whose worker thread sends them (`CURRENT_CONNECTOR`), through the observer hook of
`connectors.http`.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import requests
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pmsync import __version__
from pmsync.connectors.attribution import owner
from pmsync.connectors.http import ConnectorAdapter, add_request_observer
from pmsync.logs import get_logger
from pmsync.sync.engine import StreamResult
from pmsync.sync.store.schema import dead_letters, stream_state
from pmsync.sync.store.store import Store

log = get_logger("pmsync.metrics")

CURRENT_CONNECTOR: ContextVar[str | None] = ContextVar("pmsync_connector", default=None)

_PROGRESS_FIELDS = (
    "records_read",
    "inserted",
    "updated",
    "deleted",
    "unchanged",
    "dead_letters",
    "retries",
)


@dataclass
class ProgressSnapshot:
    """What of a StreamResult has already been counted (the engine reports cumulative totals)."""

    seen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_PROGRESS_FIELDS, 0))


class Metrics:
    """Every metric the daemon exports, and the hooks that feed them."""

    def __init__(self, replica: str, store: Callable[[], Store | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        stream = ["connector", "stream"]
        self.records_read = Counter(
            "pmsync_records_read",
            "Records read from the source (deletions included).",
            stream,
            registry=r,
        )
        self.records_written = Counter(
            "pmsync_records_written",
            "Records written to the store: change = inserted, updated or deleted (tombstoned).",
            [*stream, "change"],
            registry=r,
        )
        self.records_unchanged = Counter(
            "pmsync_records_unchanged",
            "Records read whose content had not changed.",
            stream,
            registry=r,
        )
        self.dead_lettered = Counter(
            "pmsync_dead_lettered",
            "Records parked in dead_letters by this process.",
            stream,
            registry=r,
        )
        self.runs = Counter(
            "pmsync_stream_runs",
            "Stream runs by outcome (ok, failed, paused, interrupted).",
            [*stream, "status"],
            registry=r,
        )
        self.errors = Counter(
            "pmsync_stream_errors",
            "Errors per stream: kind = run (a failed run), retry (a retried read), sweep.",
            [*stream, "kind"],
            registry=r,
        )
        self.api_requests = Counter(
            "pmsync_api_requests",
            "HTTP requests sent to the APIs, by connector and answer (status code or 'error').",
            ["connector", "code"],
            registry=r,
        )
        self.writebacks_planned = Counter(
            "pmsync_writebacks_planned",
            "Field writes planned for the sources.",
            ["connector"],
            registry=r,
        )
        self.writebacks_applied = Counter(
            "pmsync_writebacks_applied",
            "Field writes the sources accepted.",
            ["connector"],
            registry=r,
        )
        self.writebacks_failed = Counter(
            "pmsync_writebacks_failed",
            "Field writes the sources refused.",
            ["connector"],
            registry=r,
        )
        self.owned = Gauge(
            "pmsync_connector_owned",
            "1 when this replica runs the connector.",
            ["connector"],
            registry=r,
        )
        self.replicas = Gauge(
            "pmsync_replicas_live", "Daemons sharing this store (1 on SQLite).", registry=r
        )
        self.reloads = Counter(
            "pmsync_config_reloads",
            "SIGHUP reloads by result (applied, rejected).",
            ["result"],
            registry=r,
        )
        Info("pmsync_build", "Version and replica id of this daemon.", registry=r).info(
            {"version": __version__, "replica": replica}
        )
        self._adapters: dict[str, weakref.ref[ConnectorAdapter]] = {}
        self._lock = threading.Lock()
        r.register(_StoreCollector(store))
        r.register(_BudgetCollector(self))
        self._remove_observer = add_request_observer(self._observe_request)

    # ---- feeding ----------------------------------------------------------------------

    def progress(self, result: StreamResult, snapshot: ProgressSnapshot) -> None:
        """Count what `result` gained since `snapshot` (called per page and at the end)."""
        now = {name: int(getattr(result, name)) for name in _PROGRESS_FIELDS}
        delta = {name: now[name] - snapshot.seen[name] for name in _PROGRESS_FIELDS}
        snapshot.seen = now
        labels = (result.connector, result.stream)
        if delta["records_read"]:
            self.records_read.labels(*labels).inc(delta["records_read"])
        for change in ("inserted", "updated", "deleted"):
            if delta[change]:
                self.records_written.labels(*labels, change).inc(delta[change])
        if delta["unchanged"]:
            self.records_unchanged.labels(*labels).inc(delta["unchanged"])
        if delta["dead_letters"]:
            self.dead_lettered.labels(*labels).inc(delta["dead_letters"])
        if delta["retries"]:
            self.errors.labels(*labels, "retry").inc(delta["retries"])

    def finished(self, result: StreamResult, snapshot: ProgressSnapshot) -> None:
        self.progress(result, snapshot)
        self.runs.labels(result.connector, result.stream, result.status).inc()
        if result.status == "failed":
            self.errors.labels(result.connector, result.stream, "run").inc()

    def swept(self, connector: str, stream: str, tombstoned: int, *, failed: bool) -> None:
        if failed:
            self.errors.labels(connector, stream, "sweep").inc()
        elif tombstoned:
            self.records_written.labels(connector, stream, "deleted").inc(tombstoned)

    def touch_stream(self, connector: str, stream: str) -> None:
        """Make a stream's counters exist (at 0) before anything happened to it."""
        self.records_read.labels(connector, stream)
        for change in ("inserted", "updated", "deleted"):
            self.records_written.labels(connector, stream, change)

    def touch_connector(self, connector: str) -> None:
        self.writebacks_planned.labels(connector)
        self.writebacks_applied.labels(connector)
        self.writebacks_failed.labels(connector)
        self.owned.labels(connector).set(0)

    def _observe_request(
        self,
        adapter: ConnectorAdapter,
        _request: requests.PreparedRequest,
        response: requests.Response | None,
    ) -> None:
        connector = owner(adapter) or CURRENT_CONNECTOR.get() or "unattributed"
        code = str(response.status_code) if response is not None else "error"
        self.api_requests.labels(connector, code).inc()
        with self._lock:
            known = self._adapters.get(connector)
            if known is None or known() is not adapter:
                self._adapters[connector] = weakref.ref(adapter)

    def adapters(self) -> Iterator[tuple[str, ConnectorAdapter]]:
        with self._lock:
            items = list(self._adapters.items())
        for name, ref in items:
            adapter = ref()
            if adapter is not None:
                yield name, adapter

    def close(self) -> None:
        self._remove_observer()


class _StoreCollector:
    """Per-stream state read from the store at scrape time (all replicas' streams)."""

    def __init__(self, store: Callable[[], Store | None]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pmsync_store_up", "1 when the store answered this scrape.")
        store = self._store()
        if store is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            states, letters = _read_store(store)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics_store_unavailable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        labels = ["connector", "stream"]
        success = GaugeMetricFamily(
            "pmsync_stream_last_success_timestamp_seconds",
            "When the stream last caught up with its source (Unix time).",
            labels=labels,
        )
        freshness = GaugeMetricFamily(
            "pmsync_stream_freshness_seconds",
            "Seconds since the stream last caught up with its source.",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "pmsync_stream_failing", "1 when the stream's last run failed.", labels=labels
        )
        failures = GaugeMetricFamily(
            "pmsync_stream_consecutive_failures", "Failed runs in a row.", labels=labels
        )
        open_letters = GaugeMetricFamily(
            "pmsync_dead_letters_open",
            "Records waiting in dead_letters (mapping failures not yet resolved).",
            labels=labels,
        )
        now = time.time()
        for row in states:
            key = [row["connector"], row["stream"]]
            last = row["last_success_at"]
            if last is not None:
                success.add_metric(key, last.timestamp())
                freshness.add_metric(key, max(0.0, now - last.timestamp()))
            failing.add_metric(key, 1 if row["status"] == "failed" else 0)
            failures.add_metric(key, int(row["failures"] or 0))
            open_letters.add_metric(key, letters.get((row["connector"], row["stream"]), 0))
        yield from (success, freshness, failing, failures, open_letters)


def _read_store(store: Store) -> tuple[list[Any], dict[tuple[str, str], int]]:
    with store.engine.connect() as connection:
        states = list(
            connection.execute(
                sa.select(
                    stream_state.c.connector,
                    stream_state.c.stream,
                    stream_state.c.status,
                    stream_state.c.last_success_at,
                    stream_state.c.failures,
                )
            ).mappings()
        )
        letters = {
            (str(row[0]), str(row[1])): int(row[2])
            for row in connection.execute(
                sa.select(dead_letters.c.connector, dead_letters.c.stream, sa.func.count())
                .where(dead_letters.c.resolved_at.is_(None))
                .group_by(dead_letters.c.connector, dead_letters.c.stream)
            )
        }
    return states, letters


class _BudgetCollector:
    """What each connector's request budget has used of its rules, at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        labels = ["connector", "rule"]
        used = GaugeMetricFamily(
            "pmsync_api_quota_used",
            "Requests counted against a budget rule or API quota in its current window.",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "pmsync_api_quota_limit", "The limit of that rule or quota.", labels=labels
        )
        window = GaugeMetricFamily(
            "pmsync_api_quota_window_seconds", "Length of its window.", labels=labels
        )
        waited = CounterMetricFamily(
            "pmsync_api_budget_wait_seconds",
            "Seconds requests waited for their budget (proactive rate limiting).",
            labels=["connector"],
        )
        for name, adapter in self._metrics.adapters():
            budget = adapter.budget
            if budget is None:
                continue
            for usage in budget.usage():
                used.add_metric([name, usage.rule], usage.used)
                limit.add_metric([name, usage.rule], usage.limit)
                window.add_metric([name, usage.rule], usage.window_seconds)
            waited.add_metric([name], budget.waited_seconds)
        yield from (used, limit, window, waited)
