"""A PostHog query API simulator, faithful to the documented contract of POST /query/.

Implemented, after PostHog's "API queries" documentation and its API reference:
  * Auth: a personal API key as `Authorization: Bearer phx_...`; a missing or unknown key is
    401 {"type": "authentication_error", "code": "authentication_failed", "detail": ...}; a
    project the key cannot see is 403 {"code": "permission_denied"}.
  * POST /api/projects/{project_id}/query/ with `{query: {kind: "HogQLQuery", query, values?},
    name?, refresh?}`. Other kinds are 400 (validation_error). The query runs on the subset
    of HogQL in hogql.py; a query error is 400 with the reason in `detail`.
    The answer: {results: [[...], ...] (rows as lists), columns, types ([[name, type]]),
    hasMore, limit, offset, hogql, clickhouse, is_cached: false, timezone: "UTC", error: null,
    modifiers, query_status: null, timings}.
  * GET /api/projects/{project_id}/: the project (id, name, timezone), a cheap credentials check.
  * Query rate limit: PostHog's default for HogQL queries is 120 an hour per team (configurable
    here, off by default); over it the answer is 429 {"type": "throttled_error", "code":
    "throttled", "detail": "Request was throttled. Expected available in N seconds."} with
    Retry-After in seconds.
Not implemented: other query kinds, async queries, persons/sessions tables, the wider HogQL
function library.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from pmsync.simulators.base import Simulator, json_response
from pmsync.simulators.posthog.hogql import EventTable, HogQLError


class PostHogSimulator(Simulator):
    """One PostHog project; tests add and delete events through the methods below."""

    name = "posthog-simulator"

    def __init__(
        self,
        *,
        api_key: str = "phx_simulator_personal_api_key",
        project_id: int = 12345,
        queries_per_hour: int | None = None,
        clock: Any = None,
    ) -> None:
        self.api_key = api_key
        self.project_id = project_id
        self.queries_per_hour = queries_per_hour
        self._clock = clock
        self.table = EventTable(self.today)
        self.events: list[dict[str, Any]] = []
        self._window: deque[float] = deque()
        self._window_lock = threading.Lock()
        super().__init__()

    def clock(self) -> float:
        return float(self._clock()) if self._clock else super().clock()

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def rules(self) -> Iterable[Rule]:
        return [
            Rule("/api/projects/<int:project_id>/query/", endpoint="query", methods=["POST"]),
            Rule("/api/projects/<int:project_id>/", endpoint="project"),
        ]

    # ---- data, for tests and generators -------------------------------------------------

    def capture(
        self,
        event: str,
        person_id: str,
        at: datetime,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Store one event (UTC timestamp)."""
        self.capture_many([(event, person_id, at, dict(properties or {}))])

    def capture_many(self, rows: list[tuple[str, str, datetime, dict[str, Any]]]) -> None:
        prepared = []
        for event, person, at, properties in rows:
            stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            prepared.append((str(uuid.uuid4()), event, person, person, stamp, properties))
        with self.lock:
            self.events.extend(
                {
                    "uuid": p[0],
                    "event": p[1],
                    "distinct_id": p[2],
                    "person_id": p[3],
                    "timestamp": p[4],
                    "properties": p[5],
                }
                for p in prepared
            )
        self.table.insert(prepared)

    def delete_account(self, account_id: str) -> None:
        """Delete every event of an account (property account_id)."""
        with self.lock:
            self.events = [
                e for e in self.events if e["properties"].get("account_id") != account_id
            ]
        self.table.delete_property("account_id", account_id)

    def daily_usage(self, first: date, last: date) -> dict[tuple[str, str], dict[str, int]]:
        """Per (account_id, ISO day): events, distinct persons, export_csv events; direct."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.lock:
            for e in self.events:
                day = e["timestamp"][:10]
                account = e["properties"].get("account_id")
                if account is None or not first.isoformat() <= day <= last.isoformat():
                    continue
                slot = out.setdefault((account, day), {"events": 0, "persons": set(), "exports": 0})
                slot["events"] += 1
                slot["persons"].add(e["person_id"])
                slot["exports"] += e["event"] == "export_csv"
        return {
            k: {
                "events": v["events"],
                "active_users": len(v["persons"]),
                "export_csv": v["exports"],
            }
            for k, v in out.items()
        }

    # ---- serving ------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return json_response(
                {
                    "type": "authentication_error",
                    "code": "authentication_failed",
                    "detail": "Personal API key found in request Authorization header is invalid.",
                    "attr": None,
                },
                401,
            )
        return super()._dispatch(request)

    def _throttled(self) -> Response | None:
        if self.queries_per_hour is None:
            return None
        now = self.clock()
        with self._window_lock:
            while self._window and self._window[0] <= now - 3600:
                self._window.popleft()
            if len(self._window) >= self.queries_per_hour:
                wait = max(1, int(self._window[0] + 3600 - now) + 1)
                return json_response(
                    {
                        "type": "throttled_error",
                        "code": "throttled",
                        "detail": f"Request was throttled. Expected available in {wait} seconds.",
                        "attr": None,
                    },
                    429,
                    {"Retry-After": str(wait)},
                )
            self._window.append(now)
        return None

    def _forbidden(self, project_id: int) -> Response | None:
        if project_id == self.project_id:
            return None
        return json_response(
            {
                "type": "authentication_error",
                "code": "permission_denied",
                "detail": "You don't have access to the project.",
                "attr": None,
            },
            403,
        )

    def project(self, request: Request, project_id: int) -> Response:
        denied = self._forbidden(project_id)
        if denied is not None:
            return denied
        return json_response({"id": self.project_id, "name": "Simulated", "timezone": "UTC"})

    def query(self, request: Request, project_id: int) -> Response:
        denied = self._forbidden(project_id) or self._throttled()
        if denied is not None:
            return denied
        payload = request.get_json(silent=True)
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, dict) or query.get("kind") != "HogQLQuery":
            return _invalid("query.kind: the simulator runs HogQLQuery only", "query")
        text, values = query.get("query"), query.get("values") or {}
        if not isinstance(text, str) or not isinstance(values, dict):
            return _invalid("query.query must be a string and values an object", "query")
        try:
            result = self.table.run(text, values)
        except HogQLError as exc:
            return _invalid(str(exc), "query")
        return json_response(
            {
                "cache_key": None,
                "clickhouse": "SELECT ... (simulated)",
                "columns": result.columns,
                "error": None,
                "hasMore": result.has_more,
                "hogql": text,
                "is_cached": False,
                "limit": result.limit,
                "offset": result.offset,
                "modifiers": {},
                "query_status": None,
                "results": result.rows,
                "timezone": "UTC",
                "timings": [],
                "types": result.types,
            }
        )


def _invalid(detail: str, attr: str) -> Response:
    return json_response(
        {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": attr}, 400
    )


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
