"""The runtime opens its store once, whichever of a daemon's threads asks first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from pmsync.app.runtime import Runtime
from pmsync.sync.store.store import Store, save_cursor

REPO = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "pmsync.db"}"\n'
        f'[mappings]\npaths = ["{REPO / "mappings"}"]\n'
        '[connectors.zendesk]\ntype = "zendesk"\nbase_url = "http://127.0.0.1:9"\n'
        'streams = ["tickets"]\n'
        '[connectors.zendesk.credentials]\nemail = "ops@example.com"\n'
        'api_token = { env = "RUNTIME_STORE_TOKEN" }\n'
    )
    monkeypatch.setenv("RUNTIME_STORE_TOKEN", "x")
    return config


def test_threads_asking_for_the_store_at_once_share_one_opened_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime.load(str(write_config(tmp_path, monkeypatch)))
    start = threading.Barrier(6)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            opened.append(runtime.store)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.close()
    assert errors == []
    assert len(opened) == 6
    assert len({id(store) for store in opened}) == 1  # one store, migrated once


def pooled(engine: sa.Engine) -> int:
    """Connections waiting in the engine's pool."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedin()


def test_releasing_memory_closes_idle_connections_and_the_store_works_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon closes the store's pooled connections when it hands its heap back (their
    SQLite page caches held freed pages resident); a connection in use elsewhere stays open,
    and new ones get the store's settings again."""
    runtime = Runtime.load(str(write_config(tmp_path, monkeypatch)))
    try:
        engine = runtime.store.engine
        with engine.connect() as first:
            first.exec_driver_sql("SELECT 1")
        assert pooled(engine) >= 1
        with engine.connect() as busy:  # a worker's transaction, mid-way
            runtime.release_memory()
            assert pooled(engine) == 0  # the new pool holds none yet
            assert busy.exec_driver_sql("SELECT 1").scalar_one() == 1
        with engine.connect() as fresh:
            assert fresh.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert fresh.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert runtime.store.stream_states() == []
    finally:
        runtime.close()


def test_releasing_memory_keeps_an_in_memory_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-memory SQLite store lives in its one connection: closing it would lose it."""
    config = write_config(tmp_path, monkeypatch)
    config.write_text(
        config.read_text().replace(f"sqlite:///{tmp_path / 'pmsync.db'}", "sqlite:///:memory:")
    )
    runtime = Runtime.load(str(config))
    try:
        with runtime.store.transaction() as connection:
            save_cursor(connection, "zendesk", "tickets", "c1", datetime.now(UTC))
        runtime.release_memory()
        assert [state.cursor for state in runtime.store.stream_states()] == ["c1"]
    finally:
        runtime.close()
