"""A quiet cycle costs the floor (issue 11, item 9): `sync --once`, `plan` and `apply` as three
processes with nothing changed cost at most one request per stream plus one per connector, and
write nothing. What each process learnt about the APIs (Salesforce describe, Jira server info
and field catalogue) is kept in the store; a first read counts as a sweep; censuses ask for ids
only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.base import Simulator
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.demo import Demo
from pmsync.simulators.jira import Deployment
from pmsync.simulators.jira import generate as generate_issues
from pmsync.simulators.zendesk import ZendeskSimulator
from tests.conftest import START, write_config
from tests.jira_support import (
    default_mapping,
    engine_and_store,
    make_connector,
    start_sim,
)
from tests.trust_support import small_demo, sync_plan_apply

WRITES = ("PUT", "PATCH", "POST", "DELETE")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with small_demo(tmp_path / "demo", pendo=True) as launched:
        yield launched


def streams_per_connector(demo: Demo) -> dict[str, int]:
    runtime = Runtime.load(str(demo.config_path))
    try:
        counts: dict[str, int] = {}
        for job in runtime.jobs():
            counts[job.connector] = counts.get(job.connector, 0) + 1
        return counts
    finally:
        runtime.close()


def reads_and_writes(sim: Simulator) -> tuple[int, int]:
    writes = [
        r
        for r in sim.requests
        if r.method in WRITES
        and "/oauth2/token" not in r.path  # logging in writes nothing
        and "/search" not in r.path  # Jira search by POST, Pendo aggregation: reads
        and "/aggregation" not in r.path
    ]
    return len(sim.requests), len(writes)


def test_the_second_quiet_cycle_costs_one_request_per_stream_plus_one_per_connector(
    demo: Demo,
) -> None:
    sims = dict(zip(("salesforce", "zendesk", "jira", "pendo"), demo.simulators.all(), strict=True))
    streams = streams_per_connector(demo)
    pendo_day = demo.simulators.pendo.today() if demo.simulators.pendo else None
    _results, _plan, first = sync_plan_apply(demo)
    assert first.applied
    sync_plan_apply(demo, later=120)  # reads back what the first apply wrote
    for sim in sims.values():
        sim.reset_log()

    results, plan, applied = sync_plan_apply(demo, later=240)

    assert all(r.status == "ok" for r in results), [r.error for r in results if r.error]
    assert plan.writes == []
    assert applied.applied == []
    spent = {name: reads_and_writes(sim) for name, sim in sims.items()}
    for name, (requests, writes) in spent.items():
        assert writes == 0, (name, spent)
        assert requests <= streams[name] + 1, (name, streams[name], spent)
    assert spent["jira"][0] == 1  # the search of the settled minutes; nothing else
    assert demo.simulators.pendo is not None
    if demo.simulators.pendo.today() == pendo_day:  # no day finished meanwhile
        # Changed accounts only: usage and NPS re-read their finished days every 15 minutes.
        assert spent["pendo"][0] == 1, spent


def test_a_first_read_counts_as_the_sweep(
    tmp_path: Path, small_zendesk: ZendeskSimulator, zendesk_token: str
) -> None:
    """Nothing was stored before a stream's first read: a census right after it finds nothing."""
    runtime = Runtime.load(str(write_config(tmp_path, zendesk_url=small_zendesk.base_url)))
    try:
        results = {r.stream: r for r in runtime.run_once()}
        assert {s for s, r in results.items() if r.swept} == {
            "users",
            "organizations",
            "jira_links",
        }
        assert small_zendesk.requests_to("/api/v2/organizations.json") == []  # no census
        assert small_zendesk.requests_to("/api/v2/deleted_users.json") == []
        for stream in ("users", "organizations", "jira_links"):
            state = runtime.store.stream_state("zendesk", stream)
            assert state is not None
            assert state.last_sweep_at is not None
    finally:
        runtime.close()


@pytest.mark.parametrize("deployment", ["cloud", "datacenter"])
def test_the_jira_census_asks_for_ids_only_in_pages_of_5000(
    deployment: Deployment, tmp_path: Path
) -> None:
    clock = FakeClock(START)
    sim = start_sim(deployment, clock)
    try:
        generate_issues(sim, issues=450, seed=6)
        connector = make_connector(sim, clock)
        engine, store = engine_and_store(tmp_path)
        sim.reset_log()
        engine.sweep_stream(connector, connector.stream("issues"), default_mapping())
        [census] = [r for r in sim.requests if "/search" in r.path]  # 450 ids: one page
        assert census.query.get("fields") == "id"
        expected = "5000" if deployment == "cloud" else str(connector.settings.census_page_size)
        assert census.query.get("maxResults") == expected
        store.close()
    finally:
        sim.stop()
