"""The daemon process: start, serve health, run connector workers, reload on SIGHUP, stop cleanly.

Start: load and check the configuration (a problem exits with EX_CONFIG, so systemd does not
restart in a loop), open the store (a SQLite file is backed up before a migration), take the
lease kind the store supports, start the HTTP endpoint and one worker per connector, tell
systemd READY=1. The main thread then only reacts: signals, lease heartbeats, the watchdog,
the STATUS line.

SIGHUP: the new configuration and mappings are loaded and checked first; if they have a problem,
every problem is logged and the running ones stay. Otherwise the workers finish the page in hand
and new ones continue with the new configuration, keeping their connectors' leases.

SIGTERM: workers finish the page in hand, commit it and stop; after `shutdown_timeout` the process
exits anyway (an unfinished page was never committed, so it is read again at the next start).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pmsync import __version__
from pmsync.app.daemon.health import HealthApp, HealthServer
from pmsync.app.daemon.leases import Leases, make_leases
from pmsync.app.daemon.metrics import Metrics
from pmsync.app.daemon.notify import Notifier
from pmsync.app.daemon.schedule import Schedule
from pmsync.app.daemon.settings import DaemonSettings
from pmsync.app.daemon.signals import SignalRequests
from pmsync.app.daemon.worker import ConnectorWorker, WorkerContext, owner_name
from pmsync.app.daemon.writeback import WriteBack, auto_write_back
from pmsync.app.runtime import Runtime, StreamJob
from pmsync.app.status import stream_statuses, task_statuses

if TYPE_CHECKING:
    from pmsync.app.web.server import WebServer
from pmsync.connectors.http import set_replica_tag
from pmsync.errors import ConfigError, PmsyncError
from pmsync.gcpolicy import one_malloc_arena
from pmsync.logs import configure_logging, get_logger
from pmsync.redact import redact

log = get_logger("pmsync.daemon")

EXIT_OK = 0


@dataclass(frozen=True)
class Started:
    """What a started daemon serves, for a person watching it start."""

    connectors: list[str]
    streams: int
    http: str | None  # the base URL of /healthz, /readyz and /metrics; None when disabled
    web: str | None = None  # the web view's URL when `[web] enabled`


@dataclass
class _Generation:
    """One loaded configuration and the workers running it."""

    runtime: Runtime
    workers: dict[str, ConnectorWorker] = field(default_factory=dict)


class Daemon:
    """`pmsync run`."""

    def __init__(
        self,
        config_path: str | None,
        *,
        log_level: str | None = None,
        log_format: str | None = None,
        write_back: WriteBack = auto_write_back,
        on_started: Callable[[Started], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.on_started = on_started
        self.log_level = log_level
        self.log_format = log_format
        self.write_back = write_back
        self.replica = uuid.uuid4().hex[:8]
        self.owner = owner_name(self.replica)
        self.signals = SignalRequests()
        self.notifier = Notifier()
        self._current: _Generation | None = None
        self._retired: list[_Generation] = []
        self._started = False
        self._stopping = False
        self._loop_tick = time.monotonic()
        self._status = ""

    # ---- start --------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code. ConfigError: cannot start."""
        one_malloc_arena()  # before any thread starts (workers free what others allocated)
        self.signals.install()
        runtime = Runtime.load(self.config_path, upgrade_in_child=True)
        self._configure_logging(runtime)
        settings = runtime.config.settings.daemon
        set_replica_tag(self.replica)
        store = runtime.store  # opens and migrates (backing a SQLite file up first)
        self.settings = settings
        self.leases: Leases = make_leases(
            store.engine, self.replica, settings.lease_interval.total_seconds()
        )
        self.leases.guard_store(store.engine)
        self.schedule = Schedule(
            jitter=settings.jitter,
            failure_backoff=settings.failure_backoff.total_seconds(),
            max_failure_backoff=settings.max_failure_backoff.total_seconds(),
        )
        self.metrics = Metrics(self.replica, self._store_or_none)
        self._current = _Generation(runtime)
        http: HealthServer | None = None
        web: WebServer | None = None
        try:
            http = self._start_http(settings)
            web = self._start_web(runtime)
            self._serve(runtime, http, web)
        finally:
            self._shutdown(http)
            if web is not None:
                web.stop()
        return EXIT_OK

    def _serve(self, runtime: Runtime, http: HealthServer | None, web: WebServer | None) -> None:
        assert self._current is not None
        log.info(
            "daemon_started",
            version=__version__,
            replica=self.replica,
            owner=self.owner,
            pid=os.getpid(),
            store=runtime.store.dialect,
            connectors=sorted(runtime.config.connectors),
        )
        self._start_workers(self._current, predecessors={})
        self._started = True
        self.notifier.ready(self._status_line())
        if self.on_started is not None:
            workers = self._current.workers
            self.on_started(
                Started(
                    connectors=sorted(workers),
                    streams=sum(len(w.jobs) for w in workers.values()),
                    http=f"http://{_url_host(http.host)}:{http.port}" if http else None,
                    web=web.url if web else None,
                )
            )
        self._main_loop()

    def _configure_logging(self, runtime: Runtime) -> None:
        settings = runtime.config.settings.log
        configure_logging(
            self.log_level or settings.level,
            self.log_format or settings.format,  # type: ignore[arg-type]
        )

    def _start_http(self, settings: DaemonSettings) -> HealthServer | None:
        if not settings.http_enabled:
            return None
        app = HealthApp(self.metrics.registry, self._health, self._ready)
        try:
            server = HealthServer(app, settings.http_host, settings.http_port)
        except OSError as exc:
            raise ConfigError(
                f"daemon.http_port: cannot listen on {settings.http_host}:{settings.http_port} "
                f"({exc.strerror})"
            ) from None
        server.start()
        log.info("http_listening", host=server.host, port=server.port)
        return server

    def _start_web(self, runtime: Runtime) -> WebServer | None:
        """The web view, when `[web] enabled`: its own runtime over the same configuration."""
        settings = runtime.config.settings.web
        if not settings.enabled:
            return None
        from pmsync.app.web.server import WebServer, build_app

        path = str(runtime.config.path)
        own = Runtime.load(path)
        server = WebServer(build_app(own, settings, lambda: Runtime.load(path)), settings, own)
        server.start()
        return server

    def _start_workers(
        self, generation: _Generation, predecessors: dict[str, ConnectorWorker]
    ) -> None:
        jobs: dict[str, list[StreamJob]] = defaultdict(list)
        for job in generation.runtime.jobs():
            jobs[job.connector].append(job)
        if not jobs:
            log.warning("nothing_to_sync", hint="no enabled connector has a mapped stream")
        context = WorkerContext(
            runtime=generation.runtime,
            schedule=self.schedule,
            leases=self.leases,
            metrics=self.metrics,
            settings=self.settings,
            write_back=self.write_back,
            total_connectors=lambda: len(generation.workers),
            owner=self.owner,
        )
        for name, connector_jobs in sorted(jobs.items()):
            worker = ConnectorWorker(
                name, connector_jobs, context, predecessor=predecessors.get(name)
            )
            generation.workers[name] = worker
        for worker in generation.workers.values():
            worker.start()

    # ---- running ------------------------------------------------------------------------

    def _main_loop(self) -> None:
        interval = self.settings.lease_interval.total_seconds()
        tick = min(1.0, interval / 2)
        next_heartbeat = 0.0
        while True:
            self.signals.poll()  # a signal's handler only notes it: at most a tick's delay
            if self.signals.stop.is_set():
                break
            self.signals.wake.wait(tick)
            self.signals.wake.clear()
            self.signals.poll()
            if self.signals.stop.is_set():
                break
            if self.signals.take_reload():
                self._reload()
            now = time.monotonic()
            if now >= next_heartbeat:
                self.leases.heartbeat()
                self.metrics.replicas.set(self.leases.live_replicas())
                next_heartbeat = now + interval / 2
            self._reap_retired()
            self._loop_tick = time.monotonic()
            if self._health()[0]:
                self.notifier.watchdog()
            status = self._status_line()
            if status != self._status:
                self._status = status
                self.notifier.status(status)

    def _status_line(self) -> str:
        generation = self._current
        if generation is None:
            return "starting"
        workers = generation.workers.values()
        owned = sum(1 for w in workers if self.leases.holds(w.connector_name))
        streams = sum(len(w.jobs) for w in workers)
        failing = [
            f"{connector}.{stream}"
            for (connector, stream), timer in self.schedule.snapshot().items()
            if timer.failures > 0 and self.leases.holds(connector)
        ]
        text = f"running {owned}/{len(generation.workers)} connectors, {streams} streams"
        if failing:
            text += f"; failing: {', '.join(sorted(failing)[:5])}"
        return text

    # ---- reload -------------------------------------------------------------------------

    def _reload(self) -> None:
        """Apply a new configuration, or keep the running one when the new one has problems."""
        assert self._current is not None
        self.notifier.reloading()
        log.info("reload_requested")
        new = self._load_checked()
        if new is None:
            self.metrics.reloads.labels("rejected").inc()
            self.notifier.ready(self._status_line())
            return
        old = self._current
        if new.config.settings.daemon != self.settings:
            log.warning(
                "daemon_settings_need_restart",
                hint="the [daemon] table is read at start; restart pmsync to apply it",
            )
        self._configure_logging(new)
        for worker in old.workers.values():
            worker.request_stop(keep_lease=True)
        self._join(old.workers.values(), self.settings.shutdown_timeout.total_seconds())
        self.leases.guard_store(new.store.engine)
        generation = _Generation(new)
        self._current = generation
        self._start_workers(
            generation,
            predecessors={n: w for n, w in old.workers.items() if w.is_alive()},
        )
        for name in set(old.workers) - set(generation.workers):
            self.leases.release(name)
            self.metrics.owned.labels(name).set(0)
        self._retired.append(old)
        self._reap_retired()
        self.metrics.reloads.labels("applied").inc()
        log.info(
            "reloaded",
            connectors=sorted(generation.workers),
            streams=sum(len(w.jobs) for w in generation.workers.values()),
            mapping_files=len(new.mappings.files),
        )
        self.notifier.ready(self._status_line())

    def _load_checked(self) -> Runtime | None:
        """The new runtime, or None after logging every problem it has."""
        assert self._current is not None
        try:
            new = Runtime.load(self.config_path, upgrade_in_child=True)
            new.jobs()
        except ConfigError as exc:
            problems = [redact(str(p)) for p in exc.problems]
            log.error("reload_rejected", problems=problems, kept="the running configuration")
            for problem in problems:
                log.error("config_problem", problem=problem)
            return None
        except PmsyncError as exc:
            log.error("reload_rejected", problems=[redact(str(exc))], kept="the running one")
            return None
        except Exception as exc:
            log.exception("reload_rejected", error=type(exc).__name__)
            return None
        if new.config.store_url() != self._current.runtime.config.store_url():
            log.error(
                "reload_rejected",
                problems=["store.url changed; restart pmsync to switch stores"],
                kept="the running configuration",
            )
            new.close()
            return None
        return new

    def _reap_retired(self) -> None:
        """Close the runtimes of old configurations once their workers have finished."""
        for generation in list(self._retired):
            if not any(w.is_alive() for w in generation.workers.values()):
                generation.runtime.close()
                self._retired.remove(generation)

    # ---- stop ---------------------------------------------------------------------------

    def _shutdown(self, http: HealthServer | None) -> None:
        self._stopping = True
        self.notifier.stopping()
        reason = self.signals.stop_signal or "error"
        log.info("daemon_stopping", reason=reason)
        workers = list(self._current.workers.values()) if self._current else []
        for generation in self._retired:
            workers.extend(generation.workers.values())
        for worker in workers:
            worker.request_stop(keep_lease=False)
        timeout = self.settings.shutdown_timeout.total_seconds() if self._started else 0.0
        stuck = self._join(workers, timeout)
        if stuck:
            log.warning(
                "shutdown_timeout",
                connectors=sorted(w.connector_name for w in stuck),
                note="their page in hand was not committed; it is read again at the next start",
            )
        if http is not None:
            http.stop()
        self.leases.close()
        self.metrics.close()
        if not stuck:
            for generation in [*self._retired, *([self._current] if self._current else [])]:
                generation.runtime.close()
        self.notifier.close()
        log.info("daemon_stopped", reason=reason, abandoned=len(stuck))

    @staticmethod
    def _join(workers: Any, timeout: float) -> list[ConnectorWorker]:
        deadline = time.monotonic() + timeout
        for worker in workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
        return [w for w in workers if w.is_alive()]

    # ---- probes -------------------------------------------------------------------------

    def _store_or_none(self) -> Any:
        return self._current.runtime.store if self._current else None

    def _health(self) -> tuple[bool, dict[str, Any]]:
        """Alive: the main loop ticks and every worker thread runs."""
        tick = min(1.0, self.settings.lease_interval.total_seconds() / 2)
        loop_ok = time.monotonic() - self._loop_tick < max(10.0, 5 * tick)
        workers = self._current.workers.values() if self._current else []
        dead = sorted(w.connector_name for w in workers if w.ident and not w.is_alive())
        ok = loop_ok and not dead and not self._stopping
        return ok, {"main_loop": loop_ok, "dead_workers": dead, "stopping": self._stopping}

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready: started, not stopping, and the store answers."""
        store_ok = False
        store = self._store_or_none()
        if store is not None:
            try:
                with store.engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
                store_ok = True
            except sa.exc.SQLAlchemyError:
                store_ok = False
        workers = list(self._current.workers.values()) if self._current else []
        owned = sorted(w.connector_name for w in workers if self.leases.holds(w.connector_name))
        ok = self._started and not self._stopping and store_ok
        slots = [(job.connector, job.spec.name) for w in workers for job in w.jobs.values()]
        streams = stream_statuses(store, slots) if store_ok and store is not None else []
        tasks = (
            task_statuses(store, [w.connector_name for w in workers])
            if store_ok and store is not None
            else []
        )
        return ok, {
            "started": self._started,
            "stopping": self._stopping,
            "store": store_ok,
            "replica": self.replica,
            "live_replicas": self.leases.live_replicas(),
            "owned_connectors": owned,
            "streams": [stream.as_dict() for stream in streams],
            "tasks": [task.as_dict() for task in tasks],  # write-backs and sweeps
        }


def _url_host(host: str) -> str:
    """A host as it is written in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host
