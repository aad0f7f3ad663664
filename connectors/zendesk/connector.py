"""Zendesk Support: organizations, users, tickets and the Jira links of its Jira integration.

zenpy handles the account-level calls (credentials check, field definitions) on a session we
own; the incremental exports are read page by page on that same session, because each page's
cursor must be committed with the page, and zenpy's generators hide page boundaries.
Cursor rules: follow `after_cursor` and never restart from "now"; the time-based organization
export repeats its boundary items, which the engine absorbs by content hash. The Jira links of
the Jira integration have neither a "changed since" nor a deletion feed: each cycle asks for the
links newer than the newest seen (`since_id`, one request when there is none), and every
`links_census_interval` they are listed in full (`reads_in_full`), which is their census: a
removed link stops counting then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel

from pmsync.connectors.attribution import claim
from pmsync.connectors.base import (
    MISSING,
    Connector,
    FieldInfo,
    FieldWrite,
    Page,
    Record,
    StreamSpec,
    SweepPage,
    WriteOutcome,
)
from pmsync.connectors.budget import BudgetRule, RequestBudget
from pmsync.connectors.http import (
    error_detail,
    error_for_exception,
    error_for_status,
    make_session,
    request_json,
)
from pmsync.connectors.prefetch import read_ahead
from pmsync.connectors.zendesk.settings import ZendeskSettings
from pmsync.errors import FatalError, RetriableError
from pmsync.redact import register_secret

if TYPE_CHECKING:  # zenpy loads on the first call: `status` and `--help` never make one
    from zenpy import Zenpy

RECENT_WINDOW = 60  # Zendesk leaves the newest minute out of incremental exports


class ExportCursor(BaseModel):
    """Cursor-based export position: a start time until the first page, then Zendesk's cursor."""

    start_time: int | None = None
    after_cursor: str | None = None


class TimeCursor(BaseModel):
    """Time-based export position (organizations): the next start_time."""

    start_time: int = 0


class SinceIdCursor(BaseModel):
    """Jira links are ordered by id; `since_id` is exclusive."""

    since_id: int = 0


TICKET_FIELDS = frozenset(
    [
        "id",
        "url",
        "external_id",
        "type",
        "subject",
        "raw_subject",
        "description",
        "priority",
        "status",
        "recipient",
        "requester_id",
        "submitter_id",
        "assignee_id",
        "organization_id",
        "group_id",
        "collaborator_ids",
        "follower_ids",
        "email_cc_ids",
        "forum_topic_id",
        "problem_id",
        "has_incidents",
        "is_public",
        "due_at",
        "tags",
        "custom_fields",
        "satisfaction_rating",
        "sharing_agreement_ids",
        "fields",
        "followup_ids",
        "brand_id",
        "allow_channelback",
        "allow_attachments",
        "from_messaging_channel",
        "via",
        "created_at",
        "updated_at",
        "generated_timestamp",
    ]
)
USER_FIELDS = frozenset(
    [
        "id",
        "url",
        "name",
        "email",
        "role",
        "organization_id",
        "active",
        "verified",
        "suspended",
        "time_zone",
        "locale",
        "phone",
        "external_id",
        "tags",
        "user_fields",
        "created_at",
        "updated_at",
        "last_login_at",
        "alias",
        "details",
        "notes",
    ]
)
ORGANIZATION_FIELDS = frozenset(
    [
        "id",
        "url",
        "name",
        "shared_tickets",
        "shared_comments",
        "external_id",
        "domain_names",
        "details",
        "notes",
        "group_id",
        "tags",
        "organization_fields",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
)
LINK_FIELDS = frozenset(
    ["id", "ticket_id", "issue_id", "issue_key", "created_at", "updated_at", "url"]
)

STREAMS = (
    StreamSpec(
        "tickets",
        "id",
        ExportCursor,
        "Tickets (cursor-based incremental export)",
        object_name="tickets",
        known_fields=TICKET_FIELDS,
        entity_hint="feedback",
    ),
    StreamSpec(
        "users",
        "id",
        ExportCursor,
        "Users (cursor-based incremental export)",
        object_name="users",
        known_fields=USER_FIELDS,
        sweep="deletions",
        entity_hint="person",
    ),
    StreamSpec(
        "organizations",
        "id",
        TimeCursor,
        "Organizations (time-based incremental export)",
        object_name="organizations",
        known_fields=ORGANIZATION_FIELDS,
        sweep="census",
        entity_hint="organization",
    ),
    # Links have no "changed since" and no deletion feed: a cycle reads the links above the
    # newest id seen; every `links_census_interval` they are all listed (pages of 1,000 links,
    # plus the empty page that ends the listing), which is their census.
    StreamSpec(
        "jira_links",
        "id",
        SinceIdCursor,
        "Ticket <-> Jira issue links of the Jira integration (new ones each cycle, all of them "
        "every links_census_interval)",
        object_name="jira_links",
        known_fields=LINK_FIELDS,
        sweep="census",
        entity_hint="issue_link",
        reads_in_full=True,
    ),
)


class ZendeskConnector(Connector):
    """Reads Zendesk Support through zenpy and the incremental export API."""

    type_name = "zendesk"
    description = "Zendesk Support: tickets, users, organizations, Jira links (zenpy)"
    settings_model = ZendeskSettings

    def __init__(self, name: str, settings: ZendeskSettings) -> None:
        super().__init__(name, settings)
        self.settings: ZendeskSettings = settings
        self._client: Zenpy | None = None
        self._session: requests.Session | None = None
        self.clock: Callable[[], float] = time.time

    # ---- plumbing ---------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        return f"{self.settings.base_url}/api/v2"

    def _zenpy_host(self) -> tuple[str, str]:
        host = urlsplit(self.settings.base_url).hostname or "localhost"
        subdomain = host.split(".")[0]
        return subdomain, f"https://{subdomain}.zendesk.com"

    def session(self) -> requests.Session:
        """The connector's one HTTP session (budget, CA bundle, base-URL override)."""
        if self._session is None:
            _subdomain, zenpy_root = self._zenpy_host()
            budget = RequestBudget(
                [
                    BudgetRule(
                        "incremental",
                        r"/api/v2/incremental/",
                        per_minute=self.settings.incremental_requests_per_minute,
                    ),
                    BudgetRule("plan", r"/api/", per_minute=self.settings.requests_per_minute),
                ]
            )
            rewrite = (
                {} if zenpy_root == self.settings.base_url else {zenpy_root: self.settings.base_url}
            )
            self._session, adapter = make_session(
                rewrite=rewrite,
                ca_bundle=self.settings.ca_bundle,
                timeout=self.settings.timeout,
                budget=budget,
            )
            claim(adapter, self.name)
            creds = self.settings.credentials
            if creds.oauth_token is not None:
                self._session.headers["Authorization"] = (
                    f"Bearer {creds.oauth_token.get_secret_value()}"
                )
            else:
                assert creds.api_token is not None
                user, token = f"{creds.email}/token", creds.api_token.get_secret_value()
                register_secret(f"{user}:{token}")  # the Basic header encodes this pair
                self._session.auth = (user, token)
        return self._session

    def client(self) -> Zenpy:
        """zenpy on our session; auth stays on the session, waits on 429 stay bounded."""
        if self._client is None:
            from zenpy import Zenpy

            subdomain, _root = self._zenpy_host()
            creds = self.settings.credentials
            kwargs: dict[str, Any] = {}
            if creds.oauth_token is not None:
                kwargs["oauth_token"] = creds.oauth_token.get_secret_value()
            else:
                kwargs["email"] = creds.email
                kwargs["token"] = creds.api_token.get_secret_value() if creds.api_token else None
            self._client = Zenpy(
                subdomain=subdomain,
                session=self.session(),
                timeout=self.settings.timeout,
                ratelimit_budget=int(self.settings.max_rate_limit_wait.total_seconds()),
                **kwargs,
            )
        return self._client

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._client = None

    def _get(self, url: str, params: dict[str, Any] | None = None, *, what: str) -> dict[str, Any]:
        """GET a JSON page; every failure becomes an error of the taxonomy."""
        _response, body = request_json(
            self.session(), "GET", url, params=params, connector=self.name, what=what
        )
        if not isinstance(body, dict):
            raise FatalError(f"{what}: unexpected answer shape", connector=self.name)
        return body

    def _zenpy_call(self, what: str, call: Callable[[], Any]) -> Any:
        from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

        try:
            return call()
        except RatelimitBudgetExceeded:
            raise RetriableError(
                f"{what}: rate limited longer than allowed", connector=self.name
            ) from None
        except APIException as exc:
            response = exc.response
            raise error_for_status(
                response.status_code,
                connector=self.name,
                what=what,
                headers=response.headers,
                detail=error_detail(response),
            ) from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            raise error_for_status(status, connector=self.name, what=what) from None
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.name, what=what) from None
        except ZenpyException as exc:
            raise FatalError(f"{what}: {exc}", connector=self.name) from None

    # ---- interface --------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        return STREAMS

    def check(self) -> None:
        self._zenpy_call("GET users/me", self.client().users.me)

    def objects(self) -> Sequence[str]:
        return [s.object_name or s.name for s in STREAMS]

    def discover(self, object_name: str) -> Sequence[FieldInfo]:
        spec = self.stream(object_name)
        standard = [FieldInfo(name, "standard") for name in sorted(spec.known_fields)]
        if spec.name == "tickets":
            fields = self._zenpy_call(
                "GET ticket_fields", lambda: list(self.client().ticket_fields())
            )
            custom = [
                FieldInfo(
                    f"custom_fields[id={f.id}]",
                    str(f.type),
                    label=str(f.title),
                    custom=True,
                    extra={
                        "id": str(f.id),
                        "path": "custom_fields",
                        "transform": f"{{ custom_field = {f.id} }}",
                    },
                )
                for f in fields
                if getattr(f, "removable", True)
            ]
            return standard + custom
        if spec.name in ("users", "organizations"):
            kind = "user_fields" if spec.name == "users" else "organization_fields"
            api = getattr(self.client(), kind)
            fields = self._zenpy_call(f"GET {kind}", lambda: list(api()))
            return standard + [
                FieldInfo(f"{kind}.{f.key}", str(f.type), label=str(f.title), custom=True)
                for f in fields
            ]
        return standard

    def read(
        self,
        stream: StreamSpec,
        cursor: BaseModel | None,
        *,
        fields: frozenset[str] = frozenset(),
    ) -> Iterator[Page]:
        if stream.name in ("tickets", "users"):
            current = cursor if isinstance(cursor, ExportCursor) else ExportCursor()
            return self._read_cursor_export(stream.name, current)
        if stream.name == "organizations":
            start = (
                cursor
                if isinstance(cursor, TimeCursor)
                else TimeCursor(start_time=self._initial_start())
            )
            return self._read_organizations(start)
        if stream.name == "jira_links":
            since = cursor if isinstance(cursor, SinceIdCursor) else SinceIdCursor()
            return self._read_links(since)
        raise FatalError(f"no stream '{stream.name}'", connector=self.name)

    def census_interval(self, stream: StreamSpec) -> timedelta:
        """The links are listed in full every `links_census_interval`; new ones every cycle."""
        return self.settings.links_census_interval

    def sweep(self, stream: StreamSpec) -> Iterator[SweepPage]:
        if stream.name == "users":
            return self._sweep_deleted_users()
        if stream.name == "organizations":
            return self._sweep_organizations()
        if stream.name == "jira_links":
            return (SweepPage(present=page.records) for page in self._read_links(SinceIdCursor()))
        return super().sweep(stream)

    # ---- writes -----------------------------------------------------------------------

    def write(self, writes: Sequence[FieldWrite]) -> list[WriteOutcome]:
        """Set ticket fields: numeric names are custom field ids, others standard fields."""
        outcomes = []
        for item in writes:
            if item.object_name != "tickets":
                outcomes.append(WriteOutcome(item.key, False, f"cannot write {item.object_name}"))
                continue
            ticket: dict[str, Any] = {}
            custom = []
            for name, value in item.fields.items():
                if str(name).isdigit():
                    custom.append({"id": int(name), "value": value})
                else:
                    ticket[str(name)] = value
            if custom:
                ticket["custom_fields"] = custom
            outcomes.append(self._update_ticket(item.key, ticket, ", ".join(map(str, item.fields))))
        return outcomes

    def add_internal_note(self, ticket: str, body: str) -> WriteOutcome:
        """An internal note (not visible to the requester) on a ticket."""
        return self._update_ticket(ticket, {"comment": {"body": body, "public": False}}, "comment")

    def has_note_containing(self, ticket: str, marker: str) -> bool:
        """Whether any comment of the ticket contains `marker` (for exactly-once notes)."""
        url: str | None = f"{self.api_root}/tickets/{ticket}/comments.json"
        while url:
            body = self._get(url, None, what=f"GET tickets/{ticket}/comments")
            for comment in body.get("comments", []):
                if marker in str(comment.get("body", "")):
                    return True
            url = body.get("next_page")
        return False

    def read_fields(
        self, object_name: str, key: str, fields: Sequence[str]
    ) -> dict[str, Any] | None:
        """The ticket's current values of `fields` (custom fields by id); None when it is gone."""
        if object_name != "tickets":
            return None
        url = f"{self.api_root}/tickets/{key}.json"
        what = f"GET tickets/{key}"
        try:
            response = self.session().get(url)
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.name, what=what) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_for_status(
                response.status_code, connector=self.name, what=what, headers=response.headers
            )
        ticket = response.json().get("ticket") or {}
        return {name: self.field_value(ticket, name) for name in fields}

    def field_value(self, raw: Mapping[str, Any], field: str) -> Any:
        """A field's current value in a stored ticket (custom fields by id)."""
        if str(field).isdigit():
            for entry in raw.get("custom_fields") or []:
                if str(entry.get("id")) == str(field):
                    return entry.get("value")
            return MISSING
        return raw.get(field, MISSING)

    def _update_ticket(self, ticket: str, payload: dict[str, Any], fields: str) -> WriteOutcome:
        url = f"{self.api_root}/tickets/{ticket}.json"
        what = f"PUT tickets/{ticket}"
        try:
            response = self.session().put(url, json={"ticket": payload})
        except requests.RequestException as exc:
            raise error_for_exception(exc, connector=self.name, what=what) from None
        if response.status_code in (200, 201):
            return WriteOutcome(ticket, True)
        if response.status_code in (404, 422):
            detail = error_detail(response) or str(response.status_code)
            return WriteOutcome(
                ticket,
                False,
                f"ticket {ticket}, field(s) {fields}: {detail}",
                gone=response.status_code == 404,
            )
        raise error_for_status(
            response.status_code,
            connector=self.name,
            what=what,
            headers=response.headers,
            detail=error_detail(response),
        )

    # ---- streams ----------------------------------------------------------------------

    def _initial_start(self) -> int:
        start = self.settings.start_time
        if start is None:
            return 0
        if start.tzinfo is None:  # a TOML local date-time: read it as UTC, not the host's zone
            start = start.replace(tzinfo=UTC)
        return int(start.timestamp())

    def _latest_allowed_start(self) -> int:
        return int(self.clock()) - RECENT_WINDOW - 1

    def _read_cursor_export(self, name: str, cursor: ExportCursor) -> Iterator[Page]:
        url = f"{self.api_root}/incremental/{name}/cursor.json"
        what = f"GET incremental/{name}"
        size = self.settings.page_size
        if cursor.after_cursor:
            params: dict[str, Any] = {"per_page": size, "cursor": cursor.after_cursor}
        else:
            start = cursor.start_time if cursor.start_time is not None else self._initial_start()
            if start > self._latest_allowed_start():
                return  # nothing can have changed after a moment that has not passed yet
            params = {"per_page": size, "start_time": start}
        seen = {cursor.after_cursor}

        def following(body: dict[str, Any]) -> Callable[[], dict[str, Any]] | None:
            after = body.get("after_cursor")
            if body.get("end_of_stream") or not isinstance(after, str):
                return None
            if after in seen:
                raise FatalError(
                    f"incremental/{name}: after_cursor did not advance", connector=self.name
                )
            seen.add(after)
            return lambda: self._get(url, {"per_page": size, "cursor": after}, what=what)

        bodies = read_ahead(
            lambda: self._get(url, params, what=what), following, name=f"{self.name}-{name}"
        )
        for body in bodies:
            items = body.get(name)
            after = body.get("after_cursor")
            if not isinstance(items, list) or not isinstance(after, str):
                raise FatalError(
                    f"incremental/{name}: answer lacks {name} or after_cursor", connector=self.name
                )
            records, deleted = _split_deleted(items, name)
            yield Page(records=records, deleted=deleted, cursor=ExportCursor(after_cursor=after))

    def _read_organizations(self, cursor: TimeCursor) -> Iterator[Page]:
        url = f"{self.api_root}/incremental/organizations.json"
        start = cursor.start_time
        if start > self._latest_allowed_start():
            return
        while True:
            body = self._get(
                url,
                {"start_time": start, "per_page": self.settings.page_size},
                what="GET incremental/organizations",
            )
            items = body.get("organizations")
            end_time = body.get("end_time")
            if not isinstance(items, list) or not isinstance(end_time, int):
                raise FatalError(
                    "incremental/organizations: answer lacks organizations or end_time",
                    connector=self.name,
                )
            records = [o for o in items if isinstance(o, dict) and not o.get("deleted_at")]
            deleted = [o for o in items if isinstance(o, dict) and o.get("deleted_at")]
            yield Page(records=records, deleted=deleted, cursor=TimeCursor(start_time=end_time))
            if body.get("end_of_stream"):
                return
            if end_time <= start:
                raise FatalError(
                    "incremental/organizations: end_time did not advance (more organizations "
                    "share one timestamp than a page holds)",
                    connector=self.name,
                )
            start = end_time

    def _read_links(self, cursor: SinceIdCursor) -> Iterator[Page]:
        url = f"{self.settings.base_url}/api/services/jira/links"
        since = cursor.since_id
        while True:
            body = self._get(url, {"since_id": since} if since else None, what="GET jira/links")
            links = body.get("links")
            if not isinstance(links, list):
                raise FatalError("jira/links: answer lacks links", connector=self.name)
            if not links:  # zenpy's rule too: an empty page ends the listing
                if since == cursor.since_id:
                    yield Page(records=[], cursor=SinceIdCursor(since_id=since))
                return
            try:
                newest = max(int(link["id"]) for link in links)
            except (KeyError, TypeError, ValueError):
                raise FatalError(
                    "jira/links: a link without a numeric id", connector=self.name
                ) from None
            if newest <= since:
                raise FatalError("jira/links: since_id did not advance", connector=self.name)
            since = newest
            yield Page(records=links, cursor=SinceIdCursor(since_id=since))

    def _sweep_deleted_users(self) -> Iterator[SweepPage]:
        url: str | None = f"{self.api_root}/deleted_users.json"
        params: dict[str, Any] | None = {"per_page": 100}
        while url:
            body = self._get(url, params, what="GET deleted_users")
            yield SweepPage(
                deleted=[u for u in body.get("deleted_users", []) if isinstance(u, dict)]
            )
            url, params = body.get("next_page"), None

    def _sweep_organizations(self) -> Iterator[SweepPage]:
        url: str | None = f"{self.api_root}/organizations.json"
        params: dict[str, Any] | None = {"page[size]": 100}
        while url:
            body = self._get(url, params, what="GET organizations")
            yield SweepPage(
                present=[o for o in body.get("organizations", []) if isinstance(o, dict)]
            )
            meta = body.get("meta") or {}
            url = (body.get("links") or {}).get("next") if meta.get("has_more") else None
            params = None


def _split_deleted(items: list[Any], name: str) -> tuple[list[Record], list[Record]]:
    """Deleted tickets come with status 'deleted'; deleted users with active=false."""
    records: list[Record] = []
    deleted: list[Record] = []
    for item in items:
        if not isinstance(item, dict):
            records.append({"_malformed": item})
            continue
        gone = item.get("status") == "deleted" if name == "tickets" else item.get("active") is False
        (deleted if gone else records).append(item)
    return records, deleted
