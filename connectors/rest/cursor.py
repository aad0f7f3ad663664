"""The `rest` connector's cursor, and cursor values compared as what they are.

A read that stops half-way (crash, 429) must resume where it was without trusting the API to
sort by the cursor field, so the cursor holds two things: where the current read started
(`since`, the value sent to the API) with the largest value seen so far, and the pagination
position of the next page. Only when the last page is stored does `since` move to the largest
value seen. Values are kept exactly as the API wrote them (so they are sent back in its format)
and compared after parsing, never as text; `outgoing` renders a value in the format the API
wants (`incremental.format`) only when it is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

CursorType = Literal["datetime", "date", "integer", "number", "string"]
JsonScalar = str | int | float


class RestCursor(BaseModel):
    """`page` is None between reads; otherwise the position of the next page of this read."""

    since: JsonScalar | None = None
    max_seen: JsonScalar | None = None
    page: dict[str, Any] | None = None


def parse_value(kind: CursorType, raw: Any) -> Any:
    """A comparable value for `raw`, or None when it cannot be read as `kind`."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return _PARSERS[kind](raw)
    except (TypeError, ValueError, OverflowError):
        return None


def _datetime(raw: Any) -> datetime:
    if isinstance(raw, int | float):
        seconds = raw / 1000 if raw > 100_000_000_000 else raw  # epoch milliseconds or seconds
        return datetime.fromtimestamp(seconds, UTC)
    text = str(raw).strip().replace(" ", "T", 1)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _datetime,
    "date": lambda raw: date.fromisoformat(str(raw)[:10]),
    "integer": int,
    "number": float,
    "string": str,
}


def later(kind: CursorType, current: JsonScalar | None, candidate: Any) -> JsonScalar | None:
    """The later of two raw values (by parsed value); unreadable candidates are ignored."""
    if not isinstance(candidate, str | int | float) or isinstance(candidate, bool):
        return current
    new = parse_value(kind, candidate)
    if new is None:
        return current
    old = parse_value(kind, current)
    return candidate if old is None or new > old else current


def outgoing(kind: CursorType, fmt: str | None, raw: JsonScalar | None) -> JsonScalar | None:
    """The value to send for `raw`: as read (fmt None), epoch seconds or ms, ISO, or strftime.

    Raises ValueError when `raw` cannot be read as `kind` (a stored value the API changed).
    """
    if raw is None or fmt is None or fmt == "as_read":
        return raw
    value = parse_value(kind, raw)
    if not isinstance(value, date):
        raise ValueError(f"{raw!r} is not a {kind}")
    moment = (
        value
        if isinstance(value, datetime)
        else datetime(value.year, value.month, value.day, tzinfo=UTC)
    )
    if fmt == "epoch":
        return math.floor(moment.timestamp())
    if fmt == "epoch_ms":
        return math.floor(moment.timestamp() * 1000)
    if fmt == "iso":
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.isoformat()
    return moment.strftime(fmt)


def step_back(kind: CursorType, raw: JsonScalar, lookback: timedelta | None) -> JsonScalar:
    """The value to send for a read that re-reads `lookback` before `raw`."""
    if not lookback:
        return raw
    value = parse_value(kind, raw)
    if isinstance(value, datetime):
        return (value - lookback).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        days = math.ceil(lookback.total_seconds() / 86_400)
        return (value - timedelta(days=days)).isoformat()
    return raw
