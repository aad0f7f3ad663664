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
from pmsync.simulators.demo import Demo
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
