"""End to end on Zendesk: config -> connector (zenpy + HTTP) -> simulator -> engine -> store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmsync.app.runtime import Runtime
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.sync.store.schema import records, stream_state
from tests.conftest import write_config

STREAMS = ("tickets", "users", "organizations", "jira_links")


def snapshot(runtime: Runtime) -> dict[tuple[str, str], tuple[str, bool, datetime]]:
    """(stream, key) -> (content hash, tombstoned, last seen) of every stored record."""
    with runtime.store.engine.connect() as c:
        rows = c.execute(
            sa.select(
                records.c.stream,
                records.c.key,
                records.c.content_hash,
                records.c.deleted_at,
                records.c.last_seen_at,
            )
        )
        return {(r[0], r[1]): (r[2], r[3] is not None, r[4]) for r in rows}


def cursors(runtime: Runtime) -> dict[str, str | None]:
    with runtime.store.engine.connect() as c:
        rows = c.execute(sa.select(stream_state.c.stream, stream_state.c.cursor))
        return {r[0]: r[1] for r in rows}


@pytest.fixture
def big_zendesk(zendesk_sim: ZendeskSimulator) -> ZendeskSimulator:
    keys = [(str(20_000 + n), f"APP-{n}") for n in range(1, 60)]
    generate(
        zendesk_sim,
        organizations=100,
        users=500,
        tickets=5000,
        seed=21,
        jira_keys=keys,
        link_share=0.3,
    )
    return zendesk_sim


@pytest.fixture
def runtime(tmp_path: Path, big_zendesk: ZendeskSimulator, zendesk_token: str) -> Iterator[Runtime]:
    config = write_config(
        tmp_path, zendesk_url=big_zendesk.base_url, zendesk_settings='links_census_interval = "1h"'
    )
    runtime = Runtime.load(str(config))
    yield runtime
    runtime.close()


def test_full_sync_lands_every_record_once_and_second_run_is_one_request(
    runtime: Runtime, big_zendesk: ZendeskSimulator
) -> None:
    sim = big_zendesk
    results = {r.stream: r for r in runtime.run_once()}
    assert all(r.status == "ok" for r in results.values()), results
    assert results["tickets"].pages == 5  # 5,000 tickets in pages of 1,000
    stored = snapshot(runtime)
    for stream, source in (
        ("tickets", sim.tickets.items),
        ("users", sim.users.items),
        ("organizations", sim.organizations),
    ):
        keys = {k for (s, k) in stored if s == stream}
        assert keys == {str(i) for i in source}, stream
    deleted = {k for (s, k), (_h, gone, _t) in stored.items() if s == "tickets" and gone}
    expected_deleted = {str(i) for i, t in sim.tickets.items.items() if t["status"] == "deleted"}
    assert deleted == expected_deleted
    assert len(expected_deleted) > 50
    links = {k for (s, k) in stored if s == "jira_links"}
    assert links == set(sim.jira_links and {link["id"] for link in sim.jira_links.values()})
    custom = next(
        r for r in runtime.store.iter_records(stream="tickets") if r.unified["issue_keys"]
    )
    assert custom.unified["issue_keys"][0].startswith("APP-")

    sim.reset_log()
    before = snapshot(runtime)
    cursors_before = cursors(runtime)
    second = runtime.run_once()
    assert all(r.status == "ok" and r.written == 0 for r in second)
    for stream in ("tickets", "users", "organizations"):
        path = f"/api/v2/incremental/{stream}"
        assert len(sim.requests_to(path)) == 1, stream
    # Links: only those above the newest id seen (an empty page); their census (the full
    # listing) is not due for links_census_interval (1h here).
    assert len(sim.requests_to("/api/services/jira/links")) == 1
    assert len(sim.requests) == 4  # one per stream; sweeps are not due yet
    assert snapshot(runtime) == before
    assert cursors(runtime) == cursors_before


def test_updates_sharing_one_timestamp_across_a_page_boundary_are_all_read(
    tmp_path: Path, zendesk_sim: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = zendesk_sim
    generate(sim, organizations=5, users=20, tickets=400, seed=5)
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=100)))
    runtime.run_once(["zendesk.tickets"])
    moment = sim.now() - 300
    changed = list(range(50, 300))  # 250 tickets, one second, across pages of 100
    for ticket_id in changed:
        ticket = sim.ticket_record(ticket_id)
        sim.put_ticket({**ticket, "subject": f"updated {ticket_id}"}, at=moment)
    [result] = runtime.run_once(["zendesk.tickets"])
    assert result.status == "ok"
    assert result.pages >= 3
    assert result.updated == len(
        [i for i in changed if sim.tickets.items[i]["status"] != "deleted"]
    )
    subjects = {r.key: r.unified["subject"] for r in runtime.store.iter_records(stream="tickets")}
    for ticket_id in changed:
        if sim.tickets.items[ticket_id]["status"] != "deleted":
            assert subjects[str(ticket_id)] == f"updated {ticket_id}"
    runtime.close()


def test_rate_limit_burst_is_waited_out_and_data_is_right(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    sim.inject(
        429,
        path_prefix="/api/v2/incremental/tickets",
        times=3,
        headers={"Retry-After": "1"},
        body={"error": "APIRateLimitExceeded"},
    )
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=50)))
    [result] = runtime.run_once(["zendesk.tickets"])
    assert result.status == "ok"
    assert result.retries == 3
    limited = [r for r in sim.requests_to("/api/v2/incremental/tickets") if r.status == 429]
    assert len(limited) == 3
    waits = [
        later.at - earlier.at
        for earlier, later in zip(
            sim.requests_to("/api/v2/incremental/tickets"),
            sim.requests_to("/api/v2/incremental/tickets")[1:],
            strict=False,
        )
        if earlier.status == 429
    ]
    assert all(w >= 0.9 for w in waits), waits  # Retry-After: 1 honoured each time
    live = {str(i) for i, t in sim.tickets.items.items() if t["status"] != "deleted"}
    assert runtime.store.live_keys("zendesk", "tickets") == live
    runtime.close()


def test_server_errors_resume_from_the_last_committed_page(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=50)))
    sim.inject(503, path_prefix="/api/v2/incremental/users", times=2)
    [result] = runtime.run_once(["zendesk.users"])
    assert result.status == "ok"
    assert result.retries == 2
    assert runtime.store.live_keys("zendesk", "users") == {str(i) for i in sim.users.items}
    runtime.close()


def test_a_record_that_fails_its_mapping_is_dead_lettered_and_the_rest_sync(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    bad = sim.ticket_record(10)
    sim.put_ticket({**bad, "status": "open", "created_at": "the day before yesterday"})
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=50)))
    [result] = runtime.run_once(["zendesk.tickets"])
    assert result.status == "ok"
    assert result.dead_letters == 1
    [letter] = runtime.store.dead_letter_rows()
    assert letter["record_key"] == "10"
    assert letter["field"] == "created_at"
    assert "the day before yesterday" in letter["reason"]
    assert '"created_at":"the day before yesterday"' in letter["payload"]
    live = runtime.store.live_keys("zendesk", "tickets")
    expected = {str(i) for i, t in sim.tickets.items.items() if t["status"] != "deleted"} - {"10"}
    assert live == expected
    # Fixed at the source: the next read maps it and closes the dead letter.
    sim.put_ticket({**bad, "status": "open"}, at=sim.now() - 61)
    runtime.run_once(["zendesk.tickets"])
    assert "10" in runtime.store.live_keys("zendesk", "tickets")
    assert runtime.store.dead_letter_rows() == []
    runtime.close()


def test_full_refresh_tombstones_hard_deletes(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url)))
    runtime.run_once(["zendesk.organizations"], sweep=False)
    victim = next(iter(sim.organizations))
    sim.purge_organization(victim)
    runtime.run_once(["zendesk.organizations"], sweep=False)
    assert str(victim) in runtime.store.live_keys("zendesk", "organizations")  # invisible so far
    [result] = runtime.run_once(["zendesk.organizations"], full_refresh=True, sweep=False)
    assert result.deleted == 1
    assert str(victim) not in runtime.store.live_keys("zendesk", "organizations")
    assert runtime.store.live_keys("zendesk", "organizations") == {
        str(i) for i in sim.organizations
    }
    runtime.close()


def test_bad_credentials_stop_the_stream_with_a_configuration_message(
    tmp_path: Path, small_zendesk: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_ZENDESK_TOKEN", "wrong-token-value")
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=small_zendesk.base_url)))
    [result] = runtime.run_once(["zendesk.tickets"])
    assert result.status == "failed"
    assert result.error is not None
    assert "401" in result.error
    assert "credentials" in result.error
    state = runtime.store.stream_state("zendesk", "tickets")
    assert state is not None
    assert state.status == "failed"
    assert state.last_error == result.error
    assert len(small_zendesk.requests_to("/api/v2/incremental/tickets")) == 1  # not retried
    runtime.close()


def test_full_refresh_keeps_a_record_whose_new_version_fails_its_mapping(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url, page_size=50)))
    runtime.run_once(["zendesk.tickets"])
    ticket = sim.ticket_record(10)
    sim.put_ticket({**ticket, "status": "open", "created_at": "not a date"}, at=sim.now() - 61)
    [result] = runtime.run_once(["zendesk.tickets"], full_refresh=True)
    assert result.status == "ok"
    assert result.dead_letters == 1
    assert "10" in runtime.store.live_keys("zendesk", "tickets")  # it exists; only its map fails
    runtime.close()


def test_a_start_time_without_a_zone_is_utc_whatever_the_host_zone(
    tmp_path: Path,
    small_zendesk: ZendeskSimulator,
    zendesk_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time as clock

    monkeypatch.setenv("TZ", "America/New_York")
    clock.tzset()
    try:
        extra = "start_time = 2024-01-01T00:00:00\n"
        config = write_config(tmp_path, zendesk_url=small_zendesk.base_url)
        text = config.read_text().replace(
            "[connectors.zendesk.credentials]", extra + "[connectors.zendesk.credentials]"
        )
        config.write_text(text)
        runtime = Runtime.load(str(config))
        runtime.run_once(["zendesk.tickets"])
        [first] = small_zendesk.requests_to("/api/v2/incremental/tickets")[:1]
        assert first.query["start_time"] == "1704067200"  # 2024-01-01T00:00:00Z
        runtime.close()
    finally:
        monkeypatch.delenv("TZ")
        clock.tzset()
