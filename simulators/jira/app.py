"""A Jira REST API simulator (Cloud and Data Center), faithful to the contract pmsync relies on.

Implemented, after Atlassian's public REST reference (v2 and v3 paths, `/rest/api/{2,3,latest}`):
  * Auth. Cloud: Basic `{email}:{api_token}`. Data Center: `Authorization: Bearer {PAT}`.
    Wrong credentials answer 401 with `X-Seraph-LoginReason: AUTHENTICATED_FAILED` on every
    path; no credentials are allowed only on GET serverInfo (anonymous access, as on both).
  * GET serverInfo: `versionNumbers`, `deploymentType` ("Cloud" or "Server"), `serverTime`.
  * GET myself: the API user, with its profile `timeZone`.
  * GET field: system and custom fields with id, name, custom, schema and clauseNames. Display
    names are not unique (Jira allows two custom fields named alike).
  * Cloud search, GET/POST search/jql: `jql`, `nextPageToken`, `maxResults` (default 50; at most
    5,000 when only id/key are asked for, else `max_results_with_fields`, 100 by default, so a page
    may be shorter than asked), `fields` (default: id only; `*all`, `*navigable`, ids, `-id`).
    The answer has `issues`, `isLast` and, unless last, `nextPageToken`; there is no `total`.
    A query without any restriction (only ORDER BY, or empty) answers 400 "Unbounded JQL
    queries are not allowed here". A token is tied to the query that issued it (another query,
    or a token older than 7 days, answers 400). POST search/approximate-count gives `count`.
  * Cloud legacy search (GET/POST search) answers 410 Gone with Atlassian's migration message.
  * Data Center search, GET/POST search: `startAt`, `maxResults` (default 50, capped at 1,000,
    Jira's jira.search.views.default.max), `total`, offset paging over the live result (so a
    change during paging shifts later pages, as it does in Jira). search/jql answers 404 there.
  * JQL: the subset in `jql.py`. Literal dates are read in the API user's profile time zone at
    minute precision; epoch milliseconds are exact. Default order: key ascending.
  * Eventual consistency: with `index_lag` seconds, search sees an issue's previous version
    (or nothing, for a new issue) until the lag has passed; GET issue is always current.
  * GET issue/{idOrKey} (`fields`), PUT issue/{idOrKey} with `fields` and/or `update`
    (set/add/remove). A field that does not exist or is not on the edit screen answers 400 with
    `errors: {id: "Field 'id' cannot be set. It is not on the appropriate screen, or unknown."}`
    and nothing is applied; values are type-checked (numbers, labels without spaces, versions
    and components that exist). Success is 204 (200 with the issue when `returnIssue=true`) and
    moves `updated`. `notifyUsers=false` is honoured only for an admin API user; otherwise it is
    silently ignored (the documented behaviour) and the notification counted in `notifications`,
    or, with `refuse_notify_flag`, refused with 400 and Jira's "To discard the user
    notification..." message (an answer reported by integrators; both are handled).
    A project in `edit_denied_projects` answers 403.
  * Moving an issue to another project (`move_issue`) gives it the next key of that project and
    moves `updated`; its id stays, and GET issue/{old key} keeps answering with the moved issue
    (its current key in the answer), as Jira keeps old keys working after a move.
  * Issue properties: GET issue/{k}/properties, GET/PUT/DELETE issue/{k}/properties/{key}; key at
    most 255 characters, value non-empty JSON of at most 32,768 characters; 201 when created,
    200 when replaced. Properties do not move `updated`.
  * Remote links: GET/POST/DELETE issue/{k}/remotelink; POST with a `globalId` that exists
    replaces that link (fields left out become null) and answers 200, else 201.
  * GET mypermissions?permissions=...&projectKey=... (`permissions` is required on Cloud).
  * Rate limits: a burst limit per endpoint and method (`burst_per_second`) and, on Cloud,
    per-issue write limits (`issue_write_limits`, pairs of (writes, seconds)); over either: 429 with
    Retry-After (seconds), X-RateLimit-Reset (ISO 8601, `yyyy-MM-ddTHH:mmZ`), X-RateLimit-Limit,
    X-RateLimit-Remaining and RateLimit-Reason (`jira-burst-based` or `jira-per-issue-on-write`).
Not implemented: changelogs, transitions, comments, attachments, bulk edit, webhooks.
"""

from __future__ import annotations

import base64
import bisect
import copy
import hashlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from pmsync.simulators.base import Simulator, json_response
from pmsync.simulators.jira import jql
from pmsync.simulators.jira.edits import check_value, link_problem, operate, property_problem
from pmsync.simulators.jira.fields import SYSTEM_DATE_FIELDS, default_fields, editable_field_ids

Deployment = Literal["cloud", "datacenter"]
TOKEN_LIFETIME_MS = 7 * 86_400_000
ID_ONLY_FIELDS = frozenset({"id", "key", "issuekey"})
DC_MAX_RESULTS = 1000
CLOUD_MAX_RESULTS = 5000
GONE_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
CANNOT_SET = "Field '{0}' cannot be set. It is not on the appropriate screen, or unknown."
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
NOTIFY_REFUSED = (
    "To discard the user notification either admin or project admin permissions are required."
)
V = '<any("2","3","latest"):version>'


def errors_body(messages: Iterable[str] = (), errors: dict[str, str] | None = None) -> Any:
    return {"errorMessages": list(messages), "errors": errors or {}}


@dataclass
class StoredIssue:
    """An issue as stored, plus the version search still sees while the index lags."""

    current: dict[str, Any]
    visible_from: float = 0.0
    previous: dict[str, Any] | None = None
    hidden: bool = False


@dataclass
class _Cached:
    keys: list[tuple[Any, ...]]
    issues: list[dict[str, Any]]


@dataclass
class Windows:
    """Sliding windows of request times, per bucket."""

    times: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, bucket: str, limit: int, seconds: float, now: float) -> float | None:
        """None when admitted (and counted); else seconds until a slot frees."""
        window = self.times.setdefault(bucket, deque())
        while window and window[0] <= now - seconds:
            window.popleft()
        if len(window) >= limit:
            return window[0] + seconds - now
        window.append(now)
        return None


class JiraSimulator(Simulator):
    """In-memory Jira; tests and generators change its data through the methods below."""

    name = "jira-simulator"

    def __init__(
        self,
        *,
        deployment: Deployment = "cloud",
        email: str = "ops@example.com",
        api_token: str = "sim-jira-token",
        pat: str = "sim-jira-pat",
        time_zone: str = "UTC",
        clock: Any = None,
        burst_per_second: int | None = None,
        issue_write_limits: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0)),
        index_lag: float = 0.0,
        user_is_admin: bool = True,
        refuse_notify_flag: bool = False,
        max_results_with_fields: int = 100,
    ) -> None:
        self.deployment: Deployment = deployment
        self.email = email
        self.api_token = api_token
        self.pat = pat
        self.time_zone = time_zone
        self._clock = clock
        self.burst_per_second = burst_per_second
        self.issue_write_limits = issue_write_limits
        self.index_lag = index_lag
        self.user_is_admin = user_is_admin
        self.refuse_notify_flag = refuse_notify_flag
        self.max_results_with_fields = max_results_with_fields
        self.fields: list[dict[str, Any]] = default_fields(deployment)
        self.editable: set[str] = set(editable_field_ids())
        self.projects: dict[str, dict[str, Any]] = {}
        self.issues: dict[int, StoredIssue] = {}
        self.by_key: dict[str, int] = {}
        self.properties: dict[int, dict[str, Any]] = {}
        self.links: dict[int, list[dict[str, Any]]] = {}
        self.notifications: list[str] = []
        self.edit_denied_projects: set[str] = set()
        self._next_issue = 10_000
        self._next_link = 10_000
        self._project_counters: dict[str, int] = {}
        self._version = 0
        self._cache: dict[tuple[str, int, int], _Cached] = {}
        self._windows = Windows()
        self._rate_lock = threading.Lock()
        super().__init__()

    # ---- time --------------------------------------------------------------------------

    def clock(self) -> float:
        return float(self._clock()) if self._clock else super().clock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def render_time(self, ms: int | None) -> str | None:
        """Jira's timestamp format, in the API user's profile time zone."""
        if ms is None:
            return None
        moment = datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + moment.strftime("%z")

    # ---- data, for tests and generators --------------------------------------------------

    def add_project(
        self,
        key: str,
        name: str,
        *,
        versions: Iterable[tuple[str, bool]] = (),
        components: Iterable[str] = (),
        release_dates: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            number = 10_000 + len(self.projects)
            project = {
                "id": str(number),
                "key": key,
                "name": name,
                "projectTypeKey": "software",
                "versions": [
                    {
                        "id": str(number * 10 + i),
                        "name": version,
                        "archived": False,
                        "released": released,
                        # Jira sends releaseDate (YYYY-MM-DD) only for versions that have one.
                        **(
                            {"releaseDate": release_dates[version]}
                            if release_dates and version in release_dates
                            else {}
                        ),
                    }
                    for i, (version, released) in enumerate(versions)
                ],
                "components": [
                    {"id": str(number * 10 + 500 + i), "name": component}
                    for i, component in enumerate(components)
                ],
            }
            self.projects[key] = project
            self._project_counters[key] = 0
        return project

    def add_field(self, definition: dict[str, Any], *, editable: bool = True) -> None:
        with self.lock:
            self.fields.append(definition)
            if editable:
                self.editable.add(definition["id"])
            self._version += 1

    def create_issue(
        self, project_key: str, fields: dict[str, Any], *, at: float | None = None
    ) -> dict[str, Any]:
        """Create an issue; `fields` uses field ids; dates are set from `at` (default: now)."""
        with self.lock:
            project = self.projects[project_key]
            self._project_counters[project_key] += 1
            self._next_issue += 1
            issue_id = self._next_issue
            key = f"{project_key}-{self._project_counters[project_key]}"
            stamp = self._stamp(at)
            body: dict[str, Any] = {"id": str(issue_id), "key": key}
            values = {k: v for k, v in fields.items() if k not in SYSTEM_DATE_FIELDS}
            values["project"] = _project_ref(project)
            body["fields"] = values
            body["_created_ms"] = int(fields.get("created", stamp))
            body["_updated_ms"] = stamp
            resolved = fields.get("resolutiondate")
            body["_resolutiondate_ms"] = int(resolved) if resolved is not None else None
            self.issues[issue_id] = StoredIssue(current=body, visible_from=self._visible_from())
            self.by_key[key] = issue_id
            self._version += 1
            return body

    def update_issue(
        self, id_or_key: str | int, changes: dict[str, Any], *, at: float | None = None
    ) -> dict[str, Any]:
        """Change fields (by id) and move `updated` to `at` (default: now)."""
        with self.lock:
            stored = self._stored(id_or_key)
            if stored is None:
                raise KeyError(id_or_key)
            self._apply(stored, changes, at=at)
            return stored.current

    def move_issue(self, id_or_key: str | int, project_key: str, *, at: float | None = None) -> str:
        """Move an issue to another project; returns its new key (the old one still finds it)."""
        with self.lock:
            stored = self._stored(id_or_key)
            if stored is None:
                raise KeyError(id_or_key)
            project = self.projects[project_key]
            self._project_counters[project_key] += 1
            key = f"{project_key}-{self._project_counters[project_key]}"
            if self.index_lag:
                stored.previous = copy.deepcopy(stored.current)
                stored.visible_from = self._visible_from()
            stored.current["key"] = key
            stored.current["fields"]["project"] = _project_ref(project)
            stored.current["_updated_ms"] = self._stamp(at)
            self.by_key[key] = int(stored.current["id"])  # old keys keep pointing here
            self._version += 1
            return key

    def delete_issue(self, id_or_key: str | int) -> None:
        with self.lock:
            stored = self._stored(id_or_key)
            if stored is None:
                raise KeyError(id_or_key)
            issue_id = int(stored.current["id"])
            del self.issues[issue_id]
            for key in [k for k, v in self.by_key.items() if v == issue_id]:
                del self.by_key[key]
            self._version += 1

    def hide_issue(self, id_or_key: str | int) -> None:
        """The API user loses Browse permission: the issue vanishes from search and GET."""
        with self.lock:
            stored = self._stored(id_or_key)
            if stored is None:
                raise KeyError(id_or_key)
            stored.hidden = True
            self._version += 1

    def visible_ids(self) -> set[str]:
        """Ids of the issues the API user can see now."""
        with self.lock:
            return {str(i) for i, s in self.issues.items() if not s.hidden}

    # ---- inspection, for tests ----------------------------------------------------------

    def issue_record(self, id_or_key: str | int) -> dict[str, Any]:
        """The issue as GET issue/{idOrKey} answers it now (API v2, every field), a copy.

        Raises KeyError when the issue does not exist or the API user cannot see it."""
        with self.lock:
            return copy.deepcopy(self._render(self._visible(id_or_key).current, None, "2"))

    def issue_properties(self, id_or_key: str | int) -> dict[str, Any]:
        """The issue's properties, key -> JSON value (a copy); KeyError as for issue_record."""
        with self.lock:
            issue_id = int(self._visible(id_or_key).current["id"])
            return copy.deepcopy(self.properties.get(issue_id, {}))

    def issue_remote_links(self, id_or_key: str | int) -> list[dict[str, Any]]:
        """The issue's remote links as GET issue/{k}/remotelink lists them (a copy); KeyError
        as for issue_record."""
        with self.lock:
            issue_id = int(self._visible(id_or_key).current["id"])
            return copy.deepcopy(self.links.get(issue_id, []))

    def field_value(self, issue: dict[str, Any], name: str) -> Any:
        if name == "statusCategory":
            status = issue["fields"].get("status") or {}
            return status.get("statusCategory")
        return issue["fields"].get(name)

    def _stamp(self, at: float | None) -> int:
        return int((self.clock() if at is None else at) * 1000)

    def _visible_from(self) -> float:
        return self.clock() + self.index_lag if self.index_lag else 0.0

    def _stored(self, id_or_key: str | int) -> StoredIssue | None:
        text = str(id_or_key)
        issue_id = int(text) if text.isdigit() else self.by_key.get(text.upper())
        stored = self.issues.get(issue_id) if issue_id is not None else None
        if stored is None or stored.hidden:
            return None
        return stored

    def _visible(self, id_or_key: str | int) -> StoredIssue:
        stored = self._stored(id_or_key)
        if stored is None:
            raise KeyError(id_or_key)
        return stored

    def _apply(self, stored: StoredIssue, changes: dict[str, Any], *, at: float | None) -> None:
        if self.index_lag:
            stored.previous = copy.deepcopy(stored.current)
            stored.visible_from = self._visible_from()
        for name, value in changes.items():
            if name == "resolutiondate":
                stored.current["_resolutiondate_ms"] = value
            elif name not in SYSTEM_DATE_FIELDS:
                stored.current["fields"][name] = value
        stored.current["_updated_ms"] = self._stamp(at)
        self._version += 1

    # ---- rendering -----------------------------------------------------------------------

    def _custom_ids(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        for definition in self.fields:
            for clause in definition.get("clauseNames", []):
                ids.setdefault(str(clause).lower(), definition["id"])
        return ids

    def _render(self, issue: dict[str, Any], wanted: set[str] | None, version: str) -> Any:
        """Public JSON of an issue with the requested fields (None: all)."""
        values = dict(issue["fields"])
        values["created"] = self.render_time(issue["_created_ms"])
        values["updated"] = self.render_time(issue["_updated_ms"])
        values["resolutiondate"] = self.render_time(issue["_resolutiondate_ms"])
        values["statusCategory"] = self.field_value(issue, "statusCategory")
        for definition in self.fields:
            values.setdefault(definition["id"], None)
        values.pop("issuekey", None)
        if version == "3" and isinstance(values.get("description"), str):
            values["description"] = _adf(values["description"])
        chosen = values if wanted is None else {k: v for k, v in values.items() if k in wanted}
        return {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": issue["id"],
            "self": f"{self.base_url}/rest/api/{version}/issue/{issue['id']}",
            "key": issue["key"],
            "fields": chosen,
        }

    def _wanted_fields(self, requested: list[str], default: str) -> set[str] | None:
        """Field ids to return: `*all`, `*navigable`, ids, and `-id` exclusions."""
        names = [n.strip() for part in requested for n in str(part).split(",") if n.strip()]
        if not names:
            names = [default]
        every = {d["id"] for d in self.fields} | set(SYSTEM_DATE_FIELDS)
        chosen: set[str] = set()
        for name in names:
            if name in ("*all", "*navigable"):
                chosen |= every
            elif not name.startswith("-"):
                chosen.add(name)
        for name in names:
            if name.startswith("-"):
                chosen.discard(name[1:])
        return chosen

    # ---- searching -----------------------------------------------------------------------

    def _context(self) -> jql.Context:
        return jql.Context(
            zone=self.zone,
            now_ms=self.now_ms(),
            field_value=self.field_value,
            custom_ids=self._custom_ids(),
        )

    def _matching(self, query: jql.Query, text: str) -> _Cached:
        """The sorted result of a query, cached while the data does not change."""
        context = self._context()
        cacheable = not self.index_lag
        slot = (text, self._version, context.now_ms // 60_000)  # relative dates move
        if cacheable and slot in self._cache:
            return self._cache[slot]
        now = self.clock()
        visible: list[dict[str, Any]] = []
        for stored in self.issues.values():
            if stored.hidden:
                continue
            issue = stored.current if now >= stored.visible_from else stored.previous
            if issue is not None and (query.where is None or query.where(issue)):
                visible.append(issue)
        keyed = sorted(
            ((query.wrap(query.raw_sort(i, context)), i) for i in visible), key=lambda p: p[0]
        )
        result = _Cached(keys=[k for k, _ in keyed], issues=[i for _, i in keyed])
        if cacheable:
            self._cache = {slot: result}
        return result

    def _parse(self, text: str) -> jql.Query:
        return jql.parse(text, self._context())

    def _query_hash(self, text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _encode_token(self, text: str, raw: list[Any]) -> str:
        payload = {"q": self._query_hash(text), "after": raw, "at": self.now_ms()}
        return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")

    def _decode_token(self, token: str, text: str) -> list[Any] | None:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(payload, dict) or payload.get("q") != self._query_hash(text):
            return None
        if self.now_ms() - int(payload.get("at", 0)) > TOKEN_LIFETIME_MS:
            return None
        after = payload.get("after")
        return after if isinstance(after, list) else None

    # ---- HTTP plumbing -------------------------------------------------------------------

    def rules(self) -> Iterable[Rule]:
        return [
            Rule(f"/rest/api/{V}/serverInfo", endpoint="server_info"),
            Rule(f"/rest/api/{V}/myself", endpoint="myself"),
            Rule(f"/rest/api/{V}/field", endpoint="list_fields"),
            Rule(f"/rest/api/{V}/mypermissions", endpoint="my_permissions"),
            Rule(f"/rest/api/{V}/search/jql", endpoint="search_jql", methods=["GET", "POST"]),
            Rule(
                f"/rest/api/{V}/search/approximate-count",
                endpoint="approximate_count",
                methods=["POST"],
            ),
            Rule(f"/rest/api/{V}/search", endpoint="search_legacy", methods=["GET", "POST"]),
            Rule(f"/rest/api/{V}/issue/<key>", endpoint="issue", methods=["GET", "PUT"]),
            Rule(f"/rest/api/{V}/issue/<key>/properties", endpoint="list_properties"),
            Rule(
                f"/rest/api/{V}/issue/<key>/properties/<prop>",
                endpoint="issue_property",
                methods=["GET", "PUT", "DELETE"],
            ),
            Rule(
                f"/rest/api/{V}/issue/<key>/remotelink",
                endpoint="remote_links",
                methods=["GET", "POST", "DELETE"],
            ),
        ]

    def _dispatch(self, request: Request) -> Response:
        auth = self._authenticate(request)
        if auth is False or (auth is None and not request.path.endswith("/serverInfo")):
            return json_response(
                errors_body(
                    [
                        "You are not authenticated. Authentication required to perform this "
                        "operation."
                    ]
                ),
                401,
                {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"},
            )
        limited = self._burst_limited(request)
        if limited is not None:
            return limited
        return super()._dispatch(request)

    def _authenticate(self, request: Request) -> bool | None:
        """True: the API user; False: wrong credentials; None: no credentials."""
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        if self.deployment == "datacenter":
            return header == f"Bearer {self.pat}"
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return decoded == f"{self.email}:{self.api_token}"

    def _burst_limited(self, request: Request) -> Response | None:
        if self.burst_per_second is None:
            return None
        bucket = request.method + " " + re.sub(r"/issue/[^/]+", "/issue/{id}", request.path)
        with self._rate_lock:
            wait = self._windows.admit(bucket, self.burst_per_second, 1.0, time.monotonic())
        if wait is None:
            return None
        return self._too_many(wait, self.burst_per_second, "jira-burst-based")

    def _per_issue_limited(self, issue_id: str) -> Response | None:
        if self.deployment != "cloud":
            return None  # a Jira Cloud limit; Data Center has admin-configured limits instead
        for limit, seconds in self.issue_write_limits:
            with self._rate_lock:
                wait = self._windows.admit(
                    f"write {issue_id} {seconds}", limit, seconds, time.monotonic()
                )
            if wait is not None:
                return self._too_many(wait, limit, "jira-per-issue-on-write")
        return None

    def _too_many(self, wait: float, limit: int, reason: str) -> Response:
        seconds = max(1, math.ceil(wait))
        reset = datetime.now(UTC) + timedelta(seconds=seconds)
        return json_response(
            errors_body(["Rate limit exceeded."]),
            429,
            {
                "Retry-After": str(seconds),
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "RateLimit-Reason": reason,
            },
        )

    def not_found(self, request: Request) -> Response:
        return json_response(errors_body(["Not found"]), 404)

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        """Query parameters (repeated ones as lists) or the JSON body of a POST."""
        if request.method == "POST":
            body = request.get_json(silent=True)
            return body if isinstance(body, dict) else {}
        params: dict[str, Any] = {}
        for name in request.args:
            values = request.args.getlist(name)
            params[name] = values if name == "fields" else values[-1]
        return params

    @staticmethod
    def _int(value: Any, default: int) -> int:
        try:
            return int(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            return default

    # ---- endpoints: server, user, fields --------------------------------------------------

    def server_info(self, request: Request, version: str) -> Response:
        cloud = self.deployment == "cloud"
        return json_response(
            {
                "baseUrl": self.base_url,
                "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
                "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2],
                "deploymentType": "Cloud" if cloud else "Server",
                "buildNumber": 100250 if cloud else 9120002,
                "serverTime": self.render_time(self.now_ms()),
                "serverTitle": "Jira",
            }
        )

    def myself(self, request: Request, version: str) -> Response:
        user: dict[str, Any] = {
            "self": f"{self.base_url}/rest/api/{version}/myself",
            "emailAddress": self.email,
            "displayName": "pmsync",
            "active": True,
            "timeZone": self.time_zone,
        }
        if self.deployment == "cloud":
            user["accountId"] = "5b10ac8d82e05b22cc7d4ef5"
            user["accountType"] = "atlassian"
        else:
            user["name"] = "pmsync"
            user["key"] = "JIRAUSER10100"
        return json_response(user)

    def list_fields(self, request: Request, version: str) -> Response:
        return json_response(self.fields)

    def my_permissions(self, request: Request, version: str) -> Response:
        wanted = [p for p in request.args.get("permissions", "").split(",") if p]
        if not wanted and self.deployment == "cloud":
            return json_response(errors_body(["The permissions query parameter is required."]), 400)
        project = request.args.get("projectKey")
        granted = {
            "BROWSE_PROJECTS": True,
            "EDIT_ISSUES": project not in self.edit_denied_projects,
            "ADMINISTER_PROJECTS": self.user_is_admin,
            "ADMINISTER": self.user_is_admin,
        }
        return json_response(
            {
                "permissions": {
                    name: {
                        "id": str(i),
                        "key": name,
                        "name": name.replace("_", " ").title(),
                        "type": "GLOBAL" if name == "ADMINISTER" else "PROJECT",
                        "havePermission": granted.get(name, False),
                    }
                    for i, name in enumerate(wanted or list(granted), start=1)
                }
            }
        )

    # ---- endpoints: search ----------------------------------------------------------------

    def search_jql(self, request: Request, version: str) -> Response:
        if self.deployment != "cloud":
            return self.not_found(request)
        params = self._params(request)
        text = str(params.get("jql") or "")
        with self.lock:
            try:
                query = self._parse(text)
            except jql.JqlError as exc:
                return json_response({"errorMessages": [str(exc)], "warningMessages": []}, 400)
            if not query.bounded:
                return json_response({"errorMessages": [UNBOUNDED], "warningMessages": []}, 400)
            requested = params.get("fields") or []
            requested = requested if isinstance(requested, list) else [requested]
            wanted = self._wanted_fields(requested, "id")
            cap = (
                CLOUD_MAX_RESULTS
                if wanted is not None and wanted <= ID_ONLY_FIELDS
                else self.max_results_with_fields
            )
            size = max(1, min(self._int(params.get("maxResults"), 50), cap))
            result = self._matching(query, text)
            start = 0
            token = params.get("nextPageToken")
            if token:
                after = self._decode_token(str(token), text)
                if after is None:
                    return json_response(
                        errors_body(["The provided next page token is invalid or expired."]),
                        400,
                    )
                start = bisect.bisect_right(result.keys, query.wrap(after))
            page = result.issues[start : start + size]
            more = len(result.issues) > start + size
            body: dict[str, Any] = {
                "issues": [self._render(i, wanted, version) for i in page],
                "isLast": not more,
            }
            if more:
                body["nextPageToken"] = self._encode_token(
                    text, query.raw_sort(page[-1], self._context())
                )
        return json_response(body)

    def approximate_count(self, request: Request, version: str) -> Response:
        if self.deployment != "cloud":
            return self.not_found(request)
        text = str(self._params(request).get("jql") or "")
        with self.lock:
            try:
                query = self._parse(text)
            except jql.JqlError as exc:
                return json_response({"errorMessages": [str(exc)], "warningMessages": []}, 400)
            count = len(self._matching(query, text).issues)
        return json_response({"count": count})

    def search_legacy(self, request: Request, version: str) -> Response:
        if self.deployment == "cloud":
            return json_response(errors_body([GONE_MESSAGE]), 410)
        params = self._params(request)
        text = str(params.get("jql") or "")
        with self.lock:
            try:
                query = self._parse(text)
            except jql.JqlError as exc:
                return json_response({"errorMessages": [str(exc)], "warningMessages": []}, 400)
            requested = params.get("fields") or []
            requested = requested if isinstance(requested, list) else [requested]
            wanted = self._wanted_fields(requested, "*navigable")
            start = max(0, self._int(params.get("startAt"), 0))
            size = max(0, min(self._int(params.get("maxResults"), 50), DC_MAX_RESULTS))
            result = self._matching(query, text)
            page = result.issues[start : start + size]
            body = {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(result.issues),
                "issues": [self._render(i, wanted, version) for i in page],
            }
        return json_response(body)

    # ---- endpoints: issues ----------------------------------------------------------------

    def issue(self, request: Request, version: str, key: str) -> Response:  # noqa: PLR0911
        with self.lock:
            stored = self._stored(key)
            if stored is None:
                return json_response(errors_body([NOT_FOUND]), 404)
            if request.method == "GET":
                requested = request.args.getlist("fields")
                wanted = self._wanted_fields(requested, "*all")
                return json_response(self._render(stored.current, wanted, version))
            issue_key = stored.current["key"]
            project = issue_key.partition("-")[0]
            if project in self.edit_denied_projects:
                return json_response(
                    errors_body(["You do not have permission to edit issues in this project."]),
                    403,
                )
            limited = self._per_issue_limited(stored.current["id"])
            if limited is not None:
                return limited
            quiet = request.args.get("notifyUsers", "true").lower() == "false"
            if quiet and self.refuse_notify_flag and not self.user_is_admin:
                return json_response(errors_body([NOTIFY_REFUSED]), 400)
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return json_response(errors_body(["Can not deserialize the request body."]), 400)
            changes, errors = self._edits(stored.current, body)
            if errors:
                return json_response(errors_body([], errors), 400)
            if not quiet or not self.user_is_admin:
                self.notifications.append(issue_key)
            self._apply(stored, changes, at=None)
            if request.args.get("returnIssue", "false").lower() == "true":
                return json_response(self._render(stored.current, None, version))
        return Response(status=204)

    def _edits(
        self, issue: dict[str, Any], body: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The field changes a PUT asks for, or Jira's per-field errors (nothing applied)."""
        by_id = {d["id"]: d for d in self.fields}
        changes: dict[str, Any] = {}
        errors: dict[str, str] = {}
        project = self.projects.get(issue["key"].partition("-")[0], {})
        requested: dict[str, Any] = dict(body.get("fields") or {})
        for name, operations in (body.get("update") or {}).items():
            current = changes.get(name, issue["fields"].get(name))
            requested[name] = operate(current, operations)
        for name, value in requested.items():
            definition = by_id.get(name)
            if definition is None or name not in self.editable:
                errors[name] = CANNOT_SET.format(name)
                continue
            problem, converted = check_value(definition, value, project)
            if problem:
                errors[name] = problem
            else:
                changes[name] = converted
        return changes, errors

    # ---- endpoints: properties ------------------------------------------------------------

    def list_properties(self, request: Request, version: str, key: str) -> Response:
        with self.lock:
            stored = self._stored(key)
            if stored is None:
                return json_response(errors_body([NOT_FOUND]), 404)
            names = sorted(self.properties.get(int(stored.current["id"]), {}))
        base = f"{self.base_url}/rest/api/{version}/issue/{stored.current['id']}/properties"
        return json_response({"keys": [{"self": f"{base}/{n}", "key": n} for n in names]})

    def issue_property(  # noqa: PLR0911 - one early answer per documented error
        self, request: Request, version: str, key: str, prop: str
    ) -> Response:
        with self.lock:
            stored = self._stored(key)
            if stored is None:
                return json_response(errors_body([NOT_FOUND]), 404)
            issue_id = int(stored.current["id"])
            bag = self.properties.setdefault(issue_id, {})
            if request.method == "GET":
                if prop not in bag:
                    return json_response(
                        errors_body([f"The property with key '{prop}' does not exist."]), 404
                    )
                return json_response({"key": prop, "value": bag[prop]})
            if request.method == "DELETE":
                bag.pop(prop, None)
                return Response(status=204)
            limited = self._per_issue_limited(str(issue_id))
            if limited is not None:
                return limited
            problem = property_problem(prop, request.get_data())
            if problem:
                return json_response(errors_body([problem]), 400)
            created = prop not in bag
            bag[prop] = orjson.loads(request.get_data())
        return Response(status=201 if created else 200)

    # ---- endpoints: remote links ----------------------------------------------------------

    def remote_links(  # noqa: PLR0911 - one early answer per documented error
        self, request: Request, version: str, key: str
    ) -> Response:
        with self.lock:
            stored = self._stored(key)
            if stored is None:
                return json_response(errors_body([NOT_FOUND]), 404)
            issue_id = int(stored.current["id"])
            links = self.links.setdefault(issue_id, [])
            global_id = request.args.get("globalId")
            if request.method == "GET":
                if global_id is not None:
                    match = [link for link in links if link.get("globalId") == global_id]
                    if not match:
                        return json_response(errors_body(["No remote link found."]), 404)
                    return json_response(match[0])
                return json_response(links)
            if request.method == "DELETE":
                if global_id is None:
                    return json_response(errors_body(["globalId is required."]), 400)
                self.links[issue_id] = [k for k in links if k.get("globalId") != global_id]
                return Response(status=204)
            limited = self._per_issue_limited(str(issue_id))
            if limited is not None:
                return limited
            body = request.get_json(silent=True)
            problem = link_problem(body)
            if problem:
                return json_response(errors_body([], problem), 400)
            assert isinstance(body, dict)
            return self._upsert_link(issue_id, version, links, body)

    def _upsert_link(
        self, issue_id: int, version: str, links: list[dict[str, Any]], body: dict[str, Any]
    ) -> Response:
        global_id = body.get("globalId")
        existing = next((k for k in links if global_id and k.get("globalId") == global_id), None)
        if existing is not None:
            link_id = existing["id"]
            links.remove(existing)
        else:
            self._next_link += 1
            link_id = self._next_link
        url = f"{self.base_url}/rest/api/{version}/issue/{issue_id}/remotelink/{link_id}"
        links.append(
            {
                "id": link_id,
                "self": url,
                "globalId": global_id,
                "application": body.get("application"),
                "relationship": body.get("relationship"),
                "object": body.get("object"),
            }
        )
        return json_response({"id": link_id, "self": url}, 200 if existing else 201)


def _project_ref(project: dict[str, Any]) -> dict[str, Any]:
    return {k: project[k] for k in ("id", "key", "name", "projectTypeKey")}


def _adf(text: str) -> dict[str, Any]:
    """A plain text as an Atlassian Document Format document (what v3 returns)."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }
