"""What every API simulator shares: a threaded HTTP server, a request log, injected faults.

Simulators stand in for SaaS APIs that cannot be reached from a test machine. They honour the
documented contracts (paths, paging, cursors, rate-limit answers, auth failures) so the real
client libraries talk to them over real HTTP. Tests, benchmarks and the demo all use them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[..., Response]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status=status,
        headers=headers or {},
        content_type="application/json; charset=utf-8",
    )


@dataclass
class LoggedRequest:
    """One request as the simulator saw it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Fault:
    """Answer matching requests with `status` instead of serving them, `times` times (or until)."""

    status: int
    path_prefix: str = ""
    method: str | None = None
    times: int | None = 1
    until: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0

    def matches(self, request: Request, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.times is not None and self.times <= 0:
            return False
        if self.method and request.method != self.method:
            return False
        return request.path.startswith(self.path_prefix)


class _QuietHandler(WSGIRequestHandler):
    """Simulators keep their own request log; no access-log lines on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log(self, type: str, message: str, *args: Any) -> None:
        return


class Simulator:
    """Base class: subclasses declare `rules()` and a handler method per rule endpoint."""

    name = "simulator"

    def __init__(self) -> None:
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.latencies: list[tuple[str, str | None, float]] = []
        self.lock = threading.RLock()
        self.base_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._url_map = Map(list(self.rules()), strict_slashes=False)

    # ---- to override ---------------------------------------------------------------------

    def rules(self) -> Iterable[Rule]:
        return []

    def clock(self) -> float:
        return time.time()

    # ---- faults and logs -----------------------------------------------------------------

    def inject(self, status: int, **kwargs: Any) -> Fault:
        """Make matching requests fail; see Fault for the options."""
        fault = Fault(status=status, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def requests_to(self, path_prefix: str = "", method: str | None = None) -> list[LoggedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # ---- serving -------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        with self.lock:
            self.requests.append(
                LoggedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.args),
                    status=response.status_code,
                    at=time.time(),
                    body=request.get_data(),
                    headers={k.lower(): v for k, v in request.headers.items()},
                )
            )
            latency = next(
                (
                    seconds
                    for prefix, method, seconds in self.latencies
                    if request.path.startswith(prefix)
                    and (method is None or request.method == method)
                ),
                0.0,
            )
        if latency:
            time.sleep(latency)  # the request is served; its answer is slow to come back
        return response(environ, start_response)

    def slow_answers(
        self, seconds: float, path_prefix: str = "", method: str | None = None
    ) -> None:
        """Serve matching requests at once but answer them `seconds` later (a client can die
        after the API acted and before it heard back)."""
        with self.lock:
            self.latencies.append((path_prefix, method, seconds))

    def _dispatch(self, request: Request) -> Response:
        now = self.clock()
        with self.lock:
            fault = next((f for f in self.faults if f.matches(request, now)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            return self.fault_response(fault)
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            handler: Handler = getattr(self, str(endpoint))
            return handler(request, **args)
        except NotFound:
            return self.not_found(request)
        except HTTPException as exc:
            return json_response({"error": exc.name}, exc.code or 500)

    def fault_response(self, fault: Fault) -> Response:
        body = fault.body if fault.body is not None else {"error": f"injected {fault.status}"}
        return json_response(body, fault.status, fault.headers)

    def not_found(self, request: Request) -> Response:
        return json_response({"error": "RecordNotFound", "description": "Not found"}, 404)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL."""
        self._server = make_server(
            host, port, self.wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.base_url = f"http://{host}:{self._server.server_port}"
        server = self._server
        self._thread = threading.Thread(
            # A short poll keeps stop() quick (the default 0.5 s is paid by every test).
            target=lambda: server.serve_forever(poll_interval=0.05),
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
