"""A Zendesk Support API simulator, faithful to the documented contract pmsync relies on.

Implemented, after Zendesk's public API reference:
  * Auth: Basic `{email}/token:{api_token}` or `Bearer {oauth_token}`; anything else is
    401 {"error": "Couldn't authenticate you"}.
  * Cursor-based incremental exports, tickets and users
    (GET /api/v2/incremental/{tickets,users}/cursor.json): the first call takes `start_time`
    (unix seconds, must be at least a minute in the past, else 400), later calls only `cursor`.
    Answers carry the records, `after_cursor`, `after_url` (absolute), `before_cursor`,
    `before_url` and `end_of_stream`. `per_page` up to 1000 (the default). Items changed within
    the last minute are left out. Records are ordered by (timestamp, id) and the cursor encodes
    that position, so many records sharing a timestamp page correctly. Deleted tickets appear
    with status "deleted" unless `exclude_deleted=true`. Tickets carry `generated_timestamp`.
  * Time-based incremental export of organizations (GET /api/v2/incremental/organizations.json):
    items with updated_at >= start_time, `end_time` (the last item's timestamp, to be used as the
    next start_time, so boundary items repeat), `next_page`, `count`, `end_of_stream`. Deleted
    organizations appear with `deleted_at` set. Assumption, not stated by the docs: when more
    than a page of items share the last timestamp the page is extended to include all of them,
    so a client can always make progress.
  * Incremental endpoints allow 10 requests a minute (configurable); over it: 429 with
    Retry-After in seconds. Other endpoints have a per-minute plan limit.
  * GET /api/v2/users/me.json, /ticket_fields.json, /user_fields.json, /organization_fields.json
    (custom field definitions), /organizations.json (cursor pagination: page[size],
    page[after], meta.has_more, links.next), /deleted_users.json (offset pages of 100),
    GET/PUT /api/v2/tickets/{id}.json (custom_fields, status, tags, and a `comment` with
    `public: false` for internal notes; an update moves the ticket in the export).
  * Jira integration links, GET /api/services/jira/links (what zenpy calls) and
    /api/v2/jira/links: ordered by id, `since_id` exclusive, filters ticket_id/issue_id,
    1000 per page, ids as strings, {"links": [...], "total": <links in this page>}.
"""

from __future__ import annotations

import base64
import bisect
import copy
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from pmsync.simulators.base import Simulator, json_response

MAX_PAGE = 1000
RECENT_WINDOW = 60  # seconds: the newest minute is left out of incremental exports
TOO_RECENT = "Too recent start_time. Use a start_time older than 1 minute"


def _encode_cursor(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[int, int] | None:
    try:
        padded = text + "=" * (-len(text) % 4)
        ts, ident = orjson.loads(base64.urlsafe_b64decode(padded))
        return int(ts), int(ident)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None


class _Ordered:
    """Records kept sorted by (timestamp, id) for cursor exports."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.order: list[tuple[int, int]] = []

    def put(self, record: dict[str, Any], ts: int) -> None:
        ident = int(record["id"])
        old = self.items.get(ident)
        if old is not None:
            position = (old["_ts"], ident)
            index = bisect.bisect_left(self.order, position)
            if index < len(self.order) and self.order[index] == position:
                self.order.pop(index)
        record["_ts"] = ts
        self.items[ident] = record
        bisect.insort(self.order, (ts, ident))

    def after(self, position: tuple[int, int], limit_ts: int, count: int) -> tuple[list[int], bool]:
        """Ids after `position` with timestamp <= limit_ts; and whether more remain."""
        start = bisect.bisect_right(self.order, position)
        ids: list[int] = []
        for ts, ident in self.order[start : start + count + 1]:
            if ts > limit_ts:
                return ids, False
            if len(ids) == count:
                return ids, True
            ids.append(ident)
        return ids, False


class ZendeskSimulator(Simulator):
    """In-memory Zendesk; tests change its data through the Python methods below."""

    name = "zendesk-simulator"

    def __init__(
        self,
        *,
        email: str = "ops@example.com",
        token: str = "sim-zendesk-token",
        oauth_token: str | None = None,
        incremental_per_minute: int | None = 10,
        plan_per_minute: int | None = 700,
        clock: Any = None,
    ) -> None:
        self.email = email
        self.token = token
        self.oauth_token = oauth_token
        self.incremental_per_minute = incremental_per_minute
        self.plan_per_minute = plan_per_minute
        self._clock = clock
        self.tickets = _Ordered()
        self.users = _Ordered()
        self.organizations: dict[int, dict[str, Any]] = {}
        self.deleted_users: dict[int, dict[str, Any]] = {}
        self.jira_links: dict[int, dict[str, Any]] = {}
        self.ticket_fields: list[dict[str, Any]] = []
        self.user_fields: list[dict[str, Any]] = []
        self.organization_fields: list[dict[str, Any]] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self._windows: dict[str, deque[float]] = {"incremental": deque(), "plan": deque()}
        self._next_link = 1
        self.links_page_size = MAX_PAGE
        self.rate_window = 60.0  # seconds over which the per-minute limits count
        super().__init__()

    def clock(self) -> float:
        return float(self._clock()) if self._clock else super().clock()

    def rules(self) -> Iterable[Rule]:
        return [
            Rule("/api/v2/users/me.json", endpoint="me"),
            Rule("/api/v2/incremental/tickets/cursor.json", endpoint="export_tickets"),
            Rule("/api/v2/incremental/users/cursor.json", endpoint="export_users"),
            Rule("/api/v2/incremental/organizations.json", endpoint="export_organizations"),
            Rule("/api/v2/ticket_fields.json", endpoint="list_ticket_fields"),
            Rule("/api/v2/user_fields.json", endpoint="list_user_fields"),
            Rule("/api/v2/organization_fields.json", endpoint="list_organization_fields"),
            Rule("/api/v2/organizations.json", endpoint="list_organizations"),
            Rule("/api/v2/deleted_users.json", endpoint="list_deleted_users"),
            Rule("/api/v2/tickets/<int:ticket_id>.json", endpoint="ticket", methods=["GET", "PUT"]),
            Rule("/api/v2/tickets/<int:ticket_id>/comments.json", endpoint="ticket_comments"),
            Rule("/api/services/jira/links", endpoint="list_jira_links"),
            Rule("/api/v2/jira/links", endpoint="list_jira_links"),
        ]

    # ---- data, for tests and generators ---------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def put_ticket(self, ticket: dict[str, Any], *, at: int | None = None) -> dict[str, Any]:
        ts = self.now() - 2 * RECENT_WINDOW if at is None else at
        with self.lock:
            ticket = {**ticket, "updated_at": iso_timestamp(ts), "generated_timestamp": ts}
            ticket.setdefault("created_at", iso_timestamp(ts))
            ticket.setdefault("url", f"{self.base_url}/api/v2/tickets/{ticket['id']}.json")
            self.tickets.put(ticket, ts)
        return ticket

    def put_user(self, user: dict[str, Any], *, at: int | None = None) -> dict[str, Any]:
        ts = self.now() - 2 * RECENT_WINDOW if at is None else at
        with self.lock:
            user = {**user, "updated_at": iso_timestamp(ts)}
            user.setdefault("created_at", iso_timestamp(ts))
            self.users.put(user, ts)
        return user

    def put_organization(self, org: dict[str, Any], *, at: int | None = None) -> dict[str, Any]:
        ts = self.now() - 2 * RECENT_WINDOW if at is None else at
        with self.lock:
            org = {**org, "updated_at": iso_timestamp(ts), "_ts": ts}
            org.setdefault("created_at", iso_timestamp(ts))
            org.setdefault("deleted_at", None)
            self.organizations[int(org["id"])] = org
        return org

    def delete_ticket(self, ticket_id: int, *, at: int | None = None) -> None:
        with self.lock:
            ticket = self._public(self.tickets.items[ticket_id])
        self.put_ticket({**ticket, "status": "deleted"}, at=at)

    def delete_user(self, user_id: int, *, at: int | None = None) -> None:
        """Soft-delete: the user export shows active=false; /deleted_users lists it."""
        with self.lock:
            user = self._public(self.users.items[user_id])
            self.deleted_users[user_id] = {
                "id": user_id,
                "name": user.get("name"),
                "email": user.get("email"),
                "created_at": user.get("created_at"),
                "updated_at": iso_timestamp(self.now()),
                "active": False,
            }
        self.put_user({**user, "active": False}, at=at)

    def purge_user(self, user_id: int) -> None:
        """Hard delete: gone from every listing; only /deleted_users (permanently) remains."""
        with self.lock:
            self.users.items.pop(user_id, None)
            self.users.order = [p for p in self.users.order if p[1] != user_id]
            self.deleted_users[user_id] = {
                "id": user_id,
                "name": "Permanently Deleted User",
                "email": None,
                "active": False,
                "updated_at": iso_timestamp(self.now()),
            }

    def delete_organization(self, org_id: int, *, at: int | None = None) -> None:
        ts = self.now() - 2 * RECENT_WINDOW if at is None else at
        with self.lock:
            org = self.organizations[org_id]
            org.update(
                {"deleted_at": iso_timestamp(ts), "updated_at": iso_timestamp(ts), "_ts": ts}
            )

    def purge_organization(self, org_id: int) -> None:
        with self.lock:
            self.organizations.pop(org_id, None)

    def add_jira_link(self, ticket_id: int, issue_id: str, issue_key: str) -> dict[str, Any]:
        with self.lock:
            link_id = self._next_link
            self._next_link += 1
            stamp = iso_timestamp(self.now())
            link = {
                "id": str(link_id),
                "ticket_id": str(ticket_id),
                "issue_id": str(issue_id),
                "issue_key": issue_key,
                "created_at": stamp,
                "updated_at": stamp,
                "url": f"{self.base_url}/api/v2/jira/links/{link_id}",
            }
            self.jira_links[link_id] = link
        return link

    def remove_jira_link(self, link_id: int) -> None:
        with self.lock:
            self.jira_links.pop(link_id, None)

    # ---- inspection, for tests ------------------------------------------------------------

    def ticket_record(self, ticket_id: int) -> dict[str, Any]:
        """The ticket as the API shows it (a copy; a deleted one has status "deleted"), e.g. to
        change a field and put it back with put_ticket. KeyError for an unknown id."""
        with self.lock:
            return copy.deepcopy(self._public(self.tickets.items[ticket_id]))

    def user_record(self, user_id: int) -> dict[str, Any]:
        """The user as the API shows it (a copy). KeyError for an unknown or purged id."""
        with self.lock:
            return copy.deepcopy(self._public(self.users.items[user_id]))

    def organization_record(self, org_id: int) -> dict[str, Any]:
        """The organization as the API shows it (a copy). KeyError for an unknown or purged id."""
        with self.lock:
            return copy.deepcopy(self._public(self.organizations[org_id]))

    # ---- HTTP plumbing --------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_response({"error": "Couldn't authenticate you"}, 401)
        limited = self._rate_limited(request)
        if limited is not None:
            return limited
        return super()._dispatch(request)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.oauth_token is not None and header[7:] == self.oauth_token
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            return decoded == f"{self.email}/token:{self.token}"
        return False

    def _rate_limited(self, request: Request) -> Response | None:
        bucket = "incremental" if "/incremental/" in request.path else "plan"
        limit = self.incremental_per_minute if bucket == "incremental" else self.plan_per_minute
        if limit is None:
            return None
        now = self.clock()
        with self.lock:
            window = self._windows[bucket]
            while window and window[0] <= now - self.rate_window:
                window.popleft()
            if len(window) >= limit:
                retry_after = max(1, int(window[0] + self.rate_window - now) + 1)
                return json_response(
                    {
                        "error": "APIRateLimitExceeded",
                        "description": "Number of allowed API requests per minute exceeded",
                    },
                    429,
                    {"Retry-After": str(retry_after)},
                )
            window.append(now)
        return None

    def _url(self, path: str, params: dict[str, Any]) -> str:
        return f"{self.base_url}{path}?{urlencode(params)}"

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    @staticmethod
    def _page_size(request: Request, default: int = MAX_PAGE) -> int:
        try:
            return max(1, min(MAX_PAGE, int(request.args.get("per_page", default))))
        except ValueError:
            return default

    # ---- endpoints --------------------------------------------------------------------

    def me(self, request: Request) -> Response:
        return json_response(
            {
                "user": {
                    "id": 1,
                    "name": "API user",
                    "email": self.email,
                    "role": "admin",
                    "time_zone": "UTC",
                }
            }
        )

    def export_tickets(self, request: Request) -> Response:
        return self._cursor_export(
            request, self.tickets, "tickets", "/api/v2/incremental/tickets/cursor.json"
        )

    def export_users(self, request: Request) -> Response:
        return self._cursor_export(
            request, self.users, "users", "/api/v2/incremental/users/cursor.json"
        )

    def _cursor_export(self, request: Request, store: _Ordered, plural: str, path: str) -> Response:
        now = self.now()
        if "cursor" in request.args:
            position = _decode_cursor(request.args["cursor"])
            if position is None:
                return json_response(
                    {"error": "InvalidPaginationParameter", "description": "cursor is invalid"}, 400
                )
        elif "start_time" in request.args:
            try:
                start = int(request.args["start_time"])
            except ValueError:
                return json_response({"error": "InvalidValue", "description": "start_time"}, 400)
            if start > now - RECENT_WINDOW:
                return json_response(
                    {
                        "error": "InvalidValue",
                        "description": TOO_RECENT,
                    },
                    400,
                )
            position = (start, -1)
        else:
            return json_response(
                {"error": "InvalidValue", "description": "start_time or cursor is required"}, 400
            )
        size = self._page_size(request)
        exclude_deleted = request.args.get("exclude_deleted") == "true"
        with self.lock:
            ids, more = store.after(position, now - RECENT_WINDOW, size)
            page = [store.items[i] for i in ids]
            last = (page[-1]["_ts"], int(page[-1]["id"])) if page else position
            body_items = [
                self._public(r)
                for r in page
                if not (exclude_deleted and r.get("status") == "deleted")
            ]
        after = _encode_cursor(last)
        before = _encode_cursor(position)
        body = {
            plural: body_items,
            "after_cursor": after,
            "after_url": self._url(path, {"cursor": after, "per_page": size}),
            "before_cursor": before,
            "before_url": self._url(path, {"cursor": before, "per_page": size}),
            "end_of_stream": not more,
        }
        return json_response(body)

    def export_organizations(self, request: Request) -> Response:
        now = self.now()
        try:
            start = int(request.args["start_time"])
        except (KeyError, ValueError):
            return json_response({"error": "InvalidValue", "description": "start_time"}, 400)
        if start > now - RECENT_WINDOW:
            return json_response(
                {
                    "error": "InvalidValue",
                    "description": TOO_RECENT,
                },
                400,
            )
        size = self._page_size(request)
        with self.lock:
            eligible = sorted(
                (
                    o
                    for o in self.organizations.values()
                    if start <= o["_ts"] <= now - RECENT_WINDOW
                ),
                key=lambda o: (o["_ts"], o["id"]),
            )
            page = eligible[:size]
            if page:
                boundary = page[-1]["_ts"]
                page.extend(o for o in eligible[size:] if o["_ts"] == boundary)
            more = len(eligible) > len(page)
            end_time = page[-1]["_ts"] if page else start
            items = [self._public(o) for o in page]
        return json_response(
            {
                "organizations": items,
                "count": len(items),
                "end_time": end_time,
                "next_page": self._url(
                    "/api/v2/incremental/organizations.json",
                    {"start_time": end_time, "per_page": size},
                ),
                "end_of_stream": not more,
            }
        )

    def list_ticket_fields(self, request: Request) -> Response:
        return json_response(
            {
                "ticket_fields": self.ticket_fields,
                "next_page": None,
                "count": len(self.ticket_fields),
            }
        )

    def list_user_fields(self, request: Request) -> Response:
        return json_response(
            {"user_fields": self.user_fields, "next_page": None, "count": len(self.user_fields)}
        )

    def list_organization_fields(self, request: Request) -> Response:
        return json_response(
            {
                "organization_fields": self.organization_fields,
                "next_page": None,
                "count": len(self.organization_fields),
            }
        )

    def list_organizations(self, request: Request) -> Response:
        size = max(1, min(100, int(request.args.get("page[size]", 100))))
        after = int(request.args.get("page[after]", 0) or 0)
        with self.lock:
            ids = sorted(i for i in self.organizations if i > after)
            page = ids[:size]
            items = [
                self._public(self.organizations[i])
                for i in page
                if self.organizations[i].get("deleted_at") is None
            ]
        has_more = len(ids) > size
        cursor = str(page[-1]) if page else None
        return json_response(
            {
                "organizations": items,
                "meta": {"has_more": has_more, "after_cursor": cursor, "before_cursor": None},
                "links": {
                    "next": self._url(
                        "/api/v2/organizations.json", {"page[size]": size, "page[after]": cursor}
                    )
                    if has_more
                    else None,
                    "prev": None,
                },
            }
        )

    def list_deleted_users(self, request: Request) -> Response:
        per_page = max(1, min(100, int(request.args.get("per_page", 100))))
        page = max(1, int(request.args.get("page", 1)))
        with self.lock:
            ids = sorted(self.deleted_users)
            chunk = ids[(page - 1) * per_page : page * per_page]
            items = [self.deleted_users[i] for i in chunk]
        more = len(ids) > page * per_page
        return json_response(
            {
                "deleted_users": items,
                "count": len(ids),
                "next_page": self._url(
                    "/api/v2/deleted_users.json", {"page": page + 1, "per_page": per_page}
                )
                if more
                else None,
                "previous_page": None,
            }
        )

    def ticket(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            current = self.tickets.items.get(ticket_id)
            if current is None or current.get("status") == "deleted":
                return self.not_found(request)
            if request.method == "GET":
                return json_response({"ticket": self._public(current)})
        payload = (request.get_json(silent=True) or {}).get("ticket")
        if not isinstance(payload, dict):
            return json_response(
                {"error": "InvalidValue", "description": "ticket is required"}, 400
            )
        updated = self._public(current)
        for name in ("status", "priority", "tags", "subject"):
            if name in payload:
                updated[name] = payload[name]
        if "custom_fields" in payload:
            known = {f["id"] for f in self.ticket_fields}
            values = {int(f["id"]): f.get("value") for f in updated.get("custom_fields", [])}
            for entry in payload["custom_fields"]:
                if int(entry["id"]) not in known:
                    return json_response(
                        {
                            "error": "RecordInvalid",
                            "description": "Record validation errors",
                            "details": {
                                "custom_fields": [
                                    {"description": f"field {entry['id']} does not exist"}
                                ]
                            },
                        },
                        422,
                    )
                values[int(entry["id"])] = entry.get("value")
            updated["custom_fields"] = [{"id": k, "value": v} for k, v in sorted(values.items())]
        comment = payload.get("comment")
        if isinstance(comment, dict):
            with self.lock:
                thread = self.comments.setdefault(ticket_id, [])
                thread.append(
                    {
                        "id": len(thread) + 1,
                        "body": comment.get("body", ""),
                        "public": bool(comment.get("public", True)),
                        "created_at": iso_timestamp(self.now()),
                    }
                )
        stored = self.put_ticket(updated, at=self.now())
        return json_response({"ticket": self._public(stored)})

    def ticket_comments(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            thread = list(self.comments.get(ticket_id, []))
        return json_response({"comments": thread, "next_page": None, "count": len(thread)})

    def list_jira_links(self, request: Request) -> Response:
        since = int(request.args.get("since_id", 0) or 0)
        ticket_filter = request.args.get("ticket_id")
        issue_filter = request.args.get("issue_id")
        with self.lock:
            links = [
                link
                for key, link in sorted(self.jira_links.items())
                if key > since
                and (ticket_filter is None or link["ticket_id"] == ticket_filter)
                and (issue_filter is None or link["issue_id"] == issue_filter)
            ][: self.links_page_size]
        return json_response({"links": links, "total": len(links)})


def iso_timestamp(ts: int) -> str:
    """Zendesk's timestamp format."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
