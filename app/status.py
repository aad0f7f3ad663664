"""What each configured stream is doing: one typed view for `pmsync status` and `/readyz`.

Built from the store alone (stream state and record counts), so the CLI and a running daemon
report the same thing in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pmsync.sync.store.store import Store, StreamCounts, StreamState


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream_statuses(store: Store, streams: Iterable[tuple[str, str]]) -> list[StreamStatus]:
    """The status of each (connector, stream), in the order given; unsynced ones are 'new'."""
    counts = store.stream_counts()
    states = {(s.connector, s.stream): s for s in store.stream_states()}
    return [_status(slot, states.get(slot), counts.get(slot)) for slot in streams]


def _status(
    slot: tuple[str, str], state: StreamState | None, count: StreamCounts | None
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
    )
