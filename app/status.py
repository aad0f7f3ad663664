"""What each configured stream is doing: one typed view for `pmsync status` and `/readyz`.

Built from the store alone (stream state, record counts, and the write-back and sweep state of
`sync.store.tasks`), so the CLI and a running daemon report the same thing in the same words.
Either reads it with the same SQL (`sync.store.rows`): a daemon through its `Store`, `pmsync
status` through the database driver alone (`Runtime.state_reader`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pmsync.sync.store.rows import (
    SWEEP,
    WRITEBACK,
    StateReader,
    StreamCounts,
    StreamState,
    TaskState,
)


@dataclass(frozen=True)
class StreamStatus:
    """One stream as an operator sees it."""

    stream: str
    status: str
    last_success_at: datetime | None
    cursor: str | None
    records: int
    tombstones: int
    dead_letters: int
    last_sweep_at: datetime | None
    last_error: str | None
    failures: int
    next_attempt_at: datetime | None
    owner: str | None
    # The stream's sweep and its connector's write-back (None: never attempted, or the
    # connector has no write-back): last_attempt_at, last_success_at, failures (in a row),
    # last_error, last_error_at, next_attempt_at.
    sweep: dict[str, Any] | None = None
    writeback: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskStatus:
    """A connector's write-back, or a stream's sweep, as an operator sees it."""

    connector: str
    task: str  # "writeback" or "sweep"
    stream: str | None  # the swept stream; None for a write-back
    last_success_at: datetime | None
    failures: int  # in a row
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None

    @property
    def name(self) -> str:
        """How status lists it: "jira write-back", "zendesk.tickets sweep"."""
        if self.task == WRITEBACK:
            return f"{self.connector} write-back"
        return f"{self.connector}.{self.stream} {self.task}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_statuses(store: StateReader, connectors: Iterable[str]) -> list[TaskStatus]:
    """The write-backs and sweeps of `connectors` that were ever attempted."""
    wanted = set(connectors)
    return [
        TaskStatus(
            connector=state.connector,
            task=state.task,
            stream=state.stream or None,
            last_success_at=state.last_success_at,
            failures=state.failures,
            last_error=state.last_error,
            last_attempt_at=state.last_attempt_at,
            next_attempt_at=state.next_attempt_at,
        )
        for state in store.task_states()
        if state.connector in wanted
    ]


def stream_statuses(store: StateReader, streams: Iterable[tuple[str, str]]) -> list[StreamStatus]:
    """The status of each (connector, stream), in the order given; unsynced ones are 'new'."""
    counts = store.stream_counts()
    states = {(s.connector, s.stream): s for s in store.stream_states()}
    tasks = {(t.connector, t.task, t.stream): t for t in store.task_states()}
    return [
        _status(
            slot,
            states.get(slot),
            counts.get(slot),
            sweep=tasks.get((slot[0], SWEEP, slot[1])),
            writeback=tasks.get((slot[0], WRITEBACK, "")),
        )
        for slot in streams
    ]


def _status(
    slot: tuple[str, str],
    state: StreamState | None,
    count: StreamCounts | None,
    *,
    sweep: TaskState | None,
    writeback: TaskState | None,
) -> StreamStatus:
    count = count or StreamCounts()
    return StreamStatus(
        stream=f"{slot[0]}.{slot[1]}",
        status=state.status if state else "new",
        last_success_at=state.last_success_at if state else None,
        cursor=state.cursor if state else None,
        records=count.live,
        tombstones=count.deleted,
        dead_letters=count.dead_letters,
        last_sweep_at=state.last_sweep_at if state else None,
        last_error=state.last_error if state else None,
        failures=state.failures if state else 0,
        next_attempt_at=state.next_attempt_at if state else None,
        owner=state.owner if state else None,
        sweep=sweep.as_dict() if sweep else None,
        writeback=writeback.as_dict() if writeback else None,
    )
