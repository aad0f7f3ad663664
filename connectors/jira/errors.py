"""Map what the jira library raises onto pmsync's error taxonomy.

`str(JIRAError)` includes the request headers (the Authorization header among them), so only
the status, Jira's own error messages and selected response headers are ever used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from jira.exceptions import JIRAError

from pmsync.connectors.http import error_for_exception, error_for_status
from pmsync.errors import ConnectorError, FatalError, RetriableError


def response_headers(exc: JIRAError) -> Mapping[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


def jira_messages(exc: JIRAError) -> str:
    """Jira's error text (errorMessages / errors), never anything from the request."""
    return str(exc.text or "")[:300]


def field_errors(exc: JIRAError) -> dict[str, str]:
    """The per-field `errors` object of a 400 answer, if any."""
    response = getattr(exc, "response", None)
    try:
        body: Any = response.json() if response is not None else None
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}


def rate_limit_reset_seconds(
    headers: Mapping[str, str], now: datetime | None = None
) -> float | None:
    """Seconds until X-RateLimit-Reset (ISO 8601, e.g. 2026-01-05T10:31Z), if present."""
    value = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def map_jira_error(exc: JIRAError, *, connector: str, what: str) -> ConnectorError:
    """A JIRAError as RetriableError / AuthError / FatalError, naming the request."""
    return status_error(
        int(exc.status_code or 0),
        response_headers(exc),
        jira_messages(exc),
        connector=connector,
        what=what,
    )


def response_messages(response: requests.Response) -> str:
    """Jira's error text of an answer (errorMessages and per-field errors), at most 300 chars."""
    try:
        body: Any = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return "" if text.startswith("<") else text[:300]
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(parts)[:300]


def response_field_errors(response: requests.Response) -> dict[str, str]:
    """The per-field `errors` object of a 400 answer, if any."""
    try:
        body: Any = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}


def response_error(response: requests.Response, *, connector: str, what: str) -> ConnectorError:
    """A non-2xx answer to a request sent on pmsync's session, mapped like a JIRAError."""
    return status_error(
        response.status_code,
        response.headers,
        response_messages(response),
        connector=connector,
        what=what,
    )


def status_error(
    status: int, headers: Mapping[str, str], messages: str, *, connector: str, what: str
) -> ConnectorError:
    """Jira's answer status as an error of the taxonomy; 429/503 wait for Retry-After or, when
    Jira sent none, until X-RateLimit-Reset."""
    if status == 0:
        return RetriableError(f"{what}: no answer from Jira", connector=connector)
    if status == 410:
        return FatalError(
            f"{what} answered 410 Gone: this API was removed from Jira Cloud; {messages}",
            connector=connector,
        )
    if status == 403 and headers.get("X-Authentication-Denied-Reason"):
        reason = headers["X-Authentication-Denied-Reason"][:120]
        detail = f"login denied ({reason}); log in once in a browser to clear a CAPTCHA"
        return error_for_status(403, connector=connector, what=what, detail=detail)
    error = error_for_status(
        status, connector=connector, what=what, headers=headers, detail=messages
    )
    if isinstance(error, RetriableError) and error.retry_after is None:
        error.retry_after = rate_limit_reset_seconds(headers)
    return error


def map_exception(exc: Exception, *, connector: str, what: str) -> ConnectorError:
    """Any failure of a library call as an error of the taxonomy."""
    if isinstance(exc, JIRAError):
        return map_jira_error(exc, connector=connector, what=what)
    if isinstance(exc, requests.RequestException):
        return error_for_exception(exc, connector=connector, what=what)
    if isinstance(exc, ValueError):  # a body that is not JSON (a proxy's error page)
        return RetriableError(f"{what}: the answer was not JSON", connector=connector)
    raise exc
