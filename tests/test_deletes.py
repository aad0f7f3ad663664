"""Deletes reach the store within one poll interval, and only deletes do (issue 11, items 2-4).

* A full refresh tombstones only what a census proves absent: records a read leaves out on
  purpose (Jira's settle lag, Zendesk's last minute, a server clock ahead of ours) stay live.
* A deleted ticket-to-issue link stops counting at the links' next census: by default every
  cycle, else every `links_census_interval`; the cycles in between ask only for new links.
* A sweep answered 429 or 5xx is retried like a read instead of failing for the cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment
from pmsync.simulators.jira import generate as generate_issues
from pmsync.simulators.zendesk import ZendeskSimulator
from pmsync.sync.store import store as st
from pmsync.sync.store.store import utcnow
from tests.conftest import START, write_config
from tests.jira_support import (
    default_mapping,
    engine_and_store,
    make_connector,
    start_sim,
)


@pytest.fixture
def runtime(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> Iterator[Runtime]:
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=small_zendesk.base_url)))
    yield runtime
    runtime.close()


# ---- item 2: a full refresh tombstones no live record ------------------------------------------


@pytest.mark.parametrize("deployment", ["cloud", "datacenter"])
@pytest.mark.parametrize("server_ahead", [0, 240])
def test_a_full_refresh_keeps_issues_the_read_leaves_out_and_drops_deleted_ones(
    deployment: Deployment, server_ahead: int, tmp_path: Path
) -> None:
    ours = FakeClock(START)
    theirs = FakeClock(ours.now + server_ahead)  # the site's clock may run ahead of ours
    sim = start_sim(deployment, theirs)
    try:
        issues = generate_issues(sim, issues=120, seed=4)
        connector = make_connector(sim, ours)
        engine, store = engine_and_store(tmp_path)
        mapping, spec = default_mapping(), connector.stream("issues")
        assert engine.sync_stream(connector, spec, mapping).inserted == 120
        # Changed a moment ago: inside the settle lag, so the refresh leaves them for later.
        fresh = [issues[3], issues[50]]
        for issue in fresh:
            sim.update_issue(issue["id"], {"summary": "changed just now"})
        sim.delete_issue(issues[7]["id"])

        result = engine.sync_stream(connector, spec, mapping, full_refresh=True)

        assert result.status == "ok"
        assert result.swept
        live = store.live_keys("jira", "issues")
        assert all(issue["id"] in live for issue in fresh)
        assert issues[7]["id"] not in live
        assert live == sim.visible_ids()
        assert result.deleted == 1
        store.close()
    finally:
        sim.stop()


def test_a_full_refresh_keeps_tickets_changed_in_the_minute_the_export_leaves_out(
    runtime: Runtime, small_zendesk: ZendeskSimulator
) -> None:
    sim = small_zendesk
    runtime.run_once(["zendesk.tickets"])
    live_before = runtime.store.live_keys("zendesk", "tickets")
    ticket = sim._public(sim.tickets.items[12])
    sim.put_ticket({**ticket, "subject": "edited seconds ago"}, at=sim.now() - 5)

    [result] = runtime.run_once(["zendesk.tickets"], full_refresh=True)

    assert result.status == "ok"
    assert runtime.store.live_keys("zendesk", "tickets") == live_before
    assert "12" in live_before


def test_a_full_refresh_during_a_move_tombstones_nothing_that_moved(tmp_path: Path) -> None:
    """A move during the census changes the issue's key, hence its place in key order; the
    census misses it, and the search by id that follows finds it."""
    clock = FakeClock(START)
    sim = start_sim("cloud", clock)
    try:
        issues = generate_issues(sim, issues=60, seed=8)
        connector = make_connector(sim, clock, census_page_size=10)
        engine, store = engine_and_store(tmp_path)
        mapping, spec = default_mapping(), connector.stream("issues")
        engine.sync_stream(connector, spec, mapping)
        mobile = sorted(
            (i for i in issues if i["key"].startswith("MOBILE-")),
            key=lambda i: int(i["key"].split("-")[1]),
        )
        mover = mobile[-1]
        census = [f"{r['key']}" for r in sorted(issues, key=_key_order)]
        # Key order: CORE-*, DATA-*, MOBILE-*. Once the census has read the page holding the
        # first MOBILE issue, the last one moves to CORE: it now sorts before what is left.
        first_mobile = next(n for n, key in enumerate(census) if key.startswith("MOBILE-"))
        sim.after(
            "/rest/api/2/search/jql",
            first_mobile // 10 + 1,
            lambda: sim.move_issue(mover["id"], "CORE"),
        )
        sim.reset_log()

        count = engine.sweep_stream(connector, spec, mapping)

        assert count == 0
        assert mover["id"] in store.live_keys("jira", "issues")
        confirm = [r for r in sim.requests if "id in" in str(r.query.get("jql", ""))]
        assert len(confirm) == 1  # the census missed it; the search by id found it
        store.close()
    finally:
        sim.stop()


# ---- item 3: a deleted link stops counting at the links' next census ----------------------------


@pytest.fixture
def hourly_census(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> Iterator[Runtime]:
    """A runtime whose Zendesk links are listed in full once an hour."""
    config = write_config(
        tmp_path,
        zendesk_url=small_zendesk.base_url,
        zendesk_settings='links_census_interval = "1h"',
    )
    runtime = Runtime.load(str(config))
    yield runtime
    runtime.close()


def test_links_are_read_by_since_id_between_censuses_and_listed_when_one_is_due(
    hourly_census: Runtime, small_zendesk: ZendeskSimulator
) -> None:
    sim, runtime = small_zendesk, hourly_census
    runtime.run_once()
    victim = next(iter(sim.jira_links))
    assert str(victim) in runtime.store.live_keys("zendesk", "jira_links")
    sim.remove_jira_link(victim)
    added = sim.add_jira_link(next(iter(sim.tickets.items)), "10002", "PROJ-2")
    sim.reset_log()

    results = {r.stream: r for r in runtime.run_once()}  # the census is not due (1h)

    assert results["jira_links"].deleted == 0
    live = runtime.store.live_keys("zendesk", "jira_links")
    assert str(added["id"]) in live  # found by since_id: the new link and the empty page
    assert str(victim) in live  # only a census proves a link gone
    assert len(sim.requests_to("/api/services/jira/links")) == 2
    sim.reset_log()
    runtime.run_once()
    assert len(sim.requests_to("/api/services/jira/links")) == 1  # nothing new: one request

    with runtime.store.transaction() as connection:  # the interval has passed
        st.update_stream_state(
            connection, "zendesk", "jira_links", last_sweep_at=utcnow() - timedelta(hours=1)
        )
    sim.reset_log()
    results = {r.stream: r for r in runtime.run_once()}

    assert results["jira_links"].deleted == 1
    assert runtime.store.live_keys("zendesk", "jira_links") == {str(i) for i in sim.jira_links}
    listing = sim.requests_to("/api/services/jira/links")
    assert len(listing) == math.ceil(len(sim.jira_links) / 1000) + 1


def test_a_deleted_link_is_gone_after_one_ordinary_cycle_with_a_census_each_cycle(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    sim = small_zendesk
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=sim.base_url)))  # default: 0s
    try:
        runtime.run_once()
        victim = next(iter(sim.jira_links))
        assert str(victim) in runtime.store.live_keys("zendesk", "jira_links")
        sim.remove_jira_link(victim)
        added = sim.add_jira_link(next(iter(sim.tickets.items)), "10002", "PROJ-2")
        sim.reset_log()

        results = {r.stream: r for r in runtime.run_once()}  # default sweep: "when due"

        links = results["jira_links"]
        assert links.status == "ok"
        assert links.deleted == 1
        live = runtime.store.live_keys("zendesk", "jira_links")
        assert str(victim) not in live
        assert str(added["id"]) in live
        assert live == {str(i) for i in sim.jira_links}
        # The cost: the listing itself, pages of 1,000 links and the empty page that ends it.
        listing = sim.requests_to("/api/services/jira/links")
        assert len(listing) == math.ceil(len(sim.jira_links) / 1000) + 1
        state = runtime.store.stream_state("zendesk", "jira_links")
        assert state is not None
        assert state.last_sweep_at is not None
    finally:
        runtime.close()


# ---- item 4: sweeps are retried like reads -----------------------------------------------------


def test_a_sweep_answered_429_then_500_is_retried_and_completes(
    runtime: Runtime, small_zendesk: ZendeskSimulator
) -> None:
    sim = small_zendesk
    runtime.run_once(["zendesk.organizations"])
    victim = next(iter(sim.organizations))
    sim.purge_organization(victim)  # gone without a trace: only the census finds it
    sim.inject(429, path_prefix="/api/v2/organizations.json", headers={"Retry-After": "0"})
    sim.inject(500, path_prefix="/api/v2/organizations.json")

    [result] = runtime.run_once(["zendesk.organizations"], sweep=True)

    assert result.status == "ok"
    assert result.swept
    assert result.deleted == 1
    assert str(victim) not in runtime.store.live_keys("zendesk", "organizations")
    census = sim.requests_to("/api/v2/organizations.json")
    assert [r.status for r in census[:3]] == [429, 500, 200]


def test_a_census_that_keeps_failing_tombstones_nothing(
    runtime: Runtime, small_zendesk: ZendeskSimulator
) -> None:
    sim = small_zendesk
    runtime.run_once(["zendesk.organizations"])
    live = runtime.store.live_keys("zendesk", "organizations")
    sim.inject(503, path_prefix="/api/v2/organizations.json", times=None)

    [result] = runtime.run_once(["zendesk.organizations"], sweep=True)

    assert not result.swept
    assert runtime.store.live_keys("zendesk", "organizations") == live
    assert len(sim.requests_to("/api/v2/organizations.json")) == 5  # the read's retry policy


def _key_order(issue: dict[str, str]) -> tuple[str, int]:
    project, _, number = issue["key"].partition("-")
    return project, int(number)
