"""The streams' and tasks' state as `pmsync status`, /readyz and the web view read it.

Read with plain SQL that SQLite and PostgreSQL both run, through whatever runs it: the
`Store` passes its SQLAlchemy connection's `exec_driver_sql`, `pmsync status` a driver's own
connection (`presence.current_store_connection`), so that a short command never imports
SQLAlchemy (about 0.2 s of CPU, most of its start-up) and both read the same rows the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol

WRITEBACK = "writeback"
SWEEP = "sweep"

# Runs one SQL statement that takes no parameters and gives its rows.
Query = Callable[[str], Iterable[Sequence[Any]]]


@dataclass(frozen=True)
class StreamState:
    connector: str
    stream: str
    cursor: str | None
    cursor_updated_at: datetime | None
    status: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_sweep_at: datetime | None
    refresh_started_at: datetime | None
    last_run_id: str | None
    failures: int = 0
    next_attempt_at: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True)
class StreamCounts:
    live: int = 0
    deleted: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class TaskState:
    """One connector's write-back, or one stream's sweep, as last recorded."""

    connector: str
    task: str
    stream: str
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_attempt_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """For JSON: what an operator reads (the key columns are where it is listed)."""
        found = asdict(self)
        for name in ("connector", "task", "stream"):
            found.pop(name)
        return found


class StateReader(Protocol):
    """What reads the state: a `Store`, or `DriverReader` on a driver's connection."""

    def stream_states(self) -> list[StreamState]: ...

    def stream_counts(self) -> dict[tuple[str, str], StreamCounts]: ...

    def task_states(self) -> list[TaskState]: ...


def utc(value: Any) -> datetime | None:
    """A stored moment as an aware UTC datetime: SQLite keeps naive UTC text, PostgreSQL
    gives aware datetimes (`schema.UtcDateTime` reads its columns with this too)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    parsed: datetime = value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _typed(cls: type[Any], row: Sequence[Any]) -> Any:
    """A row read in the order of `cls`'s fields, its moments made aware UTC datetimes (the
    fields' annotations are text here, `from __future__ import annotations`)."""
    values = {
        field.name: utc(value) if field.type == "datetime | None" else value
        for field, value in zip(fields(cls), row, strict=True)
    }
    return cls(**values)


def _columns(cls: type[Any]) -> str:
    return ", ".join(field.name for field in fields(cls))


STREAM_STATES_SQL = f"SELECT {_columns(StreamState)} FROM stream_state ORDER BY connector, stream"
TASK_STATES_SQL = f"SELECT {_columns(TaskState)} FROM task_state ORDER BY connector, task, stream"
RECORD_COUNTS_SQL = (
    "SELECT connector, stream, SUM(CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END) FROM records GROUP BY connector, stream"
)
DEAD_LETTER_COUNTS_SQL = (
    "SELECT connector, stream, COUNT(*) FROM dead_letters WHERE resolved_at IS NULL "
    "GROUP BY connector, stream"
)


def read_stream_states(query: Query) -> list[StreamState]:
    """Every stream's state, by connector and stream."""
    return [_typed(StreamState, row) for row in query(STREAM_STATES_SQL)]


def read_task_states(query: Query) -> list[TaskState]:
    """Every recorded write-back and sweep, by connector, task and stream."""
    return [_typed(TaskState, row) for row in query(TASK_STATES_SQL)]


def read_stream_counts(query: Query) -> dict[tuple[str, str], StreamCounts]:
    """Live records, tombstones and open dead letters per (connector, stream)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for connector, stream, live, gone in query(RECORD_COUNTS_SQL):
        counts[(connector, stream)] = [int(live or 0), int(gone or 0), 0]
    for connector, stream, open_letters in query(DEAD_LETTER_COUNTS_SQL):
        counts.setdefault((connector, stream), [0, 0, 0])[2] = int(open_letters)
    return {slot: StreamCounts(*values) for slot, values in counts.items()}


class DriverReader:
    """The state read on a DB-API connection of the driver itself (sqlite3, psycopg: both
    run a statement with `connection.execute`)."""

    def __init__(self, connection: Any) -> None:
        self._query: Query = connection.execute

    def stream_states(self) -> list[StreamState]:
        return read_stream_states(self._query)

    def stream_counts(self) -> dict[tuple[str, str], StreamCounts]:
        return read_stream_counts(self._query)

    def task_states(self) -> list[TaskState]:
        return read_task_states(self._query)
