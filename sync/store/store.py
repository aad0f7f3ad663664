"""The store: a SQLite file by default, PostgreSQL in production, one schema for both.

The engine writes a page of records, its tombstones, its dead letters and the page's cursor in
one transaction, so a crash at any point leaves a cursor that never runs ahead of its rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import xxhash
from sqlalchemy.engine import Connection, Engine

from pmsync.errors import ConfigError, Problem
from pmsync.sync.store.presence import head_revision, private_sqlite_file
from pmsync.sync.store.rows import (
    StreamCounts,
    StreamState,
    TaskState,
    read_stream_counts,
    read_stream_states,
    read_task_states,
)
from pmsync.sync.store.schema import dead_letters, records, stream_state


def utcnow() -> datetime:
    return datetime.now(UTC)


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys) for payloads and hashes."""
    return orjson.dumps(value, option=_CANONICAL).decode()


def dumps_bytes(value: Any) -> bytes:
    """`dumps` as the UTF-8 bytes orjson produces: hashed as they are, decoded once to store."""
    return orjson.dumps(value, option=_CANONICAL)


def content_hash(raw_text: str, unified_text: str) -> str:
    """Hash of what we store; a changed mapping changes `unified` and so the hash."""
    return content_hash_bytes(raw_text.encode(), unified_text.encode())


def content_hash_bytes(raw: bytes, unified: bytes) -> str:
    """`content_hash` of texts already encoded (the same digest, without encoding them again).

    xxHash's XXH3, 128 bits: the hash only tells a changed record from an unchanged one (it
    guards against no adversary), and it runs once per record read, where BLAKE2b cost about a
    tenth of a full sync's CPU. Both texts are hashed, the unified one too, so that any change
    to what the mapping makes of a record (its file, a taxonomy, a transform's code) changes
    the hash. (JSON text holds no NUL byte, so the separator keeps the two apart.) Stores
    written before revision 0009 held `blake2b_content_hash` digests; that migration
    recomputed them with this function.
    """
    digest = xxhash.xxh3_128(raw)
    digest.update(b"\x00")
    digest.update(unified)
    return digest.hexdigest()


def blake2b_content_hash(first: str, second: str) -> str:
    """BLAKE2b digest of two texts: the records' content hash before revision 0009, and still
    the rollups' (their stored hashes are kept, so an upgrade counts no rollup as changed)."""
    digest = hashlib.blake2b(first.encode(), digest_size=16)
    digest.update(b"\x00")
    digest.update(second.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordRow:
    """A mapped record ready for the store: `raw` and `unified` are JSON text, as `str` or as
    its UTF-8 bytes (what orjson writes; SQLite stores those bytes as the text they encode,
    with no decoding into a `str` and encoding back, see `write_records`)."""

    key: str
    entity: str
    raw: str | bytes
    unified: str | bytes
    content_hash: str


def as_text(value: str | bytes) -> str:
    """A RecordRow's JSON text as a `str`."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class StoredRecord:
    connector: str
    stream: str
    key: str
    entity: str
    raw: dict[str, Any]
    unified: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class WriteResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A write transaction takes the lock up front (IMMEDIATE), so two writers queue instead of
    # deadlocking; reads stay deferred, so WAL lets them run beside a writer.
    writes = connection.get_execution_options().get("pmsync_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def create_store_engine(url: str, *, prepare_file: bool = True) -> Engine:
    """A SQLAlchemy engine with the settings each backend needs; `prepare_file` creates a
    SQLite file private (or warns that an existing one is not)."""
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(
            Problem(None, "store.url", f"not a usable database URL ({exc})")
        ) from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if prepare_file and database and database != ":memory:":
            private_sqlite_file(Path(database))
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


class Store:
    """Open (and migrate) the store at `url`."""

    def __init__(self, url: str, *, migrate: bool = True, upgrade_in_child: bool = False) -> None:
        self.url = url
        self.upgrade_in_child = upgrade_in_child
        self.engine = create_store_engine(url)
        if migrate:
            self.migrate()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest revision (see `upgrade.py`).

        A store already at the newest revision is left alone without importing Alembic (most
        of a short command's start-up otherwise). With `upgrade_in_child`, Alembic runs in a
        child process, so that a command that keeps running never carries it.
        """
        head = head_revision()
        if head is not None and self.schema_revision() == head:
            return
        from pmsync.sync.store import upgrade

        if self.upgrade_in_child:
            upgrade.upgrade_in_child(self.url)
        else:
            upgrade.upgrade(self.engine)

    def schema_revision(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                try:
                    row = connection.execute(
                        sa.text("SELECT version_num FROM alembic_version")
                    ).first()
                except sa.exc.DBAPIError:
                    return None
                return str(row[0]) if row else None
        except sa.exc.OperationalError as exc:
            raise ConfigError(
                Problem(None, "store.url", f"cannot open the store: {exc.orig}")
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit of work that writes."""
        with (
            self.engine.connect().execution_options(pmsync_write=True) as connection,
            connection.begin(),
        ):
            yield connection

    def close(self) -> None:
        self.engine.dispose()

    # ---- reads -------------------------------------------------------------------------

    def stream_state(self, connector: str, stream: str) -> StreamState | None:
        with self.engine.connect() as connection:
            return read_stream_state(connection, connector, stream)

    def stream_states(self) -> list[StreamState]:
        with self.engine.connect() as connection:
            return read_stream_states(connection.exec_driver_sql)

    def stream_counts(self) -> dict[tuple[str, str], StreamCounts]:
        """Live records, tombstones and open dead letters per (connector, stream)."""
        with self.engine.connect() as connection:
            return read_stream_counts(connection.exec_driver_sql)

    def task_states(self) -> list[TaskState]:
        """Every recorded write-back and sweep (`tasks.py` records them)."""
        with self.engine.connect() as connection:
            return read_task_states(connection.exec_driver_sql)

    def iter_records(
        self,
        *,
        entity: str | None = None,
        connector: str | None = None,
        stream: str | None = None,
        include_deleted: bool = False,
        batch_size: int = 2000,
    ) -> Iterator[StoredRecord]:
        """Stored records, streamed in key order so memory stays flat."""
        query = sa.select(records).order_by(records.c.connector, records.c.stream, records.c.key)
        if entity is not None:
            query = query.where(records.c.entity == entity)
        if connector is not None:
            query = query.where(records.c.connector == connector)
        if stream is not None:
            query = query.where(records.c.stream == stream)
        if not include_deleted:
            query = query.where(records.c.deleted_at.is_(None))
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_size).execute(query).mappings()
            for row in result:
                yield StoredRecord(
                    connector=row["connector"],
                    stream=row["stream"],
                    key=row["key"],
                    entity=row["entity"],
                    raw=orjson.loads(row["raw"]),
                    unified=orjson.loads(row["unified"]),
                    first_seen_at=row["first_seen_at"],
                    last_seen_at=row["last_seen_at"],
                    deleted_at=row["deleted_at"],
                )

    def iter_unified(
        self, entities: Sequence[str], *, batch_size: int = 5000
    ) -> Iterator[tuple[str, str, str, tuple[str, dict[str, Any]]]]:
        """(connector, stream, key, (entity, unified)) of live records; raw payloads stay unread.

        In the order of the names' code points (bytes: SQLite's and PostgreSQL's "C" collation)
        whatever the database's collation: of a key in two streams of one connector the last
        read wins, and the derivations that read records by key (`incremental.load_records`)
        walk the streams in Python's order, so both must agree (under en-US, 'tickets' sorted
        before 'Tickets_old')."""
        stream_order: sa.ColumnElement[str] = records.c.stream
        if self.engine.dialect.name == "postgresql":
            stream_order = stream_order.collate("C")
        query = (
            sa.select(
                records.c.connector,
                records.c.stream,
                records.c.key,
                records.c.entity,
                records.c.unified,
            )
            .where(records.c.entity.in_(entities), records.c.deleted_at.is_(None))
            .order_by(records.c.connector, stream_order, records.c.key)
        )
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_size).execute(query)
            for connector, stream, key, entity, unified in result:
                yield connector, stream, key, (entity, orjson.loads(unified))

    def data_version(self) -> tuple[Any, ...]:
        """Changes when any record is added, changed, revived or tombstoned (a cheap summary,
        so a derivation from unchanged records can be reused)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.max(records.c.last_seen_at),
                    sa.func.max(records.c.deleted_at),
                    sa.func.sum(sa.case((records.c.deleted_at.is_(None), 1), else_=0)),
                )
            ).one()
        return tuple(str(value) for value in row)

    def dead_letter_rows(self, *, include_resolved: bool = False) -> list[dict[str, Any]]:
        query = sa.select(dead_letters).order_by(dead_letters.c.id)
        if not include_resolved:
            query = query.where(dead_letters.c.resolved_at.is_(None))
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def live_keys(self, connector: str, stream: str) -> set[str]:
        with self.engine.connect() as connection:
            return set(
                connection.execute(
                    sa.select(records.c.key).where(
                        records.c.connector == connector,
                        records.c.stream == stream,
                        records.c.deleted_at.is_(None),
                    )
                ).scalars()
            )


# ---- writes, inside a transaction -------------------------------------------------------


def read_stream_state(connection: Connection, connector: str, stream: str) -> StreamState | None:
    row = (
        connection.execute(
            sa.select(stream_state).where(
                stream_state.c.connector == connector, stream_state.c.stream == stream
            )
        )
        .mappings()
        .first()
    )
    return StreamState(**dict(row)) if row else None


def ensure_stream_state(connection: Connection, connector: str, stream: str) -> None:
    if read_stream_state(connection, connector, stream) is None:
        connection.execute(
            sa.insert(stream_state).values(connector=connector, stream=stream, status="new")
        )


def update_stream_state(connection: Connection, connector: str, stream: str, **values: Any) -> None:
    """Set columns of a stream's state row, creating the row when needed."""
    ensure_stream_state(connection, connector, stream)
    connection.execute(
        sa.update(stream_state)
        .where(stream_state.c.connector == connector, stream_state.c.stream == stream)
        .values(**values)
    )


def save_cursor(
    connection: Connection, connector: str, stream: str, cursor: str | None, now: datetime
) -> None:
    update_stream_state(connection, connector, stream, cursor=cursor, cursor_updated_at=now)


def existing_hashes(
    connection: Connection, connector: str, stream: str, keys: Sequence[str]
) -> dict[str, tuple[str, bool]]:
    """key -> (content hash, is tombstoned) for the keys already stored."""
    found: dict[str, tuple[str, bool]] = {}
    if not keys:
        return found
    cursor = _Raw(connection)
    if connection.dialect.name == "postgresql":
        # One primary-key probe per key (the LIMIT keeps the planner from turning it into a
        # join): with `key IN (...)` or a join, PostgreSQL's planner, going by statistics of
        # a table that was small when last analysed, scanned every row of the stream for each
        # page, so a first sync slowed with each page it stored.
        rows = cursor.fetchall(
            "SELECT wanted.key, r.content_hash, r.deleted_at IS NOT NULL "
            "FROM unnest(%s::text[]) AS wanted(key) CROSS JOIN LATERAL ("
            "SELECT content_hash, deleted_at FROM records WHERE connector = %s "
            "AND stream = %s AND key = wanted.key LIMIT 1) AS r",
            (list(keys), connector, stream),
        )
        return {key: (digest, bool(gone)) for key, digest, gone in rows}
    for chunk in _chunks(keys, 900):
        marks = ", ".join([cursor.mark] * len(chunk))
        rows = cursor.fetchall(
            "SELECT key, content_hash, deleted_at IS NOT NULL FROM records "
            f"WHERE connector = {cursor.mark} AND stream = {cursor.mark} AND key IN ({marks})",
            (connector, stream, *chunk),
        )
        for key, digest, gone in rows:
            found[key] = (digest, bool(gone))
    return found


class _Raw:
    """The transaction's own DBAPI connection, for the per-record statements of a page.

    SQLAlchemy's per-row parameter processing (dicts, a bind processor per datetime column)
    cost more than the writes; these statements bind plain tuples, with the timestamp
    converted once per page by the column type's own bind processor, so what is stored is
    what SQLAlchemy would have stored.
    """

    def __init__(self, connection: Connection) -> None:
        self.dialect = connection.dialect
        self.dbapi = connection.connection.driver_connection
        self.mark = "?" if self.dialect.paramstyle == "qmark" else "%s"

    def timestamp(self, now: datetime) -> Any:
        process = records.c.last_seen_at.type.bind_processor(self.dialect)
        return process(now) if process else now

    def fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        cursor = self.dbapi.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        cursor = self.dbapi.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()


def select_in(
    connection: Connection,
    sql: str,
    params: Sequence[Any],
    keys: Sequence[Any],
    *,
    chunk: int = 900,
) -> Iterator[Sequence[Any]]:
    """The rows of `sql` for `keys`, a chunk of keys at a time (a bound parameter each, under
    SQLite's limit), read through the connection's own DBAPI connection as plain tuples.

    `sql` is SQL both databases run, with `{mark}` for each of `params` (bound first) and
    `{keys}` where the chunk's placeholders go. SQLAlchemy's expanding IN renders a bind
    parameter per key at every execution and makes a Row of each result: reading the stored
    links of 4,300 tickets took 0.12 s through it and 0.05 s so. The reads share one
    transaction (one snapshot), as SQLAlchemy's own would."""
    if not connection.in_transaction():
        connection.begin()  # SQLite's driver begins none itself (see _sqlite_begin)
    raw = _Raw(connection)
    statement = sql.replace("{mark}", raw.mark)
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        text = statement.replace("{keys}", ", ".join([raw.mark] * len(part)))
        yield from raw.fetchall(text, (*params, *part))


_INSERT_COLUMNS = (
    "connector, stream, key, entity, raw, unified, content_hash, "
    "first_seen_at, last_seen_at, deleted_at"
)


def _text_mark(raw: _Raw) -> str:
    """The placeholder of a JSON text column. SQLite is handed the text's UTF-8 bytes and
    stores them as TEXT (CAST of a BLOB to TEXT takes its bytes as they are, in the database's
    encoding, UTF-8; a `str` is left as it is), exactly what binding the decoded `str` stores:
    decoding each payload, and the driver encoding it again, was ~6 us a ticket. PostgreSQL
    is handed a `str` (`write_records` decodes)."""
    return f"CAST({raw.mark} AS TEXT)" if raw.dialect.name == "sqlite" else raw.mark


def _insert_sql(raw: _Raw) -> str:
    mark, text = raw.mark, _text_mark(raw)
    values = ", ".join([mark] * 4 + [text, text] + [mark] * 4)
    return f"INSERT INTO records ({_INSERT_COLUMNS}) VALUES ({values})"


def _update_sql(raw: _Raw) -> str:
    mark, text = raw.mark, _text_mark(raw)
    return (
        f"UPDATE records SET entity = {mark}, raw = {text}, unified = {text}, "
        f"content_hash = {mark}, last_seen_at = {mark}, deleted_at = NULL "
        f"WHERE connector = {mark} AND stream = {mark} AND key = {mark}"
    )


def write_records(
    connection: Connection,
    connector: str,
    stream: str,
    rows: Sequence[RecordRow],
    now: datetime,
) -> WriteResult:
    """Insert new records, update changed ones (or revive tombstones); skip unchanged ones."""
    latest: dict[str, RecordRow] = {}
    for row in rows:
        latest[row.key] = row  # a page may repeat a key; the last copy wins
    if not latest:
        return WriteResult()
    existing = existing_hashes(connection, connector, stream, list(latest))
    raw = _Raw(connection)
    stamp = raw.timestamp(now)
    binds_bytes = raw.dialect.name == "sqlite"  # see _text_mark
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    unchanged = 0
    for key, row in latest.items():
        current = existing.get(key)
        if current is not None and current[0] == row.content_hash and not current[1]:
            unchanged += 1
            continue
        payload, unified = row.raw, row.unified
        if not binds_bytes:
            payload, unified = as_text(payload), as_text(unified)
        if current is None:
            inserts.append(
                (connector, stream, key, row.entity, payload, unified, row.content_hash,
                 stamp, stamp, None)
            )  # fmt: skip
        else:
            updates.append(
                (row.entity, payload, unified, row.content_hash, stamp, connector, stream, key)
            )
    if inserts:
        raw.executemany(_insert_sql(raw), inserts)
    if updates:
        raw.executemany(_update_sql(raw), updates)
    return WriteResult(len(inserts), len(updates), unchanged)


def tombstone(
    connection: Connection, connector: str, stream: str, keys: Iterable[str], now: datetime
) -> int:
    """Mark records deleted at the source; rows (and their payloads) are kept."""
    total = 0
    for chunk in _chunks(list(keys), 900):
        result = connection.execute(
            sa.update(records)
            .where(
                records.c.connector == connector,
                records.c.stream == stream,
                records.c.key.in_(chunk),
                records.c.deleted_at.is_(None),
            )
            .values(deleted_at=now)
        )
        total += result.rowcount or 0
    return total


def tombstone_records(
    connection: Connection, connector: str, stream: str, rows: Sequence[RecordRow], now: datetime
) -> int:
    """Tombstone records the source reports deleted, storing those never seen before."""
    if not rows:
        return 0
    by_key = {row.key: row for row in rows}
    existing = existing_hashes(connection, connector, stream, list(by_key))
    fresh = [
        {
            "connector": connector,
            "stream": stream,
            "key": key,
            "entity": row.entity,
            "raw": as_text(row.raw),
            "unified": as_text(row.unified),
            "content_hash": row.content_hash,
            "first_seen_at": now,
            "last_seen_at": now,
            "deleted_at": now,
        }
        for key, row in by_key.items()
        if key not in existing
    ]
    if fresh:
        connection.execute(sa.insert(records), fresh)
    return len(fresh) + tombstone(connection, connector, stream, list(existing), now)


def add_dead_letter(
    connection: Connection,
    *,
    connector: str,
    stream: str,
    key: str | None,
    field: str | None,
    reason: str,
    payload: str,
    run_id: str | None,
    now: datetime,
) -> None:
    """Park a record that failed its mapping; a newer failure of the same record replaces it."""
    if key is not None:
        connection.execute(
            sa.delete(dead_letters).where(
                dead_letters.c.connector == connector,
                dead_letters.c.stream == stream,
                dead_letters.c.record_key == key,
                dead_letters.c.resolved_at.is_(None),
            )
        )
    connection.execute(
        sa.insert(dead_letters).values(
            connector=connector,
            stream=stream,
            record_key=key,
            field=field,
            reason=reason,
            payload=payload,
            run_id=run_id,
            created_at=now,
        )
    )


def resolve_dead_letters(
    connection: Connection, connector: str, stream: str, keys: Sequence[str], now: datetime
) -> int:
    """Records that now map cleanly close their open dead letters."""
    total = 0
    for chunk in _chunks(list(keys), 900):
        result = connection.execute(
            sa.update(dead_letters)
            .where(
                dead_letters.c.connector == connector,
                dead_letters.c.stream == stream,
                dead_letters.c.record_key.in_(chunk),
                dead_letters.c.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )
        total += result.rowcount or 0
    return total


def has_open_dead_letters(connection: Connection, connector: str, stream: str) -> bool:
    return (
        connection.execute(
            sa.select(dead_letters.c.id)
            .where(
                dead_letters.c.connector == connector,
                dead_letters.c.stream == stream,
                dead_letters.c.resolved_at.is_(None),
            )
            .limit(1)
        ).first()
        is not None
    )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
