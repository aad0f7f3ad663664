"""Connector ownership: advisory locks on PostgreSQL, a lock file on SQLite, fenced writes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmsync.app.daemon.leases import LeaseLost, SingleProcessLease, make_leases
from pmsync.app.daemon.pg_leases import PostgresLeases, lock_key, split_key
from pmsync.errors import StoreBusy
from pmsync.sync.store import store as st
from pmsync.sync.store.store import Store, utcnow


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "pmsync.db"
    first = SingleProcessLease(database, "a")
    with pytest.raises(StoreBusy, match=rf"pid {os.getpid()}.*PostgreSQL"):
        SingleProcessLease(database, "b")
    first.close()
    SingleProcessLease(database, "c").close()  # free again once the first is gone


def test_sqlite_gets_the_single_process_lease(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'pmsync.db'}")
    leases = make_leases(store.engine, "a", 1.0)
    assert isinstance(leases, SingleProcessLease)
    assert leases.try_acquire("zendesk", total=3)
    assert leases.holds("zendesk")
    assert not leases.should_release("zendesk", total=3)
    leases.close()
    store.close()


def test_keys_split_the_way_pg_locks_shows_them() -> None:
    key = lock_key("test.public", "zendesk")
    classid, objid = split_key(key)
    assert 0 <= classid < 2**32
    assert 0 <= objid < 2**32
    assert ((classid << 32) | objid) == key & (2**64 - 1)
    assert lock_key("test.other_schema", "zendesk") != key


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url)
    yield store
    store.close()


def _leases(store: Store, replica: str, interval: float = 1.0) -> PostgresLeases:
    """Leases renewed only when the test calls heartbeat(): a replica the test can 'pause'."""
    return PostgresLeases(store.engine.url, replica=replica, interval=interval, background=False)


def _terminate(store: Store, leases: PostgresLeases) -> None:
    """What a kill -9 of the replica does to its session, from PostgreSQL's side."""
    with store.engine.begin() as connection:
        connection.execute(
            sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": leases._pid}
        )  # waits (up to 5 s) until the session is gone and its locks with it


@pytest.mark.postgres
def test_one_owner_at_a_time_and_takeover_when_the_owner_dies(pg_store: Store) -> None:
    a, b = _leases(pg_store, "a"), _leases(pg_store, "b")
    a.heartbeat()
    assert (a.live_replicas(), b.live_replicas()) == (2, 2)
    assert a.try_acquire("z1", total=2)
    assert not b.try_acquire("z1", total=2)
    assert b.try_acquire("z2", total=2)
    assert not b.try_acquire("z1", total=2)

    _terminate(pg_store, a)
    assert b.try_acquire("z1", total=2)  # recounts replicas: alone, its share is both
    assert b.live_replicas() == 1
    a.heartbeat()  # notices the lost session
    assert not a.holds("z1")
    a.heartbeat()  # and reconnects as a member, owning nothing
    assert a.live_replicas() == 2
    assert not a.try_acquire("z1", total=2)
    a.close()
    b.close()


@pytest.mark.postgres
def test_work_is_shared_by_a_fair_share(pg_store: Store) -> None:
    a = _leases(pg_store, "a")
    assert all(a.try_acquire(name, total=3) for name in ("z1", "z2", "z3"))
    b = _leases(pg_store, "b")
    a.heartbeat()
    assert a.should_release("z1", total=3)  # 3 held, share ceil(3/2) = 2
    a.release("z1")
    assert not a.should_release("z2", total=3)
    assert b.try_acquire("z1", total=3)
    assert not b.try_acquire("z2", total=3)  # held by a
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_replica_that_lost_its_connector_cannot_commit(pg_store: Store) -> None:
    a, b = _leases(pg_store, "a"), _leases(pg_store, "b")
    a.guard_store(pg_store.engine)
    assert a.try_acquire("zendesk", total=1)
    with a.fenced("zendesk"):
        with pg_store.transaction() as connection:
            st.save_cursor(connection, "zendesk", "tickets", '"mine"', utcnow())
        _terminate(pg_store, a)
        assert b.try_acquire("zendesk", total=1)
        with pytest.raises(LeaseLost), pg_store.transaction() as connection:
            st.save_cursor(connection, "zendesk", "tickets", '"stale"', utcnow())
    state = pg_store.stream_state("zendesk", "tickets")
    assert state is not None
    assert state.cursor == '"mine"'
    with pg_store.transaction() as connection:  # other threads are not fenced
        st.save_cursor(connection, "zendesk", "tickets", '"next"', utcnow())
    a.close()
    b.close()


@pytest.mark.postgres
def test_replicas_in_other_schemas_do_not_collide(pg_url: str, pg_base_url: str) -> None:
    here = _leases(Store(pg_url), "a")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_base_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        other = Store(f"{pg_base_url}?options=-csearch_path%3D{schema}")
        elsewhere = _leases(other, "b")
        assert here.try_acquire("zendesk", total=1)
        assert elsewhere.try_acquire("zendesk", total=1)
        here.close()
        elsewhere.close()
        other.close()
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.postgres
def test_a_paused_holder_loses_its_lease_and_cannot_commit(pg_store: Store) -> None:
    # A paused replica keeps its session (no kill here): it just stops renewing.
    a, b = _leases(pg_store, "a", interval=0.5), _leases(pg_store, "b", interval=0.5)
    a.guard_store(pg_store.engine)
    assert a.try_acquire("zendesk", total=1)
    assert not b.try_acquire("zendesk", total=1)
    with a.fenced("zendesk"):
        with pg_store.transaction() as connection:
            st.save_cursor(connection, "zendesk", "tickets", '"mine"', utcnow())
        _wait_for(lambda: not a.holds("zendesk"), "the paused holder to give its lease up")
        _wait_for(lambda: b.try_acquire("zendesk", total=1), "another replica to take it")
        with pytest.raises(LeaseLost), pg_store.transaction() as connection:
            st.save_cursor(connection, "zendesk", "tickets", '"stale"', utcnow())
    a.heartbeat()  # woken: its renewal finds the lease taken over
    assert not a.holds("zendesk")
    assert a.epoch("zendesk") is None
    state = pg_store.stream_state("zendesk", "tickets")
    assert state is not None
    assert state.cursor == '"mine"'
    b.heartbeat()
    assert b.holds("zendesk")
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_holder_paused_inside_a_transaction_does_not_hold_up_its_successor(
    pg_store: Store,
) -> None:
    a, b = _leases(pg_store, "a", interval=0.5), _leases(pg_store, "b", interval=0.5)
    a.guard_store(pg_store.engine)
    with pg_store.transaction() as connection:
        st.save_cursor(connection, "zendesk", "tickets", '"first"', utcnow())
    assert a.try_acquire("zendesk", total=1)
    stale = pg_store.engine.connect().execution_options(pmsync_write=True)
    with a.fenced("zendesk"):
        transaction = stale.begin()
        st.save_cursor(stale, "zendesk", "tickets", '"stale"', utcnow())  # row locked, then paused
    _wait_for(lambda: b.try_acquire("zendesk", total=1), "another replica to take the lease")
    with b.fenced("zendesk"), pg_store.transaction() as connection:
        st.save_cursor(connection, "zendesk", "tickets", '"next"', utcnow())  # not blocked for good
    with pytest.raises(sa.exc.DBAPIError):  # its session was ended while it sat idle
        transaction.commit()
    stale.close()
    state = pg_store.stream_state("zendesk", "tickets")
    assert state is not None
    assert state.cursor == '"next"'
    a.close()
    b.close()


def test_pmsync_sync_skips_what_a_daemon_owns_on_sqlite(tmp_path: Path) -> None:
    from pmsync.app.daemon.leases import cli_ownership

    database = tmp_path / "store.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    daemon = SingleProcessLease(database, "daemon")  # a running daemon holds the store
    with (
        pytest.raises(StoreBusy, match=r"another pmsync process \(pid \d+\) already syncs"),
        cli_ownership(engine, ["zendesk"]),
    ):
        pass
    daemon.close()
    with cli_ownership(engine, ["zendesk", "jira"]) as held:
        assert held == {"zendesk", "jira"}
    engine.dispose()


@pytest.mark.postgres
def test_pmsync_sync_skips_connectors_a_replica_owns_on_postgresql(pg_url: str) -> None:
    from pmsync.app.daemon.leases import cli_ownership
    from pmsync.app.daemon.pg_leases import PostgresLeases

    store = Store(pg_url)
    engine = store.engine
    replica = PostgresLeases(engine.url, replica="r1", interval=1.0)
    assert replica.try_acquire("zendesk", total=2)
    with cli_ownership(engine, ["zendesk", "jira"]) as held:
        assert held == {"jira"}
        assert not replica.try_acquire("jira", total=2)  # held by the CLI sync meanwhile
    assert replica.try_acquire("jira", total=2)  # released when the sync ends
    replica.close()
    store.close()
