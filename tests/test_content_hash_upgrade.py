"""Upgrading a store to XXH3 content hashes (migration 0009) counts no record as changed.

A store an older pmsync left holds BLAKE2b hashes. Were they kept, the first sync after the
upgrade would find every record it reads changed: rewrite it, journal it, and have the next
derivation take every ticket for changed. The migration recomputes them instead, with the
journal paused; the same records then sync as unchanged, and a real change still counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.sync.links.changes import start_journal
from pmsync.sync.store import store as st
from pmsync.sync.store.presence import head_revision
from pmsync.sync.store.schema import derive_changes, derive_state, records
from pmsync.sync.store.store import Store, blake2b_content_hash, content_hash
from tests.conftest import write_config
from tests.store_support import downgrade_one_step

STREAMS = ["zendesk.tickets", "zendesk.users", "zendesk.organizations"]


@pytest.fixture
def config(
    tmp_path: Path, zendesk_sim: ZendeskSimulator, zendesk_token: str, store_url: str
) -> Path:
    generate(zendesk_sim, organizations=10, users=40, tickets=250, seed=5, deleted_ticket_share=0)
    return write_config(tmp_path, zendesk_url=zendesk_sim.base_url, store_url=store_url)


@pytest.fixture
def runtime(config: Path) -> Iterator[Runtime]:
    runtime = Runtime.load(str(config))
    yield runtime
    runtime.close()


def stored(store: Store) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(stream, key) -> (content hash, raw, unified) of every stored record."""
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(records.c.stream, records.c.key, records.c.content_hash, records.c.raw,
                      records.c.unified)
        )  # fmt: skip
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def consumed_journal(store: Store) -> None:
    """As after a derivation: changes are journalled from now on, and none is waiting."""
    start_journal(store)
    with store.transaction() as c:
        c.execute(sa.delete(derive_changes))


def journal(store: Store) -> tuple[int, bool]:
    """(journalled changes, whether the journal is on)."""
    with store.engine.connect() as c:
        changes = c.execute(sa.select(sa.func.count()).select_from(derive_changes)).scalar()
        on = c.execute(sa.select(derive_state.c.value).where(derive_state.c.name == "journal"))
        return int(changes or 0), on.first() is not None


def test_an_upgraded_store_syncs_the_same_records_as_unchanged(
    config: Path, runtime: Runtime, zendesk_sim: ZendeskSimulator
) -> None:
    first = runtime.run_once(STREAMS)
    assert all(r.status == "ok" for r in first), first
    consumed_journal(runtime.store)
    current = stored(runtime.store)
    assert len(current) == 300
    assert all(digest == content_hash(raw, uni) for digest, raw, uni in current.values())

    # As an older pmsync left the store: BLAKE2b hashes, revision 0008.
    downgrade_one_step(runtime.store)
    old = stored(runtime.store)
    assert all(old[k][0] == blake2b_content_hash(raw, uni) for k, (_, raw, uni) in current.items())
    assert all(old[k][0] != current[k][0] for k in current)
    assert journal(runtime.store) == (0, True)

    runtime.close()
    upgraded = Runtime.load(str(config))
    try:
        assert upgraded.store.schema_revision() == head_revision()
        assert stored(upgraded.store) == current
        assert journal(upgraded.store) == (0, True)  # the rewrite journalled nothing

        again = {r.stream: r for r in upgraded.run_once(STREAMS, full_refresh=True)}
        for stream in ("tickets", "users", "organizations"):
            result = again[stream]
            assert result.status == "ok", result
            assert (result.inserted, result.updated) == (0, 0), result
            assert result.unchanged == result.records_read > 0
        assert journal(upgraded.store) == (0, True)

        # The journal is on again (PostgreSQL's trigger enabled): a real change is journalled.
        ticket = zendesk_sim.ticket_record(1)
        zendesk_sim.put_ticket({**ticket, "subject": "changed after the upgrade"})
        [result] = upgraded.run_once(["zendesk.tickets"])
        assert result.updated == 1, result
        assert journal(upgraded.store) == (1, True)
    finally:
        upgraded.close()


def test_the_migration_rehashes_a_store_without_a_journal(store_url: str) -> None:
    """A store no derivation has read (no journal row) is rehashed and left without one."""
    store = Store(store_url)
    raw, unified = st.dumps({"id": 7, "subject": "Zürich"}), st.dumps({"id": "7"})
    row = st.RecordRow("7", "feedback", raw, unified, content_hash(raw, unified))
    with store.transaction() as c:
        st.write_records(c, "zd", "tickets", [row], st.utcnow())
        c.execute(sa.delete(derive_changes))  # PostgreSQL journals even without the row
    downgrade_one_step(store)
    assert stored(store)[("tickets", "7")][0] == blake2b_content_hash(raw, unified)
    store.close()
    upgraded = Store(store_url)
    assert stored(upgraded)[("tickets", "7")][0] == content_hash(raw, unified)
    assert journal(upgraded) == (0, False)
    upgraded.close()


def test_the_content_hash_tells_raw_from_unified() -> None:
    """The same bytes split differently between the two texts hash differently, and a change
    to either text changes the hash."""
    assert content_hash('{"a":1}', "{}") != content_hash("{", '"a":1}{}')
    assert content_hash('{"a":1}', "{}") != content_hash('{"a":2}', "{}")
    assert content_hash('{"a":1}', '{"b":1}') != content_hash('{"a":1}', '{"b":2}')
    raw, unified = '{"s":"Łódź"}', '{"t":"Привет"}'
    assert st.content_hash_bytes(raw.encode(), unified.encode()) == content_hash(raw, unified)
