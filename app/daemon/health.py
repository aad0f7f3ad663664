"""The health and metrics endpoint: /healthz, /readyz and /metrics on 127.0.0.1 by default.

/healthz answers whether the process works (main loop ticking, every connector worker alive):
a watchdog or an orchestrator restarts it when not. /readyz answers whether it can do its job
now (started, store reachable, not stopping). Both return JSON with the details. /metrics is
prometheus-client's own WSGI app. Nothing here is reachable from outside unless `[daemon]
http_host` says so.

waitress serves them (as it serves the web view), bounded so that the port cannot take the
daemon down: the file descriptors its store and API connections need are the same ones an
open connection holds. A thread per connection with no timeout (the standard library's server)
let 1,017 idle connections use all 1,024 descriptors of the process. Here:
  * at most `CONNECTION_LIMIT` connections are open; at the cap, the connection idle the
    longest (no request being answered) is closed to make room, so a probe that sends its
    request still gets an answer while others hold connections open and silent;
  * a connection idle for `IDLE_TIMEOUT` seconds is closed;
  * `THREADS` threads answer requests; headers and bodies are small and capped;
  * poll(), not select(): descriptors above 1,024 (a raised LimitNOFILE) are fine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

from pmsync.logs import get_logger

log = get_logger("pmsync.daemon")

Probe = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[..., Any]


CONNECTION_LIMIT = 32  # open connections (scrapers and probes need a few)
IDLE_TIMEOUT = 10  # seconds a connection may stay open without a request
THREADS = 2  # requests answered at once
_RESERVED = 2  # waitress counts its listening socket and its wake-up pipe as connections


class _BoundedServer(TcpWSGIServer):  # type: ignore[misc] # waitress has no type hints
    """waitress's server that, at its connection cap, closes the longest-idle connection
    instead of no longer accepting (which would leave a new probe queued behind idle ones)."""

    evicted = 0
    next_channel_cleanup: float = 0.0

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)  # closes connections idle longer than channel_timeout
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            return True
        self._evict_longest_idle()
        return False

    def _evict_longest_idle(self) -> None:
        idle = [
            channel
            for channel in self.active_channels.values()
            if not channel.requests and not channel.will_close
        ]
        if not idle:
            return  # every connection is being answered: wait for one to finish
        oldest = min(idle, key=lambda channel: channel.last_activity)
        oldest.will_close = True  # closed by the loop on its next turn
        self.evicted += 1
        if self.evicted in (1, 100) or self.evicted % 10_000 == 0:
            log.warning(
                "http_connections_at_limit",
                limit=CONNECTION_LIMIT,
                closed_idle=self.evicted,
                hint="something holds connections to the health port open",
            )


class HealthApp:
    """Routes the three paths; everything else is 404."""

    def __init__(self, registry: CollectorRegistry, health: Probe, ready: Probe) -> None:
        self._metrics = make_wsgi_app(registry)
        self._health = health
        self._ready = ready

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
            probe = self._health if path == "/healthz" else self._ready
            try:
                ok, details = probe()
            except Exception as exc:  # noqa: BLE001 - a probe that fails says "not ok"
                ok, details = False, {"error": type(exc).__name__}
            body = orjson.dumps({"ok": ok, **details}, default=str)
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /healthz, /readyz or /metrics\n"]


class HealthServer:
    """Serves a HealthApp in a background thread."""

    def __init__(self, app: HealthApp, host: str, port: int) -> None:
        adjustments = Adjustments(
            host=host,
            port=port,
            ident="pmsync",
            threads=THREADS,
            connection_limit=CONNECTION_LIMIT + _RESERVED,
            channel_timeout=IDLE_TIMEOUT,
            cleanup_interval=1,
            max_request_header_size=16 * 1024,
            max_request_body_size=1024,
            asyncore_use_poll=True,
        )
        self._server: Any = _BoundedServer(app, adj=adjustments, sockinfo=adjustments.listen[0])
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name="pmsync-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and every open connection; stop the threads."""
        server = self._server
        for channel in list(server._map.values()):  # waitress keeps them there
            try:
                channel.handle_close()
            except OSError:
                continue
        server.task_dispatcher.shutdown(timeout=5)
        self._thread.join(timeout=5)
