"""What every API simulator shares: a threaded HTTP server, a request log, injected faults.

Simulators stand in for SaaS APIs that cannot be reached from a test machine. They honour the
documented contracts (paths, paging, cursors, rate-limit answers, auth failures) so the real
client libraries talk to them over real HTTP. Tests, benchmarks and the demo all use them.

Faults are what networks and busy APIs do to any client: an error status (429 with Retry-After,
5xx), a connection reset before the request is served, or an answer whose body is cut off after
the request was served (the API acted; the client never heard). `inject` places one on matching
requests; `chaos` strikes a share of all requests at random, reads and writes alike.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

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


FaultKind = Literal["status", "reset", "truncate"]


@dataclass
class Fault:
    """Answer matching requests with `status` instead of serving them, `times` times (or until).

    `kind`: "status" answers `status`; "reset" drops the connection before the request is
    served; "truncate" serves the request, then cuts its answer off halfway through the body.
    """

    status: int
    path_prefix: str = ""
    method: str | None = None
    times: int | None = 1
    until: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    kind: FaultKind = "status"

    def matches(self, request: Request, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.times is not None and self.times <= 0:
            return False
        if self.method and request.method != self.method:
            return False
        return request.path.startswith(self.path_prefix)


@dataclass
class Chaos:
    """Random faults on a share of requests (`rate`), drawn from `kinds` by a seeded generator.

    Kinds: an HTTP status (429 carries `Retry-After: retry_after`), "reset" or "truncate".
    """

    rate: float
    kinds: tuple[int | str, ...] = (429, 500, 503, "reset", "truncate")
    seed: int = 0
    retry_after: int = 1
    path_prefix: str = ""
    struck: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, request: Request) -> Fault | None:
        if not request.path.startswith(self.path_prefix) or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        self.struck += 1
        if kind in ("reset", "truncate"):
            return Fault(status=0, kind=kind, times=None)  # type: ignore[arg-type]
        status = int(kind)
        headers = {"Retry-After": str(self.retry_after)} if status == 429 else {}
        return Fault(status=status, headers=headers, times=None)


@dataclass
class _Trigger:
    path_prefix: str
    count: int
    action: Callable[[], Any]


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
        self.chaos_plan: Chaos | None = None
        self.body_patches: list[tuple[str, bytes, bytes]] = []
        self.triggers: list[_Trigger] = []
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
        """No more injected faults, random ones included."""
        with self.lock:
            self.faults.clear()
            self.chaos_plan = None

    def chaos(
        self,
        rate: float,
        *,
        kinds: Iterable[int | str] = (429, 500, 503, "reset", "truncate"),
        seed: int = 0,
        path_prefix: str = "",
    ) -> Chaos:
        """Strike `rate` of the requests under `path_prefix` with a random fault of `kinds`."""
        plan = Chaos(rate, tuple(kinds), seed, path_prefix=path_prefix)
        with self.lock:
            self.chaos_plan = plan
        return plan

    def patch_bodies(self, path_prefix: str, find: bytes, replace: bytes) -> None:
        """Answers under `path_prefix` carry `replace` where they would carry `find` (bytes a
        JSON encoder never writes, such as invalid UTF-8, get into answers this way)."""
        with self.lock:
            self.body_patches.append((path_prefix, find, replace))

    def after(self, path_prefix: str, count: int, action: Callable[[], Any]) -> None:
        """Run `action` once, right after the `count`-th request under `path_prefix` is served:
        the world changing while a client is half-way through a listing."""
        with self.lock:
            self.triggers.append(_Trigger(path_prefix, count, action))

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
        fault = self._draw_fault(request)
        if fault is not None and fault.kind == "reset":
            request.get_data()
            self._log(request, 0)
            _reset(environ)
            start_response("500 INTERNAL SERVER ERROR", [])  # never reaches the client
            return []
        if fault is None or fault.kind == "truncate":
            response = self._dispatch(request)
        else:
            response = self.fault_response(fault)
        self._patch(request, response)
        self._log(request, response.status_code)
        self._fire(request)
        with self.lock:
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
        if fault is not None and fault.kind == "truncate":
            return _truncated(response, environ, start_response)
        return response(environ, start_response)

    def _draw_fault(self, request: Request) -> Fault | None:
        """A connection-level fault (reset, truncate) or a chaos status for this request."""
        now = self.clock()
        with self.lock:
            fault = next(
                (f for f in self.faults if f.kind != "status" and f.matches(request, now)), None
            )
            if fault is not None and fault.times is not None:
                fault.times -= 1
            if fault is None and self.chaos_plan is not None:
                fault = self.chaos_plan.draw(request)
        if fault is not None and fault.kind == "truncate":
            return Fault(status=0, kind="truncate")  # served normally, then cut off
        return fault

    def _fire(self, request: Request) -> None:
        with self.lock:
            due = []
            for trigger in self.triggers:
                if request.path.startswith(trigger.path_prefix):
                    trigger.count -= 1
                    if trigger.count == 0:
                        due.append(trigger)
            self.triggers = [t for t in self.triggers if t.count > 0]
        for trigger in due:
            trigger.action()

    def _patch(self, request: Request, response: Response) -> None:
        with self.lock:
            patches = [p for p in self.body_patches if request.path.startswith(p[0])]
        if not patches:
            return
        body = response.get_data()
        for _prefix, find, replace in patches:
            body = body.replace(find, replace)
        response.set_data(body)

    def _log(self, request: Request, status: int) -> None:
        with self.lock:
            self.requests.append(
                LoggedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.args),
                    status=status,
                    at=time.time(),
                    body=request.get_data(),
                    headers={k.lower(): v for k, v in request.headers.items()},
                )
            )

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
            fault = next(
                (f for f in self.faults if f.kind == "status" and f.matches(request, now)), None
            )
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


def _reset(environ: dict[str, Any]) -> None:
    """Drop the client's connection without an answer (an RST, as a failing proxy sends)."""
    connection = environ.get("werkzeug.socket")
    if connection is None:
        return
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        return


def _truncated(
    response: Response, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterator[bytes]:
    """Send the answer's headers (with its full Content-Length) and half its body, then drop
    the connection: the client reads an incomplete answer to a request the API did serve."""
    body = response.get_data()
    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(response.status, headers)

    def chunks() -> Iterator[bytes]:
        yield body[: max(1, len(body) // 2)]
        _reset(environ)

    return chunks()
