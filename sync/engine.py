"""The sync engine: read pages from the stored cursor, map, store what changed, commit the cursor.

Knows no API. Each page is one transaction holding its records, tombstones, dead letters and the
cursor that covers them; a crash at any point therefore loses nothing and never leaves a cursor
ahead of its rows. A retriable error resumes the read from the last committed cursor, under one
retry policy (tenacity) that honours Retry-After and gives up only when no progress is made.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
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
from pmsync.logs import bound_contextvars, get_logger
from pmsync.redact import redact
from pmsync.sync.mapping.compiler import CompiledStream
from pmsync.sync.store import store as st
from pmsync.sync.store.schema import records
from pmsync.sync.store.store import (
    RecordRow,
    Store,
    content_hash,
    content_hash_bytes,
    dumps,
    dumps_bytes,
    utcnow,
)

log = get_logger("pmsync.engine")
_SURROGATE = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8 (surrogateescape)

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
    first_dead_letter: str | None = None  # why the first record of the run failed its mapping
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
class _Pass:
    """One read of a stream: the cursor it has committed and, when it is a census (a read from
    the start that lists every live record), the keys it has seen. Kept in memory: a census is
    never written down record by record, so a quiet census cycle writes nothing; a read that
    fails and resumes in another run is no census, and the next full listing is."""

    cursor: str | None
    from_start: bool
    census: bool = False
    seen: set[str] = field(default_factory=set)


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
        with bound_contextvars(connector=connector.name, stream=spec.name):
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
        started = utcnow()
        with self.store.transaction() as connection:
            if full_refresh:
                # The refresh proves nothing absent by itself (reads leave out what changed in
                # their last moments); the census that follows it does. Clearing last_sweep_at
                # in the same transaction as the cursor makes that census due even if this
                # process dies before the refresh completes.
                st.update_stream_state(
                    connection,
                    connector.name,
                    spec.name,
                    cursor=None,
                    cursor_updated_at=started,
                    last_sweep_at=None,
                )
            state = st.read_stream_state(connection, connector.name, spec.name)
            open_dead_letters = st.has_open_dead_letters(connection, connector.name, spec.name)
        stored = state.cursor if state else None
        from_start = _census_due(connector, spec, state.last_sweep_at if state else None)
        pass_ = _Pass(cursor=None if from_start else stored, from_start=False)
        pass_.from_start = pass_.cursor is None
        attempt = _Attempt()

        def read_once() -> None:
            cursor = self._parse_cursor(spec, pass_.cursor, connector.name)
            from_start = pass_.cursor is None
            pages = connector.read(spec, cursor, fields=mapping.source_fields)
            for page in pages:
                if page.begins_census or (spec.reads_in_full and from_start):
                    pass_.census, pass_.seen = True, set()
                from_start = False
                previous = pass_.cursor
                pass_.cursor = self._commit_page(
                    connector.name,
                    spec,
                    mapping,
                    page,
                    pass_.cursor,
                    result,
                    resolve=open_dead_letters,
                    seen=pass_.seen if pass_.census else None,
                )
                if pass_.cursor != previous:
                    # Progress is a cursor that moved: re-reading an overlap window is not.
                    attempt.progress += 1
                if self.on_page is not None:
                    self.on_page(result)
                self._check_stop()

        self._with_retries(read_once, attempt, result)
        self._after_read(connector, spec, mapping, pass_, started, result, full_refresh)
        if _mapping_failed(result, first_sync=state is None or state.last_success_at is None):
            raise PmsyncError(
                f"every record read ({result.dead_letters:,}) went to dead letters; the first: "
                f"{result.first_dead_letter}. Fix the mapping (`pmsync mappings preview "
                f"{connector.name}.{spec.name}`); `pmsync dead-letters` lists them"
            )
        with self.store.transaction() as connection:
            # A success ends a run of failures in the same write that says "ok", so status
            # never shows "ok (13 failures in a row)" while a daemon's worker catches up.
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
                failures=0,
                next_attempt_at=None,
            )

    def _after_read(
        self,
        connector: Connector,
        spec: StreamSpec,
        mapping: CompiledStream,
        pass_: _Pass,
        started: datetime,
        result: StreamResult,
        full_refresh: bool,
    ) -> None:
        """What a completed read proves: a listing in full is a census; a first read of a stream
        is as good as a sweep; a full refresh is followed by the stream's sweep."""
        if pass_.census:
            with self.store.transaction() as connection:
                gone = _live_keys_before(connection, connector.name, spec.name, started)
                gone -= pass_.seen
                result.deleted += st.tombstone(
                    connection, connector.name, spec.name, sorted(gone), utcnow()
                )
                st.update_stream_state(
                    connection, connector.name, spec.name, last_sweep_at=utcnow()
                )
            result.swept = True
            return
        if spec.sweep == "none" or not pass_.from_start:
            return
        if full_refresh:
            try:
                result.deleted += self.sweep_stream(connector, spec, mapping)
            except (FatalError, RetriableError) as exc:
                # The records are read; only the proof of what is gone is missing. The census
                # stays due (last_sweep_at was cleared) and runs on a later cycle.
                log.warning("refresh_census_failed", error=redact(str(exc)))
                return
            result.swept = True
            return
        with self.store.transaction() as connection:
            if not _live_keys_before(connection, connector.name, spec.name, started):
                # Nothing was stored before this first read: no sweep could find anything yet.
                st.update_stream_state(connection, connector.name, spec.name, last_sweep_at=started)
                result.swept = True

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
        resolve: bool,
        seen: set[str] | None,
    ) -> str | None:
        rows, failures = _map_records(mapping, page.records)
        gone = _map_deleted(mapping, page.deleted)
        if seen is not None:  # a census: what it lists exists, even what fails to map
            seen.update(row.key for row in rows)
            seen.update(bad.key for bad in failures if bad.key)
        new_cursor = page.cursor.model_dump_json()
        now = utcnow()
        with self.store.transaction() as connection:
            written = st.write_records(connection, connector, spec.name, rows, now)
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
        if failures and result.first_dead_letter is None:
            result.first_dead_letter = str(failures[0].error)
        return new_cursor

    # ---- deletes -----------------------------------------------------------------------

    def sweep_stream(self, connector: Connector, spec: StreamSpec, mapping: CompiledStream) -> int:
        """Id-only reconciliation: tombstone what the source no longer has. Returns tombstones.

        Retried like a read (Retry-After honoured, giving up after `max_attempts_without_progress`
        failed attempts); each attempt lists from the start, since only a complete census proves
        anything absent. What the census misses is confirmed absent by the connector before it
        is tombstoned.
        """
        started = utcnow()
        listed = _Census()
        with bound_contextvars(connector=connector.name, stream=spec.name):
            retries = StreamResult(connector.name, spec.name)
            self._with_retries(
                lambda: self._census(connector, spec, mapping, listed), _Attempt(), retries
            )
            with self.store.engine.connect() as connection:
                missing: set[str] = set()
                if spec.sweep == "census":
                    live = _live_keys_before(connection, connector.name, spec.name, started)
                    missing = live - listed.present - listed.deleted
            if missing:
                confirmed: set[str] = set()

                def confirm() -> None:
                    confirmed.update(connector.confirm_absent(spec, sorted(missing)))

                self._with_retries(confirm, _Attempt(), retries)
                missing = confirmed
            with self.store.transaction() as connection:
                gone = listed.deleted | missing
                count = st.tombstone(connection, connector.name, spec.name, sorted(gone), utcnow())
                st.update_stream_state(
                    connection, connector.name, spec.name, last_sweep_at=utcnow()
                )
            log.info(
                "sweep_done",
                present=len(listed.present),
                reported_deleted=len(listed.deleted),
                tombstoned=count,
                retries=retries.retries,
            )
        return count

    def _census(
        self, connector: Connector, spec: StreamSpec, mapping: CompiledStream, listed: _Census
    ) -> None:
        """One complete listing into `listed` (started afresh by each attempt)."""
        listed.present.clear()
        listed.deleted.clear()
        for sweep_page in connector.sweep(spec):
            listed.present.update(keys_of(mapping, sweep_page.present))
            listed.deleted.update(keys_of(mapping, sweep_page.deleted))
            self._check_stop()  # an unfinished census must never tombstone anything

    def sweep_due(self, connector: Connector, spec: StreamSpec, interval: timedelta) -> bool:
        if spec.sweep == "none":
            return False
        state = self.store.stream_state(connector.name, spec.name)
        last: datetime | None = state.last_sweep_at if state else None
        return last is None or utcnow() - last >= interval


def _census_due(connector: Connector, spec: StreamSpec, last_census: datetime | None) -> bool:
    """Whether a stream read in full lists from the beginning this time (its census): when
    it has had none (a first read, a full refresh) or its connector's census interval has
    passed. In between, its read resumes from the cursor and finds only what is new."""
    if not spec.reads_in_full:
        return False
    return last_census is None or utcnow() - last_census >= connector.census_interval(spec)


@dataclass
class _Census:
    present: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Failed:
    key: str | None
    error: MappingFailure
    payload: str


def _map_records(
    mapping: CompiledStream, raws: Iterable[Any]
) -> tuple[list[RecordRow], list[_Failed]]:
    """Map a page; the JSON text is produced once, as bytes, and serves both storage and
    hashing (SQLite stores the bytes as text without their being decoded, see store.py).

    A record carrying text that was not valid UTF-8 at the source (kept by the connector as
    lone surrogates) cannot be stored as JSON text: it is parked with its bytes, escaped, and
    the reason naming the field; the rest of the page is stored.
    """
    rows: list[RecordRow] = []
    failures: list[_Failed] = []
    entity, map_record = mapping.entity, mapping.map_record
    for raw in raws:
        try:
            raw_bytes = dumps_bytes(raw)
        except TypeError:
            failures.append(_undecodable(mapping, raw))
            continue
        try:
            key, unified = map_record(raw)
        except MappingFailure as error:
            failures.append(_Failed(_safe_key(mapping, raw), error, raw_bytes.decode()))
            continue
        unified_bytes = dumps_bytes(unified)
        digest = content_hash_bytes(raw_bytes, unified_bytes)
        rows.append(RecordRow(key, entity, _kept(raw_bytes), _kept(unified_bytes), digest))
    return rows, failures


def _kept(data: bytes) -> bytes:
    """`data` copied into a block of its own size, to be held for the rest of the page.

    The bytes orjson returns were measured to pin more heap than their length (its output is
    built in a buffer grown as it writes): a page's payloads held as returned raised a 100k
    ticket sync's peak RSS from 120 to 128-134 MiB; copied (a memcpy, ~0.1 us), 109-117 MiB.
    """
    return bytes(memoryview(data))


def _undecodable(mapping: CompiledStream, raw: Any) -> _Failed:
    """A dead letter for a record with invalid UTF-8: where, which bytes, and the record."""
    path, text = _first_bad_text(raw, "")
    bad = text.encode("utf-8", "surrogateescape") if text is not None else b""
    shown = " ".join(f"{b:02x}" for b in bad if b >= 0x80)[:60] if text is not None else ""
    reason = f"text is not valid UTF-8 (bytes {shown}); fix it at the source"
    payload = json.dumps(raw, ensure_ascii=True, sort_keys=True, default=str)
    return _Failed(_safe_key(mapping, raw), MappingFailure(reason, field=path or None), payload)


def _first_bad_text(value: Any, path: str) -> tuple[str, str | None]:
    """(path, text) of the first string holding an undecodable byte (a lone surrogate)."""
    if isinstance(value, str):
        return (path, value) if _SURROGATE.search(value) else (path, None)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_bad_text(item, f"{path}.{key}" if path else str(key))
            if found[1] is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_bad_text(item, f"{path}[{index}]")
            if found[1] is not None:
                return found
    return path, None


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
        try:
            raw_text, unified_text = dumps(raw), dumps(unified)
        except TypeError:  # undecodable text in a deleted record: keep the key, not the text
            raw_text, unified_text = dumps({"key": key}), dumps({})
        rows.append(
            RecordRow(
                key, mapping.entity, raw_text, unified_text, content_hash(raw_text, unified_text)
            )
        )
    return rows


def _mapping_failed(result: StreamResult, *, first_sync: bool) -> bool:
    """Whether every record of the run went to dead letters: a broken mapping, not a bad
    record. One lone record that fails on a stream that has synced before is only that."""
    mapped = result.inserted + result.updated + result.unchanged
    return not mapped and (result.dead_letters > 1 or (result.dead_letters == 1 and first_sync))


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
