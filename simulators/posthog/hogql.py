"""Run a subset of HogQL (PostHog's ClickHouse SQL) on SQLite, over an `events` table.

Supported: one SELECT over `events` (uuid, event, distinct_id, person_id, timestamp,
properties) with WHERE, GROUP BY, HAVING, ORDER BY and a trailing `LIMIT n [OFFSET m]`;
`properties.<name>` reads an event property; `{name}` placeholders are filled from the query's
`values` as literals (an unknown one is an error, as in HogQL); the functions today(), now(),
toDate, toDateTime, toString, concat, count(), countIf(cond), uniq(x), sum, min, max, avg.
Without a LIMIT a query returns 100 rows; LIMIT is capped at 50,000. `hasMore` is computed by
asking for one row more than the limit, as PostHog's paginator does.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

DEFAULT_LIMIT = 100
MAX_LIMIT = 50_000
_STRING = re.compile(r"'(?:[^'\\]|\\.|'')*'")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_]\w*)\s*\}")
_PROPERTY = re.compile(r"\bproperties\.(\$?[A-Za-z_][\w$]*)")
_LIMIT = re.compile(r"\blimit\s+(\d+)(?:\s+offset\s+(\d+))?\s*;?\s*$", re.IGNORECASE)


class HogQLError(ValueError):
    """The query is not valid, or not in the subset the simulator runs."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[list[str]]
    rows: list[list[Any]]
    has_more: bool
    limit: int
    offset: int


class _Uniq:
    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def step(self, value: Any) -> None:
        if value is not None:
            self.seen.add(value)

    def finalize(self) -> int:
        return len(self.seen)


class _CountIf:
    def __init__(self) -> None:
        self.count = 0

    def step(self, condition: Any) -> None:
        if condition:
            self.count += 1

    def finalize(self) -> int:
        return self.count


class EventTable:
    """The events of one project in an in-memory SQLite database, safe across threads."""

    def __init__(self, today: Callable[[], date]) -> None:
        self._today = today
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE events (uuid TEXT PRIMARY KEY, event TEXT, distinct_id TEXT, "
            "person_id TEXT, timestamp TEXT, properties TEXT)"
        )
        self._register()

    def _register(self) -> None:
        db = self._db
        db.create_function("today", 0, lambda: self._today().isoformat())
        db.create_function("now", 0, lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"))
        db.create_function("toDate", 1, lambda v: None if v is None else str(v)[:10])
        db.create_function("toDateTime", 1, lambda v: None if v is None else str(v)[:19])
        db.create_function("toString", 1, lambda v: None if v is None else str(v))
        db.create_function("concat", -1, lambda *a: "".join("" if v is None else str(v) for v in a))
        db.create_aggregate("uniq", 1, _Uniq)
        db.create_aggregate("countIf", 1, _CountIf)

    def insert(self, rows: list[tuple[str, str, str, str, str, dict[str, Any]]]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                [(*row[:5], json.dumps(row[5])) for row in rows],
            )
            self._db.commit()

    def delete_property(self, name: str, value: str) -> int:
        """Delete events whose property `name` equals `value` (a GDPR-style deletion)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM events WHERE json_extract(properties, ?) = ?", (f'$."{name}"', value)
            )
            self._db.commit()
            return cursor.rowcount

    def run(self, query: str, values: Mapping[str, Any]) -> QueryResult:
        sql, limit, offset = translate(query, values)
        with self._lock:
            try:
                cursor = self._db.execute(f"{sql} LIMIT {limit + 1} OFFSET {offset}")
                rows = [list(r) for r in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise HogQLError(f"query failed: {exc}") from None
            columns = [d[0] for d in cursor.description or ()]
        has_more = len(rows) > limit
        rows = rows[:limit]
        return QueryResult(columns, _types(columns, rows), rows, has_more, limit, offset)


def translate(query: str, values: Mapping[str, Any]) -> tuple[str, int, int]:
    """SQLite text for a HogQL query (without its LIMIT), and the limit and offset."""
    text = query.strip().rstrip(";")
    if not re.match(r"(?is)^\s*select\b", text):
        raise HogQLError("only SELECT queries are supported")
    pieces: list[str] = []
    position = 0
    for match in _STRING.finditer(text):
        pieces.append(_code(text[position : match.start()], values))
        pieces.append(match.group(0))
        position = match.end()
    pieces.append(_code(text[position:], values))
    sql = "".join(pieces)
    limit, offset = DEFAULT_LIMIT, 0
    found = _LIMIT.search(sql)
    if found:
        limit = min(int(found.group(1)), MAX_LIMIT)
        offset = int(found.group(2) or 0)
        sql = sql[: found.start()]
    return sql, limit, offset


def _code(segment: str, values: Mapping[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise HogQLError(f"Placeholder {{{name}}} is not available in this context")
        return _literal(values[name])

    segment = _PROPERTY.sub(lambda m: f"json_extract(properties, '$.\"{m.group(1)}\"')", segment)
    return _PLACEHOLDER.sub(fill, segment)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _types(columns: list[str], rows: list[list[Any]]) -> list[list[str]]:
    out: list[list[str]] = []
    for index, name in enumerate(columns):
        sample = next((r[index] for r in rows if r[index] is not None), None)
        kind = {int: "Int64", float: "Float64", str: "String"}.get(type(sample), "Nothing")
        out.append([name, kind])
    return out
