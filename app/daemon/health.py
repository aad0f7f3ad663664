"""The health and metrics endpoint: /healthz, /readyz and /metrics on 127.0.0.1 by default.

/healthz answers whether the process works (main loop ticking, every connector worker alive):
a watchdog or an orchestrator restarts it when not. /readyz answers whether it can do its job
now (started, store reachable, not stopping). Both return JSON with the details. /metrics is
prometheus-client's own WSGI app. A small threading WSGI server from the standard library serves
them; nothing here is reachable from outside unless `[daemon] http_host` says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

Probe = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds would drown the daemon's own logs."""

    def log_message(self, format: str, *args: Any) -> None:
        return


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
        self._server: WSGIServer = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="pmsync-http",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
