"""The daemon's write-back plans only what changed, and plans it as a full plan would.

On a small demo company (simulated Salesforce, Zendesk, Jira): after a first cycle wrote every
figure, accounts' ARR changes; each connector's `plan_changes` (incremental derivation, then
only the targets marked for it) must hold exactly the writes a full derivation's plan holds for
that connector, and once applied, a quiet cycle plans nothing and reads no record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import CompanySize
from pmsync.simulators.demo import Demo, launch
from pmsync.sync.store.store import dumps
from pmsync.sync.writeback.plan import Plan

pytestmark = pytest.mark.slow

SIZE = CompanySize(accounts=60, contacts=180, users=240, tickets=600, issues=50)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with launch(tmp_path / "demo", size=SIZE, pendo=False) as running:
        yield running


def writes(plan: Plan) -> set[tuple[str, str, str, str]]:
    """Each write, its value as canonical JSON (a document's key order is no difference)."""
    return {(w.connector, w.target_key, w.field, dumps(w.new)) for w in plan.writes}


def cycle(runtime: Runtime) -> dict[str, Plan]:
    """One daemon write-back per connector written to: plan what changed, apply, mark done."""
    plans: dict[str, Plan] = {}
    for name in runtime.writable_connectors():
        if not runtime.writes_to(name):
            continue
        plan, dirty = runtime.plan_changes(name)
        plans[name] = plan
        if plan.writes:
            result = runtime.apply(plan, confirm=True)
            assert not result.failed
        runtime.done_planning(dirty)
    return plans


def test_plans_of_what_changed_equal_full_plans(demo: Demo) -> None:
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        first = cycle(runtime)
        assert first["jira"].writes  # every figure, after the first (full) derivation
        runtime.run_once()  # reads back what was written
        cycle(runtime)
        sim = demo.simulators.salesforce
        for account_id in sorted(a.id for a in demo.company.live_accounts())[:6]:
            row = sim.table("Account").rows[account_id]
            sim.update("Account", account_id, {"ARR__c": float(row["ARR__c"] or 0) + 5000})
        runtime.run_once()
        assert runtime.derive(incremental=True).mode == "incremental"
        full = runtime.derive(persist=False)
        for name in ("jira", "salesforce"):
            changed, _dirty = runtime.plan_changes(name)
            expected = runtime.plan(derived=full, only_connector=name)
            assert writes(changed) == writes(expected), name
        assert writes(runtime.plan_changes("jira")[0])  # the new ARR reaches Jira
        cycle(runtime)
        runtime.run_once()
        cycle(runtime)  # reads back the writes
        assert runtime.derive(incremental=True).mode == "quiet"
        for name in ("jira", "salesforce", "zendesk"):
            plan, dirty = runtime.plan_changes(name)
            assert (plan.writes, dirty) == ([], []), name
    finally:
        runtime.close()


def kept(runtime: Runtime) -> bool:
    return runtime.keeps_derivation


def test_kept_derivations_go_once_every_connector_has_planned(demo: Demo) -> None:
    """An idle daemon holds no derivation: a full one is streamed and kept by no one (each
    connector plans every target a chunk at a time from the store); an incremental one serves
    the connectors still to plan its generation's targets, and goes when none is left."""
    runtime = Runtime.load(str(demo.config_path))
    names = [n for n in runtime.writable_connectors() if runtime.writes_to(n)]
    try:
        runtime.run_once()
        plan, dirty = runtime.plan_changes(names[0])
        assert plan.writes
        assert not kept(runtime)  # the first, full derivation: streamed, nothing held
        runtime.done_planning(dirty)
        cycle(runtime)
        assert not kept(runtime)
        runtime.run_once()
        cycle(runtime)  # reads back the writes (a full derivation again: nothing kept)
        assert not kept(runtime)
        sim = demo.simulators.salesforce
        for account_id in sorted(a.id for a in demo.company.live_accounts())[:3]:
            row = sim.table("Account").rows[account_id]
            sim.update("Account", account_id, {"ARR__c": float(row["ARR__c"] or 0) + 5000})
        runtime.run_once()
        _plan, jira_dirty = runtime.plan_changes("jira")
        assert runtime.derive(incremental=True).mode == "quiet"
        assert kept(runtime)  # the incremental one, for the others' plans
        runtime.done_planning(jira_dirty)
        assert kept(runtime)
        cycle(runtime)
        assert not kept(runtime)
    finally:
        runtime.close()
