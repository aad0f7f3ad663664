"""Write-back and sweep outcomes per connector, kept beside the streams' state.

A failed write-back or sweep used to show only in the log and the counters: `pmsync status`
listed every stream ok while writes failed. The daemon records each connector's write-back
("writeback", stream "") and each stream's sweep ("sweep") here: when it last succeeded, how
many attempts failed in a row, the last error and when a failing sweep is tried again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pmsync.sync.store.rows import TaskState
from pmsync.sync.store.schema import task_state


def _where(connector: str, task: str, stream: str) -> Any:
    return sa.and_(
        task_state.c.connector == connector,
        task_state.c.task == task,
        task_state.c.stream == stream,
    )


def _set(connection: Connection, connector: str, task: str, stream: str, **values: Any) -> None:
    found = connection.execute(
        sa.update(task_state).where(_where(connector, task, stream)).values(**values)
    )
    if found.rowcount == 0:
        connection.execute(
            sa.insert(task_state).values(connector=connector, task=task, stream=stream, **values)
        )


def record_success(
    connection: Connection, connector: str, task: str, stream: str = "", *, now: datetime
) -> None:
    """It worked: failures in a row back to 0 (the last error stays, with its time)."""
    _set(
        connection,
        connector,
        task,
        stream,
        last_attempt_at=now,
        last_success_at=now,
        failures=0,
        next_attempt_at=None,
    )


def record_failure(
    connection: Connection,
    connector: str,
    task: str,
    stream: str = "",
    *,
    error: str,
    now: datetime,
    failures: int,
    next_attempt_at: datetime | None = None,
) -> None:
    _set(
        connection,
        connector,
        task,
        stream,
        last_attempt_at=now,
        failures=failures,
        last_error=error,
        last_error_at=now,
        next_attempt_at=next_attempt_at,
    )


def read_task(connection: Connection, connector: str, task: str, stream: str = "") -> TaskState:
    """The recorded state, or an empty one (never attempted)."""
    row = (
        connection.execute(sa.select(task_state).where(_where(connector, task, stream)))
        .mappings()
        .first()
    )
    return TaskState(**dict(row)) if row else TaskState(connector, task, stream)
