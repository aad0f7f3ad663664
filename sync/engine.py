"""The sync engine: read pages from the stored cursor, map, store what changed, commit the cursor.

Knows no API. Each page is one transaction holding its records, tombstones, dead letters and the
cursor that covers them; a crash at any point therefore loses nothing and never leaves a cursor
ahead of its rows. A retriable error resumes the read from the last committed cursor, under one
retry policy (tenacity) that honours Retry-After and gives up only when no progress is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from pmsync.connectors.base import Connector, Page, StreamSpec
from pmsync.errors import (
    AuthError,
    FatalError,
    Interrupted,
    MappingFailure,
    PmsyncError,
    QuotaExhausted,
    RetriableError,
)
from pmsync.redact import redact
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.store import store as st
from pmsync.sync.store.schema import records
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow

log = structlog.get_logger("pmsync.engine")

Status = Literal["ok", "failed", "paused", "interrupted"]


@dataclass
class StreamResult:
    """What one stream's run did; printed by the CLI and exported as metrics."""

    connector: str
    stream: str
    status: Status = "ok"
    pages: int = 0
    records_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    dead_letters: int = 0
    retries: int = 0
    error: str | None = None
    swept: bool = False
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted


PageHook = Callable[[StreamResult], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts_without_progress: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 300.0


@dataclass
class _Attempt:
    progress: int = 0
    last_progress_seen: int = 0
    no_progress: int = 0
    history: list[float] = field(default_factory=list)


class SyncEngine:
    """Moves data from pmsync.connectors into the store, one stream at a time."""

    def __init__(
        self,
        store: Store,
        *,
        run_id: str,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_page: PageHook | None = None,
        should_stop: StopCheck | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.on_page = on_page
        # Cooperative stop (the daemon's SIGTERM, reload, lost lease): checked between pages.
        self.should_stop = should_stop

    # ---- reading -----------------------------------------------------------------------

    def sync_stream(
        self,
        connector: Connector,
        spec: StreamSpec,
        mapping: CompiledStream,
        *,
        full_refresh: bool = False,
    ) -> StreamResult:
        """Read one stream to the present; never raises for connector or API errors."""
        result = StreamResult(connector.name, spec.name)
        started = time.monotonic()
        with structlog.contextvars.bound_contextvars(connector=connector.name, stream=spec.name):
            try:
                self._sync(connector, spec, mapping, full_refresh, result)
            except Interrupted as exc:
                result.status = "interrupted"
                log.info("stream_interrupted", reason=str(exc), pages=result.pages)
            except QuotaExhausted as exc:
                self._finish(result, "paused", exc)
            except (FatalError, RetriableError) as exc:
                self._finish(result, "failed", exc)
            except PmsyncError as exc:
                self._finish(result, "failed", exc)
            except Exception as exc:
                log.exception("stream_crashed")
                self._finish(result, "failed", exc)
            result.seconds = time.monotonic() - started
            log.info(
                "stream_done",
                status=result.status,
                pages=result.pages,
                read=result.records_read,
                inserted=result.inserted,
                updated=result.updated,
                deleted=result.deleted,
                dead_letters=result.dead_letters,
                retries=result.retries,
                seconds=round(result.seconds, 3),
            )
        return result

    def _finish(self, result: StreamResult, status: Status, exc: BaseException) -> None:
        message = redact(
            str(exc) if isinstance(exc, PmsyncError) else f"{type(exc).__name__}: {exc}"
        )
        result.status = status
        result.error = message
        level = "warning" if status == "paused" else "error"
        getattr(log, level)(
            "stream_stopped", status=status, error=message, auth=isinstance(exc, AuthError)
        )
        with self.store.transaction() as connection:
            st.update_stream_state(
                connection,
                result.connector,
                result.stream,
                status=status,
                last_error=message,
                last_error_at=utcnow(),
                last_run_id=self.run_id,
            )

    def _sync(
        self,
        connector: Connector,
        spec: StreamSpec,
        mapping: CompiledStream,
        full_refresh: bool,
        result: StreamResult,
    ) -> None:
        now = utcnow()
        with self.store.transaction() as connection:
            state = st.read_stream_state(connection, connector.name, spec.name)
            refresh_since = state.refresh_started_at if state else None
            if full_refresh:
                refresh_since = now
                st.update_stream_state(
                    connection,
                    connector.name,
                    spec.name,
                    cursor=None,
                    cursor_updated_at=now,
                    refresh_started_at=now,
                )
            open_dead_letters = st.has_open_dead_letters(connection, connector.name, spec.name)
        attempt = _Attempt()

        def read_once() -> None:
            nonlocal refresh_since
            stored = self.store.stream_state(connector.name, spec.name)
            cursor_text = stored.cursor if stored else None
            cursor = self._parse_cursor(spec, cursor_text, connector.name)
            pages = connector.read(spec, cursor, fields=mapping.source_fields)
            for page in pages:
                if page.begins_census:
                    refresh_since = self._begin_census(connector.name, spec.name)
                previous = cursor_text
                cursor_text = self._commit_page(
                    connector.name,
                    spec,
                    mapping,
                    page,
                    cursor_text,
                    result,
                    touch=refresh_since is not None,
                    resolve=open_dead_letters,
                )
                if cursor_text != previous:
                    # Progress is a cursor that moved: re-reading an overlap window is not.
                    attempt.progress += 1
                if self.on_page is not None:
                    self.on_page(result)
                self._check_stop()

        self._with_retries(read_once, attempt, result)
        with self.store.transaction() as connection:
            if refresh_since is not None:
                result.deleted += st.tombstone_unseen_since(
                    connection, connector.name, spec.name, refresh_since, utcnow()
                )
            st.update_stream_state(
                connection,
                connector.name,
                spec.name,
                status="ok",
                last_success_at=utcnow(),
                last_error=None,
                last_error_at=None,
                refresh_started_at=None,
                last_run_id=self.run_id,
            )

    def _begin_census(self, connector: str, stream: str) -> datetime:
        """A read that returns every live record starts: once it completes, whatever it did not
        return is gone. Kept like a full refresh's start, so a resumed read completes it."""
        started = utcnow()
        with self.store.transaction() as connection:
            st.update_stream_state(connection, connector, stream, refresh_started_at=started)
        return started

    def _with_retries(
        self, fn: Callable[[], None], attempt: _Attempt, result: StreamResult
    ) -> None:
        policy = self.retry

        def stop(state: RetryCallState) -> bool:
            if attempt.progress != attempt.last_progress_seen:
                attempt.last_progress_seen = attempt.progress
                attempt.no_progress = 0
            attempt.no_progress += 1
            return attempt.no_progress >= policy.max_attempts_without_progress

        def wait(state: RetryCallState) -> float:
            backoff: float
            exc = state.outcome.exception() if state.outcome else None
            backoff = min(
                policy.max_backoff, policy.initial_backoff * 2 ** (attempt.no_progress - 1)
            )
            if isinstance(exc, RetriableError) and exc.retry_after is not None:
                backoff = min(policy.max_backoff, max(exc.retry_after, 0.0))
            attempt.history.append(backoff)
            return backoff

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            result.retries += 1
            log.warning(
                "retrying",
                error=redact(str(exc)),
                wait=round(attempt.history[-1], 3),
                attempt=attempt.no_progress,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop,
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        retrying(fn)

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Interrupted("stop requested; the committed pages stand")

    def _parse_cursor(self, spec: StreamSpec, text: str | None, connector: str) -> BaseModel | None:
        if text is None:
            return None
        try:
            return spec.cursor_model.model_validate_json(text)
        except ValidationError:
            raise FatalError(
                f"the stored cursor of stream '{spec.name}' cannot be read by this version; "
                f"run `pmsync sync --stream {connector}.{spec.name} --full-refresh`",
                connector=connector,
            ) from None

    def _commit_page(
        self,
        connector: str,
        spec: StreamSpec,
        mapping: CompiledStream,
        page: Page,
        cursor_text: str | None,
        result: StreamResult,
        *,
        touch: bool,
        resolve: bool,
    ) -> str | None:
        rows, failures = _map_records(mapping, page.records)
        gone = _map_deleted(mapping, page.deleted)
        new_cursor = page.cursor.model_dump_json()
        now = utcnow()
        with self.store.transaction() as connection:
            written = st.write_records(
                connection, connector, spec.name, rows, now, touch_unchanged=touch
            )
            deleted = st.tombstone_records(connection, connector, spec.name, gone, now)
            for bad in failures:
                st.add_dead_letter(
                    connection,
                    connector=connector,
                    stream=spec.name,
                    key=bad.key,
                    field=bad.error.field,
                    reason=bad.error.reason,
                    payload=bad.payload,
                    run_id=self.run_id,
                    now=now,
                )
            if (resolve or result.dead_letters) and rows:
                st.resolve_dead_letters(
                    connection, connector, spec.name, [r.key for r in rows], now
                )
            if touch:  # a full refresh saw these records: they exist, even if they fail to map
                st.touch(connection, connector, spec.name, [b.key for b in failures if b.key], now)
            if new_cursor != cursor_text:
                st.save_cursor(connection, connector, spec.name, new_cursor, now)
        for bad in failures:
            log.warning(
                "record_dead_lettered", key=bad.key, field=bad.error.field, reason=bad.error.reason
            )
        result.pages += 1
        result.records_read += len(page.records) + len(page.deleted)
        result.inserted += written.inserted
        result.updated += written.updated
        result.unchanged += written.unchanged
        result.deleted += deleted
        result.dead_letters += len(failures)
        return new_cursor

    # ---- deletes -----------------------------------------------------------------------

    def sweep_stream(self, connector: Connector, spec: StreamSpec, mapping: CompiledStream) -> int:
        """Id-only reconciliation: tombstone what the source no longer has. Returns tombstones."""
        started = utcnow()
        present: set[str] = set()
        deleted: set[str] = set()
        with structlog.contextvars.bound_contextvars(connector=connector.name, stream=spec.name):
            for sweep_page in connector.sweep(spec):
                present.update(k for k in (_safe_key(mapping, r) for r in sweep_page.present) if k)
                deleted.update(k for k in (_safe_key(mapping, r) for r in sweep_page.deleted) if k)
                self._check_stop()  # an unfinished census must never tombstone anything
            with self.store.transaction() as connection:
                gone = set(deleted)
                if spec.sweep == "census":
                    gone |= (
                        _live_keys_before(connection, connector.name, spec.name, started) - present
                    )
                count = st.tombstone(connection, connector.name, spec.name, sorted(gone), utcnow())
                st.update_stream_state(
                    connection, connector.name, spec.name, last_sweep_at=utcnow()
                )
            log.info(
                "sweep_done", present=len(present), reported_deleted=len(deleted), tombstoned=count
            )
        return count

    def sweep_due(self, connector: Connector, spec: StreamSpec, interval: timedelta) -> bool:
        if spec.sweep == "none":
            return False
        state = self.store.stream_state(connector.name, spec.name)
        last: datetime | None = state.last_sweep_at if state else None
        return last is None or utcnow() - last >= interval


@dataclass(frozen=True)
class _Failed:
    key: str | None
    error: MappingFailure
    payload: str


def _map_records(
    mapping: CompiledStream, raws: Iterable[Any]
) -> tuple[list[RecordRow], list[_Failed]]:
    """Map a page; the JSON text is produced once and serves both storage and hashing."""
    rows: list[RecordRow] = []
    failures: list[_Failed] = []
    for raw in raws:
        raw_text = dumps(raw)
        try:
            key, unified = mapping.map_record(raw)
        except MappingFailure as error:
            failures.append(_Failed(_safe_key(mapping, raw), error, raw_text))
            continue
        unified_text = dumps(unified)
        digest = content_hash(raw_text, unified_text)
        rows.append(RecordRow(key, mapping.entity, raw_text, unified_text, digest))
    return rows, failures


def _map_deleted(mapping: CompiledStream, raws: Iterable[Any]) -> list[RecordRow]:
    """Deleted records become tombstones; one never seen before is stored as a tombstone."""
    rows: list[RecordRow] = []
    for raw in raws:
        key = _safe_key(mapping, raw)
        if key is None:
            log.warning("deleted_record_without_key")
            continue
        try:
            _key, unified = mapping.map_record(raw)
        except MappingFailure:
            unified = {}
        raw_text, unified_text = dumps(raw), dumps(unified)
        rows.append(
            RecordRow(
                key, mapping.entity, raw_text, unified_text, content_hash(raw_text, unified_text)
            )
        )
    return rows


def _safe_key(mapping: CompiledStream, record: Any) -> str | None:
    try:
        return mapping.key_of(record)
    except MappingFailure:
        return None


def _live_keys_before(
    connection: sa.Connection, connector: str, stream: str, before: datetime
) -> set[str]:
    """Live keys first seen before `before`: a record created during a sweep is not 'gone'."""
    rows = connection.execute(
        sa.select(records.c.key).where(
            records.c.connector == connector,
            records.c.stream == stream,
            records.c.deleted_at.is_(None),
            records.c.first_seen_at < before,
        )
    ).scalars()
    return set(rows)


def keys_of(mapping: CompiledStream, stubs: Iterable[Any]) -> list[str]:
    """Keys of records that have one (used by tests and sweeps)."""
    return [k for k in (_safe_key(mapping, s) for s in stubs) if k]
