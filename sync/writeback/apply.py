"""Apply a plan: exactly the planned writes, each recorded before and after it is sent.

Field writes are idempotent, so a crash mid-apply loses nothing: the ledger moves only after a
write succeeded, and the next plan contains whatever did not land. Notes are not idempotent:
each loop closure is recorded as pending before its note is posted, and a pending closure is
only posted again after checking the ticket does not already carry its marker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson
import sqlalchemy as sa
import structlog

from pmsync.connectors.base import MISSING, Connector, FieldWrite, WriteOutcome
from pmsync.errors import PmsyncError
from pmsync.sync.store.schema import loop_closures, writeback_intents, writeback_ledger
from pmsync.sync.store.store import Store, dumps, utcnow
from pmsync.sync.writeback.plan import GuardTripped, Plan, PlannedWrite

log = structlog.get_logger("pmsync.writeback")


@runtime_checkable
class IssueProperties(Protocol):
    def set_issue_property(self, issue: str, key: str, value: Any) -> WriteOutcome: ...


@runtime_checkable
class TicketNotes(Protocol):
    def add_internal_note(self, ticket: str, body: str) -> WriteOutcome: ...

    def has_note_containing(self, ticket: str, marker: str) -> bool: ...


@dataclass
class ApplyResult:
    applied: list[PlannedWrite] = field(default_factory=list)
    failed: list[tuple[PlannedWrite, str]] = field(default_factory=list)
    notes_found_posted: int = 0


def apply_plan(
    plan: Plan,
    store: Store,
    connectors: Mapping[str, Connector],
    *,
    confirm: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> ApplyResult:
    """Perform the plan's writes; GuardTripped when it needs confirmation.

    `should_stop` is checked between writes: a stopped apply returns what it did, and the next
    plan holds the rest.
    """
    stop = should_stop or (lambda: False)
    if plan.blocked(confirm):
        raise GuardTripped(plan.guard)
    result = ApplyResult()
    _record_loops(store, plan)
    grouped: dict[tuple[str, str, str], list[PlannedWrite]] = {}
    for write in plan.writes:
        if write.action == "field":
            grouped.setdefault((write.connector, write.object_name, write.target_key), []).append(
                write
            )
    for (connector_name, object_name, key), writes in grouped.items():
        if stop():
            return result
        connector = connectors[connector_name]
        ids = _intend(store, plan.plan_id, writes)
        [outcome] = connector.write(
            [FieldWrite(object_name, key, {w.field: w.new for w in writes})]
        )
        _settle(store, writes, ids, outcome, result)
    for write in plan.writes:
        if stop():
            return result
        if write.action == "property":
            connector = connectors[write.connector]
            if not isinstance(connector, IssueProperties):
                raise PmsyncError(f"connector '{write.connector}' cannot store issue properties")
            ids = _intend(store, plan.plan_id, [write])
            outcome = connector.set_issue_property(write.target_key, write.field, write.new)
            _settle(
                store,
                [write],
                ids,
                outcome,
                result,
                ledger_field=f"property:{write.field}",
                ledger_value=dumps(write.new),
            )
        elif write.action == "note":  # a note's field is its loop marker
            _post_note(store, plan, write, write.field, connectors[write.connector], result)
    log.info(
        "applied", plan_id=plan.plan_id, applied=len(result.applied), failed=len(result.failed)
    )
    return result


def _record_loops(store: Store, plan: Plan) -> None:
    """Loop closures become pending before any note is posted (committed first)."""
    if not plan.loops:
        return
    now = utcnow()
    with store.transaction() as connection:
        existing = {
            (r.issue_ref, r.ticket_ref)
            for r in connection.execute(
                sa.select(loop_closures.c.issue_ref, loop_closures.c.ticket_ref)
            )
        }
        rows = [
            {
                "issue_ref": i,
                "ticket_ref": t,
                "reason": "closed",
                "state": "pending",
                "marker": m,
                "created_at": now,
            }
            for i, t, m in plan.loops
            if (i, t) not in existing
        ]
        if rows:
            connection.execute(sa.insert(loop_closures), rows)


def _post_note(
    store: Store,
    plan: Plan,
    write: PlannedWrite,
    marker: str,
    connector: Connector,
    result: ApplyResult,
) -> None:
    if not isinstance(connector, TicketNotes):
        raise PmsyncError(f"connector '{write.connector}' cannot post internal notes")
    issue_ref = next(i for i, t, m in plan.loops if m == marker)
    ticket_ref = f"{write.connector}:{write.target_key}"
    ids = _intend(store, plan.plan_id, [write])
    if connector.has_note_containing(write.target_key, marker):
        outcome = WriteOutcome(write.target_key, True)  # posted before a crash: never twice
        result.notes_found_posted += 1
    else:
        outcome = connector.add_internal_note(write.target_key, str(write.new))
    _settle(store, [write], ids, outcome, result, ledger_field=None)
    if outcome.ok:
        with store.transaction() as connection:
            connection.execute(
                sa.update(loop_closures)
                .where(
                    loop_closures.c.issue_ref == issue_ref,
                    loop_closures.c.ticket_ref == ticket_ref,
                )
                .values(state="done", done_at=utcnow())
            )


def _intend(store: Store, plan_id: str, writes: Sequence[PlannedWrite]) -> list[int]:
    now = utcnow()
    ids = []
    with store.transaction() as connection:
        for write in writes:
            result = connection.execute(
                sa.insert(writeback_intents).values(
                    plan_id=plan_id,
                    connector=write.connector,
                    object_name=write.object_name,
                    target_key=write.target_key,
                    action=write.action,
                    field=write.field,
                    value=dumps(_plain(write.new)),
                    state="pending",
                    created_at=now,
                )
            )
            primary = result.inserted_primary_key
            assert primary is not None
            ids.append(int(primary[0]))
    return ids


def _settle(
    store: Store,
    writes: Sequence[PlannedWrite],
    ids: Sequence[int],
    outcome: WriteOutcome,
    result: ApplyResult,
    *,
    ledger_field: str | None = "",
    ledger_value: str | None = None,
) -> None:
    now = utcnow()
    with store.transaction() as connection:
        connection.execute(
            sa.update(writeback_intents)
            .where(writeback_intents.c.id.in_(ids))
            .values(state="done" if outcome.ok else "failed", error=outcome.error, done_at=now)
        )
        if not outcome.ok:
            for write in writes:
                result.failed.append((write, outcome.error or "failed"))
                log.warning(
                    "write_failed",
                    connector=write.connector,
                    target=write.target_label,
                    field=write.field_label,
                    error=outcome.error,
                )
            return
        for write in writes:
            result.applied.append(write)
            if ledger_field is None:
                continue
            name = ledger_field or write.field
            value = ledger_value if ledger_value is not None else dumps(_plain(write.new))
            _upsert_ledger(connection, write, name, value, now)
            # Writes an earlier, crashed apply sent for this field are settled by this one.
            connection.execute(
                sa.update(writeback_intents)
                .where(
                    writeback_intents.c.state == "pending",
                    writeback_intents.c.connector == write.connector,
                    writeback_intents.c.object_name == write.object_name,
                    writeback_intents.c.target_key == write.target_key,
                    writeback_intents.c.field == write.field,
                )
                .values(state="superseded", done_at=now)
            )


def _upsert_ledger(
    connection: sa.Connection, write: PlannedWrite, name: str, value: str, now: Any
) -> None:
    key = (
        writeback_ledger.c.connector == write.connector,
        writeback_ledger.c.object_name == write.object_name,
        writeback_ledger.c.target_key == write.target_key,
        writeback_ledger.c.field == name,
    )
    before = None if write.old is MISSING else dumps(_plain(write.old))
    updated = connection.execute(
        sa.update(writeback_ledger)
        .where(*key)
        .values(value=value, remote_before=before, written_at=now)
    )
    if not updated.rowcount:
        connection.execute(
            sa.insert(writeback_ledger).values(
                connector=write.connector,
                object_name=write.object_name,
                target_key=write.target_key,
                field=name,
                value=value,
                remote_before=before,
                written_at=now,
            )
        )


def _plain(value: Any) -> Any:
    return None if value is MISSING else orjson.loads(orjson.dumps(value, default=str))
