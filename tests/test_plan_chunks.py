"""Planning every target a chunk of targets at a time plans exactly what the whole World does.

On a small demo company (simulated Salesforce, Zendesk, Jira; SQLite and PostgreSQL stores),
after a full derivation, each connector's plan of every target built from chunks of a few
targets (`Runtime.plan_in_chunks`, and `plan_changes` when everything is dirty) must hold the
same writes, kept writes, guard trips and loop closures as the plan of a whole-World derivation:
for issues (Jira), tickets (Zendesk: figures and loop notes) and accounts (Salesforce). The
mass-change guard is decided over the whole plan, not per chunk: chunks each below the guard's
minimum still trip it together, and a chunk that alone changes too large a share does not
hold back a plan whose whole share is small.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import Demo, launch
from pmsync.sync.links.derive import derive_chunks
from pmsync.sync.store.store import dumps
from pmsync.sync.writeback.plan import GuardTrip, Plan, Planner, build_plan_chunked

pytestmark = pytest.mark.slow

SIZE = CompanySize(accounts=60, contacts=180, users=240, tickets=600, issues=50)
WEIGHT = 40  # targets plus their tickets per chunk: a few issues or accounts, 40 tickets
WRITERS = ("jira", "salesforce", "zendesk")


@contextmanager
def demo_with_ticket_writeback(tmp_path: Path, store_url: str) -> Iterator[Demo]:
    """The demo company with a ticket write-back, its pmsync store at `store_url` (SQLite or
    PostgreSQL)."""
    with launch(tmp_path / "demo", size=SIZE, pendo=False) as running:
        text = running.config_path.read_text()
        running.config_path.write_text(
            re.sub(r'(?m)^url = "sqlite:///[^"]*"', f'url = "{store_url}"', text, count=1)
        )
        declare_ticket_writeback(running)
        yield running


@pytest.fixture
def demo(tmp_path: Path, store_url: str) -> Iterator[Demo]:
    with demo_with_ticket_writeback(tmp_path, store_url) as running:
        yield running


def declare_ticket_writeback(demo: Demo) -> None:
    """Zendesk gets a "Jira status" ticket field, and a write-back of each ticket's issues'
    state to it (the demo writes only loop notes to tickets)."""
    demo.simulators.zendesk.ticket_fields.append(
        {"id": 99001, "type": "text", "title": "Jira status", "raw_title": "Jira status",
         "active": True, "removable": True, "key": None}
    )  # fmt: skip
    (demo.mappings_dir / "ticket_status.toml").write_text(
        "[writeback.demo_ticket_issue_status]\n"
        'connector = "zendesk"\ntarget = "ticket"\n'
        "[writeback.demo_ticket_issue_status.fields]\n"
        '"Jira status" = "issue_status"\n'
    )


def guard(demo: Demo, share: float, minimum: int) -> None:
    """Set the mass-change guard in the demo's configuration."""
    text = demo.config_path.read_text()
    text = re.sub(r"(?m)^max_change_share = .*$", f"max_change_share = {share}", text, count=1)
    demo.config_path.write_text(
        text.replace("[writeback]\n", f"[writeback]\nguard_min_targets = {minimum}\n", 1)
    )


def shown(plan: Plan) -> dict[str, Any]:
    """Everything a plan decides, order aside (a document's key order is no difference)."""
    return {
        "writes": sorted(dumps(w.as_dict()) for w in plan.writes),
        "kept": sorted(dumps(w.as_dict()) for w in plan.kept),
        "guard": sorted(plan.guard, key=lambda t: t.writeback),
        "loops": sorted(plan.loops),
    }


def whole(runtime: Runtime, connector: str) -> Plan:
    return runtime.plan(derived=runtime.derive(persist=False), only_connector=connector)


def chunked(runtime: Runtime, connector: str) -> tuple[Plan, int]:
    """The chunked plan of every target, and how many chunks it took."""
    with capture_logs() as logs:
        plan = runtime.plan_in_chunks(connector, chunk_weight=WEIGHT)
    assert plan is not None
    [counted] = [entry["chunks"] for entry in logs if entry["event"] == "planned_in_chunks"]
    return plan, counted


def cycle(runtime: Runtime) -> None:
    """One daemon write-back per connector written to: plan, apply, mark done."""
    for name in WRITERS:
        plan, dirty = runtime.plan_changes(name)
        if plan.writes:
            assert not runtime.apply(plan, confirm=True).failed
        runtime.done_planning(dirty)


def test_chunked_plans_of_every_target_equal_whole_world_plans(demo: Demo) -> None:
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        assert runtime.derive(incremental=True).mode == "full"
        for name in WRITERS:
            expected = whole(runtime, name)
            plan, chunks = chunked(runtime, name)
            assert chunks >= 3, name
            assert shown(plan) == shown(expected), name
            assert expected.writes, name
        kinds = {w.writeback for w in whole(runtime, "zendesk").writes}
        assert {"demo_ticket_issue_status", "close_loop"} <= kinds  # tickets and loop notes
        assert whole(runtime, "zendesk").loops
        assert shown(every_target_in_chunks(runtime)) == shown(runtime.plan())
        with capture_logs() as logs:
            planned, dirty = runtime.plan_changes("jira", chunk_weight=WEIGHT)
        assert dirty
        assert any(e["event"] == "planned_in_chunks" and e["chunks"] >= 3 for e in logs)
        assert shown(planned) == shown(whole(runtime, "jira"))
    finally:
        runtime.close()


def every_target_in_chunks(runtime: Runtime) -> Plan:
    """Every write-back and loop of every connector, planned from chunks of every kind: an
    issue's or an account's chunk holds tickets too, whose loops are their own chunk's."""
    targets = {"issue": {"jira"}, "account": {"salesforce"}, "ticket": {"zendesk"}}
    chunks = derive_chunks(
        runtime.store,
        runtime.mappings.rollups,
        runtime.config.settings.currency,
        targets,
        scores=runtime.mappings.score_specs(),
        weight=WEIGHT,
    )
    assert chunks is not None
    settings = runtime.config.settings
    return build_plan_chunked(
        runtime.store,
        chunks,
        runtime.mappings.writebacks,
        runtime.writable_connectors(),
        settings.writeback,
        settings.close_loop,
    )


def test_after_writes_and_human_edits_chunked_plans_keep_and_write_as_whole_ones(
    demo: Demo,
) -> None:
    """Written figures read back, a person's edit of one, changed ARR and a solved ticket:
    the chunked plans keep and write what the whole-World plans do."""
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        cycle(runtime)
        runtime.run_once()
        cycle(runtime)
        edit_by_hand(demo)
        change_accounts(demo)
        solve_an_open_ticket(demo)
        # Jira's search finds an edit once its minute has settled: read two minutes ahead.
        runtime.connector("jira").clock = lambda: time.time() + 120  # type: ignore[attr-defined]
        runtime.run_once()
        runtime.derive()  # a full derivation: every target to plan
        for name in WRITERS:
            expected = whole(runtime, name)
            plan, chunks = chunked(runtime, name)
            assert chunks >= 3, name
            assert shown(plan) == shown(expected), name
        jira = whole(runtime, "jira")
        assert jira.kept  # the person's edit, kept by both
        assert jira.writes  # the new ARR
        assert whole(runtime, "salesforce").writes  # the solved ticket's account
    finally:
        runtime.close()


def edit_by_hand(demo: Demo) -> None:
    """A person types over the Customer ARR pmsync wrote on one issue."""
    jira = demo.simulators.jira
    arr = {f["name"]: f["id"] for f in jira.fields}["Customer ARR"]
    issue_id = next(
        i for i, issue in sorted(jira.issues.items()) if issue.current["fields"].get(arr)
    )
    jira.update_issue(str(issue_id), {arr: 1.0})


def change_accounts(demo: Demo) -> None:
    sim = demo.simulators.salesforce
    for account_id in sorted(a.id for a in demo.company.live_accounts())[:4]:
        row = sim.table("Account").rows[account_id]
        sim.update("Account", account_id, {"ARR__c": float(row["ARR__c"] or 0) + 5000})


def chunk_trips(runtime: Runtime, connector: str, kind: str) -> list[list[GuardTrip]]:
    """The guard trips each chunk of `connector`'s `kind` targets would have planned alone."""
    writebacks = {
        name: entry
        for name, entry in runtime.mappings.writebacks.items()
        if entry[1].target == kind and entry[1].connector == connector
    }
    chunks = derive_chunks(
        runtime.store,
        runtime.mappings.rollups,
        runtime.config.settings.currency,
        {kind: {connector}},
        weight=WEIGHT,
    )
    assert chunks is not None
    trips = []
    for derived in chunks:
        planner = Planner(
            runtime.store,
            writebacks,
            runtime.writable_connectors(),
            runtime.config.settings.writeback,
            runtime.config.settings.close_loop.model_copy(update={"enabled": False}),
            chunked=True,
        )
        planner.add(derived)
        trips.append(planner.finish().guard)
    return trips


def test_chunks_each_under_the_guard_minimum_trip_it_together(demo: Demo) -> None:
    guard(demo, share=0.5, minimum=20)
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        runtime.derive()  # nothing written yet: every asked-for issue's figures change
        alone = chunk_trips(runtime, "jira", "issue")
        assert len(alone) >= 3
        assert not any(alone)  # no chunk changes 20 issues
        expected = whole(runtime, "jira")
        [trip] = expected.guard
        assert trip.changed >= 20
        assert trip.share > 0.5
        plan, _chunks = chunked(runtime, "jira")
        assert plan.guard == expected.guard
    finally:
        runtime.close()


def test_one_chunk_over_the_share_does_not_trip_a_whole_under_it(demo: Demo) -> None:
    guard(demo, share=0.05, minimum=1)  # one account of 60: under; of a chunk's few: over
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        cycle(runtime)
        runtime.run_once()
        cycle(runtime)
        solve_an_open_ticket(demo)
        runtime.run_once()
        runtime.derive()
        alone = chunk_trips(runtime, "salesforce", "account")
        assert [trips for trips in alone if trips]  # its chunk alone changes > 5%
        expected = whole(runtime, "salesforce")
        assert expected.writes
        assert not expected.guard
        plan, _chunks = chunked(runtime, "salesforce")
        assert shown(plan) == shown(expected)
    finally:
        runtime.close()


def solve_an_open_ticket(demo: Demo) -> None:
    """An open ticket of a linked account is solved: that account's open requests change."""
    zendesk = demo.simulators.zendesk
    truth = demo.company.truth.tickets
    ticket_id = next(
        i
        for i, t in sorted(zendesk.tickets.items.items())
        if t["status"] == "open" and truth[i].account is not None
    )
    ticket = zendesk._public(zendesk.tickets.items[ticket_id])
    zendesk.put_ticket({**ticket, "status": "solved"}, at=zendesk.now() - 61)
