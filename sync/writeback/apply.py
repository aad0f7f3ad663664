"""Apply a plan: exactly the planned writes, each recorded before and after it is sent.

Field writes are idempotent, so a crash mid-apply loses nothing: the ledger moves only after a
write succeeded, and the next plan contains whatever did not land. A write that was sent but
never recorded (the process died in between) is not sent again when the target already shows
its value: it is settled as it stands. Notes are not idempotent: each loop closure is recorded
as pending before its note is posted, and a pending closure (or a retried post) is only posted
after checking the ticket does not already carry its marker.

A write the API answers with 429, 5xx or a dropped connection is tried again within the apply
(`retry_attempts`, waiting for Retry-After up to `retry_max_wait`); a 404 marks the target gone,
and plans leave it out until a read sees it again.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson
import sqlalchemy as sa

from pmsync.connectors.base import MISSING, Connector, FieldWrite, WriteOutcome
from pmsync.errors import AuthError, FatalError, PmsyncError, QuotaExhausted, RetriableError
from pmsync.logs import get_logger
from pmsync.sync.store.schema import (
    loop_closures,
    writeback_gone,
    writeback_intents,
    writeback_ledger,
)
from pmsync.sync.store.store import Store, dumps, utcnow
from pmsync.sync.writeback.plan import GuardTripped, Plan, PlannedWrite, normalize

log = get_logger("pmsync.writeback")


@runtime_checkable
class IssueProperties(Protocol):
    def set_issue_property(self, issue: str, key: str, value: Any) -> WriteOutcome: ...

    def get_issue_property(self, issue: str, key: str) -> Any: ...


@runtime_checkable
class FieldReader(Protocol):
    def read_fields(
        self, object_name: str, key: str, fields: Sequence[str]
    ) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class WriteRetry:
    """How a write the API answered with a retriable error is tried again within an apply."""

    attempts: int = 4
    initial_backoff: float = 1.0
    max_wait: float = 60.0


@runtime_checkable
class TicketNotes(Protocol):
    def add_internal_note(self, ticket: str, body: str) -> WriteOutcome: ...

    def has_note_containing(self, ticket: str, marker: str) -> bool: ...


@dataclass
class ApplyResult:
    applied: list[PlannedWrite] = field(default_factory=list)
    failed: list[tuple[PlannedWrite, str]] = field(default_factory=list)
    notes_found_posted: int = 0
    retries: int = 0
    settled_unsent: int = 0  # sent by an apply that died; the target already showed them
    gone: list[PlannedWrite] = field(default_factory=list)


@dataclass
class _Applying:
    """What one apply shares: the plan, the store, how to wait, and what earlier applies left."""

    plan: Plan
    store: Store
    retry: WriteRetry
    sleep: Callable[[float], None]
    stop: Callable[[], bool]
    result: ApplyResult
    earlier: dict[tuple[str, str, str, str, str], list[str]]


def apply_plan(
    plan: Plan,
    store: Store,
    connectors: Mapping[str, Connector],
    *,
    confirm: bool = False,
    should_stop: Callable[[], bool] | None = None,
    retry: WriteRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyResult:
    """Perform the plan's writes; GuardTripped when it needs confirmation.

    `should_stop` is checked between writes (and before each retry): a stopped apply returns
    what it did, and the next plan holds the rest. `sleep` waits between attempts (a daemon
    passes one its shutdown cuts short).
    """
    if plan.blocked(confirm):
        raise GuardTripped(plan.guard)
    earlier = _unrecorded(store)
    _record_loops(store, plan)
    failed = threading.Event()  # a connector's apply raised: the others stop too

    def stop() -> bool:
        return failed.is_set() or (should_stop is not None and should_stop())

    by_connector: dict[str, list[PlannedWrite]] = {}
    for write in plan.writes:
        by_connector.setdefault(write.connector, []).append(write)
    parts = {
        name: _Applying(plan, store, retry or WriteRetry(), sleep, stop, ApplyResult(), earlier)
        for name in by_connector
    }
    errors = _run_each(
        {
            name: functools.partial(_apply_connector, parts[name], connectors[name], writes)
            for name, writes in by_connector.items()
        },
        failed,
    )
    result = ApplyResult()
    for part in parts.values():
        _merge(result, part.result)
    if errors:
        # The other connectors' writes happened (the ledger holds them): say so before raising.
        log.warning(
            "applied_before_error",
            plan_id=plan.plan_id,
            applied=len(result.applied),
            failed=len(result.failed),
            error=str(errors[0]),
        )
        raise errors[0]
    log.info(
        "applied",
        plan_id=plan.plan_id,
        applied=len(result.applied),
        failed=len(result.failed),
        retries=result.retries,
        gone=len(result.gone),
        settled_unsent=result.settled_unsent,
    )
    return result


def _run_each(
    work: Mapping[str, Callable[[], None]], failed: threading.Event
) -> list[BaseException]:
    """Run each connector's writes in a thread of its own, so each goes at the pace of its own
    request budget and no connector's writes wait behind another's (Jira's paced requests no
    longer sit behind Salesforce updates and Zendesk notes). Each thread runs in a copy of the
    caller's context (its log bindings and budget waits). Returns what the threads raised, in
    `work`'s order; the first to raise sets `failed` so that the others stop between writes."""
    errors: dict[str, BaseException] = {}

    def run(name: str, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - re-raised by apply_plan, in the caller
            errors[name] = exc
            failed.set()

    if len(work) == 1:
        for name, job in work.items():
            run(name, job)
    else:
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(run, name, job),
                name=f"pmsync-apply-{name}",
            )
            for name, job in work.items()
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # Ctrl-C in the caller: the others stop between writes and are waited for, so no
            # write goes out after the caller let go of the write-back lock.
            failed.set()
            for thread in threads:
                thread.join()
            raise
    return [errors[name] for name in work if name in errors]


def _apply_connector(applying: _Applying, connector: Connector, writes: list[PlannedWrite]) -> None:
    """One connector's writes: field writes grouped by target, then properties and notes in
    plan order; `applying.stop()` is checked between them."""
    grouped: dict[tuple[str, str], list[PlannedWrite]] = {}
    for write in writes:
        if write.action == "field":
            grouped.setdefault((write.object_name, write.target_key), []).append(write)
    for targets in grouped.values():
        if applying.stop():
            return
        _apply_fields(applying, connector, targets)
    for write in writes:
        if applying.stop():
            return
        if write.action == "property":
            _apply_property(applying, connector, write)
        elif write.action == "note":  # a note's field is its loop marker
            _post_note(applying, write, write.field, connector)


def _merge(into: ApplyResult, part: ApplyResult) -> None:
    into.applied.extend(part.applied)
    into.failed.extend(part.failed)
    into.notes_found_posted += part.notes_found_posted
    into.retries += part.retries
    into.settled_unsent += part.settled_unsent
    into.gone.extend(part.gone)


def _apply_fields(applying: _Applying, connector: Connector, writes: list[PlannedWrite]) -> None:
    """One target's field writes: settled unsent when a crashed apply already wrote them."""
    first = writes[0]
    ids = _intend(applying.store, applying.plan.plan_id, writes)
    if _fields_already_there(applying, connector, writes):
        outcome = WriteOutcome(first.target_key, True)
        applying.result.settled_unsent += len(writes)
    else:
        change = FieldWrite(first.object_name, first.target_key, {w.field: w.new for w in writes})
        outcome = _attempt(applying, first.target_key, lambda: connector.write([change])[0])
    _settle(applying, writes, ids, outcome)


def _apply_property(applying: _Applying, connector: Connector, write: PlannedWrite) -> None:
    if not isinstance(connector, IssueProperties):
        raise PmsyncError(f"connector '{write.connector}' cannot store issue properties")
    ids = _intend(applying.store, applying.plan.plan_id, [write])
    if _property_already_there(applying, connector, write):
        outcome = WriteOutcome(write.target_key, True)
        applying.result.settled_unsent += 1
    else:
        outcome = _attempt(
            applying,
            write.target_key,
            lambda: connector.set_issue_property(write.target_key, write.field, write.new),
        )
    _settle(
        applying,
        [write],
        ids,
        outcome,
        ledger_field=f"property:{write.field}",
        ledger_value=dumps(write.new),
    )


def _attempt(applying: _Applying, key: str, send: Callable[[], WriteOutcome]) -> WriteOutcome:
    """Send, and send again while the answer is retriable and the bounds allow it."""
    retry = applying.retry
    attempt = 1
    while True:
        outcome = _send_once(key, send)
        if outcome.ok or not outcome.retriable or attempt >= retry.attempts:
            return outcome
        wait = outcome.retry_after
        if wait is None:
            wait = retry.initial_backoff * 2 ** (attempt - 1)
        if wait > retry.max_wait or applying.stop():
            return outcome  # the API asks for longer than an apply waits: next cycle
        applying.result.retries += 1
        log.info("write_retry", target=key, attempt=attempt, wait=round(wait, 3))
        applying.sleep(max(0.0, wait))
        attempt += 1


def _send_once(key: str, send: Callable[[], WriteOutcome]) -> WriteOutcome:
    """One attempt as an outcome: a retriable API error is one, so is a failure of this target;
    a refused credential or an exhausted quota stops the apply."""
    try:
        return send()
    except (AuthError, QuotaExhausted):
        raise
    except RetriableError as exc:
        return WriteOutcome(key, False, str(exc), retriable=True, retry_after=exc.retry_after)
    except FatalError as exc:
        return WriteOutcome(key, False, str(exc))


def _unrecorded(store: Store) -> dict[tuple[str, str, str, str, str], list[str]]:
    """Values of writes earlier applies sent but never recorded, by (connector, object, target,
    action, field): a crash struck between the API call and the ledger."""
    found: dict[tuple[str, str, str, str, str], list[str]] = {}
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(writeback_intents).where(writeback_intents.c.state == "pending")
        )
        for r in rows:
            slot = (r.connector, r.object_name, r.target_key, r.action, r.field)
            found.setdefault(slot, []).append(r.value)
    return found


def _fields_already_there(
    applying: _Applying, connector: Connector, writes: Sequence[PlannedWrite]
) -> bool:
    """Every write was sent before by an apply that died, and the target shows those values."""
    for write in writes:
        slot = (write.connector, write.object_name, write.target_key, "field", write.field)
        sent = [normalize(orjson.loads(v)) for v in applying.earlier.get(slot, [])]
        if normalize(write.new) not in sent:
            return False
    if not isinstance(connector, FieldReader):
        return False
    first = writes[0]
    try:
        current = connector.read_fields(
            first.object_name, first.target_key, [w.field for w in writes]
        )
    except PmsyncError:
        return False  # cannot tell: sending again is safe, field writes are idempotent
    if current is None:
        return False
    return all(normalize(current.get(w.field, MISSING)) == normalize(w.new) for w in writes)


def _property_already_there(
    applying: _Applying, connector: IssueProperties, write: PlannedWrite
) -> bool:
    slot = (write.connector, write.object_name, write.target_key, "property", write.field)
    value = dumps(_plain(write.new))
    if value not in applying.earlier.get(slot, []):
        return False
    try:
        current = connector.get_issue_property(write.target_key, write.field)
    except PmsyncError:
        return False
    return current is not None and dumps(current) == value


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


def _post_note(applying: _Applying, write: PlannedWrite, marker: str, connector: Connector) -> None:
    if not isinstance(connector, TicketNotes):
        raise PmsyncError(f"connector '{write.connector}' cannot post internal notes")
    plan, store, result = applying.plan, applying.store, applying.result
    issue_ref = next(i for i, t, m in plan.loops if m == marker)
    ticket_ref = f"{write.connector}:{write.target_key}"
    ids = _intend(store, plan.plan_id, [write])

    def post() -> WriteOutcome:
        # Checked before every attempt: a post whose answer was lost may have landed.
        if connector.has_note_containing(write.target_key, marker):
            result.notes_found_posted += 1
            return WriteOutcome(write.target_key, True)  # posted before a crash: never twice
        return connector.add_internal_note(write.target_key, str(write.new))

    outcome = _attempt(applying, write.target_key, post)
    _settle(applying, [write], ids, outcome, ledger_field=None)
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
    applying: _Applying,
    writes: Sequence[PlannedWrite],
    ids: Sequence[int],
    outcome: WriteOutcome,
    *,
    ledger_field: str | None = "",
    ledger_value: str | None = None,
) -> None:
    now = utcnow()
    result = applying.result
    with applying.store.transaction() as connection:
        connection.execute(
            sa.update(writeback_intents)
            .where(writeback_intents.c.id.in_(ids))
            .values(state="done" if outcome.ok else "failed", error=outcome.error, done_at=now)
        )
        _record_gone(connection, writes[0], outcome, now)
        if not outcome.ok:
            for write in writes:
                result.failed.append((write, outcome.error or "failed"))
                if outcome.gone:
                    result.gone.append(write)
                log.warning(
                    "write_failed",
                    connector=write.connector,
                    target=write.target_label,
                    field=write.field_label,
                    error=outcome.error,
                    gone=outcome.gone,
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


def _record_gone(
    connection: sa.Connection, write: PlannedWrite, outcome: WriteOutcome, now: Any
) -> None:
    """A 404 marks the target gone (plans skip it until a read sees it again); a write that
    lands clears the mark."""
    key = (
        writeback_gone.c.connector == write.connector,
        writeback_gone.c.object_name == write.object_name,
        writeback_gone.c.target_key == write.target_key,
    )
    connection.execute(sa.delete(writeback_gone).where(*key))
    if outcome.gone:
        connection.execute(
            sa.insert(writeback_gone).values(
                connector=write.connector,
                object_name=write.object_name,
                target_key=write.target_key,
                error=outcome.error or "not found",
                gone_at=now,
            )
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
