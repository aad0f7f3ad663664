"""A small demo company on the simulators, and an independent check of what pmsync wrote.

The company (simulators/company.py) carries its own ground truth: which account each ticket
belongs to, which issues it asks for. `expected_demand` recomputes the per-issue figures from
that truth, never from pmsync's store; `written` reads what the Jira simulator holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomlkit

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import RATES, REPORTING_CURRENCY, CompanySize, IssueDemand, Mess
from pmsync.simulators.demo import Demo, launch
from pmsync.simulators.jira import JiraSimulator

# Without issues moved before the first sync: tests of one defect need no other fix to start.
NO_MOVES = Mess(moved_issues=0)
SMALL = CompanySize(
    accounts=60, contacts=150, users=220, tickets=700, issues=70, salespeople=3, usage_days=5
)


@contextmanager
def small_demo(
    directory: Path, *, pendo: bool = False, seed: int = 11, mess: Mess | None = None
) -> Iterator[Demo]:
    """A launched demo of SMALL size whose credentials are in this process's environment."""
    demo = launch(directory, size=SMALL, pendo=pendo, seed=seed, mess=mess)
    try:
        demo.export_env()
        yield demo
    finally:
        demo.stop()


def set_config(demo: Demo, section: str, lines: str) -> None:
    """Set options (TOML `lines`) in a table of the demo's pmsync.toml, e.g. section
    "connectors.jira": keys already there take the new value; the file keeps its comments."""
    document = tomlkit.parse(demo.config_path.read_text())
    table: Any = document
    for part in section.split("."):
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
    for key, value in tomlkit.parse(lines).items():
        table[key] = value
    demo.config_path.write_text(tomlkit.dumps(document))


def expected_demand(demo: Demo) -> dict[str, IssueDemand]:
    """Per live issue, from the company's own truth (recomputed after any change to it)."""
    return demo.company.truth.demand(RATES, REPORTING_CURRENCY)


def field_ids(sim: JiraSimulator) -> dict[str, str]:
    return {f["name"]: f["id"] for f in sim.fields}


def written(sim: JiraSimulator, issue_id: str) -> dict[str, Any]:
    """The fields an issue holds at the Jira simulator now."""
    return dict(sim.issues[int(issue_id)].current["fields"])


def mismatches(demo: Demo) -> list[str]:
    """Every issue whose written figures differ from the independent recomputation."""
    jira = demo.simulators.jira
    ids = field_ids(jira)
    arr, accounts, requests = (
        ids["Customer ARR"],
        ids["Customer accounts"],
        ids["Customer requests"],
    )
    problems = []
    for issue_id, demand in expected_demand(demo).items():
        if int(issue_id) not in jira.issues:
            problems.append(f"{demand.key}: missing at the simulator")
            continue
        fields = written(jira, issue_id)
        if not demand.tickets:
            got = (fields.get(arr), fields.get(accounts), fields.get(requests))
            if any(value not in (None, 0) for value in got):
                problems.append(f"{demand.key}: nobody asks, shows {got}")
            continue
        shown = fields.get(arr)
        if shown is None or not math.isclose(float(shown), demand.arr, abs_tol=0.01):
            problems.append(f"{demand.key}: ARR {shown} != {demand.arr}")
        if fields.get(accounts) != len(demand.accounts):
            problems.append(
                f"{demand.key}: accounts {fields.get(accounts)} != {len(demand.accounts)}"
            )
        if fields.get(requests) != demand.tickets:
            problems.append(f"{demand.key}: tickets {fields.get(requests)} != {demand.tickets}")
    return problems


def synced(demo: Demo, *, later: float = 0.0, sweep: bool | None = None) -> Runtime:
    """A fresh runtime that has run one `sync --once`.

    `later`: the read happens that many seconds from now, as far as Jira's settle lag is
    concerned (a change made a moment ago is searchable only once its minute has settled).
    """
    runtime = Runtime.load(str(demo.config_path))
    if later:
        runtime.connector("jira").clock = lambda: time.time() + later  # type: ignore[attr-defined]
    runtime.run_once(sweep=sweep)
    return runtime


def sync_plan_apply(demo: Demo, *, later: float = 0.0) -> tuple[Any, Any, Any]:
    """One `sync --once`, `plan`, `apply` as three fresh runtimes (three processes' worth)."""
    config = str(demo.config_path)
    runtime = Runtime.load(config)
    if later:
        runtime.connector("jira").clock = lambda: time.time() + later  # type: ignore[attr-defined]
    try:
        results = runtime.run_once()
    finally:
        runtime.close()
    runtime = Runtime.load(config)
    try:
        plan = runtime.plan()
    finally:
        runtime.close()
    runtime = Runtime.load(config)
    try:
        with runtime.writeback_lock():
            applied = runtime.apply(runtime.plan())
    finally:
        runtime.close()
    return results, plan, applied
