"""The engine's cooperative stop: the page in hand is committed, the next run resumes."""

from __future__ import annotations

import pytest

from pmsync.errors import Interrupted
from pmsync.simulators.zendesk import ZendeskSimulator
from pmsync.sync.engine import StreamResult, SyncEngine
from pmsync.sync.store.store import Store
from pmsync.testing.contract import key_mapping
from tests.test_zendesk_contract import make_connector


def test_a_stop_between_pages_commits_what_was_read_and_the_next_run_resumes(
    store_url: str, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    connector = make_connector(sim, zendesk_token, page_size=50)
    spec = connector.stream("tickets")
    mapping = key_mapping(connector, spec)
    store = Store(store_url)
    seen: list[int] = []

    def on_page(result: StreamResult) -> None:
        seen.append(result.pages)

    first = SyncEngine(store, run_id="first", on_page=on_page, should_stop=lambda: len(seen) >= 2)
    result = first.sync_stream(connector, spec, mapping)

    assert result.status == "interrupted"
    assert result.pages == 2
    state = store.stream_state("zendesk", "tickets")
    assert state is not None
    assert state.cursor is not None
    assert state.last_success_at is None  # not caught up, and not failed either
    assert state.status != "failed"
    stored = store.stream_counts()[("zendesk", "tickets")]
    assert stored.live + stored.deleted == 100

    sim.reset_log()
    second = SyncEngine(store, run_id="second").sync_stream(connector, spec, mapping)
    assert second.status == "ok"
    asked = sim.requests_to("/api/v2/incremental/tickets")
    assert "cursor" in asked[0].query  # resumed from the stored cursor, not from the start
    live = {str(i) for i, t in sim.tickets.items.items() if t.get("status") != "deleted"}
    assert store.live_keys("zendesk", "tickets") == live
    assert second.records_read == len(sim.tickets.items) - 100
    connector.close()
    store.close()


def test_an_interrupted_census_tombstones_nothing(
    store_url: str, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    connector = make_connector(sim, zendesk_token)
    spec = connector.stream("organizations")
    mapping = key_mapping(connector, spec)
    store = Store(store_url)
    SyncEngine(store, run_id="read").sync_stream(connector, spec, mapping)
    before = store.live_keys("zendesk", "organizations")
    sim.purge_organization(int(next(iter(before))))

    stopping = SyncEngine(store, run_id="sweep", should_stop=lambda: True)
    with pytest.raises(Interrupted):
        stopping.sweep_stream(connector, spec, mapping)
    assert store.live_keys("zendesk", "organizations") == before
    connector.close()
    store.close()


def test_a_retry_wait_can_be_interrupted(
    store_url: str, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    sim.inject(503, path_prefix="/api/v2/incremental/tickets", times=None)
    connector = make_connector(sim, zendesk_token)
    spec = connector.stream("tickets")
    store = Store(store_url)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Interrupted("shutting down")

    result = SyncEngine(store, run_id="r", sleep=sleep).sync_stream(
        connector, spec, key_mapping(connector, spec)
    )
    assert result.status == "interrupted"
    assert len(waits) == 1
    state = store.stream_state("zendesk", "tickets")
    assert state is None or state.status != "failed"
    connector.close()
    store.close()
