"""A Pendo API simulator, faithful to the documented contract pmsync relies on.

Implemented, after Pendo's public API documentation and its published aggregation examples:
  * Auth: the `x-pendo-integration-key` header (case-insensitive, as HTTP headers are); a
    missing or unknown key is 401.
  * POST /api/v1/aggregation with `{response: {mimeType: "application/json"}, request:
    {name?, requestId?, pipeline: [...]}}`; the answer is `{startTime, results: [...]}`.
    - The first stage is `{source: {<source>: <params|null>, timeSeries?}}`. Sources:
      `accounts` (params ignored), `events` (`appId` / `eventClass` ignored: one app),
      `featureEvents` (`featureId` selects one feature; null: every feature), `features`,
      `guides` (the guide catalog; a guide's `polls` list each poll's id and
      `attributes.type`, e.g. "NPSRating"; an NPS guide holds a rating poll and a reason poll)
      and `pollEvents` (one row per poll answer: accountId, visitorId, appId, guideId, pollId,
      browserTime in ms, day, type "pollResponse", pollResponse: a number for an NPS rating,
      text for a reason; remoteIp, server, userAgent).
    - Event sources (events, featureEvents, pollEvents) need `timeSeries` (else 400 "no period
      specified for time series source").
      Only `period: "dayRange"` is implemented. `first` is epoch milliseconds or "now()" and is
      rounded down to the start of its day in the subscription's time zone; `count: N` covers N
      days from that day, `count: -N` the N days before it (so "now()" with -1 is yesterday),
      and `last` (milliseconds or "now()") ends the range with that day, inclusive.
    - Event rows: accountId, visitorId, appId, day (ms of the day's start), numEvents,
      numMinutes, server, remoteIp, userAgent; feature event rows add featureId. A visitor can
      have several rows a day (one per server), so counting rows is not counting visitors.
    - Account rows: accountId and metadata.{auto,agent,custom}; metadata.auto.lastupdated (ms)
      moves whenever an account changes.
    - Later stages: see pipeline.py (identified, filter, select, group, sort, limit). A
      malformed pipeline or an operator the simulator does not implement is 400 with a message.
  * GET /api/v1/metadata/schema/{account|visitor}: metadata groups (auto, agent, custom), each
    field with Type and DisplayName.
  * GET /api/v1/feature: the feature catalog (id, name, appId, kind, createdAt, lastUpdatedAt).
  * A per-minute request budget (none published by Pendo; configurable, off by default): over it
    the answer is 429 with Retry-After in seconds.
  * Deleting an account removes it and all its event rows (what a data-deletion request does).
Not implemented: hourRange, spawn/join/eval/reduce operators, visitors, pages, guide events,
pollsSeenEver, track events, writes.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from pmsync.simulators.base import Simulator, json_response
from pmsync.simulators.pendo.pipeline import PipelineError, Row, run_operators

DAY_MS = 86_400_000
DEFAULT_APP_ID = -323232
TIME_SERIES_SOURCES = ("events", "featureEvents", "pollEvents")
SOURCES = ("accounts", "events", "featureEvents", "features", "guides", "pollEvents")


class PendoSimulator(Simulator):
    """In-memory Pendo subscription; tests change its data through the methods below."""

    name = "pendo-simulator"

    def __init__(
        self,
        *,
        integration_key: str = "sim-pendo-integration-key",
        timezone: str = "UTC",
        requests_per_minute: int | None = None,
        latency: float = 0.0,
        clock: Any = None,
    ) -> None:
        self.integration_key = integration_key
        self.zone = ZoneInfo(timezone)
        self.requests_per_minute = requests_per_minute
        self.latency = latency
        self._clock = clock
        self.accounts: dict[str, Row] = {}
        self.events: dict[int, list[Row]] = {}
        self.feature_events: dict[int, list[Row]] = {}
        self.features: list[Row] = []
        self.guides: list[Row] = []
        self.poll_events: dict[int, list[Row]] = {}
        self.custom_account_fields: dict[str, str] = {}
        self._window: deque[float] = deque()
        self._window_lock = threading.Lock()
        super().__init__()

    def clock(self) -> float:
        return float(self._clock()) if self._clock else super().clock()

    def rules(self) -> Iterable[Rule]:
        return [
            Rule("/api/v1/aggregation", endpoint="aggregation", methods=["POST"]),
            Rule("/api/v1/metadata/schema/<kind>", endpoint="metadata_schema"),
            Rule("/api/v1/feature", endpoint="list_features"),
        ]

    # ---- days ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), self.zone).date()

    def day_ms(self, day: date) -> int:
        """Milliseconds of a day's start in the subscription's time zone."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return int(start.timestamp() * 1000)

    def day_of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self.zone).date()

    # ---- data, for tests and generators -------------------------------------------------

    def put_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        custom: dict[str, Any] | None = None,
        at_ms: int | None = None,
    ) -> Row:
        """Create or change an account; its lastupdated becomes `at_ms` (default: now)."""
        stamp = self.now_ms() if at_ms is None else at_ms
        with self.lock:
            current = self.accounts.get(account_id)
            metadata = copy.deepcopy(current["metadata"]) if current else _new_metadata(stamp)
            if name is not None:
                metadata["agent"]["name"] = name
            metadata["custom"].update(custom or {})
            metadata["auto"]["lastupdated"] = stamp
            account = {"accountId": account_id, "metadata": metadata}
            self.accounts[account_id] = account
        return copy.deepcopy(account)

    def add_events(
        self,
        account_id: str,
        visitor_id: str,
        day: date,
        num_events: int,
        num_minutes: int,
        *,
        server: str = "app.example.com",
        feature_id: str | None = None,
    ) -> None:
        """Record a visitor's activity on a day (feature activity when feature_id is given)."""
        row: Row = {
            "accountId": account_id,
            "visitorId": visitor_id,
            "appId": DEFAULT_APP_ID,
            "day": self.day_ms(day),
            "numEvents": num_events,
            "numMinutes": num_minutes,
            "server": server,
            "remoteIp": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) pmsync-simulator",
        }
        with self.lock:
            if feature_id is None:
                self.events.setdefault(row["day"], []).append(row)
            else:
                self.feature_events.setdefault(row["day"], []).append(
                    {**row, "featureId": feature_id}
                )

    def add_feature(self, feature_id: str, name: str) -> Row:
        feature = {
            "id": feature_id,
            "name": name,
            "appId": DEFAULT_APP_ID,
            "kind": "Feature",
            "createdAt": self.now_ms(),
            "lastUpdatedAt": self.now_ms(),
        }
        with self.lock:
            self.features.append(feature)
        return feature

    def add_guide(self, guide_id: str, name: str, polls: Iterable[tuple[str, str, str]]) -> Row:
        """A guide with polls given as (poll id, attributes.type, question)."""
        stamp = self.now_ms()
        poll_rows = [
            {"id": poll_id, "question": question, "attributes": {"type": kind}}
            for poll_id, kind, question in polls
        ]
        guide = {
            "id": guide_id,
            "name": name,
            "state": "public",
            "kind": "lightbox",
            "appId": DEFAULT_APP_ID,
            "createdAt": stamp,
            "lastUpdatedAt": stamp,
            "polls": poll_rows,
            "steps": [
                {
                    "id": f"{guide_id}-step1",
                    "guideId": guide_id,
                    "pollIds": [p["id"] for p in poll_rows],
                }
            ],
        }
        with self.lock:
            self.guides.append(guide)
        return guide

    def add_poll_response(
        self,
        guide_id: str,
        poll_id: str,
        account_id: str,
        visitor_id: str,
        at_ms: int,
        response: Any,
    ) -> Row:
        """A visitor's answer to a poll at `at_ms` (an NPS rating is a number 0-10)."""
        day = self.day_ms(self.day_of(at_ms))
        row: Row = {
            "accountId": account_id,
            "visitorId": visitor_id,
            "appId": DEFAULT_APP_ID,
            "guideId": guide_id,
            "pollId": poll_id,
            "browserTime": at_ms,
            "day": day,
            "type": "pollResponse",
            "pollResponse": response,
            "remoteIp": "203.0.113.7",
            "server": "app.example.com",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) pmsync-simulator",
        }
        with self.lock:
            self.poll_events.setdefault(day, []).append(row)
        return dict(row)

    def delete_account(self, account_id: str) -> None:
        """Remove an account and every event row that belongs to it."""
        with self.lock:
            self.accounts.pop(account_id, None)
            for table in (self.events, self.feature_events, self.poll_events):
                for day, rows in table.items():
                    table[day] = [r for r in rows if r["accountId"] != account_id]

    def usage_truth(
        self, first: date, last: date, feature_id: str | None = None
    ) -> dict[tuple[str, str], dict[str, int]]:
        """Per (accountId, ISO day): events, minutes and distinct visitors, computed directly."""
        table = self.events if feature_id is None else self.feature_events
        out: dict[tuple[str, str], dict[str, Any]] = {}
        day = first
        with self.lock:
            while day <= last:
                for row in table.get(self.day_ms(day), []):
                    if feature_id is not None and row["featureId"] != feature_id:
                        continue
                    slot = out.setdefault(
                        (row["accountId"], day.isoformat()),
                        {"numEvents": 0, "numMinutes": 0, "visitors": set()},
                    )
                    slot["numEvents"] += row["numEvents"]
                    slot["numMinutes"] += row["numMinutes"]
                    slot["visitors"].add(row["visitorId"])
                day += timedelta(days=1)
        return {
            key: {
                "numEvents": v["numEvents"],
                "numMinutes": v["numMinutes"],
                "activeVisitors": len(v["visitors"]),
            }
            for key, v in out.items()
        }

    # ---- serving ------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        key = request.headers.get("x-pendo-integration-key")
        if key != self.integration_key:
            return json_response(
                {"error": "Unauthorized", "message": "invalid integration key"}, 401
            )
        limited = self._rate_limited()
        if limited is not None:
            return limited
        if self.latency:
            time.sleep(self.latency)
        return super()._dispatch(request)

    def _rate_limited(self) -> Response | None:
        if self.requests_per_minute is None:
            return None
        now = self.clock()
        with self._window_lock:
            while self._window and self._window[0] <= now - 60:
                self._window.popleft()
            if len(self._window) >= self.requests_per_minute:
                retry_after = max(1, int(self._window[0] + 60 - now) + 1)
                return json_response(
                    {"error": "Too Many Requests"}, 429, {"Retry-After": str(retry_after)}
                )
            self._window.append(now)
        return None

    def aggregation(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        pipeline = (
            (body or {}).get("request", {}).get("pipeline") if isinstance(body, dict) else None
        )
        if not isinstance(pipeline, list) or not pipeline:
            return _bad_request("request.pipeline must be a non-empty list")
        try:
            rows, start = self._source(pipeline[0])
            results = run_operators(rows, pipeline[1:])
        except PipelineError as exc:
            return _bad_request(str(exc))
        return json_response({"startTime": start, "results": results})

    def metadata_schema(self, request: Request, kind: str) -> Response:
        if kind not in ("account", "visitor"):
            return json_response({"error": f"unknown metadata kind {kind}"}, 404)
        auto = ["firstvisit", "lastvisit", "lastupdated", "idhash"]
        schema = {
            "auto": {
                name: _schema_field("string" if name == "idhash" else "time") for name in auto
            },
            "agent": {"name": _schema_field("string", "Name")},
            "custom": {
                name: _schema_field(kind_name, name.title())
                for name, kind_name in self.custom_account_fields.items()
            }
            if kind == "account"
            else {},
        }
        return json_response(schema)

    def list_features(self, request: Request) -> Response:
        with self.lock:
            return json_response(list(self.features))

    # ---- the source stage ---------------------------------------------------------------

    def _source(self, stage: Any) -> tuple[list[Row], int]:
        source = stage.get("source") if isinstance(stage, dict) else None
        if not isinstance(source, dict):
            raise PipelineError("the first pipeline stage must be a source")
        names = [k for k in source if k != "timeSeries"]
        if len(names) != 1 or names[0] not in SOURCES:
            raise PipelineError(f"unknown source {names}; the simulator serves {list(SOURCES)}")
        name = names[0]
        params = source[name] if isinstance(source[name], dict) else {}
        series = source.get("timeSeries")
        if name not in TIME_SERIES_SOURCES:
            catalogs = {"accounts": list(self.accounts.values()), "guides": self.guides}
            with self.lock:
                rows = copy.deepcopy(catalogs.get(name, self.features))
            return rows, self.now_ms()
        if not isinstance(series, dict):
            raise PipelineError("no period specified for time series source")
        days = self._days(series)
        table = {"events": self.events, "featureEvents": self.feature_events}.get(
            name, self.poll_events
        )
        feature = params.get("featureId") if name == "featureEvents" else None
        with self.lock:
            rows = [
                dict(row)
                for day in days
                for row in table.get(day, [])
                if feature is None or row.get("featureId") == feature
            ]
        return rows, days[0] if days else self.now_ms()

    def _days(self, series: dict[str, Any]) -> list[int]:
        if series.get("period") != "dayRange":
            raise PipelineError("the simulator implements period 'dayRange' only")
        first = self.day_of(self._instant(series.get("first"), "first"))
        if "count" in series:
            count = series["count"]
            if not isinstance(count, int) or count == 0:
                raise PipelineError("timeSeries.count must be a non-zero integer")
            start = first if count > 0 else first - timedelta(days=-count)
            total = abs(count)
        elif "last" in series:
            last = self.day_of(self._instant(series["last"], "last"))
            start, total = first, (last - first).days + 1
        else:
            raise PipelineError("timeSeries needs count or last")
        return [self.day_ms(start + timedelta(days=n)) for n in range(max(total, 0))]

    def _instant(self, value: Any, name: str) -> int:
        if value == "now()":
            return self.now_ms()
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PipelineError(f"timeSeries.{name}: the simulator takes milliseconds or now()")


def _new_metadata(stamp: int) -> Row:
    return {
        "auto": {
            "id": "",
            "firstvisit": stamp,
            "lastvisit": stamp,
            "lastupdated": stamp,
            "idhash": 0,
        },
        "agent": {"name": None},
        "custom": {},
    }


def _schema_field(kind: str, display: str = "") -> dict[str, Any]:
    return {"Type": kind, "DisplayName": display, "ElementType": "", "Dirty": False}


def _bad_request(message: str) -> Response:
    return json_response({"overall": {}, "fields": {}, "message": message}, 400)
