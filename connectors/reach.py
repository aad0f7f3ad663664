"""Which API hosts could not be reached lately, so that a dead host fails fast.

A host whose name does not resolve, or that refuses or does not take a connection, is not
going to answer the next request either. Without this, each stream of a connector tried it
five times with growing back-offs (two minutes for the example configuration). Now the first
failure is retriable (a blip), the second in a row stops the stream for this cycle, and for
`UNREACHABLE_HOLD_SECONDS` after it requests to that host are not sent at all: the other
streams of the cycle stop at once with the same cause. Any answer from the host clears it.

Failures are described in words that name the cause (`acme.zendesk.invalid does not resolve
(Name or service not known)`, `connection refused`), with the URL (never its query string).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

#: After a host's second failure in a row, how long requests to it fail without being sent.
#: Shorter than the daemon's first failure back-off (30 s), so its next cycle tries again.
UNREACHABLE_HOLD_SECONDS = 20.0


class HostUnreachable(requests.exceptions.ConnectionError):
    """No connection to the host of `url`. `again`: it failed just before too (do not retry
    now). `tried`: False when the request was not sent because the host is known down."""

    def __init__(
        self,
        url: str,
        cause: str,
        *,
        again: bool,
        tried: bool = True,
        request: requests.PreparedRequest | None = None,
    ) -> None:
        self.url = url
        self.cause = cause
        self.again = again
        self.tried = tried
        super().__init__(f"{url}: {cause}", request=request)


@dataclass
class _Down:
    failures: int
    cause: str
    at: float


class Reachability:
    """Per host (scheme, name, port): consecutive connection failures and the last cause."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[str, _Down] = {}

    def check(self, url: str) -> None:
        """Raise HostUnreachable (unsent) while `url`'s host is held down."""
        origin = _origin(url)
        with self._lock:
            down = self._hosts.get(origin)
            if down is None:
                return
            age = self._clock() - down.at
            if age >= UNREACHABLE_HOLD_SECONDS:
                del self._hosts[origin]  # a new cycle: one try and one retry again
                return
            if down.failures < 2:
                return
        raise HostUnreachable(
            short_url(url),
            f"unreachable {age:.0f} s ago: {down.cause}",
            again=True,
            tried=False,
        )

    def failed(
        self, url: str, cause: str, request: requests.PreparedRequest | None = None
    ) -> HostUnreachable:
        """Count a failed connection; the error to raise for it."""
        origin = _origin(url)
        with self._lock:
            down = self._hosts.get(origin)
            now = self._clock()
            if down is None or now - down.at >= UNREACHABLE_HOLD_SECONDS:
                down = self._hosts[origin] = _Down(0, cause, now)
            down.failures += 1
            down.cause, down.at = cause, now
            again = down.failures >= 2
        return HostUnreachable(short_url(url), cause, again=again, request=request)

    def reached(self, url: str) -> None:
        """The host answered (whatever the status): it is reachable."""
        origin = _origin(url)
        if origin in self._hosts:
            with self._lock:
                self._hosts.pop(origin, None)


def connect_failure(exc: requests.RequestException, timeout: object) -> str | None:
    """The cause, in words, when `exc` means no connection was made (so the API never saw the
    request); None for any other failure (TLS, a read timeout, a dropped connection)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return None
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        seconds = timeout[0] if isinstance(timeout, tuple) else timeout
        return f"no connection within {seconds} s"
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return None
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, NameResolutionError):
        cause = reason.__cause__
        detail = f" ({cause.strerror})" if isinstance(cause, socket.gaierror) else ""
        return f"{getattr(reason, '_host', None) or 'the host'} does not resolve{detail}"
    if isinstance(reason, NewConnectionError):
        return _refusal(reason.__cause__)
    return None


def _refusal(cause: BaseException | None) -> str:
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[:1].lower() + cause.strerror[1:]
    return "no connection"


def transport_cause(exc: requests.RequestException) -> str:
    """What went wrong with a request that was (or may have been) sent, in words."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer in time (read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"the connection failed ({_innermost(exc)})"
    return f"{type(exc).__name__} ({_innermost(exc)})"


def short_url(url: str) -> str:
    """scheme://host[:port]/path: no query string, no user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _innermost(exc: BaseException) -> str:
    """The deepest reason's message: `Remote end closed connection without response`."""
    current: object = exc
    for _ in range(6):
        nxt = getattr(current, "reason", None)
        if nxt is None and isinstance(current, BaseException) and current.args:
            first = current.args[-1]
            nxt = first if isinstance(first, BaseException) else None
        if nxt is None:
            break
        current = nxt
    text = str(current) or type(current).__name__
    return text[:160]
