"""HTTP plumbing shared by connectors: one session per connector instance.

The adapter does what must hold for every request, whichever client library sends it:
  * a per-instance base-URL override (proxy or simulator) without process-wide switches;
  * a per-connector CA bundle passed with each request (requests would otherwise let
    REQUESTS_CA_BUNDLE win over `session.verify`); verification is never switched off;
  * a default timeout (and a shorter one to connect);
  * the connector's request budget, waited on before sending (proactive rate limiting), and
    given back when the connection failed (the API never saw the request);
  * fail-fast on unreachable hosts: a host whose name does not resolve, or that refuses or
    does not take the connection, is tried once more (the engine's retry); after a second
    failure in a row, requests to it fail at once, unsent, for `UNREACHABLE_HOLD_SECONDS`, so
    the rest of a cycle's streams neither wait on it nor retry it;
  * a request counter, for figures and logs;
  * observers (the daemon's metrics) told of every request and its answer, and a replica tag
    appended to the User-Agent so API-side logs show which pmsync process asked.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter

from pmsync import __version__
from pmsync.connectors.budget import RequestBudget
from pmsync.connectors.reach import (
    HostUnreachable,
    Reachability,
    connect_failure,
    short_url,
    transport_cause,
)
from pmsync.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RetriableError,
    StillUnreachable,
    Unreachable,
)

USER_AGENT = f"pmsync/{__version__}"
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Seconds to wait for a connection (the default timeout still bounds each read): a host that
#: takes no connection in this time is unreachable, not slow.
CONNECT_TIMEOUT = 15.0

#: Called after every request with the adapter, the request and its answer (None when the
#: transport failed). Observers must be quick and must not raise.
RequestObserver = Callable[
    ["ConnectorAdapter", requests.PreparedRequest, "requests.Response | None"], None
]
_observers: list[RequestObserver] = []
_observers_lock = threading.Lock()
_replica_tag: str | None = None


def add_request_observer(observer: RequestObserver) -> Callable[[], None]:
    """Register an observer of every connector request; returns the function that removes it."""
    with _observers_lock:
        _observers.append(observer)

    def remove() -> None:
        with _observers_lock:
            if observer in _observers:
                _observers.remove(observer)

    return remove


def set_replica_tag(tag: str | None) -> None:
    """Name this process in every User-Agent (`... pmsync-replica/TAG`); None removes it."""
    global _replica_tag  # noqa: PLW0603 - one process-wide identity, set once by the daemon
    _replica_tag = tag


class ConnectorAdapter(HTTPAdapter):
    """Transport adapter applying rewrite, CA, timeout and budget to every request."""

    def __init__(
        self,
        *,
        rewrite: Mapping[str, str] | None = None,
        ca_bundle: Path | None = None,
        timeout: float = 60.0,
        budget: RequestBudget | None = None,
    ) -> None:
        super().__init__()
        self.rewrite = dict(rewrite or {})
        self.ca_bundle = ca_bundle
        self.default_timeout = timeout
        self.budget = budget
        self.requests_sent = 0
        self.reachability = Reachability()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        original = self._prepare(request, kwargs)
        url = request.url or ""
        self.reachability.check(url)  # raises HostUnreachable, unsent, while the host is down
        taken = self.budget.acquire(request.method or "GET", url) if self.budget else None
        self.requests_sent += 1
        try:
            response = super().send(request, **kwargs)
        except requests.RequestException as exc:
            self._notify(request, None)
            cause = connect_failure(exc, kwargs["timeout"])
            if cause is None:
                raise
            if self.budget is not None:
                self.budget.refund(taken)  # the API never saw it
            raise self.reachability.failed(url, cause, request) from exc
        self.reachability.reached(url)
        self._notify(request, response)
        if response.request is not None and request.url != original:
            # Client libraries match answers to the host they asked (zenpy does); keep theirs.
            response.request.url = original
        return response

    def _prepare(self, request: requests.PreparedRequest, kwargs: dict[str, Any]) -> str:
        """Rewrite the URL, set CA, timeouts and User-Agent; returns the URL as asked."""
        original = request.url or ""
        for prefix, target in self.rewrite.items():
            if original.startswith(prefix):
                request.url = target + original[len(prefix) :]
                break
        if self.ca_bundle is not None:
            kwargs["verify"] = str(self.ca_bundle)
        elif kwargs.get("verify") is False:
            kwargs["verify"] = True  # TLS verification is never switched off
        if kwargs.get("timeout") is None:
            connect = min(CONNECT_TIMEOUT, self.default_timeout)
            kwargs["timeout"] = (connect, self.default_timeout)
        if _replica_tag is not None:
            agent = str(request.headers.get("User-Agent") or USER_AGENT)
            if "pmsync-replica/" not in agent:
                request.headers["User-Agent"] = f"{agent} pmsync-replica/{_replica_tag}"
        return original

    def _notify(
        self, request: requests.PreparedRequest, response: requests.Response | None
    ) -> None:
        with _observers_lock:
            observers = list(_observers)
        for observer in observers:
            try:
                observer(self, request, response)
            except Exception:  # noqa: BLE001, S112 - metrics must never break a request
                continue


def make_session(
    *,
    rewrite: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 60.0,
    budget: RequestBudget | None = None,
) -> tuple[requests.Session, ConnectorAdapter]:
    """A requests session whose every request goes through one ConnectorAdapter."""
    session = requests.Session()
    adapter = ConnectorAdapter(rewrite=rewrite, ca_bundle=ca_bundle, timeout=timeout, budget=budget)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session, adapter


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), if any."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_for_status(
    status: int,
    *,
    connector: str,
    what: str,
    headers: Mapping[str, str] | None = None,
    detail: str = "",
) -> ConnectorError:
    """Map an HTTP status to the error taxonomy; `what` names the request, never a secret."""
    suffix = f": {detail}" if detail else ""
    if status in RETRIABLE_STATUS:
        return RetriableError(
            f"{what} answered {status}{suffix}",
            connector=connector,
            retry_after=retry_after_seconds(headers or {}),
        )
    if status == 401:
        return AuthError(
            f"{what} answered 401: the credentials were refused; check the connector's "
            f"credentials in the configuration{suffix}",
            connector=connector,
        )
    if status == 403:
        return AuthError(
            f"{what} answered 403: the API user lacks permission for this{suffix}",
            connector=connector,
        )
    return FatalError(f"{what} answered {status}{suffix}", connector=connector)


def error_for_exception(
    exc: requests.RequestException, *, connector: str, what: str
) -> ConnectorError:
    """Map a transport failure to the taxonomy, naming the URL and the cause.

    No connection (unresolvable name, refused, connect timeout): Unreachable, retried once;
    StillUnreachable (fatal for this cycle) when the host failed just before too. TLS
    verification: fatal. Anything else (a read timeout, a dropped connection): retriable.
    """
    if isinstance(exc, HostUnreachable):
        if exc.tried:
            message = f"{what}: cannot connect to {exc.url}: {exc.cause}"
        else:
            message = f"{what}: not sent to {exc.url}: {exc.cause}"
        if exc.again:
            message += "; the host is tried again next cycle"
            return StillUnreachable(message, connector=connector)
        return Unreachable(message, connector=connector)
    url = short_url(exc.request.url) if exc.request is not None and exc.request.url else "?"
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalError(
            f"{what}: {url}: TLS verification failed ({type(exc).__name__}); for a private CA "
            "set ca_bundle for this connector or REQUESTS_CA_BUNDLE",
            connector=connector,
        )
    return RetriableError(f"{what}: {url}: {transport_cause(exc)}", connector=connector)


def monotonic() -> float:
    """Indirection so budgets and tests share one clock."""
    return time.monotonic()


_DETAIL_KEYS = ("error", "description", "message", "detail", "error_message")


def error_detail(response: requests.Response) -> str:
    """A short reason from an error body; never echoes request headers or parameters."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip() if response.text else ""
        return text[:200] if text and not text.startswith("<") else ""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in _DETAIL_KEYS if isinstance(body.get(k), str) and body[k]]
        return " - ".join(parts)[:200]
    return ""


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    connector: str,
    what: str,
    ok: Collection[int] = (200,),
    **kwargs: Any,
) -> requests.Response:
    """Send one request expecting a status in `ok` (200); every failure becomes an error of the
    taxonomy.

    `what` names the request in messages (method and path, never a secret).
    """
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise error_for_exception(exc, connector=connector, what=what) from None
    if response.status_code not in ok:
        raise error_for_status(
            response.status_code,
            connector=connector,
            what=what,
            headers=response.headers,
            detail=error_detail(response),
        )
    return response


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    connector: str,
    what: str,
    ok: Collection[int] = (200,),
    **kwargs: Any,
) -> tuple[requests.Response, Any]:
    """`send`, then parse the JSON answer (an unparsable answer is retriable)."""
    response = send(session, method, url, connector=connector, what=what, ok=ok, **kwargs)
    try:
        return response, loads_lenient(response.content)
    except ValueError:
        raise RetriableError(f"{what}: the answer was not JSON", connector=connector) from None


def loads_lenient(content: bytes) -> Any:
    """Parse a JSON answer even when some text in it is not valid UTF-8.

    One record with a bad byte in a free-text field must not make the whole page unreadable (it
    would fail the same way on every retry, and nothing after it would ever arrive). Invalid bytes
    are kept as lone surrogates (U+DC80..U+DCFF, Python's surrogateescape), so the record that
    carries them can be told apart and parked in dead letters with its bytes, while the rest of
    the page is stored. ValueError: the answer is not JSON at all (a cut-off body, a proxy's
    error page).
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    return json.loads(content.decode("utf-8", "surrogateescape"))
