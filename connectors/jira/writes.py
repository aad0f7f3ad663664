"""Write primitives for the write-back: edit fields, store an issue property, upsert remote links.

Each write is one request, paced per issue so no issue receives more than Jira Cloud's per-issue
write allowance (RateLimit-Reason `jira-per-issue-on-write`). Edits are PUT issue with
`notifyUsers=false`: Jira honours that only for users with Administer Jira or project admin
permission and otherwise ignores it silently, so the first write to a project checks the API
user's permissions and says once in the log when watchers will be notified anyway.

The jira library's `Issue.update` GETs the issue, PUTs, then GETs it again, and `add_remote_link`
first lists application links (an admin-only call); both would triple the requests of a
write-back, so these PUT and POST through the library's own session (same auth, same error
handling: a non-2xx answer raises JIRAError).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from jira import JIRA
from jira.exceptions import JIRAError
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from pmsync.connectors.base import FieldWrite, WriteOutcome
from pmsync.connectors.jira.errors import field_errors, jira_messages, map_exception
from pmsync.connectors.jira.fields import FieldCatalog, FieldNameError
from pmsync.errors import AuthError, RetriableError

log = structlog.get_logger("pmsync.connectors.jira")

PROPERTY_KEY_MAX = 255
PROPERTY_VALUE_MAX = 32_768
_NOTIFY_PERMISSIONS = "ADMINISTER_PROJECTS,ADMINISTER"


class IssueWritePacer:
    """Blocks a write until the issue it targets has room under every per-issue limit."""

    def __init__(
        self, limits: list[tuple[int, int]], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._items = [RateLimitItemPerSecond(amount, seconds) for amount, seconds in limits]
        self._lock = threading.Lock()
        self._sleep = sleep
        self.waited_seconds = 0.0

    def acquire(self, issue: str) -> None:
        for item in self._items:
            while True:
                with self._lock:
                    if self._limiter.hit(item, "issue-write", issue):
                        break
                    stats = self._limiter.get_window_stats(item, "issue-write", issue)
                delay = max(0.01, stats.reset_time - time.time())
                self.waited_seconds += delay
                self._sleep(delay)


@dataclass(frozen=True)
class RemoteLink:
    """A link from an issue to an outside object; `global_id` makes repeated writes upserts."""

    global_id: str
    url: str
    title: str
    summary: str | None = None
    relationship: str | None = None
    application: Mapping[str, str] | None = None
    icon_url: str | None = None
    resolved: bool | None = None

    def body(self) -> dict[str, Any]:
        target: dict[str, Any] = {"url": self.url, "title": self.title}
        if self.summary is not None:
            target["summary"] = self.summary
        if self.icon_url is not None:
            target["icon"] = {"url16x16": self.icon_url, "title": self.title}
        if self.resolved is not None:
            target["status"] = {"resolved": self.resolved}
        body: dict[str, Any] = {"globalId": self.global_id, "object": target}
        if self.relationship is not None:
            body["relationship"] = self.relationship
        if self.application is not None:
            body["application"] = dict(self.application)
        return body


class IssueWriter:
    """Performs writes for one connector; record-level failures become outcomes."""

    def __init__(
        self,
        *,
        connector: str,
        client: Callable[[], JIRA],
        catalog: Callable[[bool], FieldCatalog],
        api_version: str,
        pacer: IssueWritePacer,
    ) -> None:
        self.connector = connector
        self._client = client
        self._catalog = catalog
        self._api_version = api_version
        self._pacer = pacer
        self._notify_checked: set[str] = set()
        self._notify_flag_refused = False

    # ---- fields --------------------------------------------------------------------------

    def write_fields(self, write: FieldWrite) -> WriteOutcome:
        issue = write.key
        if write.object_name not in ("issue", "issues"):
            return _failed(issue, f"issue {issue}: cannot write object '{write.object_name}'")
        ids, unknown = self._resolve(write.fields)
        problems = [f"issue {issue}: field '{name}': {reason}" for name, reason in unknown]
        payload = {ids[name]: value for name, value in write.fields.items() if name in ids}
        if not payload:
            return _failed(issue, "; ".join(problems) or f"issue {issue}: no fields to write")
        self._check_notify_permission(issue)
        failure, rejected = self._put_fields(issue, payload)
        if rejected:
            problems.append(rejected)
        if failure is not None:
            return _failed(issue, "; ".join([*problems, str(failure.error)]), failure.retriable)
        return _failed(issue, "; ".join(problems)) if problems else WriteOutcome(issue, ok=True)

    def _resolve(self, fields: Mapping[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        ids: dict[str, str] = {}
        unknown: list[tuple[str, str]] = []
        for name in fields:
            try:
                ids[name] = self._catalog(False).resolve(name)
            except FieldNameError:
                try:  # a field created since the catalogue was read
                    ids[name] = self._catalog(True).resolve(name)
                except FieldNameError as exc:
                    unknown.append((name, str(exc)))
        return ids, unknown

    def _put_fields(
        self, issue: str, payload: dict[str, Any]
    ) -> tuple[WriteOutcome | None, str | None]:
        """(failure: nothing written, or None; text naming fields Jira rejected, or None).

        When Jira rejects some fields (it then applies none), the others are sent again alone.
        """
        try:
            self._put(issue, payload)
            return None, None
        except JIRAError as exc:
            rejected = field_errors(exc) if exc.status_code == 400 else {}
            if not rejected:
                return self._failure(issue, exc, "PUT issue"), None
            named = self._describe_rejections(issue, rejected)
            remaining = {k: v for k, v in payload.items() if k not in rejected}
            if not remaining:
                return None, named
            try:
                self._put(issue, remaining)
            except Exception as again:  # noqa: BLE001 - becomes an outcome
                return self._failure(issue, again, "PUT issue"), named
            catalog = self._catalog(False)
            written = ", ".join(catalog.describe(k) for k in sorted(remaining))
            return None, f"{named} (the other fields were written: {written})"
        except Exception as exc:  # noqa: BLE001 - transport failures become outcomes
            return self._failure(issue, exc, "PUT issue"), None

    def _put(self, issue: str, payload: dict[str, Any]) -> None:
        self._pacer.acquire(issue)
        client = self._client()
        params = {} if self._notify_flag_refused else {"notifyUsers": "false"}
        try:
            client._session.put(
                self._url(client, f"issue/{issue}"),
                params=params,
                data=json.dumps({"fields": payload}),
            )
        except JIRAError as exc:
            if params and _refuses_notify_flag(exc):
                self._notify_flag_refused = True
                log.warning(
                    "jira_notify_users_refused",
                    connector=self.connector,
                    detail="Jira refused notifyUsers=false for lack of admin permission; "
                    "writes go on and watchers will be notified",
                )
                self._put(issue, payload)
                return
            raise

    def _describe_rejections(self, issue: str, rejected: Mapping[str, str]) -> str:
        catalog = self._catalog(False)
        return "; ".join(
            f"issue {issue}: field {catalog.describe(k)} cannot be set: {reason}"
            for k, reason in sorted(rejected.items())
        )

    def _check_notify_permission(self, issue: str) -> None:
        """Once per project: say in the log when notifyUsers=false will be ignored."""
        project = issue.partition("-")[0] if "-" in issue else None
        if project is None or project in self._notify_checked:
            return
        self._notify_checked.add(project)
        try:
            answer = self._client().my_permissions(
                projectKey=project, permissions=_NOTIFY_PERMISSIONS
            )
        except Exception:  # noqa: BLE001 - only a log line depends on it
            return
        granted = (answer or {}).get("permissions") or {}
        if not any(p.get("havePermission") for p in granted.values() if isinstance(p, dict)):
            log.warning(
                "jira_notify_users_ignored",
                connector=self.connector,
                project=project,
                detail="the API user is neither Jira admin nor project admin, so Jira ignores "
                "notifyUsers=false: watchers are notified of pmsync's edits",
            )

    # ---- properties and remote links ----------------------------------------------------

    def set_property(self, issue: str, key: str, value: Any) -> WriteOutcome:
        text = json.dumps(value)
        if not key or len(key) > PROPERTY_KEY_MAX:
            return _failed(issue, f"issue {issue}: property key must be 1-255 characters")
        if value is None or len(text) > PROPERTY_VALUE_MAX:
            return _failed(
                issue,
                f"issue {issue}: property '{key}' must be non-empty JSON of at most "
                f"{PROPERTY_VALUE_MAX} characters (it has {len(text)})",
            )
        try:
            self._pacer.acquire(issue)
            self._client().add_issue_property(issue, key, value)
        except Exception as exc:  # noqa: BLE001 - becomes an outcome
            return self._failure(issue, exc, f"PUT property {key}")
        return WriteOutcome(key=issue, ok=True)

    def upsert_remote_link(self, issue: str, link: RemoteLink) -> WriteOutcome:
        try:
            self._pacer.acquire(issue)
            client = self._client()
            client._session.post(
                self._url(client, f"issue/{issue}/remotelink"), data=json.dumps(link.body())
            )
        except Exception as exc:  # noqa: BLE001 - becomes an outcome
            return self._failure(issue, exc, "POST remotelink")
        return WriteOutcome(key=issue, ok=True)

    # ---- shared --------------------------------------------------------------------------

    def _url(self, client: JIRA, path: str) -> str:
        return f"{client.server_url}/rest/api/{self._api_version}/{path}"

    def _failure(self, issue: str, exc: Exception, what: str) -> WriteOutcome:
        """A failed write as an outcome; a refused credential stops the whole write-back."""
        error = map_exception(exc, connector=self.connector, what=f"{what} {issue}")
        status = exc.status_code if isinstance(exc, JIRAError) else None
        if status == 401:
            raise error
        if status == 403:
            detail = jira_messages(exc) if isinstance(exc, JIRAError) else ""
            return _failed(issue, f"issue {issue}: the API user may not edit it: {detail}")
        if status == 404:
            return _failed(issue, f"issue {issue} does not exist or the API user cannot see it")
        if isinstance(error, RetriableError):
            wait = f" (retry after {error.retry_after:.0f} s)" if error.retry_after else ""
            return WriteOutcome(key=issue, ok=False, error=f"{error}{wait}", retriable=True)
        if isinstance(error, AuthError):
            raise error
        return _failed(issue, str(error))


def _failed(issue: str, message: str, retriable: bool = False) -> WriteOutcome:
    return WriteOutcome(key=issue, ok=False, error=message, retriable=retriable)


def _refuses_notify_flag(exc: JIRAError) -> bool:
    text = jira_messages(exc).lower()
    return exc.status_code in (400, 403) and "notification" in text
