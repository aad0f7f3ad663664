"""The store on SQLite and PostgreSQL: one schema, changed-only writes, tombstones, atomic pages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from pmsync.sync.store import store as st
from pmsync.sync.store.discovery import StoreDiscoveryCache
from pmsync.sync.store.presence import MIGRATIONS, head_revision
from pmsync.sync.store.rows import StreamCounts
from pmsync.sync.store.schema import records, stream_state
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


HEAD = ScriptDirectory.from_config(_alembic_config()).get_current_head()


def row(key: str, payload: dict[str, object], entity: str = "feedback") -> RecordRow:
    raw, unified = dumps(payload), dumps({"id": key, **payload})
    return RecordRow(key, entity, raw, unified, content_hash(raw, unified))


def test_head_revision_is_alembics_head() -> None:
    """The store decides "nothing to migrate" without Alembic; it must agree with Alembic."""
    assert head_revision() == HEAD


def test_migrations_create_the_schema_once(store_url: str) -> None:
    first = Store(store_url)
    assert first.schema_revision() == HEAD
    first.close()
    again = Store(store_url)  # a second open migrates nothing and keeps the data
    assert again.schema_revision() == HEAD
    tables = set(sa.inspect(again.engine).get_table_names())
    assert {"records", "stream_state", "dead_letters", "alembic_version"} <= tables
    again.close()


def test_writes_only_what_changed_and_revives_tombstones(store_url: str) -> None:
    store = Store(store_url)
    now = utcnow()
    with store.transaction() as c:
        result = st.write_records(c, "zd", "tickets", [row("1", {"a": 1}), row("2", {"a": 2})], now)
    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 0)
    later = now + timedelta(minutes=1)
    with store.transaction() as c:
        result = st.write_records(
            c, "zd", "tickets", [row("1", {"a": 1}), row("2", {"a": 3})], later
        )
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    with store.transaction() as c:
        assert st.tombstone(c, "zd", "tickets", ["1", "missing"], later) == 1
        assert st.tombstone(c, "zd", "tickets", ["1"], later) == 0  # already a tombstone
    stored = {r.key: r for r in store.iter_records(connector="zd", include_deleted=True)}
    assert stored["1"].deleted_at is not None
    assert stored["2"].raw == {"a": 3}
    assert abs(stored["2"].first_seen_at - now) < timedelta(milliseconds=1)
    assert stored["2"].last_seen_at > stored["2"].first_seen_at
    with store.transaction() as c:  # the same record comes back: the tombstone is lifted
        result = st.write_records(c, "zd", "tickets", [row("1", {"a": 1})], later)
    assert result.updated == 1
    assert store.live_keys("zd", "tickets") == {"1", "2"}
    store.close()


def test_json_given_as_bytes_is_stored_as_the_text_it_encodes(store_url: str) -> None:
    """A sync hands the store its JSON as orjson's UTF-8 bytes: what is stored is text (on
    SQLite too, never a BLOB), the same as for a `str`, inserted, updated or tombstoned."""
    store = Store(store_url)
    payloads = [{"subject": "Łódź Привет ñandú", "n": 1}, {"subject": "café — 2", "n": 2}]

    def as_bytes(key: str, payload: dict[str, object]) -> RecordRow:
        text = row(key, payload)
        return RecordRow(key, text.entity, st.dumps_bytes(payload),
                         st.dumps_bytes({"id": key, **payload}), text.content_hash)  # fmt: skip

    with store.transaction() as c:
        st.write_records(c, "zd", "tickets", [as_bytes("1", payloads[0])], utcnow())
        st.write_records(c, "zd", "tickets", [row("2", payloads[0])], utcnow())
        st.tombstone_records(c, "zd", "tickets", [as_bytes("3", payloads[0])], utcnow())
    with store.transaction() as c:  # changed: an update
        result = st.write_records(c, "zd", "tickets", [as_bytes("2", payloads[1])], utcnow())
    assert result.updated == 1
    expected = {"1": payloads[0], "2": payloads[1], "3": payloads[0]}
    with store.engine.connect() as c:
        rows = c.execute(sa.select(records.c.key, records.c.raw, records.c.unified)).all()
        for key, raw, unified in rows:
            assert raw == dumps(expected[key])
            assert unified == dumps({"id": key, **expected[key]})
        if store.dialect == "sqlite":
            kinds = c.execute(sa.text("SELECT DISTINCT typeof(raw), typeof(unified) FROM records"))
            assert kinds.all() == [("text", "text")]
            found = c.execute(
                sa.text("SELECT key FROM records WHERE raw LIKE '%Łódź%' ORDER BY key")
            ).scalars()
            assert list(found) == ["1", "3"]
    store.close()


def test_a_failed_page_leaves_no_rows_and_no_cursor(store_url: str) -> None:
    store = Store(store_url)

    def page_then_crash() -> None:
        with store.transaction() as c:
            st.write_records(c, "zd", "tickets", [row("1", {"a": 1})], utcnow())
            st.save_cursor(c, "zd", "tickets", '{"after_cursor": "x"}', utcnow())
            raise RuntimeError("crash between rows and commit")

    with pytest.raises(RuntimeError):
        page_then_crash()
    assert list(store.iter_records()) == []
    assert store.stream_state("zd", "tickets") is None
    store.close()


def test_deleted_records_never_seen_are_stored_as_tombstones(store_url: str) -> None:
    store = Store(store_url)
    now = utcnow()
    with store.transaction() as c:
        st.write_records(c, "zd", "tickets", [row("1", {"a": 1})], now)
        count = st.tombstone_records(
            c, "zd", "tickets", [row("1", {"a": 1}), row("9", {"b": 2})], now
        )
    assert count == 2
    stored = {r.key: r for r in store.iter_records(include_deleted=True)}
    assert stored["9"].deleted_at is not None
    assert stored["9"].raw == {"b": 2}
    assert store.stream_counts()[("zd", "tickets")] == StreamCounts(live=0, deleted=2)
    store.close()


def test_dead_letters_replace_and_resolve(store_url: str) -> None:
    store = Store(store_url)
    now = utcnow()
    with store.transaction() as c:
        for reason in ("first failure", "second failure"):
            st.add_dead_letter(
                c,
                connector="zd",
                stream="tickets",
                key="7",
                field="created_at",
                reason=reason,
                payload='{"id": 7}',
                run_id="r1",
                now=now,
            )
    open_rows = store.dead_letter_rows()
    assert [r["reason"] for r in open_rows] == ["second failure"]
    with store.transaction() as c:
        assert st.has_open_dead_letters(c, "zd", "tickets")
        assert st.resolve_dead_letters(c, "zd", "tickets", ["7"], now) == 1
        assert not st.has_open_dead_letters(c, "zd", "tickets")
    assert store.dead_letter_rows() == []
    assert len(store.dead_letter_rows(include_resolved=True)) == 1
    store.close()


def test_discovery_cache_is_shared_through_the_store_until_it_is_too_old(store_url: str) -> None:
    store = Store(store_url)
    cache = StoreDiscoveryCache(lambda: store)
    assert cache.get("sf", "describe/Account", timedelta(hours=1)) is None
    cache.put("sf", "describe/Account", {"fields": [{"name": "Id"}]})
    cache.put("sf", "describe/Account", {"fields": [{"name": "Id"}, {"name": "Name"}]})
    other = StoreDiscoveryCache(lambda: Store(store_url))  # another process, same store
    assert other.get("sf", "describe/Account", timedelta(hours=1)) == {
        "fields": [{"name": "Id"}, {"name": "Name"}]
    }
    assert other.get("sf", "describe/Account", timedelta(0)) is None  # older than allowed
    assert other.get("jira", "describe/Account", timedelta(hours=1)) is None
    other.forget("sf", "describe/Account")
    assert cache.get("sf", "describe/Account", timedelta(hours=1)) is None
    store.close()


def test_stream_state_round_trip_keeps_utc(store_url: str) -> None:
    store = Store(store_url)
    now = utcnow()
    with store.transaction() as c:
        st.save_cursor(c, "zd", "tickets", '{"x": 1}', now)
        st.update_stream_state(c, "zd", "tickets", status="ok", last_success_at=now)
    state = store.stream_state("zd", "tickets")
    assert state is not None
    assert state.cursor == '{"x": 1}'
    assert state.last_success_at is not None
    assert state.last_success_at.utcoffset() == timedelta(0)
    assert abs((state.last_success_at - now).total_seconds()) < 0.001
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(stream_state)).scalar() == 1
        assert c.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 0
    store.close()


def test_sqlite_readers_do_not_hold_back_writers(tmp_path: Path) -> None:
    import threading

    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.transaction() as c:
        st.write_records(c, "zd", "tickets", [row("1", {"a": 1})], utcnow())
    done = threading.Event()

    def write() -> None:
        with store.transaction() as c:
            st.write_records(c, "zd", "tickets", [row("2", {"a": 2})], utcnow())
        done.set()

    with store.engine.connect() as reader:
        assert reader.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 1
        writer = threading.Thread(target=write)
        writer.start()
        assert done.wait(timeout=10), "a read transaction blocked the writer"
        writer.join()
    assert store.live_keys("zd", "tickets") == {"1", "2"}
    store.close()
