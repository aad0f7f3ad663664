"""simple-salesforce on the connector's own session: login, re-login, quota, server time, errors.

simple-salesforce builds every URL as https://{instance}/... and logs in at
https://{domain}.salesforce.com. With a base-URL override (a proxy or the simulator) the
session's adapter rewrites the login host, and after login the instance host, to that URL;
the rewrite is per session, so two Salesforce connectors in one daemon stay independent.
TLS verification is never switched off: the adapter passes the connector's CA bundle (or
lets REQUESTS_CA_BUNDLE apply) with each request.

Re-login: simple-salesforce's own calls log in again on 401 INVALID_SESSION_ID, at most four
times per call. The connector never uses its SFType helpers, whose re-login recursion has no
bound (simple-salesforce issue #804); the few calls it sends itself (Bulk CSV results) log in
again once, then give up with an AuthError.
"""

from __future__ import annotations

import contextlib
import email.utils
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.util import call_salesforce

from pmsync.connectors.attribution import claim
from pmsync.connectors.http import RETRIABLE_STATUS, error_for_exception, make_session
from pmsync.connectors.salesforce.quota import QuotaGuard, parse_limit_info
from pmsync.connectors.salesforce.settings import SalesforceSettings
from pmsync.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    PmsyncError,
    QuotaExhausted,
    RetriableError,
)
from pmsync.logs import get_logger
from pmsync.redact import register_secret

log = get_logger("pmsync.salesforce")
T = TypeVar("T")

RETRIABLE_CODES = frozenset(
    {"INVALID_QUERY_LOCATOR", "QUERY_TIMEOUT", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"}
)


class SchemaChanged(RetriableError):
    """A query named a field the org no longer has; describe again and retry."""


class SalesforceClient:
    """One logged-in simple-salesforce client per connector instance, created on first use."""

    def __init__(self, name: str, settings: SalesforceSettings, guard: QuotaGuard) -> None:
        self.name = name
        self.settings = settings
        self.guard = guard
        self.server_time: datetime | None = None
        self.logins = 0
        self.last_status: int | None = None  # of the latest answer: what a login got back
        self._sf: Salesforce | None = None
        self.session, self.adapter = make_session(
            rewrite=self._login_rewrites(),
            ca_bundle=settings.ca_bundle,
            timeout=settings.timeout,
            budget=guard,
        )
        self.session.hooks["response"].append(self._observe)
        claim(self.adapter, name)

    # ---- session ------------------------------------------------------------------------------

    def _login_rewrites(self) -> dict[str, str]:
        base = self.settings.base_url
        if base is None:
            return {}
        hosts = {self.settings.login_domain, self.settings.audience_domain}
        return {f"https://{host}.salesforce.com": base for host in sorted(hosts)}

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Every answer: remember the API usage, the server's clock and the status."""
        self.last_status = response.status_code
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info", ""))
        if usage is not None:
            self.guard.observe(*usage)
        date = response.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.server_time = email.utils.parsedate_to_datetime(date).astimezone(UTC)

    def now(self) -> datetime:
        """Server time of the latest answer (clock skew must not move cursors), else ours."""
        return self.server_time or datetime.now(UTC).replace(microsecond=0)

    def sf(self) -> Salesforce:
        if self._sf is None:
            self._sf = self._login()
        return self._sf

    def _login(self) -> Salesforce:
        settings = self.settings
        creds = settings.credentials
        kwargs: dict[str, Any] = {
            "session": self.session,
            "version": settings.api_version,
            "object_pairs_hook": dict,
        }
        if creds.method == "client_credentials":
            kwargs.update(
                consumer_key=creds.client_id,
                consumer_secret=_secret(creds.client_secret),
                domain=settings.login_domain,
            )
        elif creds.method == "jwt":
            kwargs.update(
                username=creds.username,
                consumer_key=creds.client_id,
                privatekey=_secret(creds.private_key),
                domain=settings.audience_domain,
            )
            if settings.my_domain is not None:
                kwargs["instance_url"] = settings.login_domain  # token endpoint host
        else:
            kwargs.update(
                username=creds.username,
                password=_secret(creds.password),
                security_token=_secret(creds.security_token),
                domain=settings.login_domain,
            )
        try:
            sf = Salesforce(**kwargs)
        except SalesforceAuthenticationFailed as exc:
            detail = f"{exc.code}: {exc.auth_message}" if exc.code else exc.auth_message
            raise AuthError(
                f"login ({creds.method}) refused: {detail[:200]}; check "
                f"[connectors.{self.name}.credentials]",
                connector=self.name,
            ) from None
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.name, what="login") from None
        except (AttributeError, TypeError, KeyError):
            raise self._odd_login_answer(creds.method) from None
        register_secret(sf.session_id)
        self.logins += 1
        base = settings.base_url
        if base is not None and f"https://{sf.sf_instance}" != base:
            self.adapter.rewrite[f"https://{sf.sf_instance}"] = base
        log.info("salesforce_login", method=creds.method, instance=sf.sf_instance)
        return sf

    def _odd_login_answer(self, method: str) -> ConnectorError:
        """simple-salesforce reads a token answer as a JSON object with an instance URL; a
        list, or an object without one, breaks inside it. Say what came back, in our terms."""
        status = self.last_status
        what = f"login ({method}) answered HTTP {status} without a session"
        if status is not None and (status in RETRIABLE_STATUS or status >= 500):
            return RetriableError(what, connector=self.name)
        return AuthError(
            f"{what}: the credentials were refused, or base_url/my_domain is not a Salesforce "
            f"login host; check [connectors.{self.name}.credentials]",
            connector=self.name,
        )

    def close(self) -> None:
        self.session.close()
        self._sf = None

    # ---- calls --------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """Run a simple-salesforce call; every failure becomes an error of the taxonomy."""
        try:
            return fn(self.sf())
        except PmsyncError:
            raise
        except SalesforceExpiredSession as exc:
            raise self._expired(what, exc) from None
        except SalesforceError as exc:
            raise self.map_error(what, exc) from None
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.name, what=what) from None
        except ValueError as exc:  # a JSON answer that is not JSON
            raise RetriableError(
                f"{what}: unreadable answer ({exc})", connector=self.name
            ) from None

    def get_text(self, what: str, path: str, params: dict[str, Any]) -> requests.Response:
        """GET a non-JSON resource under the REST base (Bulk CSV results); one re-login."""
        for attempt in range(2):
            sf = self.sf()
            headers = {**sf.headers, "Accept": "text/csv"}
            try:
                return call_salesforce(
                    sf.base_url + path, "GET", self.session, headers, params=params
                )
            except PmsyncError:
                raise
            except SalesforceExpiredSession as exc:
                if attempt == 0:
                    log.info("salesforce_session_expired", request=what)
                    self._sf = None
                    continue
                raise self._expired(what, exc) from None
            except SalesforceError as exc:
                raise self.map_error(what, exc) from None
            except requests.RequestException as exc:
                raise error_for_exception(exc, connector=self.name, what=what) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _expired(self, what: str, exc: SalesforceError) -> AuthError:
        code, message = _first_error(exc)
        return AuthError(
            f"{what}: the session was refused even after logging in again ({code}: {message})",
            connector=self.name,
        )

    def map_error(self, what: str, exc: SalesforceError) -> ConnectorError:
        """A simple-salesforce error as the engine's taxonomy; names the call, never a secret."""
        code, message = _first_error(exc)
        detail = f"{what} answered {exc.status} {code}: {message}"
        if exc.status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            self.guard.mark_exhausted()
            return QuotaExhausted(
                f"{what}: Salesforce answered REQUEST_LIMIT_EXCEEDED (the org's API "
                "allocation is used up); the sync resumes on a later cycle",
                connector=self.name,
            )
        if exc.status in (401, 403):
            return AuthError(
                f"{detail}; check the integration user's permissions", connector=self.name
            )
        if code == "INVALID_FIELD":
            return SchemaChanged(detail, connector=self.name)
        if code in RETRIABLE_CODES or exc.status in RETRIABLE_STATUS or exc.status >= 500:
            return RetriableError(detail, connector=self.name)
        return FatalError(detail, connector=self.name)


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def _first_error(exc: SalesforceError) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error answer, however it came."""
    content: Any = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), str(first.get("message", ""))[:300]
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error", "")), str(
            content.get("message") or content.get("error_description", "")
        )[:300]
    text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
    return "", text[:300]
