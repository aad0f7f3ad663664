"""Jira Cloud and Data Center: the issues of the configured projects or JQL filter.

Two ways to the site share one ConnectorAdapter (budget, CA bundle, timeout, request counter):
the jira library (pycontribs) for what it does well, the site's server info (Cloud searches
/search/jql with nextPageToken, Data Center /search with startAt/total) and its field catalogue;
pmsync's own session (`api.py`) for search, edits, properties, remote links and key look-ups, so
each request is one request, mapped like every other. Both server info and the catalogue are kept
in the store's discovery cache (`discovery_cache`), so a process that finds them there asks for
neither. The library's retries are switched off (`max_retries=0`) so the engine's single retry
policy owns them; errors are mapped onto the taxonomy in `errors.py`.

Records are issues with their fields lifted beside `id`, `key` and `self`, so the roots of
mapping paths are Jira field ids (`summary`, `customfield_10016`) or display names
(`"Story Points"`); the connector asks Jira for exactly those fields, resolving names through
GET /field (see `fields.py`). Cursor rules and windows: see `search.py`. Deletes and lost
access: an id-only census of the scope (`sweep`), ids only so pages hold 5,000; what it misses is
asked for by id before it is called gone, since a move during the census changes an issue's key
and so its place in the census order. Writes: see `writes.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from pydantic import BaseModel

from pmsync.connectors.attribution import claim
from pmsync.connectors.base import (
    Connector,
    FieldInfo,
    FieldWrite,
    Page,
    StreamSpec,
    SweepPage,
    WriteOutcome,
)
from pmsync.connectors.budget import BudgetRule, RequestBudget
from pmsync.connectors.http import RETRIABLE_STATUS, USER_AGENT, ConnectorAdapter, make_session
from pmsync.connectors.jira.api import JiraApi
from pmsync.connectors.jira.errors import map_exception, response_error
from pmsync.connectors.jira.fields import ISSUE_KEYS, FieldCatalog, FieldNameError, requested_fields
from pmsync.connectors.jira.search import (
    CENSUS_ORDER,
    IssueCursor,
    Position,
    SearchPage,
    UnexpectedAnswer,
    Window,
    cloud_page,
    datacenter_page,
    flatten,
    next_window,
    scope_jql,
    window_jql,
)
from pmsync.connectors.jira.settings import JiraSettings
from pmsync.connectors.jira.writes import IssueWritePacer, IssueWriter, RemoteLink
from pmsync.errors import ConnectorError, FatalError, RetriableError
from pmsync.logs import get_logger
from pmsync.redact import register_secret

CONFIRM_CHUNK = 100  # ids per `id in (...)` search when confirming what a census missed

log = get_logger("pmsync.connectors.jira")

# System field ids, and the display names Jira gives them (Cloud and Data Center spellings),
# for the mapping check; custom fields are resolved against the site's catalogue at read time.
SYSTEM_FIELDS = {
    "summary": "Summary",
    "description": "Description",
    "status": "Status",
    "statusCategory": "Status Category",
    "resolution": "Resolution",
    "resolutiondate": "Resolved",
    "fixVersions": "Fix versions",
    "components": "Components",
    "labels": "Labels",
    "project": "Project",
    "issuetype": "Issue Type",
    "priority": "Priority",
    "assignee": "Assignee",
    "reporter": "Reporter",
    "creator": "Creator",
    "created": "Created",
    "updated": "Updated",
    "duedate": "Due date",
    "versions": "Affects versions",
    "parent": "Parent",
    "issuelinks": "Linked Issues",
    "subtasks": "Sub-tasks",
    "votes": "Votes",
    "watches": "Watchers",
    "environment": "Environment",
    "timetracking": "Time tracking",
    "security": "Security Level",
    "lastViewed": "Last Viewed",
}
KNOWN_FIELDS = frozenset(
    set(SYSTEM_FIELDS)
    | set(SYSTEM_FIELDS.values())
    | ISSUE_KEYS
    | {"Fix Version/s", "Component/s", "Affects Version/s", "Due Date", "Time Tracking"}
)
# What a read asks for when no mapping names fields (the default mapping's fields).
DEFAULT_FIELDS = (
    "summary",
    "status",
    "resolution",
    "resolutiondate",
    "fixVersions",
    "components",
    "labels",
    "project",
    "issuetype",
    "priority",
    "assignee",
    "created",
    "updated",
)

ISSUES = StreamSpec(
    "issues",
    "id",
    IssueCursor,
    "Issues of the configured projects or JQL filter (incremental on updated)",
    object_name="issues",
    known_fields=KNOWN_FIELDS,
    sweep="census",
    entity_hint="issue",
)


class JiraConnector(Connector):
    """Reads Jira issues through the jira library; writes fields, properties and links."""

    type_name = "jira"
    description = "Jira Cloud and Data Center: issues, custom fields, write-back (jira)"
    settings_model = JiraSettings

    def __init__(self, name: str, settings: JiraSettings) -> None:
        super().__init__(name, settings)
        self.settings: JiraSettings = settings
        self._client: JIRA | None = None
        self._session: requests.Session | None = None
        self._adapter: ConnectorAdapter | None = None
        self._api: JiraApi | None = None
        self._catalog: FieldCatalog | None = None
        self._plans: dict[frozenset[str], tuple[list[str], dict[str, str]]] = {}
        self.clock: Callable[[], float] = time.time
        self.pacer = IssueWritePacer(
            [(settings.issue_writes_per_2s, 2), (settings.issue_writes_per_30s, 30)]
        )
        self.writer = IssueWriter(
            connector=name, api=self.api, catalog=self.catalog, pacer=self.pacer
        )

    # ---- plumbing ---------------------------------------------------------------------

    def session(self) -> requests.Session:
        """pmsync's session to the site: its adapter is shared with the library client."""
        if self._session is None:
            s = self.settings
            self._session, self._adapter = make_session(
                ca_bundle=s.ca_bundle, timeout=s.timeout, budget=self._budget()
            )
            claim(self._adapter, self.name)
            creds = s.credentials
            if creds.personal_access_token is not None:
                token = creds.personal_access_token.get_secret_value()
                register_secret(token)
                self._session.headers["Authorization"] = f"Bearer {token}"
            else:
                assert creds.email is not None
                assert creds.api_token is not None
                self._session.auth = (creds.email, creds.api_token.get_secret_value())
        return self._session

    def api(self) -> JiraApi:
        if self._api is None:
            self._api = JiraApi(
                self.session(),
                self.settings.base_url,
                self.settings.rest_api_version,
                connector=self.name,
            )
        return self._api

    def client(self) -> JIRA:
        """The library client (no I/O to build: server info comes from `server_info()`)."""
        if self._client is None:
            s = self.settings
            creds = s.credentials
            auth: dict[str, Any] = {}
            if creds.personal_access_token is not None:
                auth["token_auth"] = creds.personal_access_token.get_secret_value()
            else:
                assert creds.email is not None
                assert creds.api_token is not None
                auth["basic_auth"] = (creds.email, creds.api_token.get_secret_value())
            options: dict[str, Any] = {
                "rest_api_version": s.rest_api_version,
                "verify": str(s.ca_bundle) if s.ca_bundle else True,
                "headers": {"User-Agent": USER_AGENT},
            }
            client = self._call(
                "jira client",
                lambda: JIRA(
                    server=s.base_url,
                    options=options,
                    max_retries=0,
                    timeout=s.timeout,
                    get_server_info=False,
                    **auth,
                ),
            )
            # The library builds its own ResilientSession; mounting our adapter on it puts the
            # request budget, the per-request CA bundle, the default timeout and the request
            # counter on the library's few calls too (server info, the field catalogue, myself).
            self.session()
            assert self._adapter is not None
            client._session.mount("https://", self._adapter)
            client._session.mount("http://", self._adapter)
            self._client = client
        return self._client

    def _budget(self) -> RequestBudget | None:
        rate = self.settings.requests_per_second
        return RequestBudget([BudgetRule("jira", r"/rest/", per_second=rate)]) if rate else None

    def server_info(self, *, fresh: bool = False) -> dict[str, Any]:
        """GET serverInfo, kept in the discovery cache: Cloud or Data Center, and the version."""
        info = self.cached(
            "serverInfo",
            lambda: self._call("GET serverInfo", self.client().server_info) or {},
            fresh=fresh,
        )
        return info if isinstance(info, dict) else {}

    @property
    def is_cloud(self) -> bool:
        return self.server_info().get("deploymentType") == "Cloud"

    @property
    def requests_sent(self) -> int:
        """Requests sent through the adapter (pmsync's session and the library's)."""
        return self._adapter.requests_sent if self._adapter else 0

    def catalog(self, refresh: bool = False) -> FieldCatalog:
        """GET /field, kept in the discovery cache (or asked again on `refresh`)."""
        if self._catalog is None or refresh:
            raw = self.cached(
                "field", lambda: self._call("GET field", self.client().fields), fresh=refresh
            )
            self._catalog = FieldCatalog(raw if isinstance(raw, list) else [])
            self._plans.clear()
        return self._catalog

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (JIRAError, ValueError, OSError, requests.RequestException) as exc:
            raise map_exception(exc, connector=self.name, what=what) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
        if self._session is not None:
            self._session.close()
        self._client = None
        self._session = None
        self._adapter = None
        self._api = None

    # ---- interface --------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        return (ISSUES,)

    def check(self) -> None:
        me = self._call("GET myself", self.client().myself)
        log.info(
            "jira_api_user",
            connector=self.name,
            deployment=self.server_info(fresh=True).get("deploymentType"),
            time_zone=(me or {}).get("timeZone"),
        )

    def objects(self) -> Sequence[str]:
        return [ISSUES.name]

    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        self.stream(object_name)
        return self.catalog(refresh=True).infos()

    def resolve_fields(self, names: Sequence[str] | frozenset[str]) -> dict[str, str]:
        """Mapping names -> Jira field ids (an id maps to itself); FatalError otherwise.

        Used when reading, and available to validation commands. A name that is not an id is
        looked up among clause and display names, which Jira does not keep unique; the error
        names each bad name with its candidates.
        """
        wanted = frozenset(names) - ISSUE_KEYS
        try:
            return self.catalog().resolve_all(wanted)
        except FieldNameError:
            try:  # a field created since the catalogue was read
                return self.catalog(refresh=True).resolve_all(wanted)
            except FieldNameError as exc:
                raise FatalError(
                    f"the mapping of stream 'issues' names Jira fields that cannot be "
                    f"resolved: {exc}",
                    connector=self.name,
                ) from None

    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        self.stream(stream.name)
        current = cursor if isinstance(cursor, IssueCursor) else IssueCursor()
        return self._read_issues(current, fields)

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        self.stream(stream.name)
        return self._census()

    def confirm_absent(self, stream: StreamSpec, keys: Sequence[str]) -> set[str]:
        """Of issue ids the census did not list, those a search by id does not find either.

        The census pages in key order, and a move changes an issue's key during the census: an
        issue moved from a page not yet read to one already read is missed, not gone.
        """
        self.stream(stream.name)
        absent = set(keys)
        ids = sorted(k for k in keys if k.isdigit())
        for start in range(0, len(ids), CONFIRM_CHUNK):
            chunk = ids[start : start + CONFIRM_CHUNK]
            jql = f"({self._scope}) AND id in ({', '.join(chunk)})"
            position: Position | None = None
            while True:
                page = self._search(jql, ["id"], len(chunk), position)
                absent -= {str(i["id"]) for i in page.issues}
                if page.next is None:
                    break
                position = page.next
        return absent

    def lookup_issue_keys(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Issue id for each key (an old key of a moved issue answers with the issue), or None
        when Jira has no such issue or the API user cannot see it. A key Jira did not answer
        for (429, 5xx, a dropped connection) is left out, to be asked again."""
        found: dict[str, str | None] = {}
        for key in keys:
            what = f"GET issue {key}"
            try:
                response = self.api().send(
                    "GET", f"issue/{key}", what=what, params={"fields": "key"}
                )
            except RetriableError:
                continue  # asked again next time
            if response.status_code in RETRIABLE_STATUS:
                continue
            if response.status_code in (400, 404):
                found[key] = None
                continue
            if response.status_code != 200:
                raise response_error(response, connector=self.name, what=what)
            body = response.json()
            found[key] = str(body["id"]) if isinstance(body, dict) and "id" in body else None
        return found

    def read_fields(
        self, object_name: str, key: str, fields: Sequence[str]
    ) -> dict[str, Any] | None:
        """The issue's current values of `fields` (ids); None when it no longer exists."""
        if object_name not in ("issue", "issues"):
            return None
        what = f"GET issue {key}"
        response = self.api().send(
            "GET", f"issue/{key}", what=what, params={"fields": ",".join(fields)}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise response_error(response, connector=self.name, what=what)
        body = response.json()
        values = body.get("fields") if isinstance(body, dict) else None
        return dict(values) if isinstance(values, dict) else None

    def get_issue_property(self, issue: str, key: str) -> Any:
        """The issue property's current value (None when it has none)."""
        return self.writer.get_property(issue, key)

    def write(self, writes: Sequence[FieldWrite]) -> list[WriteOutcome]:
        """PUT each issue's fields (notifyUsers=false); a bad field fails only its record."""
        return [self.writer.write_fields(w) for w in writes]

    def set_issue_property(self, issue: str, key: str, value: Any) -> WriteOutcome:
        """Store a JSON document as an issue property (e.g. a rollup's provenance)."""
        return self.writer.set_property(issue, key, value)

    def upsert_remote_link(self, issue: str, link: RemoteLink) -> WriteOutcome:
        """Create or replace the issue's remote link with `link.global_id`."""
        return self.writer.upsert_remote_link(issue, link)

    # ---- reading ----------------------------------------------------------------------

    def _plan(self, names: frozenset[str]) -> tuple[list[str], dict[str, str]]:
        """(field ids to request, aliases name -> id) for the names a mapping uses."""
        # No hint at all (a preview, a contract read): the default mapping's fields. A mapping
        # that uses only id/key/self: just `updated`, which every request carries.
        wanted = frozenset(names - ISSUE_KEYS) if names else frozenset(DEFAULT_FIELDS)
        if wanted not in self._plans:
            self._plans[wanted] = requested_fields(self.resolve_fields(wanted))
        return self._plans[wanted]

    @property
    def _scope(self) -> str:
        return scope_jql(self.settings.projects, self.settings.jql)

    def _search(
        self, jql: str, fields: Sequence[str], size: int, at: Position | None
    ) -> SearchPage:
        page = cloud_page if self.is_cloud else datacenter_page
        try:
            return page(self._fetch, jql, fields, size, at)
        except UnexpectedAnswer as exc:
            raise FatalError(f"search: {exc}", connector=self.name) from None

    def _fetch(self, path: str, params: dict[str, Any], post: bool) -> Any:
        what = "search issues"
        if post:
            return self.api().json("POST", path, what=what, body=params)
        return self.api().json("GET", path, what=what, params=params)

    def _read_issues(self, cursor: IssueCursor, names: frozenset[str]) -> Iterator[Page]:
        ids, aliases = self._plan(names)
        window, position = self._resume(cursor)
        if window is None:
            return
        jql = window_jql(self._scope, window)
        while True:
            try:
                page = self._search(jql, ids, self.settings.page_size, position)
            except ConnectorError as exc:
                if position is None or position.token is None or not _token_refused(exc):
                    raise
                log.warning("jira_page_token_refused", connector=self.name, restart=True)
                position = None  # the token expired: run the pass again from its start
                continue
            records = [flatten(issue, aliases) for issue in page.issues]
            if page.next is None:
                # The pass is done, found something or not: its minutes have settled, so the
                # next read starts there (less the overlap). Keeping the old cursor after an
                # empty pass made every poll of that minute search the same window again.
                yield Page(records, IssueCursor(settled_ms=window.upper_ms))
                return
            position = page.next
            yield Page(records, self._mid_pass(cursor, window, position))

    def _resume(self, cursor: IssueCursor) -> tuple[Window | None, Position | None]:
        if cursor.in_pass:
            assert cursor.pass_upper_ms is not None
            position = Position(
                token=cursor.page_token, start_at=cursor.start_at, total=cursor.total
            )
            return Window(cursor.pass_lower_ms, cursor.pass_upper_ms), position
        s = self.settings
        window = next_window(
            cursor,
            now_ms=int(self.clock() * 1000),
            overlap_ms=int(s.overlap.total_seconds() * 1000),
            settle_ms=int(s.settle_lag.total_seconds() * 1000),
            start_ms=int(s.start.timestamp() * 1000) if s.start else None,
        )
        return window, None

    @staticmethod
    def _mid_pass(cursor: IssueCursor, window: Window, position: Position) -> IssueCursor:
        return IssueCursor(
            settled_ms=cursor.settled_ms,
            pass_lower_ms=window.lower_ms,
            pass_upper_ms=window.upper_ms,
            page_token=position.token,
            start_at=position.start_at,
            total=position.total,
        )

    def _census(self) -> Iterator[SweepPage]:
        """Every issue id in scope, id-only pages: what is missing was deleted or hidden."""
        jql = f"{self._scope} {CENSUS_ORDER}"
        position: Position | None = None
        while True:
            page = self._search(jql, ["id"], self.settings.census_page_size, position)
            yield SweepPage(
                present=[{"id": str(i["id"]), "key": i.get("key")} for i in page.issues]
            )
            if page.next is None:
                return
            position = page.next


def _token_refused(exc: ConnectorError) -> bool:
    text = str(exc).lower()
    return "400" in text and "token" in text


__all__ = ["ISSUES", "IssueCursor", "JiraConnector", "RemoteLink"]
