"""One thread per connector: own it, run its due streams, back off when they fail.

A worker only ever touches its own connector instance (its HTTP session and request budget), so
a slow or failing API holds up nobody else. While it does not own its connector (another replica
does) it waits and tries again every `lease_interval`. Every wait, the engine's retry waits and
the budget's waits included, ends early with `Interrupted` when the worker is asked to stop
(SIGTERM, reload) or loses its connector; the engine checks the same between pages, so a stop
finishes the page in hand, commits it and goes no further.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pmsync.app.daemon.leases import Leases
from pmsync.app.daemon.metrics import CURRENT_CONNECTOR, Metrics, ProgressSnapshot
from pmsync.app.daemon.schedule import Schedule, StreamKey
from pmsync.app.daemon.settings import DaemonSettings
from pmsync.app.daemon.writeback import WriteBack
from pmsync.app.runtime import Runtime, StreamJob, new_run_id
from pmsync.connectors.base import Connector
from pmsync.connectors.budget import waiting_with
from pmsync.errors import Interrupted, PmsyncError
from pmsync.logs import bound_contextvars, get_logger
from pmsync.sync.engine import StreamResult, SyncEngine
from pmsync.sync.store import rows, tasks
from pmsync.sync.store import store as st
from pmsync.sync.store.store import utcnow

log = get_logger("pmsync.daemon")

_SLICE = 0.2  # seconds: how often a long wait looks at the stop flag
_SUCCESS_RECORD_EVERY = 300.0  # seconds: a write-back that keeps working is recorded this often
# Records written (inserted, updated, deleted) in a cycle past which its heap is handed back.
# Written, not read: Zendesk's links census reads its 6,500 links every poll (at 20k tickets)
# and stores none of them; its pages are freed as it goes, so a full collection and a heap
# trim after each such cycle were work for nothing, every poll.
_BIG_CYCLE_RECORDS = 5_000


@dataclass
class WorkerContext:
    """What every worker of one configuration shares."""

    runtime: Runtime
    schedule: Schedule
    leases: Leases
    metrics: Metrics
    settings: DaemonSettings
    write_back: WriteBack
    total_connectors: Callable[[], int]
    owner: str


class ConnectorWorker(threading.Thread):
    """Runs the streams of one connector whenever they are due and this process owns it."""

    def __init__(
        self,
        connector: str,
        jobs: list[StreamJob],
        context: WorkerContext,
        *,
        predecessor: threading.Thread | None = None,
    ) -> None:
        super().__init__(name=f"pmsync-{connector}", daemon=True)
        self.connector_name = connector
        self.jobs = {job.spec.name: job for job in jobs}
        self.ctx = context
        self.predecessor = predecessor
        self.keep_lease = False
        self.busy = False
        self.owned = False
        self.cycles = 0
        self._stopping = threading.Event()
        self._snapshot = ProgressSnapshot()
        self._recorded_owner: dict[str, str | None] = {}
        self._tasks: dict[tuple[str, str], rows.TaskState] = {}
        self._rng = random.Random()
        for job in jobs:
            context.metrics.touch_stream(connector, job.spec.name)
        context.metrics.touch_connector(connector)

    # ---- control ------------------------------------------------------------------------

    def request_stop(self, *, keep_lease: bool) -> None:
        """Stop after the page in hand; keep_lease hands the connector to a successor worker."""
        self.keep_lease = keep_lease
        self._stopping.set()

    def should_stop(self) -> bool:
        return self._stopping.is_set() or not self.ctx.leases.holds(self.connector_name)

    def interruptible_sleep(self, seconds: float) -> None:
        """A wait inside a read (retry back-off, request budget) that a stop cuts short."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            if self.should_stop():
                raise Interrupted("stop requested during a wait")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, _SLICE))

    def _idle(self, seconds: float) -> None:
        self._stopping.wait(max(0.0, seconds))

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        CURRENT_CONNECTOR.set(self.connector_name)
        with (
            bound_contextvars(connector=self.connector_name),
            waiting_with(self.interruptible_sleep),
        ):
            if self.predecessor is not None:
                self.predecessor.join()
                # Let it go: it holds its configuration's runtime (and that runtime's kept
                # derivations), and through its own predecessor every earlier one, so each
                # reload kept one more runtime alive.
                self.predecessor = None
            while not self._stopping.is_set():
                try:
                    self._step()
                except Interrupted as exc:
                    log.info("worker_interrupted", reason=str(exc))
                except Exception:
                    log.exception("worker_error")
                    self._idle(self.ctx.settings.lease_interval.total_seconds())
            if not self.keep_lease and self.owned:
                self.ctx.metrics.owned.labels(self.connector_name).set(0)
                log.info("lease_released", reason="worker stopped")
                self.ctx.leases.release(self.connector_name)

    def _step(self) -> None:
        leases, name = self.ctx.leases, self.connector_name
        interval = self.ctx.settings.lease_interval.total_seconds()
        total = self.ctx.total_connectors()
        if not leases.holds(name):
            if self.owned:
                self._lost()
            if not leases.try_acquire(name, total):
                self._idle(interval * self._rng.uniform(0.2, 0.4))  # a free lease is soon taken
                return
            self._acquired("lease_acquired")
        elif not self.owned:
            self._acquired("lease_kept")  # handed over by this worker's predecessor (reload)
        if leases.should_release(name, total):
            self.owned = False
            self.ctx.metrics.owned.labels(name).set(0)
            log.info("lease_handed_over", live_replicas=leases.live_replicas())
            leases.release(name)  # logged first: the log never shows two owners at once
            self._idle(interval * 2)
            return
        keys = [(name, stream) for stream in self.jobs]
        due = self.ctx.schedule.due(keys)
        if not due:
            wait = self.ctx.schedule.seconds_until_due(keys)
            self._idle(min(interval, wait if wait is not None else interval))
            return
        self._cycle(due)

    def _acquired(self, event: str) -> None:
        self.owned = True
        self._tasks.clear()  # another replica may have recorded sweeps and write-backs meanwhile
        self.ctx.metrics.owned.labels(self.connector_name).set(1)
        states = {
            s.stream: s
            for s in self.ctx.runtime.store.stream_states()
            if s.connector == self.connector_name
        }
        for stream in self.jobs:
            state = states.get(stream)
            key = (self.connector_name, stream)
            if state is None:
                self.ctx.schedule.run_now(key)
            else:
                self.ctx.schedule.restore(key, state.failures, state.next_attempt_at)
            self._recorded_owner[stream] = state.owner if state else None
        log.info(event, owner=self.ctx.owner, streams=sorted(self.jobs))

    def _lost(self) -> None:
        self.owned = False
        self.ctx.metrics.owned.labels(self.connector_name).set(0)
        log.warning("lease_lost", owner=self.ctx.owner)

    # ---- a cycle ------------------------------------------------------------------------

    def _cycle(self, due: list[StreamKey]) -> None:
        runtime = self.ctx.runtime
        connector = runtime.connector(self.connector_name)
        run_id = new_run_id()
        engine = runtime.engine(
            run_id=run_id,
            on_page=self._on_page,
            should_stop=self.should_stop,
            sleep=self.interruptible_sleep,
        )
        any_ok = False
        written = 0
        self.busy = True
        try:
            with (
                self.ctx.leases.fenced(self.connector_name),
                bound_contextvars(run_id=run_id),
            ):
                for _connector, stream in due:
                    if self.should_stop():
                        break
                    job = self.jobs[stream]
                    result = self._sync(engine, connector, job)
                    written += result.written
                    if result.status == "ok":
                        any_ok = True
                        self._sweep_if_due(engine, connector, job)
                    elif result.status == "paused":
                        self._pause_connector()
                        break
                    elif result.status == "interrupted":
                        break
                if any_ok and not self.should_stop():
                    self._write_back(connector)
                    runtime.trim_change_journal()
                    runtime.settle_heap()  # what its derivation and plan freed goes back
        finally:
            self.busy = False
            self.cycles += 1
        if written >= _BIG_CYCLE_RECORDS:
            runtime.release_memory()  # a first sync's pages are garbage now: idle cycles need none

    def _on_page(self, result: StreamResult) -> None:
        self.ctx.metrics.progress(result, self._snapshot)

    def _sync(self, engine: SyncEngine, connector: Connector, job: StreamJob) -> StreamResult:
        self._snapshot = ProgressSnapshot()
        result = engine.sync_stream(connector, job.spec, job.mapping)
        self.ctx.metrics.finished(result, self._snapshot)
        self._plan(job, result)
        return result

    def _plan(self, job: StreamJob, result: StreamResult) -> None:
        """Schedule the stream's next run and record it (and why) in its stream_state row."""
        key = (self.connector_name, job.spec.name)
        interval = self._poll_interval()
        schedule = self.ctx.schedule
        if result.status == "ok":
            had_failures = schedule.timer(key).failures > 0
            schedule.succeeded(key, interval)
            if had_failures or self._recorded_owner.get(job.spec.name) != self.ctx.owner:
                self._record(job, failures=0, next_attempt_at=None)
            return  # a healthy stream costs no extra write per cycle
        if result.status == "failed":
            delay = schedule.failed(key)
            log.warning(
                "stream_backing_off",
                stream=job.spec.name,
                failures=schedule.timer(key).failures,
                retry_in=round(delay, 1),
                error=result.error,
            )
        elif result.status == "paused":
            delay = interval
            schedule.postpone(key, delay)
        else:
            return
        next_attempt = utcnow() + timedelta(seconds=delay)
        self._record(job, failures=schedule.timer(key).failures, next_attempt_at=next_attempt)

    def _record(self, job: StreamJob, *, failures: int, next_attempt_at: datetime | None) -> None:
        with self.ctx.runtime.store.transaction() as connection:
            st.update_stream_state(
                connection,
                self.connector_name,
                job.spec.name,
                failures=failures,
                next_attempt_at=next_attempt_at,
                owner=self.ctx.owner,
            )
        self._recorded_owner[job.spec.name] = self.ctx.owner

    def _pause_connector(self) -> None:
        """Quota used up: every stream of the connector waits for the next cycle."""
        interval = self._poll_interval()
        for stream in self.jobs:
            self.ctx.schedule.postpone((self.connector_name, stream), interval)
        log.warning("connector_paused", resume_in=round(interval, 1))

    def _poll_interval(self) -> float:
        settings = self.ctx.runtime.config.connectors[self.connector_name]
        return settings.poll_interval.total_seconds()

    def _sweep_if_due(self, engine: SyncEngine, connector: Connector, job: StreamJob) -> None:
        """A census when due; a failing one waits like a failing read (doubling back-off)."""
        settings = self.ctx.runtime.config.connectors[self.connector_name]
        stream = job.spec.name
        if not engine.sweep_due(connector, job.spec, settings.sweep_interval):
            return
        state = self._task(rows.SWEEP, stream)
        now = utcnow()
        if state.next_attempt_at is not None and state.next_attempt_at > now:
            return
        try:
            count = engine.sweep_stream(connector, job.spec, job.mapping)
        except Interrupted:
            raise
        except PmsyncError as exc:
            delay = self._backoff(state.failures + 1)
            log.warning(
                "sweep_failed",
                stream=stream,
                error=str(exc),
                failures=state.failures + 1,
                retry_in=round(delay, 1),
            )
            self.ctx.metrics.swept(self.connector_name, stream, 0, failed=True)
            self._task_failed(
                rows.SWEEP, stream, str(exc), now, next_attempt_at=now + timedelta(seconds=delay)
            )
            return
        self.ctx.metrics.swept(self.connector_name, stream, count, failed=False)
        self._task_succeeded(rows.SWEEP, stream, now, force=True)

    def _backoff(self, failures: int) -> float:
        settings = self.ctx.settings
        first = settings.failure_backoff.total_seconds()
        return float(min(settings.max_failure_backoff.total_seconds(), first * 2 ** (failures - 1)))

    def _write_back(self, connector: Connector) -> None:
        """The write-back hook, after the reads and still under this worker's ownership."""
        now = utcnow()
        try:
            report = self.ctx.write_back(
                self.ctx.runtime,
                connector,
                should_stop=self.should_stop,
                sleep=self.interruptible_sleep,
            )
        except Interrupted:
            raise
        except PmsyncError as exc:
            log.warning("write_back_failed", error=str(exc))
            self._task_failed(rows.WRITEBACK, "", str(exc), now)
            return
        name = self.connector_name
        self.ctx.metrics.writebacks_planned.labels(name).inc(report.planned)
        self.ctx.metrics.writebacks_applied.labels(name).inc(report.applied)
        self.ctx.metrics.writebacks_failed.labels(name).inc(report.failed)
        if not report.writes_to:
            return
        if report.failed:
            error = report.error or f"{report.failed} writes failed"
            log.warning("write_back_failed", error=error, failed=report.failed)
            self._task_failed(rows.WRITEBACK, "", error, now)
        else:
            self._task_succeeded(rows.WRITEBACK, "", now, force=report.applied > 0)

    # ---- write-back and sweep state (pmsync status, /readyz) ----------------------------

    def _task(self, task: str, stream: str) -> rows.TaskState:
        key = (task, stream)
        if key not in self._tasks:
            with self.ctx.runtime.store.engine.connect() as connection:
                self._tasks[key] = tasks.read_task(connection, self.connector_name, task, stream)
        return self._tasks[key]

    def _task_failed(
        self,
        task: str,
        stream: str,
        error: str,
        now: datetime,
        *,
        next_attempt_at: datetime | None = None,
    ) -> None:
        failures = self._task(task, stream).failures + 1
        with self.ctx.runtime.store.transaction() as connection:
            tasks.record_failure(
                connection,
                self.connector_name,
                task,
                stream,
                error=error,
                now=now,
                failures=failures,
                next_attempt_at=next_attempt_at,
            )
        self._tasks.pop((task, stream), None)

    def _task_succeeded(self, task: str, stream: str, now: datetime, *, force: bool) -> None:
        """Recorded when it recovers, did something, or the last record is a while old: a quiet
        cycle costs no extra write."""
        state = self._task(task, stream)
        last = state.last_success_at
        stale = last is None or (now - last).total_seconds() >= _SUCCESS_RECORD_EVERY
        if not (force or state.failures or stale):
            return
        with self.ctx.runtime.store.transaction() as connection:
            tasks.record_success(connection, self.connector_name, task, stream, now=now)
        self._tasks.pop((task, stream), None)


def owner_name(replica: str) -> str:
    """How stream_state names the process running a stream: replica@host:pid."""
    return f"{replica}@{socket.gethostname()}:{os.getpid()}"
