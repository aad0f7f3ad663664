"""Store locks: one holder at a time per store, and stores that share a PostgreSQL database (a
schema each) never wait on each other's locks."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pmsync.errors import Interrupted
from pmsync.sync.store.locks import store_lock
from pmsync.sync.store.store import Store


def _second_holder_waits(store: Store, name: str) -> bool:
    """True when a second thread cannot take `name` while this thread holds it."""
    waited = threading.Event()

    def try_it() -> None:
        try:
            with store_lock(store, name, should_stop=lambda: True):
                pass
        except Interrupted:
            waited.set()

    with store_lock(store, name):
        worker = threading.Thread(target=try_it)
        worker.start()
        worker.join(timeout=30)
    return waited.is_set()


@pytest.fixture
def two_pg_stores(pg_base_url: str, request: pytest.FixtureRequest) -> Iterator[list[Store]]:
    urls = [request.getfixturevalue("pg_url")]
    # A second schema in the same database: the pg_url fixture gives one per test, so make another.
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_base_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    urls.append(f"{pg_base_url}?options=-csearch_path%3D{schema}")
    stores = [Store(url) for url in urls]
    yield stores
    for store in stores:
        store.engine.dispose()
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def test_a_held_lock_keeps_a_second_holder_out(store_url: str) -> None:
    store = Store(store_url)
    try:
        assert _second_holder_waits(store, "writeback:jira")
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_stores_in_two_schemas_of_one_database_do_not_share_locks(
    two_pg_stores: list[Store],
) -> None:
    first, second = two_pg_stores
    taken = threading.Event()

    def take_in_second() -> None:
        with store_lock(second, "writeback:jira", should_stop=lambda: True):
            taken.set()

    with store_lock(first, "writeback:jira"):
        worker = threading.Thread(target=take_in_second)
        worker.start()
        worker.join(timeout=30)
    assert taken.is_set(), "a store in another schema waited on this store's lock"
