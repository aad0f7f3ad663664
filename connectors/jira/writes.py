"""Write primitives for the write-back: edit fields, store an issue property, upsert remote links.

Each write is one request, paced per issue so no issue receives more than Jira Cloud's per-issue
write allowance (RateLimit-Reason `jira-per-issue-on-write`). Edits are PUT issue with
`notifyUsers=false`: Jira honours that only for users with Administer Jira or project admin
permission and otherwise ignores it silently, so the first write to a project checks the API
user's permissions and says once in the log when watchers will be notified anyway.

The jira library's `Issue.update` GETs the issue, PUTs, then GETs it again, and `add_remote_link`
first lists application links (an admin-only call); both would triple the requests of a
write-back. So every write goes through pmsync's own session (`api.py`): one request each, paced
and budgeted like the reads, its answer mapped onto the same outcomes: a rejected field fails
only its record, 404 marks the target gone, 429/5xx and dropped connections are retriable (with
Retry-After, or X-RateLimit-Reset when Jira sends no Retry-After), 401 stops the write-back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from pmsync.connectors.base import FieldWrite, WriteOutcome
from pmsync.connectors.budget import arrival_margin, budget_sleep
from pmsync.connectors.http import retry_after_seconds
from pmsync.connectors.jira.api import JiraApi
from pmsync.connectors.jira.errors import (
    rate_limit_reset_seconds,
    response_error,
    response_field_errors,
    response_messages,
)
from pmsync.connectors.jira.fields import FieldCatalog, FieldNameError
from pmsync.connectors.window import MovingWindow
from pmsync.errors import AuthError, ConnectorError, RetriableError
from pmsync.logs import get_logger

log = get_logger("pmsync.connectors.jira")

PROPERTY_KEY_MAX = 255
PROPERTY_VALUE_MAX = 32_768
_NOTIFY_PERMISSIONS = "ADMINISTER_PROJECTS,ADMINISTER"
# A 429 on a write (Jira's per-issue write limit, or its burst limit) is a wait, not a failure:
# the write is sent again after Retry-After, this many times in all, when the wait is short.
WRITE_429_ATTEMPTS = 4
WRITE_429_MAX_WAIT = 10.0  # longer: a retriable outcome; the apply retries within its bounds
# Issues whose per-issue windows are kept before idle ones are dropped.
_PACER_WINDOWS_KEPT = 4096


class IssueWritePacer:
    """Blocks a write until the issue it targets has room under every per-issue limit.

    Jira counts a write when it arrives, a little after the pacer counted it, and an earlier
    write may have taken longer to arrive than the next one will: a wait ends a little past the
    window's end (`arrival_margin`), as the request budget's waits do.
    """

    def __init__(
        self, limits: list[tuple[int, int]], *, sleep: Callable[[float], None] = budget_sleep
    ) -> None:
        # budget_sleep: a daemon's stop or lost lease cuts the wait short, as for the budget.
        self._rules = list(limits)
        self._windows: dict[tuple[str, int], MovingWindow] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self.waited_seconds = 0.0

    def acquire(self, issue: str) -> None:
        for rule, (amount, seconds) in enumerate(self._rules):
            margin = arrival_margin(seconds)
            while True:
                with self._lock:
                    window = self._window(issue, rule)
                    wait = window.wait(amount)
                    if wait is None:
                        window.hit()
                        break
                delay = wait + margin
                self.waited_seconds += delay
                self._sleep(delay)

    def _window(self, issue: str, rule: int) -> MovingWindow:
        """The window of one issue under one rule; idle ones are dropped as issues pile up."""
        window = self._windows.get((issue, rule))
        if window is None:
            if len(self._windows) >= _PACER_WINDOWS_KEPT:
                self._windows = {key: w for key, w in self._windows.items() if w.count()}
            amount, seconds = self._rules[rule]
            window = self._windows[(issue, rule)] = MovingWindow(amount, seconds)
        return window


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
        api: Callable[[], JiraApi],
        catalog: Callable[[bool], FieldCatalog],
        pacer: IssueWritePacer,
    ) -> None:
        self.connector = connector
        self._api = api
        self._catalog = catalog
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
            return _merge(failure, problems)
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
        failure, response = self._send_fields(issue, payload)
        if response is None or response.status_code in (200, 204):
            return failure, None
        rejected = response_field_errors(response) if response.status_code == 400 else {}
        if not rejected:
            return self._failure(issue, response, f"PUT issue {issue}"), None
        named = self._describe_rejections(issue, rejected)
        remaining = {k: v for k, v in payload.items() if k not in rejected}
        if not remaining:
            return None, named
        failure, again = self._send_fields(issue, remaining)
        if again is None:
            return failure, named
        if again.status_code not in (200, 204):
            return self._failure(issue, again, f"PUT issue {issue}"), named
        catalog = self._catalog(False)
        written = ", ".join(catalog.describe(k) for k in sorted(remaining))
        return None, f"{named} (the other fields were written: {written})"

    def _send_fields(
        self, issue: str, payload: dict[str, Any]
    ) -> tuple[WriteOutcome | None, requests.Response | None]:
        """(a transport failure, None) or (None, Jira's answer)."""
        try:
            return None, self._put(issue, payload)
        except ConnectorError as exc:
            return self._transport_failure(issue, exc), None

    def _put(self, issue: str, payload: dict[str, Any]) -> requests.Response:
        params = {} if self._notify_flag_refused else {"notifyUsers": "false"}
        response = self._write(
            issue,
            "PUT",
            f"issue/{issue}",
            f"PUT issue {issue}",
            body={"fields": payload},
            params=params,
        )
        if params and _refuses_notify_flag(response):
            self._notify_flag_refused = True
            log.warning(
                "jira_notify_users_refused",
                connector=self.connector,
                detail="Jira refused notifyUsers=false for lack of admin permission; "
                "writes go on and watchers will be notified",
            )
            return self._put(issue, payload)
        return response

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
            answer = self._api().json(
                "GET",
                "mypermissions",
                what="GET mypermissions",
                params={"projectKey": project, "permissions": _NOTIFY_PERMISSIONS},
            )
        except ConnectorError:
            return  # only a log line depends on it
        granted = (answer or {}).get("permissions") or {} if isinstance(answer, dict) else {}
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
        what = f"PUT property {key} of issue {issue}"
        try:
            response = self._write(
                issue, "PUT", f"issue/{issue}/properties/{key}", what, body=value
            )
        except ConnectorError as exc:
            return self._transport_failure(issue, exc)
        if response.status_code in (200, 201, 204):
            return WriteOutcome(key=issue, ok=True)
        return self._failure(issue, response, what)

    def get_property(self, issue: str, key: str) -> Any:
        """The property's value; None when the issue has no such property (or no longer exists)."""
        what = f"GET property {key} of issue {issue}"
        response = self._api().send("GET", f"issue/{issue}/properties/{key}", what=what)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise response_error(response, connector=self.connector, what=what)
        body = response.json()
        return body.get("value") if isinstance(body, dict) else None

    def upsert_remote_link(self, issue: str, link: RemoteLink) -> WriteOutcome:
        what = f"POST remotelink of issue {issue}"
        try:
            response = self._write(
                issue, "POST", f"issue/{issue}/remotelink", what, body=link.body()
            )
        except ConnectorError as exc:
            return self._transport_failure(issue, exc)
        if response.status_code in (200, 201):
            return WriteOutcome(key=issue, ok=True)
        return self._failure(issue, response, what)

    # ---- shared --------------------------------------------------------------------------

    def _write(
        self,
        issue: str,
        method: str,
        path: str,
        what: str,
        *,
        body: Any,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One write, paced per issue; a 429 is waited out (Retry-After) and sent again."""
        attempt = 1
        while True:
            self._pacer.acquire(issue)
            response = self._api().send(method, path, what=what, params=params, body=body)
            wait = _rate_limited_wait(response)
            if wait is None or attempt == WRITE_429_ATTEMPTS:
                return response
            log.info(
                "jira_write_rate_limited",
                connector=self.connector,
                issue=issue,
                reason=response.headers.get("RateLimit-Reason"),
                wait=round(wait, 2),
            )
            budget_sleep(wait)  # the daemon's sleep: a stop or a lost lease ends it early
            attempt += 1

    def _failure(self, issue: str, response: requests.Response, what: str) -> WriteOutcome:
        """A refused write as an outcome; a refused credential stops the whole write-back."""
        status = response.status_code
        error = response_error(response, connector=self.connector, what=what)
        if status == 401:
            raise error
        if status == 403:
            detail = response_messages(response)
            return _failed(issue, f"issue {issue}: the API user may not edit it: {detail}")
        if status == 404:
            return WriteOutcome(
                key=issue,
                ok=False,
                error=f"issue {issue} does not exist or the API user cannot see it",
                gone=True,
            )
        if isinstance(error, RetriableError):
            return _retriable(issue, error)
        if isinstance(error, AuthError):
            raise error
        return _failed(issue, str(error))

    def _transport_failure(self, issue: str, exc: ConnectorError) -> WriteOutcome:
        if isinstance(exc, RetriableError):
            return _retriable(issue, exc)
        return _failed(issue, str(exc))


def _rate_limited_wait(response: requests.Response) -> float | None:
    """Seconds to wait before sending a write Jira answered 429 again; None: not a 429, or a
    wait too long to spend inside one write (the write-back then retries it later)."""
    if response.status_code != 429:
        return None
    headers = response.headers
    wait = retry_after_seconds(headers)
    if wait is None:
        wait = rate_limit_reset_seconds(headers)
    wait = 1.0 if wait is None else wait
    return wait if wait <= WRITE_429_MAX_WAIT else None


def _retriable(issue: str, error: RetriableError) -> WriteOutcome:
    wait = f" (retry after {error.retry_after:.0f} s)" if error.retry_after else ""
    return WriteOutcome(
        key=issue, ok=False, error=f"{error}{wait}", retriable=True, retry_after=error.retry_after
    )


def _merge(failure: WriteOutcome, problems: list[str]) -> WriteOutcome:
    if not problems:
        return failure
    return WriteOutcome(
        key=failure.key,
        ok=False,
        error="; ".join([*problems, str(failure.error)]),
        retriable=failure.retriable,
        retry_after=failure.retry_after,
        gone=failure.gone,
    )


def _failed(issue: str, message: str, retriable: bool = False) -> WriteOutcome:
    return WriteOutcome(key=issue, ok=False, error=message, retriable=retriable)


def _refuses_notify_flag(response: requests.Response) -> bool:
    text = response_messages(response).lower()
    return response.status_code in (400, 403) and "notification" in text
