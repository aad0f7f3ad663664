"""Aggregation request bodies for the Pendo streams, and the subscription's days.

Pure functions: what is asked of Pendo is visible (and tested) apart from how it is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

Stage = dict[str, Any]

USAGE_FIELDS = {
    "numEvents": {"sum": "numEvents"},
    "numMinutes": {"sum": "numMinutes"},
    "activeVisitors": {"count": "visitorId"},  # count of a field: its distinct values
}
FEATURE_FIELDS = {
    "numEvents": {"sum": "numEvents"},
    "numMinutes": {"sum": "numMinutes"},
    "visitors": {"count": "visitorId"},
}


@dataclass(frozen=True)
class Days:
    """Calendar days as Pendo buckets them: in the subscription's time zone."""

    zone: ZoneInfo

    def start_ms(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp() * 1000)

    def of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self.zone).date()

    def today(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.zone).date()


def body(name: str, pipeline: list[Stage]) -> dict[str, Any]:
    """The envelope every aggregation request shares."""
    return {
        "response": {"mimeType": "application/json"},
        "request": {"name": name, "requestId": name, "pipeline": pipeline},
    }


def pendo_string(value: str) -> str:
    """A string literal for a filter expression (double quotes, backslash escapes)."""
    return json.dumps(value)


def accounts_pipeline(after_updated: int, after_id: str, limit: int) -> list[Stage]:
    """One keyset page of accounts ordered by (lastupdated, accountId), after the given pair.

    Ties on lastupdated are common (bulk metadata updates); the accountId tiebreak means a page
    boundary inside a tie neither skips nor repeats an account. Accounts are subscription-wide:
    the source takes no app.
    """
    pipeline: list[Stage] = [{"source": {"accounts": None}}]
    if after_updated or after_id:
        field = "metadata.auto.lastupdated"
        pipeline.append(
            {
                "filter": f"{field} > {after_updated} || "
                f"({field} == {after_updated} && accountId > {pendo_string(after_id)})"
            }
        )
    pipeline += [{"sort": ["metadata.auto.lastupdated", "accountId"]}, {"limit": limit}]
    return pipeline


def account_ids_pipeline() -> list[Stage]:
    """Every account id (the census of the accounts stream)."""
    return [{"source": {"accounts": None}}, {"select": {"accountId": "accountId"}}]


def _time_series(first_ms: int, days: int) -> Stage:
    return {"period": "dayRange", "first": first_ms, "count": days}


def usage_pipeline(first_ms: int, days: int, app_id: int | str | None) -> list[Stage]:
    """Per account and day: events, minutes and distinct visitors."""
    return [
        {
            "source": {
                "events": {"appId": app_id} if app_id is not None else None,
                "timeSeries": _time_series(first_ms, days),
            }
        },
        {"identified": "accountId"},
        {"group": {"group": ["accountId", "day"], "fields": USAGE_FIELDS}},
        {"sort": ["accountId", "day"]},
    ]


def feature_pipeline(feature_ids: list[str], first_ms: int, days: int) -> list[Stage]:
    """Per account, day and feature: events, minutes and distinct visitors of the given
    features, in one request (featureEvents without a featureId covers every feature)."""
    wanted = " || ".join(f"featureId == {pendo_string(f)}" for f in sorted(feature_ids))
    return [
        {
            "source": {
                "featureEvents": None,
                "timeSeries": _time_series(first_ms, days),
            }
        },
        {"identified": "accountId"},
        {"filter": wanted},
        {"group": {"group": ["accountId", "day", "featureId"], "fields": FEATURE_FIELDS}},
        {"sort": ["accountId", "day", "featureId"]},
    ]


def census_pipeline(first_ms: int, days: int, app_id: int | str | None) -> list[Stage]:
    """The (accountId, day) pairs that have usage: keys only."""
    return [
        {
            "source": {
                "events": {"appId": app_id} if app_id is not None else None,
                "timeSeries": _time_series(first_ms, days),
            }
        },
        {"identified": "accountId"},
        {"group": {"group": ["accountId", "day"], "fields": {}}},
    ]


def poll_events_pipeline(first_ms: int, days: int, app_id: int | str | None) -> list[Stage]:
    """Every poll answer of identified visitors over whole days, oldest first."""
    return [
        {
            "source": {
                "pollEvents": {"appId": app_id} if app_id is not None else None,
                "timeSeries": _time_series(first_ms, days),
            }
        },
        {"identified": "visitorId"},
        {"sort": ["browserTime", "visitorId", "pollId"]},
    ]


def guides_pipeline() -> list[Stage]:
    """The guide catalog with its polls (which poll of a guide is an NPS rating)."""
    return [
        {"source": {"guides": None}},
        {"select": {"id": "id", "name": "name", "polls": "polls"}},
    ]
